"""Training speed of `sdm`: the project's trainer against a research-style loop and the matmul peak.

    .venv/bin/python benchmarks/train_speed.py            # full run (about a minute, 2 idle cores)
    .venv/bin/python benchmarks/train_speed.py --quick    # small sizes, a smoke check
    .venv/bin/python benchmarks/train_speed.py --data medium   # the trainer alone, on a big corpus

Everything is measured in one run on the same shipped-corpus training frames, so every ratio
compares figures taken on the same machine under the same load:

- reference: one variant at a time, written the way typical research code is (nn.Linear layers,
  Python-side batch slicing, `.item()` every step, each batch moved to the device, default Adam);
- ours: the trainer on all 14 Table-1 variants at once, timed in steady state, as it runs by
  default (on a CPU one single-threaded process per core, `sdm.parallel`) and in one process;
- peak: the fp32 matmul rate at the model's largest GEMM shape, 128x513 @ 513x128.

Throughput is in variant-frames per second: frames each variant trains on per second, summed over
the variants trained at once. The figures go to benchmarks/results/<machine>.json (claim C10, the
SDM-VAE / VAE step-time ratio, is read from there).

With `--data NAME` other than shipped (the medium corpus: 696k frames, an epoch of 14 variants
takes minutes) only the stacked trainer and the matmul peak are measured, one warm-up epoch then
one timed epoch, into benchmarks/results/<machine>-<data>.json; the reference loop and C10 stay on
the shipped corpus.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdm import losses
from sdm.config import ModelConfig, TrainConfig
from sdm.dictionary import build_dictionary
from sdm.nets import N_BINS
from sdm.parallel import resolve_workers
from sdm.results import write_text
from sdm.train import fit, pick_device
from sdm.variants import VARIANTS, get_variant

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BATCH = 128
LR = 1e-4
PEAK_SHAPE = (128, N_BINS, 128)  # (B, n_in, n_out): the encoder's first layer on one batch
# the reference covers both latent sizes of the two families claim C10 compares
REFERENCE_VARIANTS = ("vae-m32", "sdm-dct-k32-m32", "vae-m64", "sdm-dct-k64-m64")
BUSY_LOAD = 0.5  # 1-minute load average per core above which the report warns (no /proc/stat)
BUSY_CPU = 0.25  # share of all cores busy in the second before the run above which it warns
C10_PAIRS = ((32, "vae-m32", "sdm-dct-k32-m32"), (64, "vae-m64", "sdm-dct-k64-m64"))


@dataclass(frozen=True)
class Sizes:
    """How much each measurement runs; `max_frames` None means every training frame."""

    max_frames: int | None
    reference_steps: int  # timed optimizer steps per reference variant (after 10 warm-up steps)
    epochs: int  # timed epochs of ours (after one warm-up epoch)
    c10_epochs: int  # timed epochs per single-member fit
    c10_repeats: int  # alternating VAE / SDM-VAE repeats
    peak_reps: int  # matmuls per timed block (5 blocks, the fastest is the peak)


FULL = Sizes(
    max_frames=None, reference_steps=400, epochs=3, c10_epochs=2, c10_repeats=5, peak_reps=1000
)
QUICK = Sizes(
    max_frames=4096, reference_steps=40, epochs=1, c10_epochs=1, c10_repeats=1, peak_reps=200
)
TRAINER_ONLY = Sizes(
    max_frames=None, reference_steps=0, epochs=1, c10_epochs=0, c10_repeats=0, peak_reps=1000
)


def gemm_flops_per_frame(cfg: ModelConfig) -> int:
    """fp32 FLOPs of the GEMMs of one training frame of one variant, forward + backward.

    Multiply-accumulates (MACs) of the forward pass, with F = 513 bins, H = 128 hidden units, code
    size d (k for SDM-VAE, m otherwise) and n_heads heads (3 for VSC's spike logit, else 2):
        encoder  F*H + H*(n_heads*d)      decoder  m*H + H*F      SDM-VAE's z = D a:  k*m
    The backward pass of a trainable layer costs two forwards (weight gradient + input gradient),
    except the encoder's first layer, whose input is the data (no input gradient), and D, which is
    fixed (input gradient only). One MAC is 2 FLOPs. SDM-VAE at m = k = 64: 0.82 MFLOP (counting
    the backward pass as two forwards everywhere would give 0.96, overstating the share of peak).
    """
    n_heads = 3 if cfg.family == "vsc" else 2
    h, d = cfg.hidden, cfg.code_dim
    first = N_BINS * h
    net_macs = first + h * n_heads * d + cfg.m * h + h * N_BINS
    dict_macs = cfg.k * cfg.m if cfg.family == "sdm" else 0
    return 2 * (3 * net_macs - first + 2 * dict_macs)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def gemm_peak_gflops(dev: torch.device, reps: int, blocks: int = 5) -> float:
    """fp32 torch.mm rate at 128x513 @ 513x128 in GFLOP/s: warm-up, then the fastest of `blocks`."""
    b, n_in, n_out = PEAK_SHAPE
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(b, n_in, generator=gen).to(dev)
    w = torch.randn(n_in, n_out, generator=gen).to(dev)
    out = torch.empty(b, n_out, device=dev)
    for _ in range(max(20, reps // 5)):
        torch.mm(a, w, out=out)
    best = 0.0
    for _ in range(blocks):
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, w, out=out)
        _sync(dev)
        best = max(best, 2 * b * n_in * n_out * reps / (time.perf_counter() - t0))
    return best / 1e9


class _ResearchModel(nn.Module):
    """VAE or SDM-VAE as research code writes them: nn.Linear layers, separate mean and
    log-variance layers, the family picked by a branch. The loss terms are sdm.losses, so the
    objective is the same as ours.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, h = cfg.code_dim, cfg.hidden
        self.enc = nn.Linear(N_BINS, h)
        self.enc_mean = nn.Linear(h, d)
        self.enc_logvar = nn.Linear(h, d)
        self.dec = nn.Linear(cfg.m, h)
        self.dec_out = nn.Linear(h, N_BINS)
        self.sdm = cfg.family == "sdm"
        if self.sdm:
            self.register_buffer("D", build_dictionary(cfg.dictionary, cfg.m, cfg.k))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.enc(x))
        mu, logvar = self.enc_mean(h), self.enc_logvar(h)
        a = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        if self.sdm:
            kl = losses.kl_gaussian_prior(mu, logvar, losses.gamma_update(mu, logvar))
            z = a @ self.D.T
        else:
            kl = losses.kl_std_normal(mu, logvar)
            z = a
        log_v = self.dec_out(torch.tanh(self.dec(z)))
        recon = losses.is_loss(x, log_v).mean()
        kl = kl.mean()
        return recon + kl, recon, kl


def reference_frames_per_s(
    cfg: ModelConfig, train: torch.Tensor, steps: int, dev: torch.device, warmup: int = 10
) -> float:
    """Frames/s of the research-style loop on one variant. `train` stays on the host, (N, 513)."""
    torch.manual_seed(0)
    model = _ResearchModel(cfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    n = train.shape[0]
    log: list[tuple[float, float, float]] = []  # logged every step, as research code does
    done, timed_frames, t0 = 0, 0, 0.0
    while done < warmup + steps:
        shuffled = train[torch.randperm(n)]
        for i in range(0, n, BATCH):
            if done == warmup:
                _sync(dev)
                t0 = time.perf_counter()
            x = shuffled[i : i + BATCH].to(dev)
            loss, recon, kl = model(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.append((loss.item(), recon.item(), kl.item()))
            done += 1
            timed_frames += x.shape[0] if done > warmup else 0
            if done == warmup + steps:
                break
    _sync(dev)
    return timed_frames / (time.perf_counter() - t0)


def _timed_fit_config(epochs: int) -> TrainConfig:
    # validation only at the last epoch and no early stopping: the trainer's steady-state steps
    return TrainConfig(
        lr=LR, batch_size=BATCH, max_epochs=epochs, patience=10**6, val_every_steps=10**9
    )


def fit_seconds(
    configs: Sequence[ModelConfig],
    train: torch.Tensor,
    val: torch.Tensor,
    epochs: int,
    dev: str,
    workers: int | str = 1,
) -> float:
    """Seconds the trainer spent in training epochs by its own clock: no model building, no
    validation. With several processes, the slowest one's (they start together)."""
    results = fit(
        list(configs),
        [0] * len(configs),
        train,
        val,
        _timed_fit_config(epochs),
        device=dev,
        progress=False,
        workers=workers,
    )
    return max(r.elapsed_s for r in results)


def ours_variant_frames_per_s(
    configs: Sequence[ModelConfig],
    train: torch.Tensor,
    val: torch.Tensor,
    epochs: int,
    dev: str,
    workers: int | str = "auto",
) -> dict[str, float]:
    """The trainer on all configs at once: a one-epoch warm-up fit, then a timed one."""
    fit_seconds(configs, train, val, 1, dev, workers)
    t0 = time.perf_counter()
    elapsed = fit_seconds(configs, train, val, epochs, dev, workers)
    wall = time.perf_counter() - t0
    frames = len(configs) * train.shape[0] * epochs
    return {
        "variant_frames_per_s": frames / elapsed,
        "train_s": elapsed,
        "fit_wall_s": wall,
        "workers": resolve_workers(workers, dev, len(configs)),
    }


def c10_step_ratios(
    train: torch.Tensor, val: torch.Tensor, sizes: Sizes, dev: str
) -> dict[str, dict[str, float]]:
    """Claim C10: SDM-VAE's time per training step over the plain VAE's, each fit() alone.

    VAE and SDM-VAE alternate, so a change of machine load hits both. Per m: the median step
    times, their ratio, and the ratio of each repeat ("ratios", what sdm.claims bootstraps).
    """
    steps = -(-train.shape[0] // BATCH) * sizes.c10_epochs
    out = {}
    for m, vae, sdm_name in C10_PAIRS:
        pair = {vae: get_variant(vae), sdm_name: get_variant(sdm_name)}
        times: dict[str, list[float]] = {name: [] for name in pair}
        for cfg in pair.values():
            fit_seconds([cfg], train, val, 1, dev)
        for _ in range(sizes.c10_repeats):
            for name, cfg in pair.items():
                times[name].append(fit_seconds([cfg], train, val, sizes.c10_epochs, dev) / steps)
        vae_ms = 1e3 * statistics.median(times[vae])
        sdm_ms = 1e3 * statistics.median(times[sdm_name])
        out[f"m{m}"] = {
            "vae_step_ms": vae_ms,
            "sdm_step_ms": sdm_ms,
            "ratio": sdm_ms / vae_ms,
            "ratios": [s / v for s, v in zip(times[sdm_name], times[vae])],
        }
    return out


def machine_label(dev: torch.device) -> str:
    """File-name label: the GPU's name, or cpu-<cores>core."""
    if dev.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(dev).lower()).strip("-")
    return f"cpu-{os.cpu_count()}core"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_busy_fraction(seconds: float = 1.0, stat: Path = Path("/proc/stat")) -> float | None:
    """The share of all cores' time spent outside idle over the next `seconds` (/proc/stat), or
    None where there is no /proc/stat. Unlike the load average, a 1-minute decaying mean that still
    counts processes stopped a minute ago, this is what other processes use right now."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle  # user nice system idle iowait irq softirq steal

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total1 - total0
    return 1.0 - (idle1 - idle0) / elapsed if elapsed > 0 else None


def busy_at_start(cpu_busy: float | None, load_average: float | None) -> bool:
    """Whether other work was running when a benchmark started: from the CPU share busy just
    before it when known, else from the 1-minute load average."""
    if cpu_busy is not None:
        return cpu_busy > BUSY_CPU
    return load_average is not None and load_average > BUSY_LOAD * (os.cpu_count() or 1)


def _context(
    dev: torch.device,
    command: str,
    sizes: Sizes,
    train: torch.Tensor,
    load_start: float | None,
    peak: float,
    cpu_busy: float | None = None,
) -> dict[str, Any]:
    """What every result file records beside its figures: machine, software, sizes, load."""
    return {
        "machine": machine_label(dev),
        "device": str(dev),
        "cpu": _cpu_name(),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "sizes": vars(sizes),
        "train_frames": int(train.shape[0]),
        "batch_size": BATCH,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_busy_at_start": cpu_busy,
        "busy_at_start": busy_at_start(cpu_busy, load_start),
        "peak_gflops": peak,
        "peak_shape": list(PEAK_SHAPE),
    }


def run(
    train: torch.Tensor, val: torch.Tensor, sizes: Sizes, device: str = "cpu", command: str = ""
) -> dict[str, Any]:
    """Every measurement, in one run on the same frames; returns the figures as a dict.

    `command` is recorded as given: the command line that reproduces the run.
    """
    dev = pick_device(device)
    if sizes.max_frames is not None:
        train = train[: sizes.max_frames]
    cpu_busy = cpu_busy_fraction()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    peak = gemm_peak_gflops(dev, sizes.peak_reps)

    flops = {name: gemm_flops_per_frame(cfg) for name, cfg in VARIANTS.items()}
    flops_mean = statistics.fmean(flops.values())
    ref_flops_mean = statistics.fmean(flops[name] for name in REFERENCE_VARIANTS)

    ref = {
        name: reference_frames_per_s(get_variant(name), train, sizes.reference_steps, dev)
        for name in REFERENCE_VARIANTS
    }
    # harmonic mean: the rate of training the variants one after another on equal frames
    ref_rate = statistics.harmonic_mean(ref.values())
    variants = list(VARIANTS.values())
    # the trainer's default on a CPU: one single-threaded process per core (sdm.parallel) ...
    ours = ours_variant_frames_per_s(variants, train, val, sizes.epochs, str(dev), "auto")
    # ... and, for comparison, one process whose GEMMs use every thread
    one_process = ours_variant_frames_per_s(variants, train, val, sizes.epochs, str(dev), 1)
    threads = torch.get_num_threads()
    if dev.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
        peak_one_thread = gemm_peak_gflops(dev, sizes.peak_reps)
        torch.set_num_threads(threads)
    else:
        peak_one_thread = None
    c10 = c10_step_ratios(train, val, sizes, str(dev))
    return {
        **_context(dev, command, sizes, train, load_start, peak, cpu_busy),
        "gemm_flops_per_frame": flops,
        "gemm_flops_per_frame_mean": flops_mean,
        "reference": {
            "frames_per_s": ref,
            "frames_per_s_all": ref_rate,
            "steps": sizes.reference_steps,
        },
        "peak_one_thread_gflops": peak_one_thread,
        "ours": {"variants": list(VARIANTS), "epochs": sizes.epochs, **ours},
        "ours_one_process": one_process,
        "ratio": ours["variant_frames_per_s"] / ref_rate,
        "fraction_of_peak": {
            "ours": ours["variant_frames_per_s"] * flops_mean / (peak * 1e9),
            "ours_one_process": one_process["variant_frames_per_s"] * flops_mean / (peak * 1e9),
            "reference": ref_rate * ref_flops_mean / (peak * 1e9),
            # GEMMs of single-threaded processes on every core cannot exceed this: a stricter bar
            "ours_of_cores_x_one_thread_peak": (
                None
                if peak_one_thread is None
                else ours["variant_frames_per_s"] * flops_mean / (peak_one_thread * threads * 1e9)
            ),
        },
        "c10_sdm_over_vae_step": c10,
    }


def run_trainer_only(
    train: torch.Tensor,
    val: torch.Tensor,
    sizes: Sizes,
    data: str,
    device: str = "cpu",
    command: str = "",
) -> dict[str, Any]:
    """The stacked trainer on all 14 variants (its default layout) and the matmul peak, on a
    corpus too big for the reference loop and C10 to be worth their time."""
    dev = pick_device(device)
    if sizes.max_frames is not None:
        train = train[: sizes.max_frames]
    cpu_busy = cpu_busy_fraction()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    peak = gemm_peak_gflops(dev, sizes.peak_reps)
    flops_mean = statistics.fmean(gemm_flops_per_frame(cfg) for cfg in VARIANTS.values())
    ours = ours_variant_frames_per_s(
        list(VARIANTS.values()), train, val, sizes.epochs, str(dev), "auto"
    )
    return {
        **_context(dev, command, sizes, train, load_start, peak, cpu_busy),
        "data": data,
        "gemm_flops_per_frame_mean": flops_mean,
        "ours": {"variants": list(VARIANTS), "epochs": sizes.epochs, **ours},
        "epoch_s": ours["train_s"] / sizes.epochs,
        "fraction_of_peak": {"ours": ours["variant_frames_per_s"] * flops_mean / (peak * 1e9)},
    }


def _busy_text(r: dict[str, Any]) -> str:
    busy = r.get("cpu_busy_at_start")
    return "" if busy is None else f"; CPU {busy:.0%} busy in the second before the start"


def report_trainer_only(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"machine {r['machine']}: {r['gpu'] or r['cpu']}, torch {r['torch']}, "
            f"intra-op threads {r['threads']}, device {r['device']}",
            f"{r['train_frames']} {r['data']}-corpus training frames, batch {r['batch_size']}",
            f"load average (1 min) at start {r['load_average_start']:.2f}, "
            f"at end {r['load_average_end']:.2f}{_busy_text(r)}",
            f"peak fp32 GEMM 128x513 @ 513x128: {r['peak_gflops']:.1f} GFLOP/s",
            f"ours, the trainer on 14 variants at once in {r['ours']['workers']} process(es): "
            f"{r['ours']['variant_frames_per_s']:,.0f} variant-frames/s, "
            f"{r['epoch_s']:.0f} s per 14-variant epoch "
            f"({r['fraction_of_peak']['ours']:.1%} of peak)",
        ]
    )


def report(r: dict[str, Any]) -> str:
    """The printed summary; the `ratio` line is what the issue's check looks for."""
    lines = [
        f"machine {r['machine']}: {r['gpu'] or r['cpu']}, torch {r['torch']}, "
        f"intra-op threads {r['threads']}, device {r['device']}",
        f"{r['train_frames']} shipped-corpus training frames, batch {r['batch_size']}",
    ]
    if r["load_average_start"] is not None:
        lines.append(
            f"load average (1 min) at start {r['load_average_start']:.2f}, "
            f"at end {r['load_average_end']:.2f}{_busy_text(r)}"
        )
        if r["busy_at_start"]:
            lines.append(
                "warning: the machine was busy when the run started; absolute figures are "
                "depressed (threads contend): rerun on an idle machine"
            )
    lines += [
        f"peak fp32 GEMM 128x513 @ 513x128: {r['peak_gflops']:.1f} GFLOP/s",
        f"GEMM FLOPs per frame, forward + backward, mean of 14 variants: "
        f"{r['gemm_flops_per_frame_mean'] / 1e6:.3f} MFLOP",
        "reference, one variant at a time (research-style loop):",
    ]
    for name, fps in r["reference"]["frames_per_s"].items():
        lines.append(f"  {name:<18} {fps:>12,.0f} frames/s")
    lines += [
        f"  {'one after another':<18} {r['reference']['frames_per_s_all']:>12,.0f} frames/s",
        f"ours, the trainer on 14 variants at once in {r['ours']['workers']} process(es): "
        f"{r['ours']['variant_frames_per_s']:,.0f} variant-frames/s",
        f"  (in one process using every thread: "
        f"{r['ours_one_process']['variant_frames_per_s']:,.0f} variant-frames/s)",
        f"ratio ours / reference: {r['ratio']:.2f}",
        f"fraction of peak: ours {r['fraction_of_peak']['ours']:.1%} "
        f"(one process {r['fraction_of_peak']['ours_one_process']:.1%}), "
        f"reference {r['fraction_of_peak']['reference']:.1%}",
    ]
    if r["peak_one_thread_gflops"] is not None:
        lines.append(
            f"one-thread GEMM peak {r['peak_one_thread_gflops']:.1f} GFLOP/s; ours is "
            f"{r['fraction_of_peak']['ours_of_cores_x_one_thread_peak']:.1%} of "
            f"{r['threads']} x that"
        )
    for m, c in r["c10_sdm_over_vae_step"].items():
        lines.append(
            f"C10 SDM-VAE / VAE time per step at {m}: {c['ratio']:.3f} "
            f"({c['sdm_step_ms']:.2f} ms / {c['vae_step_ms']:.2f} ms)"
        )
    return "\n".join(lines)


def write_json(r: dict[str, Any], path: Path | None) -> None:
    """Write a result file and say where; None (a --quick run without --out) writes nothing."""
    if path is not None:
        write_text(path, json.dumps(r, indent=2) + "\n")
        print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke check)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--data",
        default="shipped",
        help="corpus (default shipped); any other measures the stacked trainer only",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON file to write; default benchmarks/results/<machine>.json (full runs only)",
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads: expected a positive number, got {args.threads}")
        torch.set_num_threads(args.threads)
    from sdm.data import frames

    train = torch.from_numpy(frames(args.data, "train"))
    val = torch.from_numpy(frames(args.data, "val"))
    command = shlex.join([".venv/bin/python", "benchmarks/train_speed.py", *argv])
    if args.data == "shipped":
        r = run(train, val, QUICK if args.quick else FULL, args.device, command)
        print(report(r))
        name = r["machine"]
    else:
        sizes = dataclasses.replace(
            TRAINER_ONLY, max_frames=QUICK.max_frames if args.quick else None
        )
        r = run_trainer_only(train, val, sizes, args.data, args.device, command)
        print(report_trainer_only(r))
        name = f"{r['machine']}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.data)}"
    write_json(r, args.out or (None if args.quick else RESULTS_DIR / f"{name}.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

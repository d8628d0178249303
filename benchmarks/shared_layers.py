"""Would one matrix product per process for the layers every variant shares make training faster?

    .venv/bin/python benchmarks/shared_layers.py              # about a minute on one idle core
    .venv/bin/python benchmarks/shared_layers.py --quick      # a smoke check

Every Table-1 variant has the same encoder input layer (513 -> 128) and decoder output layer
(128 -> 513). The trainer groups members by shape and runs each group's layers as one batched
product (`sdm.nets.StackedLinear`), so a process training 8 shape groups runs 8 products per shared
layer where one product over all its members would do. This script times the trainer's training
step (forward, backward, fused Adam: `sdm.training_state.TrainingState.run_epoch`'s body) three
ways, on the same batches, in alternating blocks so load drift hits all three alike:

- **trainer**: as it trains today, one product per shape group;
- **one product, weights concatenated**: the two shared layers as one product over every member,
  the groups' weights concatenated at each step (the parameter layout stays as it is);
- **one product, weights stored together**: the same with the two layers' weights held as one
  tensor for all members (a new parameter layout: the most the change could gain).

It first checks that the one-product step gives bitwise the trainer's losses and gradients (else
the change could not keep the project's bitwise tests), then reports each way's median step time
and the ratio to the trainer's. Single-threaded by default, like each campaign process. The
figures go to benchmarks/results/<machine>-shared-layers.json.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sdm import losses
from sdm.models import LatentStack, build_stack, group_members
from sdm.variants import VARIANTS, get_variant

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import (  # noqa: E402
    RESULTS_DIR,
    _cpu_name,
    busy_at_start,
    cpu_busy_fraction,
    machine_label,
    write_json,
)

BATCH = 128
LR = 1e-4
# the live campaign's first stack of this session: two shape groups, one process
CAMPAIGN_STACK = ("vsc-a0.05-m32", "vsc-a0.9-m32", "vae-m64")


def build_groups(names: Sequence[str]) -> list[LatentStack]:
    """The stacks the trainer would build for these variants (seed 0), in its group order."""
    members = [(get_variant(n), 0) for n in names]
    return [build_stack([c for c, _ in g], [s for _, s in g]) for g in group_members(members)]


# the two layers every variant shares: the encoder's input layer, the decoder's output layer
SHARED_NAMES = (
    "encoder.hidden.weight",
    "encoder.hidden.bias",
    "decoder.out.weight",
    "decoder.out.bias",
)


def trainer_losses(stacks: Sequence[LatentStack], xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each group's forward as the trainer runs it."""
    return [s(x).loss for s, x in zip(stacks, xs, strict=True)]


def shared_losses(
    stacks: Sequence[LatentStack],
    xs: Sequence[torch.Tensor],
    shared: Sequence[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """The same forward with the encoder's input layer and the decoder's output layer as one
    product over every member. `shared`: those layers' weights and biases held as four tensors
    for all members; None concatenates the groups' own at each step."""
    sizes = [s.size for s in stacks]
    if shared is None:
        shared = [torch.cat([s.get_parameter(n) for s in stacks]) for n in SHARED_NAMES]
    enc_w, enc_b, dec_w, dec_b = shared
    hidden = torch.tanh(torch.baddbmm(enc_b, torch.cat(list(xs)), enc_w)).split(sizes)
    lats, dec_hidden = [], []
    for s, h in zip(stacks, hidden, strict=True):
        lat = s._latent(s.encoder.heads(h).split(s.encoder.d, dim=-1), True)
        lats.append(lat)
        dec_hidden.append(torch.tanh(s.decoder.hidden(lat.z)))
    logvars = torch.baddbmm(dec_b, torch.cat(dec_hidden), dec_w).split(sizes)
    # the loss as LatentStack.forward composes it (check_bitwise compares the two)
    return [
        (losses.is_loss(x, lv) + lat.kl).mean(dim=1)
        for x, lat, lv in zip(xs, lats, logvars, strict=True)
    ]


class Way:
    """One way of taking the training step, on its own copy of the models (same seeds)."""

    def __init__(self, names: Sequence[str], kind: str) -> None:
        self.kind = kind
        self.stacks = build_groups(names)
        self.shared: list[torch.Tensor] | None = None
        params = [p for s in self.stacks for p in s.parameters()]
        if kind == "stored":
            self.shared = [
                torch.cat([s.get_parameter(n).detach() for s in self.stacks]).requires_grad_()
                for n in SHARED_NAMES
            ]
            skip = {id(s.get_parameter(n)) for s in self.stacks for n in SHARED_NAMES}
            params = self.shared + [p for p in params if id(p) not in skip]
        # one optimizer over all members (the trainer keeps one per group: the same elementwise
        # update, and the Adam time is not what this compares)
        self.opt = torch.optim.Adam(params, lr=LR, fused=True)

    def losses(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.kind == "trainer":
            return trainer_losses(self.stacks, xs)
        return shared_losses(self.stacks, xs, self.shared)

    def step(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.losses(xs)
        self.opt.zero_grad(set_to_none=True)
        sum(o.sum() for o in out).backward()
        self.opt.step()
        return out

    def gradients(self) -> list[torch.Tensor]:
        """Every member's gradients in the trainer's layout (group by group, parameter order)."""
        grads = []
        offsets = [0]
        for s in self.stacks:
            offsets.append(offsets[-1] + s.size)
        for gi, s in enumerate(self.stacks):
            for name, p in s.named_parameters():
                if self.shared is not None and name in SHARED_NAMES:
                    whole = self.shared[SHARED_NAMES.index(name)].grad
                    grads.append(whole[offsets[gi] : offsets[gi + 1]])
                else:
                    grads.append(p.grad)
        return grads


def batches(
    train: torch.Tensor, stacks: Sequence[LatentStack], steps: int
) -> list[list[torch.Tensor]]:
    """`steps` batches per group, each member its own shuffled frames (fixed generator)."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(steps):
        out.append(
            [train[torch.randint(train.shape[0], (s.size, BATCH), generator=gen)] for s in stacks]
        )
    return out


def check_bitwise(names: Sequence[str], train: torch.Tensor) -> dict[str, bool]:
    """Losses and gradients of two steps: each one-product way against the trainer, bitwise."""
    ways = {kind: Way(names, kind) for kind in ("trainer", "concatenated", "stored")}
    data = batches(train, ways["trainer"].stacks, 2)
    verdict = {}
    ref_losses, ref_grads = [], []
    for xs in data:
        ref_losses.append(ways["trainer"].step(xs))
        ref_grads.append(ways["trainer"].gradients())
    for kind in ("concatenated", "stored"):
        same = True
        for t, xs in enumerate(data):
            out = ways[kind].step(xs)
            same &= all(torch.equal(a, b) for a, b in zip(out, ref_losses[t], strict=True))
            same &= all(
                torch.equal(a, b) for a, b in zip(ways[kind].gradients(), ref_grads[t], strict=True)
            )
        verdict[kind] = bool(same)
    return verdict


def time_ways(
    names: Sequence[str], train: torch.Tensor, steps: int, blocks: int
) -> dict[str, dict[str, Any]]:
    """Seconds per step of each way: rounds of one short block per way, taken in turn, so each
    round's ratio to the trainer compares blocks a fraction of a second apart (this machine's
    speed drifts by tens of percent over seconds); the median over rounds is the figure."""
    ways = {kind: Way(names, kind) for kind in ("trainer", "concatenated", "stored")}
    data = batches(train, ways["trainer"].stacks, steps)
    for way in ways.values():  # warm-up: allocator, kernels
        for _ in range(3):
            for xs in data:
                way.step(xs)
    per_step: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(blocks):
        for kind, way in ways.items():
            t0 = time.perf_counter()
            for xs in data:
                way.step(xs)
            per_step[kind].append((time.perf_counter() - t0) / steps)
    base = per_step["trainer"]
    out: dict[str, dict[str, Any]] = {}
    for kind, ts in per_step.items():
        ratios = sorted(b / t for b, t in zip(base, ts, strict=True))
        out[kind] = {
            "median_step_ms": 1000 * statistics.median(ts),
            "speedup_vs_trainer": statistics.median(ratios),
            # the middle half of the rounds' ratios: how far one round's figure can be trusted
            "speedup_quartiles": [ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]],
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke check)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=40, help="rounds of timed blocks")
    parser.add_argument("--out", type=Path, help="JSON file (default: benchmarks/results/)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    for name in ("threads", "steps", "blocks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected a positive number, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    steps, blocks = (2, 2) if args.quick else (args.steps, args.blocks)
    from sdm.data import frames

    train = torch.from_numpy(frames("shipped", "train"))
    cpu_busy = cpu_busy_fraction()
    load_start = os.getloadavg()[0]
    cases = {"table1": list(VARIANTS), "campaign-stack": list(CAMPAIGN_STACK)}
    r: dict[str, Any] = {
        "machine": machine_label(torch.device("cpu")),
        "cpu": _cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "benchmarks/shared_layers.py", *argv]),
        "device": "cpu",
        "train_frames": int(train.shape[0]),
        "batch_size": BATCH,
        "steps_per_block": steps,
        "blocks": blocks,
        "load_average_start": load_start,
        "cpu_busy_at_start": cpu_busy,
        "busy_at_start": busy_at_start(cpu_busy, load_start),
        "cases": {},
    }
    for label, names in cases.items():
        groups = len(build_groups(names))
        bitwise = check_bitwise(names, train)
        timing = time_ways(names, train, steps, blocks)
        r["cases"][label] = {
            "variants": names,
            "shape_groups": groups,
            "bitwise_equal_to_trainer": bitwise,
            "ways": timing,
        }
        print(f"{label} ({len(names)} members, {groups} shape groups):")
        for kind, t in timing.items():
            same = "" if kind == "trainer" else f"  bitwise equal: {bitwise[kind]}"
            print(
                f"  {kind:13s} {t['median_step_ms']:8.2f} ms/step  "
                f"x{t['speedup_vs_trainer']:.3f} "
                f"(rounds' middle half {t['speedup_quartiles'][0]:.3f}-"
                f"{t['speedup_quartiles'][1]:.3f}){same}"
            )
    r["load_average_end"] = os.getloadavg()[0]
    write_json(
        r, args.out or (None if args.quick else RESULTS_DIR / f"{r['machine']}-shared-layers.json")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

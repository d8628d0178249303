"""The Performance page's numbers, read from benchmarks/results/*.json (written by
benchmarks/train_speed.py); nothing on that page is typed by hand.

C10 (SDM-VAE's cost per training step over the VAE's) is estimated here exactly as the claims
page does it, by sdm.judging: the mean of the per-repeat ratios, with its bootstrap interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdm import display
from sdm.claims import STEP_TIME_LIMIT
from sdm.judging import BENCHMARK_DIR
from sdm.stats import N_RESAMPLES, RNG_SEED, bootstrap


def load_benchmarks(directory: Path = BENCHMARK_DIR) -> dict[str, dict[str, Any]]:
    """File stem -> the benchmark's JSON, for every benchmarks/results/*.json, sorted by name."""
    out = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
    return out


def sections(
    benchmarks: dict[str, dict[str, Any]],
    key: str,
    table: Callable[[dict[str, Any]], str],
    empty: str,
) -> str:
    """One paragraph per benchmark file holding `key`: where and how it ran, then `table` of it;
    `empty` when no file holds it."""
    return (
        "\n\n".join(
            f"**{name}.** {setting(bench, name)}\n\n{table(bench)}"
            for name, bench in benchmarks.items()
            if key in bench
        )
        or empty
    )


def _k(value: float) -> str:
    return f"{value:,.0f}"


def setting(bench: dict[str, Any], name: str) -> str:
    """Where and how a benchmark ran, in one sentence."""
    where = bench.get("gpu") or bench.get("cpu") or "unknown CPU"
    date = str(bench.get("date", ""))[:10]
    text = (
        f"`{name}.json`: {where}, {bench.get('device', 'cpu')}, torch {bench.get('torch', '?')}, "
        f"{bench.get('threads', '?')} intra-op threads, {date}, "
        f"`{bench.get('command', '')}`, {_k(bench.get('train_frames', 0))} training frames"
        + (f" of the {bench['data']} corpus" if bench.get("data") else " of the shipped corpus")
        + f", batch {bench.get('batch_size', '?')}."
    )
    start, end = bench.get("load_average_start"), bench.get("load_average_end")
    if start is not None and end is not None:
        text += f" Load average at start {start:.2f}, at end {end:.2f}"
        if bench.get("cpu_busy_at_start") is not None:
            text += f"; CPU {bench['cpu_busy_at_start']:.0%} busy in the second before the start"
        text += (
            " (flagged busy: absolute figures may be depressed)."
            if bench.get("busy_at_start")
            else "."
        )
    return text


def training_table(bench: dict[str, Any]) -> str:
    """Throughput of the reference loop and of the trainer, as fractions of the matmul peak."""
    peak = bench["peak_gflops"]
    frac = bench.get("fraction_of_peak", {})
    rows = [
        ("peak: fp32 `torch.mm` 128×513 · 513×128", f"{peak:.1f} GFLOP/s", "100%"),
    ]
    if "reference" in bench:
        rows.append(
            (
                "reference loop, one variant at a time",
                f"{_k(bench['reference']['frames_per_s_all'])} frames/s",
                f"{frac.get('reference', math.nan):.1%}",
            )
        )
    if "ours_one_process" in bench:
        rows.append(
            (
                "ours, 14 variants in one process",
                f"{_k(bench['ours_one_process']['variant_frames_per_s'])} variant-frames/s",
                f"{frac.get('ours_one_process', math.nan):.1%}",
            )
        )
    ours = bench["ours"]
    rows.append(
        (
            f"**ours, 14 variants in {ours.get('workers', '?')} process(es) (the default)**",
            f"**{_k(ours['variant_frames_per_s'])} variant-frames/s**",
            f"**{frac.get('ours', math.nan):.1%}**",
        )
    )
    lines = ["| | throughput | of peak |", "|:---|---:|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if "ratio" in bench:
        lines.append(f"| **ratio ours / reference** | **{bench['ratio']:.2f}** | |")
    if "epoch_s" in bench:
        lines.append(f"| one epoch of all 14 variants | {bench['epoch_s']:.0f} s | |")
    return "\n".join(lines) + "\n"


def c10_rows(bench: dict[str, Any]) -> list[dict[str, float]]:
    """Per m: median step times, and the C10 estimate and interval as the claims compute it."""
    import numpy as np

    out = []
    for key, entry in sorted(bench.get("c10_sdm_over_vae_step", {}).items()):
        ratios = np.asarray(entry["ratios"], dtype=float)
        est = bootstrap(ratios[None, None], None, N_RESAMPLES, RNG_SEED)
        out.append(
            {
                "m": int(key.lstrip("m")),
                "vae_ms": entry["vae_step_ms"],
                "sdm_ms": entry["sdm_step_ms"],
                "repeats": len(ratios),
                "estimate": est.estimate,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
            }
        )
    return out


def c10_table(bench: dict[str, Any]) -> str:
    """C10's numbers: step times and the ratio's estimate with its 95% interval."""
    lines = [
        "| m | VAE step (median) | SDM-VAE step (median) | SDM-VAE / VAE: mean of the "
        "per-repeat ratios [95% interval] |",
        "|---:|---:|---:|---:|",
    ]
    for r in c10_rows(bench):
        lines.append(
            f"| {r['m']} | {r['vae_ms']:.2f} ms | {r['sdm_ms']:.2f} ms | "
            f"{r['estimate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] "
            f"({r['repeats']} repeats) |"
        )
    return "\n".join(lines) + "\n"


def c10_estimator() -> str:
    """C10's estimator in words: the same sentence on the claims and performance pages."""
    return (
        "**C10's estimator.** The benchmark times one training step of the VAE and of SDM-VAE "
        "at the same m, each trained alone, alternating the two over several repeats; each repeat "
        "gives one ratio (SDM-VAE's mean step time over the VAE's). The estimate is the mean of "
        "those ratios, its 95% interval the claims' bootstrap over repeats, and the claim holds "
        f"when the interval lies below {STEP_TIME_LIMIT:g}. It is read from the CPU benchmark "
        "of the shipped corpus (`cpu-2core.json`)."
    )


SHARED_LAYER_WAYS = {
    "trainer": "one product per shape group (the trainer)",
    "concatenated": "one product, weights concatenated at each step",
    "stored": "one product, weights stored together (new layout)",
}


def shared_layers_table(bench: dict[str, Any]) -> str:
    """benchmarks/shared_layers.py's figures: the training step with the two layers every variant
    shares computed per shape group or as one product, per case (which members, how many groups)."""
    lines = [
        "| members | way | step (median) | speed-up [middle half of rounds] | bitwise equal |",
        "|:---|:---|---:|---:|:---:|",
    ]
    for case in bench["cases"].values():
        names = case["variants"]
        members = (
            f"all {len(names)} Table-1 variants"
            if len(names) == 14
            else "; ".join(display.variant_label(n) for n in names)
        )
        who = f"{members} ({case['shape_groups']} shape groups)"
        for kind, way in case["ways"].items():
            low, high = way["speedup_quartiles"]
            if kind == "trainer":
                speed, same = "1 (baseline)", "—"
            else:
                speed = f"{way['speedup_vs_trainer']:.2f} [{low:.2f}, {high:.2f}]"
                same = "yes" if case["bitwise_equal_to_trainer"][kind] else "**no**"
            lines.append(
                f"| {who} | {SHARED_LAYER_WAYS.get(kind, kind)} | {way['median_step_ms']:.1f} ms "
                f"| {speed} | {same} |"
            )
            who = ""
    return "\n".join(lines) + "\n"

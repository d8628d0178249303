"""Evaluation speed: metric scoring in parallel against serial, and the end-to-end evaluation of
the committed Table-1 runs (14 variants, seed 0), in one run.

    .venv/bin/python benchmarks/eval_speed.py

Scoring (PESQ wb/nb, STOI, ESTOI per utterance) dominates evaluation; sdm.evaluate spreads it over
processes. The serial/parallel comparison scores the shipped test set twice per repeat with a
stand-in two-member model (the true power and a noisy copy), alternating n_jobs = 1 and all cores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch

import sdm.evaluate as ev
from sdm.data import load_split
from sdm.pipeline import ensure_evaluated
from sdm.results import METRICS_FILE, RESULTS_ROOT
from sdm.runs import make_specs
from sdm.variants import VARIANTS


class _Reconstruction(NamedTuple):
    variance: torch.Tensor
    code: torch.Tensor


class _TwoMembers:
    """The oracle and a noisy member: real scoring work without a trained model."""

    def reconstruct(self, x: torch.Tensor) -> _Reconstruction:
        g = torch.Generator().manual_seed(0)
        noisy = x * torch.exp(torch.randn(x.shape, generator=g))
        return _Reconstruction(torch.stack([x, noisy]), torch.randn(2, len(x), 8, generator=g))


def parallel_speedup(repeats: int = 3) -> tuple[float, float]:
    """Best-of-`repeats` wall time with one process and with all cores."""
    load_split()  # STFTs cached once, as in a session
    times: dict[int, list[float]] = {1: [], ev.default_jobs(): []}
    for _ in range(repeats):
        for n_jobs in times:
            t = time.perf_counter()
            ev.evaluate_model(_TwoMembers(), n_jobs=n_jobs, progress=False)
            times[n_jobs].append(time.perf_counter() - t)
    serial, parallel = min(times[1]), min(times[ev.default_jobs()])
    return serial, parallel


def table1_evaluation_seconds(seed: int = 0) -> float:
    """Evaluate the committed runs of all 14 variants from scratch (metrics removed in a copy)."""
    specs = make_specs(VARIANTS.values(), [seed])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for spec in specs:
            src, dst = spec.directory(RESULTS_ROOT), spec.directory(root)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(METRICS_FILE, "ckpt"))
        t = time.perf_counter()
        ensure_evaluated(specs, root, progress=False)
        return time.perf_counter() - t


def main() -> None:
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    serial, parallel = parallel_speedup()
    jobs, speedup = ev.default_jobs(), serial / parallel
    print(
        f"scoring 2 members x the shipped test set: serial {serial:.2f} s, "
        f"parallel ({jobs} processes) {parallel:.2f} s, speedup {speedup:.2f}x"
    )
    seconds = table1_evaluation_seconds()
    print(f"end-to-end evaluation of the 14 Table-1 runs (seed 0): {seconds:.1f} s")


if __name__ == "__main__":
    main()

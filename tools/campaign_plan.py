"""Which missing Table-1 runs can finish in the hours this machine has, and the commands for them.

    .venv/bin/python tools/campaign_plan.py --seeds 1 2 --hours 2.2 [--data medium]
        [--processes 2] [--seconds-per-member-epoch 40] [--score-minutes 4.5]
        [--state-dir /work/sdm-state] [--src /work/sdm-state/campaign-src]

Why a plan: a stack trains its members in lockstep, so a short run in a stack with long ones ends
only when the stack has done its epochs for every member up to then; and a run still training
when the machine is taken away is lost whenever the next session starts on a new machine (its
checkpoint goes with it). So the plan takes the missing runs shortest first — expected epochs =
the mean epochs of the same variant's finished seeds on this corpus — keeps those whose training
and scoring fit the hours given, and packs them onto one single-threaded process per core (the
longest onto the least loaded). A run counts as done when a report can use it
(`sdm.results.is_usable`: trained, with its metrics or the weights to score them); a trained run
with neither is trained again.

It prints one command per process (Table-1 order within it), each starting detached and logging
to the state directory; the same command resumes its stack from its checkpoint.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sdm import results  # noqa: E402
from sdm.variants import VARIANTS  # noqa: E402


@dataclass(frozen=True)
class Run:
    variant: str
    seed: int
    epochs: float  # expected


def expected_epochs(root: Path, data: str, preprocessing: str = "clean") -> dict[str, float]:
    """Mean epochs run by each variant's finished seeds (config.json's `result.epochs_run`)."""
    out: dict[str, float] = {}
    for name in VARIANTS:
        runs = results.run_dir(root, data, preprocessing, name, 0).parent
        epochs = [
            float(cfg["result"]["epochs_run"])
            for seed_dir in sorted(runs.glob("seed-*"))
            if (cfg := results.read_config(seed_dir)) and cfg.get("result", {}).get("epochs_run")
        ]
        if epochs:
            out[name] = sum(epochs) / len(epochs)
    return out


def missing_runs(
    root: Path, data: str, seeds: Sequence[int], epochs: Mapping[str, float], preprocessing: str
) -> list[Run]:
    """Every (variant, seed) of Table 1 not done, with its expected epochs (the longest known
    when the variant has no finished seed yet: better to under-promise)."""
    fallback = max(epochs.values(), default=100.0)
    return [
        Run(name, seed, epochs.get(name, fallback))
        for seed in seeds
        for name in VARIANTS
        if not results.is_usable(results.run_dir(root, data, preprocessing, name, seed))
    ]


def plan(
    runs: Sequence[Run],
    processes: int,
    seconds: float,
    seconds_per_member_epoch: float,
    score_seconds: float,
) -> list[list[Run]]:
    """The runs that fit, shortest first, packed onto `processes` lists (longest first onto the
    least loaded). Every process must train its load and score its share within `seconds`."""
    if processes < 1 or seconds <= 0 or seconds_per_member_epoch <= 0 or score_seconds < 0:
        raise ValueError("processes, hours and seconds per member-epoch must be positive")
    chosen: list[Run] = []
    for run in sorted(runs, key=lambda r: (r.epochs, r.seed)):
        trial = [*chosen, run]
        loads = _pack(trial, processes)
        if max(_cost(p, seconds_per_member_epoch, score_seconds) for p in loads) <= seconds:
            chosen = trial
    return [p for p in _pack(chosen, processes) if p]


def _cost(runs: Sequence[Run], per_epoch: float, score: float) -> float:
    return sum(r.epochs * per_epoch + score for r in runs)


def _pack(runs: Sequence[Run], processes: int) -> list[list[Run]]:
    bins: list[list[Run]] = [[] for _ in range(processes)]
    for run in sorted(runs, key=lambda r: (-r.epochs, r.seed, r.variant)):
        min(bins, key=lambda b: sum(r.epochs for r in b)).append(run)
    return bins


def commands(process: Sequence[Run], data: str, src: Path, state: Path, out: Path, log: str) -> str:
    """One detached shell line: a `python -m sdm train` per seed, one after another."""
    order = list(VARIANTS)
    trains = []
    for seed in sorted({r.seed for r in process}):
        names = sorted((r.variant for r in process if r.seed == seed), key=order.index)
        trains.append(
            f"{shlex.quote(str(REPO / '.venv/bin/python'))} -m sdm train --data {data} "
            f"--seed {seed} --workers 1 --checkpoint-seconds 300 --out {shlex.quote(str(out))} "
            f"--variant {' '.join(names)}"
        )
    body = " && ".join(trains)
    return (
        f"cd {shlex.quote(str(src))} && SDM_STATE_DIR={shlex.quote(str(state))} OMP_NUM_THREADS=1 "
        f"setsid nohup sh -c {shlex.quote(body)} >> {shlex.quote(str(state / 'logs' / log))} "
        "2>&1 < /dev/null &"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="medium")
    p.add_argument("--preprocessing", default="clean")
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--hours", type=float, required=True, help="time left for training and scoring")
    p.add_argument("--processes", type=int, default=2, help="one single-threaded process per core")
    p.add_argument(
        "--seconds-per-member-epoch",
        type=float,
        default=40.0,
        help="one member's epoch on one core, validation included (default 40: medium on a "
        "2-core AMD EPYC; an AVX-512 Xeon of the same size did it in about 12)",
    )
    p.add_argument("--score-minutes", type=float, default=4.5, help="scoring one medium run")
    p.add_argument("--out", type=Path, default=results.RESULTS_ROOT)
    p.add_argument("--state-dir", type=Path, default=Path("/work/sdm-state"))
    p.add_argument("--src", type=Path, default=None, help="the campaign worktree (default: here)")
    args = p.parse_args(argv)
    epochs = expected_epochs(args.out, args.data, args.preprocessing)
    todo = missing_runs(args.out, args.data, args.seeds, epochs, args.preprocessing)
    if not todo:
        print(f"nothing to train: every variant has seeds {args.seeds} on {args.data}")
        return 0
    try:
        packed = plan(
            todo,
            args.processes,
            args.hours * 3600,
            args.seconds_per_member_epoch,
            args.score_minutes * 60,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kept = sum(len(p) for p in packed)
    print(f"# {len(todo)} runs missing on {args.data}; {kept} fit in {args.hours:g} h")
    for i, process in enumerate(packed):
        load = _cost(process, args.seconds_per_member_epoch, args.score_minutes * 60) / 3600
        runs = ", ".join(f"{r.variant}/seed-{r.seed} (~{r.epochs:.0f} ep)" for r in process)
        print(f"# process {i + 1}: ~{load:.1f} h: {runs}")
        src = args.src or REPO
        print(commands(process, args.data, src, args.state_dir, args.out, f"plan-p{i + 1}.log"))
    left = [r for r in todo if not any(r in p for p in packed)]
    if left:
        print(
            "# left for a later session: " + ", ".join(f"{r.variant}/seed-{r.seed}" for r in left)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which missing Table-1 runs can finish in the hours this machine has, and the commands for them.

    .venv/bin/python tools/campaign_plan.py --seeds 1 2 --hours 2.2 [--data medium]
        [--processes 2] [--seconds-per-member-epoch 40] [--score-minutes 4.5]
        [--src CAMPAIGN_WORKTREE]      # with SDM_STATE_DIR set: the campaign's state folder

Why a plan: a stack trains its members in lockstep, so a short run in a stack with long ones ends
only when the stack has done its epochs for every member up to then; and a run still training
when the machine is taken away is lost whenever the next session starts on a new machine (its
checkpoint goes with it). So the plan takes the missing runs shortest first — expected epochs =
the mean epochs of the same variant's finished seeds on this corpus — keeps those whose training
and scoring fit the hours given, and packs them onto one single-threaded process per core (the
longest onto the least loaded). A run counts as done when a report can use it
(`sdm.results.is_usable`: trained, with its metrics or the weights to score them); a trained run
with neither is trained again.

Runs a checkpoint already holds unfinished (a stack stopped with the last session, or still
training) are not started again: each such stack stays one unit, on one process, resumed first,
with the epochs it still needs (at least the patience it has left, at least the variant's expected
epochs less those done). Before running the printed commands, make sure no stack is still
training: a second command for the same runs is refused anyway, naming the first.

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
from sdm.config import ModelConfig  # noqa: E402
from sdm.state import STATE_ENV, state_dir  # noqa: E402
from sdm.train import read_checkpoint  # noqa: E402
from sdm.variants import VARIANTS  # noqa: E402


@dataclass(frozen=True)
class Run:
    variant: str
    seed: int
    epochs: float  # expected, still to train
    checkpoint: Path | None = None  # the stack checkpoint it resumes from, if it has one


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


def _fallback(epochs: Mapping[str, float]) -> float:
    # a variant with no finished seed: the longest known, better to under-promise
    return max(epochs.values(), default=100.0)


def held_runs(
    root: Path, data: str, epochs: Mapping[str, float], preprocessing: str = "clean"
) -> list[Run]:
    """Runs that a stack checkpoint holds unfinished, each with the epochs it still needs: at
    least its patience left (validations without improvement still allowed, times the epochs
    between validations), and at least its variant's expected epochs less the epochs done."""
    out = []
    folder = results.checkpoint_dir(root, data, preprocessing)
    for stack, files in results.checkpoint_stacks(folder).items():
        for path in files:
            try:
                st = read_checkpoint(path)
            except ValueError as err:
                print(f"# skipped: {err}", file=sys.stderr)
                continue
            patience, epoch = int(st["train_config"]["patience"]), int(st["epoch"])
            for i, ((cfg, seed), member) in enumerate(
                zip(st["members"], st["member_states"], strict=True)
            ):
                name = ModelConfig.from_dict(cfg).name
                if i in st["done"] or results.is_usable(
                    results.run_dir(root, data, preprocessing, name, seed)
                ):
                    continue
                rows = member["history"]
                every = int(rows[1]["epoch"] - rows[0]["epoch"]) if len(rows) > 1 else 1
                at_least = (patience - int(member["since_best"])) * every
                left = max(at_least, epochs.get(name, _fallback(epochs)) - epoch)
                out.append(Run(name, int(seed), float(left), stack))
    return out


def missing_runs(
    root: Path,
    data: str,
    seeds: Sequence[int],
    epochs: Mapping[str, float],
    preprocessing: str,
    held: Sequence[Run] = (),
) -> list[Run]:
    """Every (variant, seed) of Table 1 not done: the `held` ones as they are (resumed from their
    checkpoint), the others with their variant's expected epochs."""
    resuming = {(r.variant, r.seed): r for r in held}
    return [
        resuming.get((name, seed)) or Run(name, seed, epochs.get(name, _fallback(epochs)))
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
    least loaded). Every process must train its load and score its share within `seconds`.
    Runs held by a checkpoint are always kept (they are partly trained), together on one process.
    """
    if processes < 1 or seconds <= 0 or seconds_per_member_epoch <= 0 or score_seconds < 0:
        raise ValueError("processes, hours and seconds per member-epoch must be positive")
    chosen: list[Run] = [r for r in runs if r.checkpoint is not None]
    for run in sorted(runs, key=lambda r: (r.epochs, r.seed)):
        if run.checkpoint is not None:
            continue
        trial = [*chosen, run]
        loads = _pack(trial, processes)
        if max(_cost(p, seconds_per_member_epoch, score_seconds) for p in loads) <= seconds:
            chosen = trial
    return [p for p in _pack(chosen, processes) if p]


def _cost(runs: Sequence[Run], per_epoch: float, score: float) -> float:
    return sum(r.epochs * per_epoch + score for r in runs)


def _pack(runs: Sequence[Run], processes: int) -> list[list[Run]]:
    """Units (a held checkpoint's runs, or one new run) longest first onto the least loaded."""
    units: dict[object, list[Run]] = {}
    for run in runs:
        units.setdefault(run.checkpoint or (run.variant, run.seed), []).append(run)
    bins: list[list[Run]] = [[] for _ in range(processes)]
    for unit in sorted(
        units.values(), key=lambda u: (-sum(r.epochs for r in u), u[0].seed, u[0].variant)
    ):
        min(bins, key=lambda b: sum(r.epochs for r in b)).extend(unit)
    return bins


def commands(process: Sequence[Run], data: str, src: Path, state: Path, out: Path, log: str) -> str:
    """One detached shell line: the held stacks' resumes first, then a `python -m sdm train` per
    seed, one after another."""
    order = list(VARIANTS)

    def train(seeds: Sequence[int], runs: Sequence[Run]) -> str:
        names = sorted({r.variant for r in runs}, key=order.index)
        return (
            f"{shlex.quote(str(REPO / '.venv/bin/python'))} -m sdm train --data {data} "
            f"--seed {' '.join(map(str, seeds))} --workers 1 --checkpoint-seconds 300 "
            f"--out {shlex.quote(str(out))} --variant {' '.join(names)}"
        )

    trains = []
    for stack in dict.fromkeys(r.checkpoint for r in process if r.checkpoint is not None):
        held = [r for r in process if r.checkpoint == stack]
        seeds = sorted({r.seed for r in held})
        if len(held) != len(seeds) * len({r.variant for r in held}):
            raise ValueError(
                f"{stack}: its unfinished runs are not every variant for every seed; resume it "
                "with the command that started it"
            )
        trains.append(train(seeds, held))
    new = [r for r in process if r.checkpoint is None]
    for seed in sorted({r.seed for r in new}):
        trains.append(train([seed], [r for r in new if r.seed == seed]))
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
    p.add_argument("--src", type=Path, default=None, help="the campaign worktree (default: here)")
    args = p.parse_args(argv)
    try:
        state = state_dir()
    except ValueError as err:
        p.error(str(err))
    if state is None:
        p.error(
            f"{STATE_ENV} is not set: the campaign keeps its checkpoints, corpus and caches "
            "there (README, medium campaign); set it to that folder"
        )
    epochs = expected_epochs(args.out, args.data, args.preprocessing)
    held = held_runs(args.out, args.data, epochs, args.preprocessing)
    todo = missing_runs(args.out, args.data, args.seeds, epochs, args.preprocessing, held)
    outside = sorted({(r.variant, r.seed) for r in held} - {(r.variant, r.seed) for r in todo})
    if outside:
        print(
            "# also held by a checkpoint, outside --seeds (not planned): "
            + ", ".join(f"{v}/seed-{s}" for v, s in outside)
        )
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
    resumed = sum(r.checkpoint is not None for r in todo)
    print(
        f"# {len(todo)} runs missing on {args.data}: {resumed} held by checkpoints (resumed "
        f"first, whatever the hours), {kept - resumed} new that fit in {args.hours:g} h"
    )
    for i, process in enumerate(packed):
        load = _cost(process, args.seconds_per_member_epoch, args.score_minutes * 60) / 3600
        runs = ", ".join(
            f"{r.variant}/seed-{r.seed} (~{r.epochs:.0f} ep"
            + (f" more, resumed from {r.checkpoint.name})" if r.checkpoint else ")")
            for r in process
        )
        print(f"# process {i + 1}: ~{load:.1f} h: {runs}")
        src = args.src or REPO
        print(commands(process, args.data, src, state, args.out, f"plan-p{i + 1}.log"))
    left = [r for r in todo if not any(r in p for p in packed)]
    if left:
        print(
            "# left for a later session: " + ", ".join(f"{r.variant}/seed-{r.seed}" for r in left)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The coherence-penalty sweep that sets COHERENCE_WEIGHT (sdm.variants): the learned-dictionary
variants trained for a grid of λ beside their λ = 0 baseline, all in one training call (one stack
per shape, as `sdm train` trains several variants), a summary per run, and the rule that picks λ.

Each λ has its own results root, `<out>/lambda-<λ>/` (the usual layout below it), because the
variant's name says only whether the penalty is on (`-coh`), not its weight; the baseline is
`<out>/lambda-0/`. The summary, `<out>/<data>/<preprocessing>/coherence_sweep.{csv,md}`, is the
only part meant for git.

The rule (`choose_weight`): λ is acceptable when, for every number of atoms k, the best validation
loss of its run (the negative ELBO per frame, the penalty left out) is at most the λ = 0 run's of
the same seed (0: the same initial weights and noise, so the gap is what λ did) plus a tolerance:
max(TOLERANCE_NATS, 2 × the seed-to-seed SD of the λ = 0 runs' best validation losses), the SD
only when the baseline has two seeds or more. The largest acceptable λ of the grid is chosen. When
none is acceptable, the λ whose gap, averaged over k, is smallest: on a small corpus early
stopping moves the best validation loss by tens of nats from one run to the next (the fixed
dictionaries' seed-to-seed SD on the shipped corpus is 40-55 nats/frame), so one seed cannot tell
the weights of the grid apart within 1 nat, and the least costly one is the fair pick.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sdm import data, guards, results
from sdm.config import ModelConfig, TrainConfig
from sdm.dictionary import coherence, max_abs_coherence
from sdm.runs import RunSpec, check_reusable, read_weights
from sdm.stacks import RunWriter, corpus_frames, fit_on_corpus
from sdm.train import MemberResult, pick_device, read_checkpoint
from sdm.variants import LEARNED_ATOMS, learned_variant

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SWEEP_ROOT = results.RESULTS_ROOT.with_name("results-sweep")
DEFAULT_WEIGHTS = (0.1, 1.0, 10.0, 100.0)
"""The λ grid. The per-frame negative ELBO is about -1,500 on the shipped corpus; the coherence of
the DCT start is about 1 (k = 64) and 67 (k = 128, whose floor is 64: k (k - m) / (2 m)), so λ = 0.1
... 100 makes the penalty's reducible part from a rounding error to larger than the loss's gaps
between models."""
TOLERANCE_NATS = 1.0
"""The least loss, in nats per frame, a penalty may cost and still be acceptable."""
SUMMARY_NAME = "coherence_sweep"
SUMMARY_COLUMNS = (
    "variant k coherence_weight seed best_val_loss best_epoch epochs_run "
    "coherence_sum max_abs_coherence val_loss_gap tolerance acceptable"
).split()


@dataclass(frozen=True)
class SweepRun:
    """One run of the sweep: its λ, its spec and the results root it lives under."""

    weight: float
    spec: RunSpec
    root: Path

    @property
    def directory(self) -> Path:
        return self.spec.directory(self.root)


def weight_root(out: Path, weight: float) -> Path:
    """<out>/lambda-<λ>: one results root per λ (the name of a -coh variant does not hold λ)."""
    return Path(out) / f"lambda-{weight:g}"


def plan(
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    data_name: str = "shipped",
    preprocessing: str = "clean",
    train: TrainConfig = TrainConfig(),
    out: Path = SWEEP_ROOT,
    baseline_seeds: Sequence[int] = (0,),
) -> list[SweepRun]:
    """The sweep's runs: per number of atoms, the λ = 0 baseline at `baseline_seeds`, then seed 0
    at each λ > 0 of `weights` (a λ of 0 in the grid is the baseline)."""
    runs = []
    for k in LEARNED_ATOMS:
        for weight, seeds in [(0.0, baseline_seeds), *((w, (0,)) for w in weights if w != 0)]:
            config = learned_variant(k, weight)  # a bad λ: ValueError naming `coherence`
            for seed in dict.fromkeys(seeds):
                spec = RunSpec(data_name, preprocessing, config, seed, train)
                runs.append(SweepRun(float(weight), spec, weight_root(out, weight)))
    return list(dict.fromkeys(runs))


@dataclass(frozen=True)
class SweepWriter:
    """Hands each finished member to the run writer of its λ's root; picklable, so it runs in
    whichever process trained the member."""

    writers: dict[tuple[ModelConfig, int], RunWriter]

    def __call__(self, result: MemberResult) -> None:
        self.writers[(result.config, result.seed)](result)


def checkpoint_path(runs: Sequence[SweepRun], out: Path) -> Path:
    """The sweep's resume file, named by every run it asks for (its λ, variant, seed, settings)."""
    key = json.dumps(
        [(r.weight, r.spec.model.name, r.spec.seed, r.spec.train.result_settings()) for r in runs]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    first = runs[0].spec
    return results.checkpoint_dir(out, first.data, first.preprocessing) / f"sweep-{digest}.pt"


def _members_on_disk(checkpoint: Path) -> list[tuple[ModelConfig, int]]:
    """The members an interrupted sweep was started with (a sweep resumes with the same ones)."""
    files = [checkpoint] if checkpoint.exists() else []
    files = files or sorted(results.shard_files(checkpoint), key=results.shard_index)
    members: list[tuple[ModelConfig, int]] = []
    for path in files:
        members += [(ModelConfig.from_dict(c), s) for c, s in read_checkpoint(path)["members"]]
    return members


def train(
    runs: Sequence[SweepRun],
    out: Path = SWEEP_ROOT,
    device: str = "auto",
    workers: int | str = "auto",
    progress: bool = True,
) -> None:
    """Train the runs that are not finished, all in one `fit` (one stack per shape), each written
    under its λ's root as it finishes; resumes an interrupted sweep from its checkpoint."""
    first = runs[0].spec
    corpus = data.resolve_corpus(first.data)
    sha = corpus.checksum()
    todo = [r for r in runs if not check_reusable(r.directory, r.spec.identity(sha))]
    if not todo:
        return
    checkpoint = checkpoint_path(runs, out)
    by_member = {(r.spec.model, r.spec.seed): r for r in runs}
    members = _members_on_disk(checkpoint) or [(r.spec.model, r.spec.seed) for r in todo]
    held = set(members)
    strays = [f"{c.name} λ={c.coherence:g} seed {s}" for c, s in members if (c, s) not in by_member]
    lost = [
        f"{r.spec.label} λ={r.weight:g}" for r in todo if (r.spec.model, r.spec.seed) not in held
    ]
    if strays or lost:
        raise ValueError(
            f"{checkpoint}: holds runs this sweep does not ask for ({strays}) or lacks runs it "
            f"must train ({lost}); remove it to start the sweep afresh"
        )
    frames = corpus_frames(corpus, first.preprocessing)
    steps = math.ceil(frames[0].shape[0] / first.train.batch_size)
    writers = {}
    for root in dict.fromkeys(r.root for r in runs):
        mine = [r for r in runs if r.root == root]
        writer = RunWriter(
            {(r.spec.model, r.spec.seed): r.spec for r in mine},
            frozenset(r.spec for r in mine if r in todo),
            root,
            sha,
            first.train.val_interval(steps),
            str(pick_device(device)),
            tuple(f"{r.spec.label} λ={r.weight:g}" for r in runs),
        )
        writers |= {(r.spec.model, r.spec.seed): writer for r in mine}
    writer = SweepWriter(writers)
    locks = [(results.stack_lock(checkpoint), f"checkpoint {checkpoint}")] + [
        (
            results.run_lock(
                r.root, r.spec.data, r.spec.preprocessing, r.spec.model.name, r.spec.seed
            ),
            str(r.directory),
        )
        for r in todo
    ]
    with guards.holding(locks):
        done = fit_on_corpus(
            members, frames, corpus, first.train, device, checkpoint, writer, progress, workers
        )
        for result in done:  # finished before a restart but not written: the checkpoint held it
            run = by_member[(result.config, result.seed)]
            if run in todo and not results.is_trained(run.directory):
                writer(result)
        if all(results.is_trained(r.directory) for r in todo):
            results.remove_checkpoints(checkpoint)


def _dictionary_of(run: SweepRun) -> torch.Tensor | None:
    """The saved (best) D of a run, (m, k), or None without weights."""
    if not results.has_weights(run.directory):
        return None
    directions = read_weights(run.directory)["state_dict"]["dictionary.directions"][0]
    return directions / directions.norm(dim=0, keepdim=True)


def summarise(runs: Sequence[SweepRun]) -> pd.DataFrame:
    """One row per trained run (SUMMARY_COLUMNS): its best penalty-free validation loss, the
    coherence of its saved D, its gap to the λ = 0 baseline of the same k and whether that gap is
    within the tolerance of the rule (module docstring)."""
    import pandas as pd

    rows = []
    for run in runs:
        saved = results.read_config(run.directory) if results.is_trained(run.directory) else None
        if saved is None:
            continue
        atoms = _dictionary_of(run)
        rows.append(
            {
                "variant": run.spec.model.name,
                "k": run.spec.model.k,
                "coherence_weight": run.weight,
                "seed": run.spec.seed,
                "best_val_loss": saved["result"]["best_val_loss"],
                "best_epoch": saved["result"]["best_epoch"],
                "epochs_run": saved["result"]["epochs_run"],
                "coherence_sum": math.nan if atoms is None else float(coherence(atoms)),
                "max_abs_coherence": math.nan if atoms is None else float(max_abs_coherence(atoms)),
            }
        )
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:9])
    return judge(table)


def judge(table: pd.DataFrame) -> pd.DataFrame:
    """Add val_loss_gap (best validation loss minus the λ = 0 run's of the same k and seed),
    tolerance (max(TOLERANCE_NATS, 2 × the λ = 0 runs' seed SD)) and acceptable."""
    table = table.copy()
    gaps, tolerances = [], []
    for _, row in table.iterrows():
        base = table[(table["k"] == row["k"]) & (table["coherence_weight"] == 0)]
        paired = base.loc[base["seed"] == row["seed"], "best_val_loss"]
        sd = float(base["best_val_loss"].std(ddof=1)) if len(base) > 1 else math.nan
        gaps.append(row["best_val_loss"] - paired.iloc[0] if len(paired) else math.nan)
        tolerances.append(max(TOLERANCE_NATS, 2 * sd) if math.isfinite(sd) else TOLERANCE_NATS)
    table["val_loss_gap"] = np.asarray(gaps, dtype=float)
    table["tolerance"] = np.asarray(tolerances, dtype=float)
    table["acceptable"] = table["val_loss_gap"] <= table["tolerance"]
    return table.reindex(columns=SUMMARY_COLUMNS)


def _complete(table: pd.DataFrame, weights: Sequence[float]) -> dict[float, pd.DataFrame]:
    """λ > 0 of `weights` -> its rows, for the λ with a run at every number of atoms."""
    rows = {w: table[table["coherence_weight"] == w] for w in sorted(w for w in weights if w > 0)}
    return {w: r for w, r in rows.items() if set(r["k"]) >= set(LEARNED_ATOMS)}


def within_tolerance(table: pd.DataFrame, weight: float) -> bool:
    """Every run of λ = `weight` is within the tolerance of its λ = 0 baseline."""
    return bool(table.loc[table["coherence_weight"] == weight, "acceptable"].all())


def choose_weight(table: pd.DataFrame, weights: Sequence[float]) -> float | None:
    """The largest λ > 0 of `weights` whose runs are acceptable for every number of atoms; when
    none is, the λ with the smallest gap averaged over the numbers of atoms. A λ with a run
    missing is never chosen; None when every λ has one missing (module docstring)."""
    complete = _complete(table, weights)
    acceptable = [w for w, rows in complete.items() if bool(rows["acceptable"].all())]
    if acceptable:
        return max(acceptable)
    if not complete:
        return None
    return min(complete, key=lambda w: float(complete[w]["val_loss_gap"].mean()))


def summary_paths(out: Path, data_name: str, preprocessing: str) -> tuple[Path, Path]:
    base = results.corpus_dir(out, data_name, preprocessing)
    return base / f"{SUMMARY_NAME}.csv", base / f"{SUMMARY_NAME}.md"


def write_summary(
    table: pd.DataFrame,
    chosen: float | None,
    weights: Sequence[float],
    out: Path,
    data_name: str,
    preprocessing: str,
) -> str:
    """Write the summary CSV and Markdown (the only sweep files meant for git); returns the
    Markdown."""
    csv_path, md_path = summary_paths(out, data_name, preprocessing)
    results.write_csv(table, csv_path, index=False)
    if chosen is None:
        verdict = f"no λ of {[float(w) for w in weights]} has a run at every k: nothing chosen"
    elif within_tolerance(table, chosen):
        verdict = f"chosen λ = {chosen:g}: the largest within the tolerance at every k"
    else:
        gap = float(table.loc[table["coherence_weight"] == chosen, "val_loss_gap"].mean())
        verdict = (
            f"chosen λ = {chosen:g}: no λ is within the tolerance at every k, and λ = {chosen:g} "
            f"costs the least validation loss averaged over k ({gap:.0f} nats/frame)"
        )
    header = "| " + " | ".join(SUMMARY_COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(SUMMARY_COLUMNS)]
    for _, row in table.iterrows():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(
        [
            f"# Coherence sweep — {results.data_slug(data_name)} corpus, {preprocessing}",
            "",
            "best_val_loss: the best validation loss (negative ELBO per frame, penalty left out); "
            "coherence_sum, max_abs_coherence: of the saved D; val_loss_gap: minus the λ = 0 "
            "run's of the same k and seed; acceptable: val_loss_gap <= tolerance "
            f"(max({TOLERANCE_NATS:g} nat/frame, 2 × the SD of the λ = 0 runs over seeds)).",
            "",
            f"**{verdict}** (the largest λ acceptable at every k).",
            "",
            *lines,
        ]
    )
    results.write_text(md_path, text + "\n")
    return text

"""Train and evaluate what is missing, reuse what is finished: the glue behind CLI and notebooks."""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from sdm import runs
from sdm.config import ModelConfig, TrainConfig
from sdm.data import PREPROCESSINGS, resolve_corpus
from sdm.parallel import existing_layout, fit_sharded, remove_checkpoints
from sdm.runs import RESULTS_ROOT, RunSpec
from sdm.train import MemberResult, pick_device

log = logging.getLogger(__name__)


def make_specs(
    variants: Iterable[ModelConfig],
    seeds: Iterable[int],
    data: str = "shipped",
    preprocessing: str = "clean",
    train: TrainConfig = TrainConfig(),
) -> list[RunSpec]:
    """One RunSpec per (variant, seed), variants outermost."""
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"preprocessing: expected one of {PREPROCESSINGS}, got {preprocessing!r}")
    seeds = list(seeds)
    return [RunSpec(data, preprocessing, v, s, train) for v in variants for s in seeds]


def _clear(run_dir: Path) -> None:
    for name in (runs.CONFIG_FILE, runs.HISTORY_FILE, runs.WEIGHTS_FILE, runs.METRICS_FILE):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "ckpt", ignore_errors=True)


def ensure_trained(
    specs: Sequence[RunSpec],
    root: Path = RESULTS_ROOT,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    workers: int | str = "auto",
) -> list[Path]:
    """Train every spec whose run is not finished, as stacks of equally shaped members.

    Finished runs with the same identity are reused; a finished run with another identity raises
    RunConflictError unless `overwrite`. Unfinished stacks resume from their checkpoint.
    `workers`: processes on a CPU (sdm.parallel; 'auto' = one per torch thread).
    """
    from sdm.data import frames

    dev = pick_device(device)
    unique = list(dict.fromkeys(specs))  # a run named twice is trained once
    todo: set[RunSpec] = set()
    for spec in unique:
        run_dir = spec.directory(root)
        identity = spec.identity(resolve_corpus(spec.data).identity())
        if overwrite:
            _clear(run_dir)
        elif runs.check_reusable(run_dir, identity):
            log.info("reusing %s", run_dir)
            continue
        todo.add(spec)

    batches: dict[tuple[str, str, TrainConfig], list[RunSpec]] = {}
    for spec in unique:
        batches.setdefault((spec.data, spec.preprocessing, spec.train), []).append(spec)
    for (data, prep, train_cfg), batch in batches.items():
        if not todo.intersection(batch):
            continue
        sha = resolve_corpus(data).identity()
        train_x = torch.from_numpy(frames(data, "train", prep))
        val_x = torch.from_numpy(frames(data, "val", prep))
        by_member = {(s.model, s.seed): s for s in batch}
        val_every = train_cfg.val_interval(math.ceil(train_x.shape[0] / train_cfg.batch_size))
        # every missing run of this corpus and setting trains in one fit: all shapes, one step
        stack = [s for s in batch if s in todo]
        ckpt = runs.stack_checkpoint(root, data, prep, stack)
        full_ckpt = runs.stack_checkpoint(root, data, prep, batch)
        if stack != batch and existing_layout(full_ckpt) is not None and not overwrite:
            # some members finished (and were saved) before this stack was interrupted:
            # resume the whole stack, which remembers them, instead of restarting the rest
            stack, ckpt = batch, full_ckpt
        if overwrite:
            remove_checkpoints(ckpt)
        save = partial(
            _save_member,
            by_member=by_member,
            todo=todo,
            root=root,
            sha=sha,
            val_every=val_every,
            device=str(dev),
            stack=[f"{s.model.name}/seed-{s.seed}" for s in stack],
        )
        fit_sharded(
            [s.model for s in stack],
            [s.seed for s in stack],
            train_x,
            val_x,
            train_cfg,
            device=str(dev),
            checkpoint=ckpt,
            on_member_done=save,
            progress=progress,
            workers=workers,
        )
        remove_checkpoints(ckpt)  # every member's result files are written
    return [s.directory(root) for s in specs]


def _save_member(
    result: MemberResult,
    by_member: dict[tuple[ModelConfig, int], RunSpec],
    todo: set[RunSpec],
    root: Path,
    sha: str,
    val_every: int,
    device: str,
    stack: list[str],
) -> None:
    """Write a finished member's run folder, the moment the trainer hands it over."""
    spec = by_member[(result.config, result.seed)]
    if spec not in todo:
        return  # finished before: its run folder is already written, keep it
    runs.save_run(
        spec.directory(root),
        spec.identity(sha),
        result.config,
        result.seed,
        result.best_state,
        result.history,
        {
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val,
            "stopped_early": result.stopped_early,
            "elapsed_s": round(result.elapsed_s, 2),
            "train_frames_per_s": round(result.train_frames_per_s, 1),
            "val_interval_epochs": val_every,
        },
        device,
        stack,
    )
    log.info(
        "%s seed %d: best epoch %d of %d",
        result.config.name,
        result.seed,
        result.best_epoch,
        result.epochs_run,
    )


def ensure_evaluated(
    specs: Sequence[RunSpec],
    root: Path = RESULTS_ROOT,
    overwrite: bool = False,
    n_jobs: int | None = None,
    progress: bool = True,
) -> dict[RunSpec, Any]:
    """Per-utterance metric tables of trained runs; computes and writes the missing metrics.csv."""
    from sdm.evaluate import evaluate_model, read_metrics, write_metrics

    missing = [
        s
        for s in dict.fromkeys(specs)
        if overwrite or not (s.directory(root) / runs.METRICS_FILE).exists()
    ]
    # runs of one corpus, preprocessing and shape are scored together: one inference pass and
    # one worker pool for the whole stack
    batches: dict[tuple, list[RunSpec]] = {}
    for spec in missing:
        key = (spec.data, spec.preprocessing, spec.model.shape_key)
        batches.setdefault(key, []).append(spec)
    for (data, prep, _), batch in batches.items():
        stack = runs.load_runs([s.directory(root) for s in batch])
        member_tables = evaluate_model(stack, data, prep, n_jobs=n_jobs, progress=progress)
        for spec, table in zip(batch, member_tables, strict=True):
            write_metrics(table, spec.directory(root) / runs.METRICS_FILE)
    return {s: read_metrics(s.directory(root) / runs.METRICS_FILE) for s in specs}


def oracle_metrics(
    data: str = "shipped",
    preprocessing: str = "clean",
    root: Path = RESULTS_ROOT,
    n_jobs: int | None = None,
    progress: bool = True,
) -> Any:
    """The oracle table (true magnitude, original phase), once per corpus and preprocessing."""
    from sdm.evaluate import evaluate_oracle, read_metrics, write_metrics

    path = Path(root) / runs.data_slug(data) / preprocessing / "oracle" / runs.METRICS_FILE
    if not path.exists():
        write_metrics(evaluate_oracle(data, preprocessing, n_jobs=n_jobs, progress=progress), path)
    return read_metrics(path)

"""Train and evaluate what is missing, reuse what is finished: the glue behind CLI and notebooks."""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sdm import runs
from sdm.config import ModelConfig, TrainConfig
from sdm.data import PREPROCESSINGS, resolve_corpus
from sdm.models import check_seed
from sdm.parallel import (
    existing_layout,
    fit_sharded,
    remove_checkpoints,
    shard_checkpoint,
    shard_members,
)
from sdm.runs import RESULTS_ROOT, RunSpec
from sdm.train import MemberResult, fit, pick_device

if TYPE_CHECKING:
    from sdm.cluster import Launcher

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
    seeds = [check_seed(s) for s in seeds]
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
    launcher: Launcher | None = None,
) -> list[Path]:
    """Train every spec whose run is not finished, as stacks of equally shaped members.

    Finished runs with the same identity are reused; a finished run with another identity raises
    RunConflictError unless `overwrite`. Unfinished stacks resume from their checkpoint.
    `workers`: processes on a CPU (sdm.parallel; 'auto' = one per torch thread). `launcher`:
    train on a cluster instead, one job per shard (sdm.cluster); None trains here.
    """
    from sdm.data import frames

    if launcher is not None:
        return _train_on_cluster(specs, root, device, overwrite, launcher)
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
        ckpt, stack = _plan_stack(
            root, [s for s in batch if s in todo], batch, todo, dev.type, overwrite
        )
        by_member.update({(s.model, s.seed): s for s in stack})  # a resumed stack may hold more
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
        results = fit_sharded(
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
        for result in results:
            # a member the checkpoint already held as done, whose run folder was not written
            # (killed between the two) is saved now: the checkpoint is its only copy
            if not runs.is_trained(by_member[(result.config, result.seed)].directory(root)):
                save(result)
        remove_checkpoints(ckpt)  # every member's result files are written
    return [s.directory(root) for s in specs]


def train_shard(
    specs: Sequence[RunSpec],
    root: Path,
    checkpoint: Path,
    device: str,
    stack: Sequence[str],
    progress: bool = False,
) -> list[str]:
    """Train one shard of a stack here, resuming from `checkpoint` when it is there, and write
    each member's run folder the moment it finishes: the body of a cluster job.

    `specs` share one corpus and setting; `stack` names every member of the whole stack (kept in
    config.json, as a local run does). Returns the names of the members trained."""
    from sdm.data import frames

    dev = pick_device(device)
    first = specs[0]
    data, prep, train_cfg = first.data, first.preprocessing, first.train
    train_x = torch.from_numpy(frames(data, "train", prep))
    val_x = torch.from_numpy(frames(data, "val", prep))
    steps = math.ceil(train_x.shape[0] / train_cfg.batch_size)
    by_member = {(s.model, s.seed): s for s in specs}
    save = partial(
        _save_member,
        by_member=by_member,
        todo={s for s in specs if not runs.is_trained(s.directory(root))},
        root=root,
        sha=resolve_corpus(data).identity(),
        val_every=train_cfg.val_interval(steps),
        device=str(dev),
        stack=list(stack),
    )
    results = fit(
        [s.model for s in specs],
        [s.seed for s in specs],
        train_x,
        val_x,
        train_cfg,
        str(dev),
        checkpoint,
        save,
        progress,
    )
    for result in results:
        # done in the checkpoint but not on disk (the job ended between the two): save it now
        if not runs.is_trained(by_member[(result.config, result.seed)].directory(root)):
            save(result)
    return _names(specs)


def _names(specs: Sequence[RunSpec]) -> list[str]:
    return [f"{s.model.name}/seed-{s.seed}" for s in specs]


def _train_on_cluster(
    specs: Sequence[RunSpec], root: Path, device: str, overwrite: bool, launcher: Launcher
) -> list[Path]:
    """ensure_trained through a launcher: the missing runs of each corpus and setting form a
    stack, as here, split into launcher.spec.jobs shards by the cost-balanced sharding that
    --workers uses (a stack resumes with the layout it was started with); one job per shard."""
    from sdm.cluster import Shard
    from sdm.data import frames

    given_root, root = root, Path(root).resolve()  # jobs may start in another folder
    job_device = launcher.spec.device
    if device != "auto" and device.split(":")[0] != job_device:
        raise ValueError(
            f"device: {device!r} was asked for, but jobs with {launcher.spec.gpus} GPU(s) train "
            f"on {job_device} (--gpus-per-job decides where jobs train)"
        )
    unique = list(dict.fromkeys(specs))
    todo: set[RunSpec] = set()
    for spec in unique:
        identity = spec.identity(resolve_corpus(spec.data).identity())
        if overwrite:
            _clear(spec.directory(root))
        elif runs.check_reusable(spec.directory(root), identity):
            log.info("reusing %s", spec.directory(root))
            continue
        todo.add(spec)
    if todo:
        launcher.check()  # bad options or no cluster: one line, before anything is submitted
    batches: dict[tuple[str, str, TrainConfig], list[RunSpec]] = {}
    for spec in unique:
        batches.setdefault((spec.data, spec.preprocessing, spec.train), []).append(spec)
    folders: dict[Path, list[RunSpec]] = {}
    for (data, prep, _), batch in batches.items():
        missing = [s for s in batch if s in todo]
        folder = runs.checkpoint_dir(root, data, prep)
        folders[folder] = batch
        busy = launcher.adopt(folder, {s.directory(root) for s in batch})
        free = [s for s in missing if s.directory(root) not in busy]
        if overwrite and len(free) < len(missing):
            raise ValueError(
                "--overwrite: runs of this command are being trained by jobs of an earlier one; "
                "wait for them or scancel them first"
            )
        if not free:
            continue
        frames(data, "train", prep)  # built here once; the jobs read the cache
        frames(data, "val", prep)
        ckpt, stack = _plan_stack(root, free, batch, todo, job_device, overwrite)
        n = existing_layout(ckpt) or min(launcher.spec.jobs, len(stack))
        layout = shard_members([s.model for s in stack], [s.seed for s in stack], n)
        names = _names(stack)
        shards = []
        for j, members in enumerate([[stack[i] for i in idx] for idx in layout]):
            dirs = tuple(s.directory(root) for s in members)
            if all(runs.is_trained(d) for d in dirs):
                continue  # finished by an earlier job: its file stays until the stack is done
            if busy.intersection(dirs):
                log.warning(
                    "not submitting shard %d of %s now: a job of an earlier command trains some "
                    "of its runs; run the command again once it has ended",
                    j,
                    ckpt.name,
                )
                continue
            path = ckpt if len(layout) == 1 else shard_checkpoint(ckpt, j, len(layout))
            train = partial(
                train_shard,
                specs=members,
                root=root,
                checkpoint=path,
                device=job_device,
                stack=names,
            )
            shards.append(Shard(tuple(_names(members)), dirs, path, train))
        launcher.submit(shards, folder)
    launcher.finish()  # waits, or raises TrainingPending (--no-wait)
    for folder, batch in folders.items():
        _remove_finished_stacks(folder, batch[0], root)
    for spec in unique:
        # a run written by a job of an earlier command must still be the run asked for
        identity = spec.identity(resolve_corpus(spec.data).identity())
        if not runs.check_reusable(spec.directory(root), identity):
            raise ValueError(f"{spec.directory(root)}: not trained; run the same command again")
    return [s.directory(given_root) for s in specs]


def _remove_finished_stacks(folder: Path, like: RunSpec, root: Path) -> None:
    """Remove the checkpoints of every stack in `folder` whose members are all written.

    Jobs end one by one, and a stack whose jobs ended in different commands (one failed, was
    resubmitted, and trained in a stack of its own) is only known to be done afterwards."""
    for stack_file, files in _checkpoint_stacks(folder).items():
        try:
            held = _read_stack(files)[0]
        except Exception:  # being written, or not ours: leave it
            continue
        specs = [replace(like, model=c, seed=s) for c, s in held]
        if all(runs.is_trained(spec.directory(root)) for spec in specs):
            remove_checkpoints(stack_file)


def _plan_stack(
    root: Path,
    missing: list[RunSpec],
    batch: Sequence[RunSpec],
    todo: set[RunSpec],
    device_type: str,
    overwrite: bool,
) -> tuple[Path, list[RunSpec]]:
    """The checkpoint and the members of the stack that trains the `missing` runs of one corpus
    and setting: a checkpoint on disk that holds them (resumed), else a fresh one."""
    first = missing[0]
    data, prep, train_cfg = first.data, first.preprocessing, first.train
    ckpt = runs.stack_checkpoint(root, data, prep, missing)
    if overwrite:
        remove_checkpoints(ckpt)
        return ckpt, missing
    found = find_resumable(root, data, prep, train_cfg, missing, batch, device_type)
    if found is None:
        log.warning(
            "starting fresh: no checkpoint in %s holds the %d unfinished run(s) %s",
            ckpt.parent,
            len(missing),
            _member_names(missing),
        )
        return ckpt, missing
    # the stack that was interrupted, whatever members it was started with: members it finished
    # are already saved and are skipped, the others go on where they were
    ckpt, stack, epochs = found
    log.warning(
        "resuming %s at epoch %s: %d member(s), %d unfinished %s",
        ckpt,
        epochs,
        len(stack),
        len([s for s in stack if s in todo]),
        _member_names([s for s in stack if s in todo]),
    )
    return ckpt, stack


def _member_names(specs: Sequence[RunSpec]) -> str:
    return "(" + ", ".join(f"{s.model.name}/seed-{s.seed}" for s in specs) + ")"


def _checkpoint_stacks(folder: Path) -> dict[Path, list[Path]]:
    """The stacks in a checkpoint folder: the stack's own file name -> its file(s) on disk."""
    stacks: dict[Path, list[Path]] = {}
    for path in sorted(folder.glob("stack-*.pt")):
        stem = path.name.split(".", 1)[0]  # stack-<digest>[.shardIofN].pt
        stacks.setdefault(folder / f"{stem}.pt", []).append(path)
    return stacks


def _read_stack(files: list[Path]) -> tuple[list[tuple[ModelConfig, int]], dict, str, list[int]]:
    """Members (in an order that shards as the stack was sharded), training settings, device type
    and epoch of each file of a stack checkpoint, sharded or not."""

    def shard_index(path: Path) -> int:
        part = path.name.split(".")[1] if path.name.count(".") == 2 else "shard0of1"
        return int(part[len("shard") :].split("of")[0])

    members: list[tuple[ModelConfig, int]] = []
    settings, device_type, epochs = {}, "", []
    for path in sorted(files, key=shard_index):
        st = torch.load(path, map_location="cpu", weights_only=False)
        # shard files list their own members in stack order; shards follow one another, which
        # sharding (a function of the member set, then of the order inside each shard) keeps
        members += [(ModelConfig.from_dict(c), s) for c, s in st["members"]]
        settings = {k: v for k, v in st["train_config"].items() if k != "checkpoint_seconds"}
        device_type = st["device_type"]
        epochs.append(int(st["epoch"]))
    return members, settings, device_type, epochs


def find_resumable(
    root: Path,
    data: str,
    preprocessing: str,
    train_cfg: TrainConfig,
    todo: Sequence[RunSpec],
    requested: Sequence[RunSpec],
    device_type: str,
) -> tuple[Path, list[RunSpec], str] | None:
    """A checkpoint on disk from which the unfinished runs `todo` can go on, or None.

    A stack's checkpoint is named by its exact member list, so a stack started with 11 variants
    and resumed after 3 of them finished would not be found under the name of the other 8. This
    looks at every stack in the folder instead: it qualifies when it holds every run of `todo`,
    was written with the same training settings and device type, and holds no run that is neither
    requested nor finished (resuming must not train what nobody asked for). Of several, the one
    furthest along wins. Returns (checkpoint path, its members as specs in order, epoch text).
    """
    folder = runs.checkpoint_dir(root, data, preprocessing)
    if not folder.is_dir():
        return None
    wanted, asked = set(todo), set(requested)
    best: tuple[int, int, Path, list[RunSpec], str] | None = None
    for path, files in _checkpoint_stacks(folder).items():
        try:
            members, settings, dev_type, epochs = _read_stack(files)
        except Exception as err:  # a foreign or damaged file is not ours to resume from
            log.warning("skipping checkpoint %s: cannot read it (%s)", path, err)
            continue
        if settings != train_cfg.identity() or dev_type != device_type:
            continue
        specs = [RunSpec(data, preprocessing, c, s, train_cfg) for c, s in members]
        held = set(specs)
        if not wanted <= held or len(held) != len(specs):
            continue
        extra = [s for s in specs if s not in asked and not runs.is_trained(s.directory(root))]
        if extra:
            continue
        text = str(epochs[0]) if len(set(epochs)) == 1 else f"{min(epochs)}-{max(epochs)}"
        key = (min(epochs), -len(specs))
        if best is None or key > best[:2]:
            best = (*key, path, specs, text)
    return None if best is None else (best[2], best[3], best[4])


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

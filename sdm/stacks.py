"""Training what is missing: which runs to train together, which checkpoint they resume from, and
writing each run folder the moment its member finishes.

Every missing run of one corpus and training setting trains in one stack (all shapes, one step).
A stack resumes from any checkpoint on disk that holds its unfinished runs, whatever members it
was started with, and says which and at what epoch, or says loudly that it starts fresh. A stack
is split into shards (one per CPU process, or one per cluster job: `Stack.shards`,
`train_shard`), each with its own checkpoint file; the split is a pure function of the members.
Whoever trains a stack or a shard holds its lock and its runs' (sdm.guards.holding): a second
command is refused, naming the first. Afterwards, what nobody needs is tidied (sdm.resume.tidy).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sdm import data, guards, results, resume
from sdm.config import ModelConfig, TrainConfig
from sdm.data import Corpus, resolve_corpus
from sdm.parallel import resolve_workers, shard_members
from sdm.resume import find_resumable
from sdm.runs import RunSpec, check_reusable, data_identity
from sdm.train import MemberResult, fit, pick_device

if TYPE_CHECKING:
    from sdm.cluster import Launcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunWriter:
    """Writes a finished member's run folder (sdm.results.save_run); picklable, so it runs in
    whichever process trained the member."""

    specs: Mapping[tuple[ModelConfig, int], RunSpec]
    todo: frozenset[RunSpec]
    root: Path
    data_sha256: str
    val_every: int
    device: str
    stack: tuple[str, ...]

    def __call__(self, result: MemberResult) -> None:
        spec = self.specs[(result.config, result.seed)]
        if spec not in self.todo:
            return  # finished before: its run folder is already written, keep it
        results.save_run(
            spec.directory(self.root),
            spec.identity(self.data_sha256),
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
                "val_interval_epochs": self.val_every,
            },
            self.device,
            list(self.stack),
        )
        log.info(
            "%s seed %d: best epoch %d of %d",
            result.config.name,
            result.seed,
            result.best_epoch,
            result.epochs_run,
        )

    def save_missing(self, finished: Sequence[MemberResult]) -> None:
        """Members the checkpoint already held as done whose run folder was not written (killed
        between the two, or removed since): the checkpoint is their only copy, so save them."""
        for result in finished:
            spec = self.specs[(result.config, result.seed)]
            if spec in self.todo and not results.is_trained(spec.directory(self.root)):
                self(result)


@dataclass(frozen=True)
class Shard:
    """One process's or one cluster job's share of a stack: its members and checkpoint file."""

    specs: tuple[RunSpec, ...]
    checkpoint: Path
    stack: Stack


@dataclass(frozen=True)
class Stack:
    """Runs that train together: members in order, their checkpoint, the ones still to write."""

    specs: tuple[RunSpec, ...]
    checkpoint: Path
    todo: frozenset[RunSpec]
    root: Path
    fresh: bool = False  # --overwrite: its old checkpoint files go once the stack is locked

    @property
    def train(self) -> TrainConfig:
        return self.specs[0].train

    def shards(self, workers: int | str = 1, device: str = "auto") -> list[Shard]:
        """The stack split over `workers` processes or jobs, as `sdm.train.fit` splits it: the
        layout of a checkpoint on disk wins, so a stack resumes as it started."""
        n = resolve_workers(workers, device, len(self.specs))
        n = results.existing_layout(self.checkpoint) or n
        if n == 1:
            return [Shard(self.specs, self.checkpoint, self)]
        groups = shard_members([s.model for s in self.specs], [s.seed for s in self.specs], n)
        return [
            Shard(
                tuple(self.specs[i] for i in group),
                results.shard_checkpoint(self.checkpoint, j, len(groups)),
                self,
            )
            for j, group in enumerate(groups)
        ]

    def writer(self, corpus: Corpus, train_frames: int, device: str) -> RunWriter:
        return RunWriter(
            {(s.model, s.seed): s for s in self.specs},
            self.todo,
            self.root,
            corpus.checksum(),
            self.train.val_interval(math.ceil(train_frames / self.train.batch_size)),
            device,
            tuple(s.label for s in self.specs),
        )

    def locks(self, shard: Shard | None = None) -> list[tuple[Path, str]]:
        """What one writer holds while training the stack (or one shard): the checkpoint's lock
        and each unfinished run's (sdm.guards.holding)."""
        checkpoint = self.checkpoint if shard is None else shard.checkpoint
        specs = self.todo if shard is None else self.todo.intersection(shard.specs)
        runs = [
            (results.run_lock(self.root, s.data, s.preprocessing, s.model.name, s.seed), s)
            for s in sorted(specs, key=lambda s: s.label)
        ]
        return [(results.stack_lock(checkpoint), f"checkpoint {checkpoint}")] + [
            (lock, str(s.directory(self.root))) for lock, s in runs
        ]

    def finished(self) -> bool:
        return all(results.is_trained(s.directory(self.root)) for s in self.todo)

    def cleanup(self) -> bool:
        """Remove the stack's checkpoint files once every member's run folder is written (never
        before: they are the only copy of unfinished training). True when removed."""
        if not self.finished():
            return False
        results.remove_checkpoints(self.checkpoint)
        return True


def _corpora(specs: Sequence[RunSpec], given: Mapping[str, Corpus] | None) -> dict[str, Corpus]:
    """Each data string resolved once (or taken from `given`, resolved by the caller)."""
    given = dict(given or {})
    return {d: given.get(d) or resolve_corpus(d) for d in dict.fromkeys(s.data for s in specs)}


def plan_stacks(
    specs: Sequence[RunSpec],
    root: Path = results.RESULTS_ROOT,
    device_type: str = "cpu",
    overwrite: bool = False,
    corpora: Mapping[str, Corpus] | None = None,
    busy: frozenset[Path] = frozenset(),
) -> list[Stack]:
    """The stacks that train what `specs` miss, each with the checkpoint it resumes from.

    Finished runs with the same identity are reused; a finished run with another identity raises
    RunConflictError unless `overwrite` (which retrains it, and never resumes). Runs whose folder
    is in `busy` (trained by jobs of an earlier command) are left to those."""
    corpus_of = _corpora(specs, corpora)
    unique = list(dict.fromkeys(specs))  # a run named twice is trained once
    todo: set[RunSpec] = set()
    for spec in unique:
        identity = spec.identity(corpus_of[spec.data].checksum())
        if spec.directory(root) in busy or (
            not overwrite and check_reusable(spec.directory(root), identity)
        ):
            log.info("reusing %s", spec.directory(root))
            continue
        todo.add(spec)
    batches: dict[tuple[str, str, TrainConfig], list[RunSpec]] = {}
    for spec in unique:
        batches.setdefault((spec.data, spec.preprocessing, spec.train), []).append(spec)
    stacks = []
    for (name, prep, train_cfg), batch in batches.items():
        # every missing run of this corpus and setting trains in one fit: all shapes, one step
        missing = [s for s in batch if s in todo]
        if not missing:
            continue
        ckpt = results.stack_checkpoint(root, name, prep, missing)
        if overwrite:
            stacks.append(Stack(tuple(missing), ckpt, frozenset(missing), Path(root), fresh=True))
            continue
        found = find_resumable(
            root, name, prep, train_cfg, missing, batch, device_type, corpus_of[name], ckpt
        )
        if found is None:
            log.warning(
                "starting fresh: no checkpoint in %s holds the %d unfinished run(s) %s",
                ckpt.parent,
                len(missing),
                _labels(missing),
            )
            stacks.append(Stack(tuple(missing), ckpt, frozenset(missing), Path(root)))
            continue
        # the stack that was interrupted, whatever members it was started with: members it
        # finished are already saved and are skipped, the others go on where they were
        ckpt, members, epochs = found
        log.warning(
            "resuming %s at epoch %s: %d member(s), %d unfinished %s",
            ckpt,
            epochs,
            len(members),
            len(missing),
            _labels(missing),
        )
        stacks.append(Stack(tuple(members), ckpt, frozenset(missing), Path(root)))
    return stacks


def _labels(specs: Sequence[RunSpec]) -> str:
    return "(" + ", ".join(s.label for s in specs) + ")"


def corpus_frames(corpus: Corpus, preprocessing: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The train and validation frames of a corpus (from the frame cache)."""
    return tuple(
        torch.from_numpy(data.frames(corpus, split, preprocessing)) for split in ("train", "val")
    )


def fit_on_corpus(
    members: Sequence[tuple[ModelConfig, int]],
    frames: tuple[torch.Tensor, torch.Tensor],
    corpus: Corpus,
    train: TrainConfig,
    device: str,
    checkpoint: Path,
    writer: RunWriter,
    progress: bool,
    workers: int | str,
) -> list[MemberResult]:
    """fit() on a corpus's frames, the checkpoint recording which corpus it trains on."""
    configs, seeds = [c for c, _ in members], [s for _, s in members]
    run = (train, device, checkpoint, writer, progress, workers, data_identity(corpus))
    return fit(configs, seeds, *frames, *run)


def train_shard(
    shard: Shard,
    device: str = "auto",
    progress: bool = True,
    corpus: Corpus | None = None,
) -> list[MemberResult]:
    """Train one shard of a stack in this process, writing each run folder as its member finishes:
    the entry point of a cluster job (one job per shard of `Stack.shards`). It resumes from the
    shard's checkpoint file when there is one; the files stay until the whole stack is trained
    (`Stack.cleanup`, or the next `ensure_trained`, removes them)."""
    corpus = corpus or resolve_corpus(shard.specs[0].data)
    with guards.holding(shard.stack.locks(shard)):
        return _train(shard.stack, shard.specs, shard.checkpoint, corpus, device, progress, 1)


def ensure_trained(
    specs: Sequence[RunSpec],
    root: Path = results.RESULTS_ROOT,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    workers: int | str = "auto",
    corpora: Mapping[str, Corpus] | None = None,
    launcher: Launcher | None = None,
) -> list[Path]:
    """Train every spec whose run is not finished, as stacks of equally shaped members, and
    return every spec's run folder.

    `workers`: processes on a CPU (sdm.parallel; 'auto' = one per torch thread). `corpora`: the
    data strings already resolved by the caller (each is resolved once otherwise). `launcher`:
    train on a cluster instead, one job per shard (sdm.cluster); None trains here."""
    corpus_of = _corpora(specs, corpora)
    if launcher is not None:
        return _train_on_cluster(specs, root, device, overwrite, launcher, corpus_of)
    dev = pick_device(device)
    for stack in plan_stacks(specs, root, dev.type, overwrite, corpus_of):
        with guards.holding(stack.locks()):  # one writer per stack and run folder
            _train_stack(stack, corpus_of[stack.specs[0].data], dev, progress, workers)
    for data_name, prep in dict.fromkeys((s.data, s.preprocessing) for s in specs):
        resume.tidy(
            root,
            data_name,
            prep,
            [s for s in specs if (s.data, s.preprocessing) == (data_name, prep)],
        )
    return [s.directory(root) for s in specs]


def _train_stack(
    stack: Stack, corpus: Corpus, dev: torch.device, progress: bool, workers: int | str
) -> None:
    """Train a stack this process has locked; remove its checkpoints once all is written."""
    if stack.fresh:
        results.remove_checkpoints(stack.checkpoint)
    _train(stack, stack.specs, stack.checkpoint, corpus, str(dev), progress, workers)
    stack.cleanup()


def _train(
    stack: Stack,
    specs: Sequence[RunSpec],
    checkpoint: Path,
    corpus: Corpus,
    device: str,
    progress: bool,
    workers: int | str,
) -> list[MemberResult]:
    """fit() on `specs` of `stack`, run folders written as members finish (and from the
    checkpoint, for those it holds as done whose folder is missing)."""
    frames = corpus_frames(corpus, specs[0].preprocessing)
    writer = stack.writer(corpus, frames[0].shape[0], str(pick_device(device)))
    members = [(s.model, s.seed) for s in specs]
    done = fit_on_corpus(
        members, frames, corpus, stack.train, device, checkpoint, writer, progress, workers
    )
    writer.save_missing(done)
    return done


def run_shard_job(shard: Shard, device: str) -> list[str]:
    """The call a cluster job makes: train_shard, returning the members' names (not weights)."""
    train_shard(shard, device, progress=False)
    return [s.label for s in shard.specs]


def _train_on_cluster(
    specs: Sequence[RunSpec],
    root: Path,
    device: str,
    overwrite: bool,
    launcher: Launcher,
    corpus_of: Mapping[str, Corpus],
) -> list[Path]:
    """ensure_trained through a launcher: the stacks planned as here, each split into
    launcher.spec.jobs shards as --workers splits it (a stack resumes with the layout it was
    started with); one job per shard runs `run_shard_job`, holding the shard's locks."""
    from sdm.cluster import Shard as Job

    given_root, root = root, Path(root).resolve()  # jobs may start in another folder
    job_device = launcher.spec.device
    if device != "auto" and device.split(":")[0] != job_device:
        raise ValueError(
            f"device: {device!r} was asked for, but jobs with {launcher.spec.gpus} GPU(s) train "
            f"on {job_device} (--gpus-per-job decides where jobs train)"
        )
    folders: dict[Path, list[RunSpec]] = {}
    for spec in dict.fromkeys(specs):
        folder = results.checkpoint_dir(root, spec.data, spec.preprocessing)
        folders.setdefault(folder, []).append(spec)
    identity = {s: s.identity(corpus_of[s.data].checksum()) for s in dict.fromkeys(specs)}
    if overwrite or not all(check_reusable(s.directory(root), i) for s, i in identity.items()):
        launcher.check()  # bad options or no cluster: one line, before anything is submitted
    busy: set[Path] = set()
    for folder, batch in folders.items():
        busy |= launcher.adopt(folder, {s.directory(root) for s in batch})
    if overwrite and busy:
        raise ValueError(
            "--overwrite: runs of this command are being trained by jobs of an earlier one; "
            "wait for them or scancel them first"
        )
    for stack in plan_stacks(specs, root, job_device, overwrite, corpus_of, frozenset(busy)):
        corpus = corpus_of[stack.specs[0].data]
        corpus_frames(
            corpus, stack.specs[0].preprocessing
        )  # built here once; the jobs read the cache
        if stack.fresh:
            results.remove_checkpoints(stack.checkpoint)
        jobs = []
        for j, shard in enumerate(stack.shards(min(launcher.spec.jobs, len(stack.specs)))):
            dirs = tuple(s.directory(root) for s in shard.specs)
            if all(results.is_trained(d) for d in dirs):
                continue  # finished by an earlier job: its file stays until the stack is done
            if busy.intersection(dirs):
                log.warning(
                    "not submitting shard %d of %s now: a job of an earlier command trains some "
                    "of its runs; run the command again once it has ended",
                    j,
                    stack.checkpoint.name,
                )
                continue
            run = functools.partial(run_shard_job, shard, job_device)
            jobs.append(Job(tuple(s.label for s in shard.specs), dirs, shard.checkpoint, run))
        launcher.submit(jobs, stack.checkpoint.parent)
    launcher.finish()  # waits, or raises TrainingPending (--no-wait)
    for batch in folders.values():
        resume.tidy(root, batch[0].data, batch[0].preprocessing, batch)
    for spec in identity:  # a run written by a job of an earlier command must be the one asked for
        if not check_reusable(spec.directory(root), identity[spec]):
            raise ValueError(f"{spec.directory(root)}: not trained; run the same command again")
    return [s.directory(given_root) for s in specs]

"""Training what is missing: which runs to train together, which checkpoint they resume from, and
writing each run folder the moment its member finishes.

Every missing run of one corpus and training setting trains in one stack (all shapes, one step).
A stack resumes from any checkpoint on disk that holds its unfinished runs, whatever members it
was started with, and says which and at what epoch, or says loudly that it starts fresh. A stack
is split into shards (one per CPU process, or one per cluster job: `Stack.shards`,
`train_shard`), each with its own checkpoint file; the split is a pure function of the members.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from sdm import data, results
from sdm.config import ModelConfig, TrainConfig
from sdm.data import Corpus, resolve_corpus
from sdm.parallel import resolve_workers, shard_members
from sdm.runs import RunSpec, check_reusable
from sdm.train import MemberResult, fit, pick_device, read_checkpoint
from sdm.training_state import DataMismatchError, describe_data

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

    def finished(self) -> bool:
        return all(results.is_trained(s.directory(self.root)) for s in self.todo)

    def cleanup(self) -> bool:
        """Remove the stack's checkpoint files once every member's run folder is written (never
        before: they are the only copy of unfinished training). True when removed."""
        if not self.finished():
            return False
        results.remove_checkpoints(self.checkpoint)
        return True


def data_identity(corpus: Corpus) -> dict[str, str]:
    """What a checkpoint records of the corpus it trains on: its name, its checksum (compared on
    resume), and its folder when the name is not enough to find it."""
    identity = {"name": corpus.name, "sha256": corpus.checksum()}
    if corpus.name not in ("shipped", "medium"):
        identity["root"] = str(Path(corpus.root).resolve())
    return identity


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
) -> list[Stack]:
    """The stacks that train what `specs` miss, each with the checkpoint it resumes from.

    Finished runs with the same identity are reused; a finished run with another identity raises
    RunConflictError unless `overwrite` (which retrains it, and never resumes)."""
    corpus_of = _corpora(specs, corpora)
    unique = list(dict.fromkeys(specs))  # a run named twice is trained once
    todo: set[RunSpec] = set()
    for spec in unique:
        identity = spec.identity(corpus_of[spec.data].checksum())
        if not overwrite and check_reusable(spec.directory(root), identity):
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
            results.remove_checkpoints(ckpt)
            stacks.append(Stack(tuple(missing), ckpt, frozenset(missing), Path(root)))
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


def _read_stack(
    files: list[Path],
) -> tuple[list[tuple[ModelConfig, int]], dict, str, list[int], list[dict | None]]:
    """Members (in an order that shards as the stack was sharded), training settings, device type,
    epoch and data (None when not recorded) of each file of a stack checkpoint, sharded or not."""
    members: list[tuple[ModelConfig, int]] = []
    settings, device_type, epochs, data = {}, "", [], []
    for path in files:  # shard files in index order (results.checkpoint_stacks)
        st = read_checkpoint(path)
        # shard files list their own members in stack order; shards follow one another, which
        # sharding (a function of the member set, then of the order inside each shard) keeps
        members += [(ModelConfig.from_dict(c), s) for c, s in st["members"]]
        settings = {k: v for k, v in st["train_config"].items() if k != "checkpoint_seconds"}
        device_type = st["device_type"]
        epochs.append(int(st["epoch"]))
        data.append(st.get("data"))
    return members, settings, device_type, epochs, data


def find_resumable(
    root: Path,
    data: str,
    preprocessing: str,
    train_cfg: TrainConfig,
    todo: Sequence[RunSpec],
    requested: Sequence[RunSpec],
    device_type: str,
    corpus: Corpus | None = None,
    own: Path | None = None,
) -> tuple[Path, list[RunSpec], str] | None:
    """A checkpoint on disk from which the unfinished runs `todo` can go on, or None.

    A stack's checkpoint is named by its exact member list, so a stack started with 11 variants
    and resumed after 3 of them finished would not be found under the name of the other 8. This
    looks at every stack in the folder instead: it qualifies when it holds every run of `todo`,
    was written with the same training settings and device type, and holds no run that is neither
    requested nor finished (resuming must not train what nobody asked for). Of several, the one
    furthest along wins. Returns (checkpoint path, its members as specs in order, epoch text).

    One that qualifies but was trained on another corpus than `corpus` is refused (a checkpoint
    without a recorded corpus is taken to be of this one: its folder is this corpus's). A file that
    cannot be read is skipped with a warning, unless it is `own`, the file this stack would write:
    then the command stops rather than overwrite or resume it.
    """
    folder = results.checkpoint_dir(root, data, preprocessing)
    if not folder.is_dir():
        return None
    wanted, asked = set(todo), set(requested)
    best: tuple[int, int, Path, list[RunSpec], str] | None = None
    foreign: list[str] = []
    for path, files in results.checkpoint_stacks(folder).items():
        try:
            members, settings, dev_type, epochs, stored = _read_stack(files)
        except ValueError as err:  # a foreign or damaged file is not ours to resume from
            if own is not None and path == own:
                raise
            log.warning("skipping checkpoint %s: %s", path, err)
            continue
        if settings != train_cfg.result_settings() or dev_type != device_type:
            continue
        specs = [RunSpec(data, preprocessing, c, s, train_cfg) for c, s in members]
        held = set(specs)
        if not wanted <= held or len(held) != len(specs):
            continue
        extra = [s for s in specs if s not in asked and not results.is_trained(s.directory(root))]
        if extra:
            continue
        other = [d for d in stored if d and corpus and d["sha256"] != corpus.checksum()]
        if other:
            foreign.append(
                f"{path} was trained on {describe_data(other[0])}, but this command's data is "
                f"{describe_data(data_identity(corpus))}"
            )
            continue
        text = str(epochs[0]) if len(set(epochs)) == 1 else f"{min(epochs)}-{max(epochs)}"
        key = (min(epochs), -len(specs))
        if best is None or key > best[:2]:
            best = (*key, path, specs, text)
    if best is None and foreign:
        raise DataMismatchError(
            f"{foreign[0]}; resume on that corpus, or remove the checkpoint (or --overwrite) to "
            "train on this one from scratch"
        )
    return None if best is None else (best[2], best[3], best[4])


def _frames(corpus: Corpus, preprocessing: str) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(
        torch.from_numpy(data.frames(corpus, split, preprocessing)) for split in ("train", "val")
    )


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
    spec = shard.specs[0]
    corpus = corpus or resolve_corpus(spec.data)
    train_x, val_x = _frames(corpus, spec.preprocessing)
    writer = shard.stack.writer(corpus, train_x.shape[0], str(pick_device(device)))
    configs, seeds = [s.model for s in shard.specs], [s.seed for s in shard.specs]
    done = fit(
        configs,
        seeds,
        train_x,
        val_x,
        spec.train,
        device,
        shard.checkpoint,
        writer,
        progress,
        data=data_identity(corpus),
    )
    writer.save_missing(done)
    return done


def ensure_trained(
    specs: Sequence[RunSpec],
    root: Path = results.RESULTS_ROOT,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    workers: int | str = "auto",
    corpora: Mapping[str, Corpus] | None = None,
) -> list[Path]:
    """Train every spec whose run is not finished, as stacks of equally shaped members, and
    return every spec's run folder.

    `workers`: processes on a CPU (sdm.parallel; 'auto' = one per torch thread). `corpora`: the
    data strings already resolved by the caller (each is resolved once otherwise)."""
    dev = pick_device(device)
    corpus_of = _corpora(specs, corpora)
    for stack in plan_stacks(specs, root, dev.type, overwrite, corpus_of):
        spec = stack.specs[0]
        train_x, val_x = _frames(corpus_of[spec.data], spec.preprocessing)
        writer = stack.writer(corpus_of[spec.data], train_x.shape[0], str(dev))
        configs, seeds = [s.model for s in stack.specs], [s.seed for s in stack.specs]
        done = fit(
            configs,
            seeds,
            train_x,
            val_x,
            stack.train,
            str(dev),
            stack.checkpoint,
            writer,
            progress,
            workers,
            data_identity(corpus_of[spec.data]),
        )
        writer.save_missing(done)
        stack.cleanup()
    return [s.directory(root) for s in specs]

"""Which checkpoint a stack resumes from, and which checkpoints and temporary files nobody needs.

A stack's checkpoint is named by its exact member list, so a stack started with 11 variants and
resumed after 3 of them finished would not be found under the name of the other 8: `find_resumable`
looks at every stack in the folder. A checkpoint resumes only on the corpus it was trained on, and
a file that cannot be read is never loaded, never resumed and never overwritten. `tidy` removes
temporary files and checkpoints left behind, never one another process holds a lock on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from sdm import guards, results
from sdm.config import ModelConfig, TrainConfig
from sdm.data import Corpus
from sdm.runs import DataMismatchError, RunSpec, data_identity, describe_data
from sdm.train import read_checkpoint

log = logging.getLogger(__name__)


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


def _locks_of(checkpoint: Path) -> list[tuple[Path, str]]:
    """The stack's lock and those of its shard files: whoever trains any part holds one."""
    stack = checkpoint.parent / (checkpoint.name.split(".", 1)[0] + ".pt")
    paths = dict.fromkeys([results.stack_lock(stack), results.stack_lock(checkpoint)])
    paths.update(dict.fromkeys(results.stack_lock(p) for p in results.shard_files(stack)))
    return [(p, f"checkpoint {stack}") for p in paths]


def tidy(root: Path, data: str, preprocessing: str, specs: Sequence[RunSpec]) -> None:
    """Remove what nobody needs, leaving alone whatever another process holds a lock on:
    temporary files that killed writers left beside the checkpoints and in the run folders of
    `specs`, and checkpoints whose runs are all written with the settings they hold (a final
    checkpoint left by a command killed before it removed it)."""
    for spec in specs:
        lock = results.run_lock(root, data, preprocessing, spec.model.name, spec.seed)
        with contextlib.suppress(guards.LockedError), guards.holding([(lock, "run")]):
            for tmp in results.temporary_files(spec.directory(root)):
                tmp.unlink(missing_ok=True)
    folder = results.checkpoint_dir(root, data, preprocessing)
    for tmp in results.temporary_files(folder):
        target = folder / tmp.name[1:].rsplit(".", 3)[0]  # .<name>.<random>.tmp<suffix>
        with contextlib.suppress(guards.LockedError), guards.holding(_locks_of(target)):
            tmp.unlink(missing_ok=True)
    for stack, files in results.checkpoint_stacks(folder).items():
        with contextlib.suppress(guards.LockedError), guards.holding(_locks_of(stack)):
            try:
                members, settings, *_ = _read_stack(files)
            except ValueError:
                continue  # not ours to judge: left as it is
            runs = [results.run_dir(root, data, preprocessing, c.name, s) for c, s in members]
            configs = [results.read_config(r) if results.is_trained(r) else None for r in runs]
            if all(c and c["identity"]["train"] == settings for c in configs):
                results.remove_checkpoints(stack)
                log.info("removed %s: every run it held is written", stack)

"""The one training loop. It trains any set of members (variants and seeds) at once — grouped by
shape into stacks with batched weights, one optimizer step for all — and never branches on the
family.

Per member: its own shuffling stream, early stopping on a deterministic validation loss, a best
snapshot kept by value in memory. A member that stops early leaves the stack, so it costs no more
time. `fit` is a short loop over a sdm.training_state.TrainingState, which owns the checkpoint
schema.
"""

from __future__ import annotations

import io
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from sdm import guards, results
from sdm.config import ModelConfig, TrainConfig
from sdm.guards import EpochAborted, Interrupted, NonFiniteLossError, load_torch
from sdm.training_state import MemberResult, TrainingState

log = logging.getLogger(__name__)

__all__ = [
    "Interrupted",
    "MemberResult",
    "NonFiniteLossError",
    "fit",
    "pick_device",
    "read_checkpoint",
]


def pick_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; otherwise 'cpu', 'cuda' or 'cuda:N'."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    expected = f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {device!r}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(expected) from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(expected)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} was asked for but no CUDA device is available")
        # name the index: a generator on "cuda:0" never equals "cuda", and the models keep their
        # noise streams only while the device they are asked for equals the one they were made on
        dev = torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
        if dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {device!r} was asked for but there are {torch.cuda.device_count()} "
                "CUDA devices"
            )
    return dev


def save_checkpoint(content: dict[str, Any] | bytes, path: Path) -> None:
    """Write a checkpoint (its content, or its bytes already serialised) through a temporary file:
    a reader never sees half of one."""
    if isinstance(content, bytes):
        results.atomic_write(path, lambda p: p.write_bytes(content))
    else:
        results.atomic_write(path, lambda p: torch.save(content, p))


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's content, loaded safely (sdm.guards.load_torch)."""
    st = load_torch(path, "training checkpoint")
    if not isinstance(st, dict) or "format" not in st or "members" not in st:
        raise ValueError(
            f"{path}: not a training checkpoint (no format or members key); remove it or "
            "--overwrite"
        )
    return st


def fit(
    configs: Sequence[ModelConfig],
    seeds: Sequence[int],
    train: torch.Tensor,
    val: torch.Tensor,
    cfg: TrainConfig = TrainConfig(),
    device: str = "auto",
    checkpoint: Path | None = None,
    on_member_done: Callable[[MemberResult], None] | None = None,
    progress: bool = True,
    workers: int | str = 1,
    data: Mapping[str, str] | None = None,
) -> list[MemberResult]:
    """Train members of any shapes together, one optimizer step for all; one MemberResult each,
    in input order.

    Members are grouped by shape into stacks (batched weights, one set of kernels per group); every
    step runs all groups and one backward pass. train, val: (N, 513) power frames. `checkpoint`: a
    file to resume from if it exists and to write at most every cfg.checkpoint_seconds (0 = every
    epoch) and at the end. A member is done when its validation loss has not improved for
    cfg.patience validations, or at cfg.max_epochs; it then leaves its stack and is handed to
    `on_member_done` at once, with its best weights. `workers`: CPU processes to spread the
    members over ('auto': one per torch thread; sdm.parallel); a checkpoint on disk keeps the
    layout it was written with. `data`: the corpus the frames come from ({"name", "sha256"},
    optionally "root"), recorded in every checkpoint file and checked on resume.
    """
    from tqdm import tqdm

    from sdm import parallel

    n_proc = parallel.resolve_workers(workers, device, len(configs))
    if checkpoint is not None:
        n_proc = results.existing_layout(checkpoint) or n_proc
    if n_proc > 1:
        return parallel.fit_in_processes(
            configs,
            seeds,
            train,
            val,
            cfg,
            device,
            checkpoint,
            on_member_done,
            progress,
            n_proc,
            data,
        )
    dev = pick_device(device)
    state = TrainingState(
        configs, seeds, train.to(dev, torch.float32), val.to(dev, torch.float32), cfg, dev, data
    )
    if checkpoint is not None and checkpoint.exists():
        state.load_state_dict(read_checkpoint(checkpoint), checkpoint)
        log.info(
            "resumed %s at epoch %d (%d active members)", checkpoint, state.epoch, state.n_active
        )

    snapshot: bytes | None = None  # the checkpoint of the last finished epoch, for a stop

    def hand_over(finished: list[MemberResult]) -> None:
        for r in finished:
            if on_member_done is not None:
                on_member_done(r)  # at once: a long stack commits finished members as they stop

    names = sorted({c.name for c in configs})
    bar = tqdm(
        total=cfg.max_epochs,
        initial=state.epoch,
        disable=not progress,
        unit="ep",
        desc="+".join(names) if len(configs) < 4 else f"{len(configs)} members",
    )
    last_save = time.monotonic()
    for g in state.training:
        g.model.train()
    try:
        with guards.stopping():
            while state.training and state.epoch < cfg.max_epochs:
                state.run_epoch(checkpoint, guards.stop_requested)
                if state.validation_due():
                    stopped, last_val = state.validate()
                    hand_over(state.finish(stopped, stopped_early=True))
                    bar.set_postfix(val=f"{last_val:.1f}", active=state.n_active)
                bar.update(1)
                if checkpoint is None:
                    continue
                snapshot = _serialise(state.state_dict())
                if time.monotonic() - last_save >= cfg.checkpoint_seconds:
                    save_checkpoint(snapshot, checkpoint)
                    last_save = time.monotonic()
    except EpochAborted as aborted:
        epoch, signum = aborted.args
        raise _interrupted(epoch - 1, signum, checkpoint, snapshot) from None
    finally:
        bar.close()
    finished = state.finish(sorted(i for g in state.training for i in g.active), False)
    if checkpoint is not None:  # first: should handing over fail, the checkpoint holds them
        save_checkpoint(state.state_dict(), checkpoint)
    hand_over(finished)
    return state.results()


def _serialise(content: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


def _interrupted(
    epoch: int, signum: int, checkpoint: Path | None, snapshot: bytes | None
) -> Interrupted:
    """Write the last finished epoch's checkpoint and say so, in one line."""
    name = signal.Signals(signum).name
    if checkpoint is None:
        return Interrupted(signum, f"stopped by {name} at epoch {epoch}; nothing is saved")
    if snapshot is not None:
        save_checkpoint(snapshot, checkpoint)
    if not checkpoint.exists():
        return Interrupted(signum, f"stopped by {name} before its first epoch ended; nothing saved")
    return Interrupted(
        signum,
        f"stopped by {name}: training saved at epoch {epoch} in {checkpoint}; run the same "
        "command to resume",
    )

"""The one training loop. It trains a stack of S members (one variant, or several variants and seeds
of the same shape) and never branches on the model family.

Per member: its own shuffling stream, early stopping on a deterministic validation loss, a best
snapshot kept by value in memory. A member that stops early leaves the stack, so it costs no more
time.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdm.config import ModelConfig, TrainConfig
from sdm.metrics import hoyer
from sdm.models import SHUFFLE_STREAM, LatentStack, _seed_stream, build_stack

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
VAL_CHUNK = 8192  # frames per validation forward: bounds memory on large corpora


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or inf loss; the message names variant, epoch and first bad step."""


@dataclass
class MemberResult:
    """What a finished member hands back: its best weights, when they were reached, its history."""

    config: ModelConfig
    seed: int
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]
    elapsed_s: float
    train_frames_per_s: float


@dataclass
class _Member:
    config: ModelConfig
    seed: int
    shuffle: torch.Generator
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    since_best: int = 0


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


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _select_optimizer(
    old: torch.optim.Optimizer, model: LatentStack, keep: Sequence[int], lr: float
) -> torch.optim.Optimizer:
    """Adam for the members kept: its moments sliced like the weights (Adam is elementwise)."""
    new = torch.optim.Adam(model.parameters(), lr=lr)
    state = old.state_dict()
    idx = torch.as_tensor(list(keep), dtype=torch.long)
    for s in state["state"].values():
        for name in ("exp_avg", "exp_avg_sq"):
            s[name] = s[name][idx.to(s[name].device)]
    new.load_state_dict(state)
    return new


@torch.no_grad()
def _validate(model: LatentStack, val: torch.Tensor) -> dict[str, torch.Tensor]:
    """Deterministic validation loss: the posterior mean is decoded, no noise is drawn.

    The same weights always give the same loss, so early stopping reacts to learning rather than to
    a random draw (../shared/PAPER.md). Returns per-member tensors (S,).
    """
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, val.shape[0], VAL_CHUNK):
        chunk = val[start : start + VAL_CHUNK]
        out = model(chunk.unsqueeze(0).expand(model.size, *chunk.shape), sample=False)
        n = chunk.shape[0]
        parts = {
            "val_loss": out.loss * n,
            "val_recon": out.recon * n,
            "val_kl": out.kl * n,
            "val_hoyer": hoyer(out.code).sum(dim=1),
        }
        if out.gamma is not None:
            parts["gamma_mean"] = out.gamma.mean(dim=2).sum(dim=1)
            parts["gamma_median"] = out.gamma.median(dim=2).values.sum(dim=1)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0) + v
    model.train()
    return {k: v / val.shape[0] for k, v in sums.items()}


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
) -> list[MemberResult]:
    """Train S members of one shape together; return one MemberResult each (in input order).

    train, val: (N, 513) power frames. `checkpoint`: a file to resume from if it exists and to write
    at most every cfg.checkpoint_seconds (0 = every epoch) and at the end. A member is done when its
    validation loss has not improved for cfg.patience validations, or at cfg.max_epochs; it is then
    handed to `on_member_done` at once, with its best weights.
    """
    from tqdm.auto import tqdm

    dev = pick_device(device)
    train = train.to(dev, torch.float32)
    val = val.to(dev, torch.float32)
    n, bsz = train.shape[0], cfg.batch_size
    if n == 0 or val.shape[0] == 0:
        raise ValueError(f"need training and validation frames, got {n} and {val.shape[0]}")
    steps = math.ceil(n / bsz)
    every = cfg.val_interval(steps)

    model = build_stack(configs, seeds).to(dev)
    members = [
        _Member(c, s, torch.Generator().manual_seed(_seed_stream(s, SHUFFLE_STREAM)))
        for c, s in zip(configs, seeds)
    ]
    active = list(range(len(members)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    done: dict[int, MemberResult] = {}
    epoch, elapsed = 0, 0.0
    train_sums = torch.zeros(len(members), 3)
    epochs_since_val = 0

    if checkpoint is not None and checkpoint.exists():
        st = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if st["members"] != [(c.to_dict(), s) for c, s in zip(configs, seeds)]:
            raise ValueError(
                f"{checkpoint}: checkpoint belongs to other members; remove it or --overwrite"
            )
        saved_cfg = {k: v for k, v in st["train_config"].items() if k != "checkpoint_seconds"}
        if saved_cfg != cfg.identity():
            raise ValueError(
                f"{checkpoint}: checkpoint was written with other training settings ({saved_cfg}, "
                f"requested {cfg.identity()}); remove it or --overwrite"
            )
        if st.get("device_type", "cpu") != dev.type:
            raise ValueError(
                f"{checkpoint}: written on {st.get('device_type', 'cpu')}, cannot resume on "
                f"{dev.type} (the noise streams differ); resume there, or remove it or --overwrite"
            )
        active = st["active"]
        done = {i: MemberResult(**r) for i, r in st["done"].items()}
        if not active:  # every member had finished: nothing left to train
            return [done[i] for i in range(len(members))]
        model = model.select(active)
        model.load_state_dict(st["model"])
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        opt.load_state_dict(st["optimizer"])
        for i, ms in enumerate(st["member_states"]):
            m = members[i]
            m.shuffle.set_state(ms["shuffle"])
            m.history, m.best_val, m.best_epoch = ms["history"], ms["best_val"], ms["best_epoch"]
            m.best_state, m.since_best = ms["best_state"], ms["since_best"]
        for g, state in zip(model.noise_generators(dev), st["noise"]):
            g.set_state(state)  # generator states are CPU byte tensors, whatever the device
        epoch, elapsed = st["epoch"], st["elapsed"]
        train_sums, epochs_since_val = st["train_sums"], st["epochs_since_val"]
        log.info("resumed %s at epoch %d (%d active members)", checkpoint, epoch, len(active))

    def save_checkpoint() -> None:
        if checkpoint is None:
            return
        noise = [g.get_state() for g in model.noise_generators(dev)]
        _atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "device_type": dev.type,
                "members": [(c.to_dict(), s) for c, s in zip(configs, seeds)],
                "train_config": cfg.to_dict(),
                "active": active,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "noise": noise,
                "member_states": [
                    {
                        "shuffle": m.shuffle.get_state(),
                        "history": m.history,
                        "best_val": m.best_val,
                        "best_epoch": m.best_epoch,
                        "best_state": m.best_state,
                        "since_best": m.since_best,
                    }
                    for m in members
                ],
                "epoch": epoch,
                "elapsed": elapsed,
                "train_sums": train_sums,
                "epochs_since_val": epochs_since_val,
                "done": {i: vars(r) for i, r in done.items()},
            },
            checkpoint,
        )

    def finish(i: int, stopped_early: bool) -> None:
        m = members[i]
        frames_per_s = n * epoch / elapsed if elapsed > 0 else float("nan")
        done[i] = MemberResult(
            m.config, m.seed, m.best_state, m.best_epoch, m.best_val, epoch, stopped_early,
            m.history, elapsed, frames_per_s,
        )
        if on_member_done is not None:
            on_member_done(done[i])  # at once: a long stack commits finished members as they stop

    names = sorted({c.name for c in configs})
    bar = tqdm(
        total=cfg.max_epochs, initial=epoch, disable=not progress, unit="ep",
        desc="+".join(names) if len(configs) < 4 else f"{len(configs)} members",
    )
    last_ckpt = time.monotonic()
    model.train()
    while active and epoch < cfg.max_epochs:
        t0 = time.perf_counter()
        epoch += 1
        perms = torch.stack([torch.randperm(n, generator=members[i].shuffle) for i in active])
        perms = perms.to(dev)
        sums = torch.zeros(len(active), 3, device=dev)
        first_bad = torch.full((len(active),), -1, dtype=torch.long, device=dev)
        for t in range(steps):
            out = model(train[perms[:, t * bsz : (t + 1) * bsz]])
            opt.zero_grad(set_to_none=True)
            out.loss.sum().backward()
            opt.step()
            with torch.no_grad():
                # device-side bookkeeping: no host synchronisation inside the epoch
                sums += torch.stack([out.loss, out.recon, out.kl], dim=1).detach()
                bad = ~torch.isfinite(out.loss.detach()) & (first_bad < 0)
                first_bad = torch.where(bad, torch.full_like(first_bad, t), first_bad)
        model.on_epoch_end()
        bad_steps = first_bad.cpu()
        if (bad_steps >= 0).any():
            j = int(torch.nonzero(bad_steps >= 0)[0])
            bar.close()
            culprit = members[active[j]]
            raise NonFiniteLossError(
                f"{culprit.config.name} (seed {culprit.seed}): non-finite loss "
                f"at epoch {epoch}, step {int(bad_steps[j])} of {steps}; the last good checkpoint "
                f"{checkpoint or '(none)'} is left as it was"
            )
        train_sums[active] += sums.cpu() / steps
        epochs_since_val += 1
        elapsed += time.perf_counter() - t0

        if epoch % every == 0 or epoch == cfg.max_epochs:
            stats = {k: v.cpu() for k, v in _validate(model, val).items()}
            stop = []
            for j, i in enumerate(active):
                m = members[i]
                tr = train_sums[i] / epochs_since_val
                row = {"epoch": epoch, "step": epoch * steps, "train_loss": float(tr[0]),
                       "train_recon": float(tr[1]), "train_kl": float(tr[2])}
                row |= {k: float(v[j]) for k, v in stats.items()}
                row["elapsed_s"] = elapsed
                m.history.append(row)
                if row["val_loss"] < m.best_val:
                    m.best_val, m.best_epoch, m.since_best = row["val_loss"], epoch, 0
                    m.best_state = model.member_state(j)  # a copy, by value
                else:
                    m.since_best += 1
                    if m.since_best >= cfg.patience:
                        stop.append(i)
            train_sums.zero_()
            epochs_since_val = 0
            for i in stop:
                finish(i, stopped_early=True)
            if stop:
                keep = [j for j, i in enumerate(active) if i not in stop]
                active = [i for i in active if i not in stop]
                if active:
                    model = model.select(keep)
                    opt = _select_optimizer(opt, model, keep, cfg.lr)
            best = min(members[i].best_val for i in range(len(members)))
            bar.set_postfix(
                val=f"{stats['val_loss'].min():.1f}", best=f"{best:.1f}", active=len(active)
            )
        bar.update(1)
        if checkpoint is not None and time.monotonic() - last_ckpt >= cfg.checkpoint_seconds:
            save_checkpoint()
            last_ckpt = time.monotonic()
    bar.close()
    for i in active:
        finish(i, stopped_early=False)
    active = []
    save_checkpoint()
    return [done[i] for i in range(len(members))]

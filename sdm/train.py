"""The one training loop. It trains any set of members (variants and seeds) at once —
grouped by shape into stacks with batched weights, one optimizer step for all — and never
branches on the family.

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
from sdm.models import SHUFFLE_STREAM, LatentStack, _seed_stream, build_stack, group_members

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2
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


def _adam(model: LatentStack, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel: one pass per parameter instead of ~10 elementwise ops
    (CPU, CUDA).

    Fused and plain Adam agree to rounding; the fused one is used everywhere, so a run's result does
    not depend on which was picked."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True)


def _select_optimizer(
    old: torch.optim.Optimizer, model: LatentStack, keep: Sequence[int], lr: float
) -> torch.optim.Optimizer:
    """Adam for the members kept: its moments sliced like the weights (Adam is elementwise)."""
    new = _adam(model, lr)
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


class _Group:
    """One stack of equally shaped members with its own Adam;
    `active` holds global member indices."""

    def __init__(self, model: LatentStack, active: list[int], lr: float) -> None:
        self.model, self.active, self.lr = model, active, lr
        self.opt = _adam(model, lr)

    def drop(self, stopped: set[int]) -> None:
        """Remove stopped members: weights and Adam moments sliced, the rest untouched."""
        keep = [j for j, i in enumerate(self.active) if i not in stopped]
        self.active = [self.active[j] for j in keep]
        if keep:
            self.model = self.model.select(keep)
            self.opt = _select_optimizer(self.opt, self.model, keep, self.lr)

    def state(self, dev: torch.device) -> dict[str, Any]:
        return {
            "active": self.active,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "noise": [g.get_state() for g in self.model.noise_generators(dev)],
        }

    def load(self, st: dict[str, Any], dev: torch.device) -> None:
        position = {i: j for j, i in enumerate(self.active)}
        self.active = st["active"]
        if not self.active:
            return
        self.model = self.model.select([position[i] for i in self.active])
        self.model.load_state_dict(st["model"])
        self.opt = _adam(self.model, self.lr)
        self.opt.load_state_dict(st["optimizer"])
        for g, state in zip(self.model.noise_generators(dev), st["noise"]):
            g.set_state(state)  # generator states are CPU byte tensors, whatever the device


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
    """Train members of any shapes together, one optimizer step for all; one MemberResult each.

    Members are grouped by shape into stacks (batched weights, one set of kernels per group); every
    step runs all groups and one backward pass. train, val: (N, 513) power frames. `checkpoint`: a
    file to resume from if it exists and to write at most every cfg.checkpoint_seconds (0 = every
    epoch) and at the end. A member is done when its validation loss has not improved for
    cfg.patience validations, or at cfg.max_epochs; it then leaves its stack and is handed to
    `on_member_done` at once, with its best weights. Results are in input order.
    """
    from tqdm import tqdm

    dev = pick_device(device)
    train = train.to(dev, torch.float32)
    val = val.to(dev, torch.float32)
    n, bsz = train.shape[0], cfg.batch_size
    if n == 0 or val.shape[0] == 0:
        raise ValueError(f"need training and validation frames, got {n} and {val.shape[0]}")
    if len(configs) != len(seeds) or not configs:
        raise ValueError("fit needs one seed per member and at least one member")
    steps = math.ceil(n / bsz)
    every = cfg.val_interval(steps)

    members = [
        _Member(c, s, torch.Generator().manual_seed(_seed_stream(s, SHUFFLE_STREAM)))
        for c, s in zip(configs, seeds)
    ]
    index = {(c, s): i for i, (c, s) in enumerate(zip(configs, seeds))}
    if len(index) != len(members):
        raise ValueError("fit: a (variant, seed) member is listed twice")
    groups = []
    for group in group_members(list(zip(configs, seeds))):
        ids = [index[m] for m in group]
        model = build_stack([members[i].config for i in ids], [members[i].seed for i in ids])
        groups.append(_Group(model.to(dev), ids, cfg.lr))
    done: dict[int, MemberResult] = {}
    epoch, elapsed = 0, 0.0
    train_sums = torch.zeros(len(members), 3)
    epochs_since_val = 0
    member_key = [(c.to_dict(), s) for c, s in zip(configs, seeds)]

    if checkpoint is not None and checkpoint.exists():
        st = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if st.get("format") != CHECKPOINT_FORMAT or st["members"] != member_key:
            raise ValueError(
                f"{checkpoint}: checkpoint belongs to other members or an older format; "
                "remove it or --overwrite"
            )
        saved_cfg = {k: v for k, v in st["train_config"].items() if k != "checkpoint_seconds"}
        if saved_cfg != cfg.identity():
            raise ValueError(
                f"{checkpoint}: checkpoint was written with other training settings ({saved_cfg}, "
                f"requested {cfg.identity()}); remove it or --overwrite"
            )
        if st["device_type"] != dev.type:
            raise ValueError(
                f"{checkpoint}: written on {st['device_type']}, cannot resume on "
                f"{dev.type} (the noise streams differ); resume there, or remove it or --overwrite"
            )
        done = {i: MemberResult(**r) for i, r in st["done"].items()}
        for g, gst in zip(groups, st["groups"]):
            g.load(gst, dev)
        for m, ms in zip(members, st["member_states"]):
            m.shuffle.set_state(ms["shuffle"])
            m.history, m.best_val, m.best_epoch = ms["history"], ms["best_val"], ms["best_epoch"]
            m.best_state, m.since_best = ms["best_state"], ms["since_best"]
        epoch, elapsed = st["epoch"], st["elapsed"]
        train_sums, epochs_since_val = st["train_sums"], st["epochs_since_val"]
        log.info(
            "resumed %s at epoch %d (%d active members)",
            checkpoint,
            epoch,
            sum(len(g.active) for g in groups),
        )
    groups = [g for g in groups if g.active]

    def save_checkpoint() -> None:
        if checkpoint is None:
            return
        _atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "device_type": dev.type,
                "members": member_key,
                "train_config": cfg.to_dict(),
                "groups": [g.state(dev) for g in all_groups],
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
            m.config,
            m.seed,
            m.best_state,
            m.best_epoch,
            m.best_val,
            epoch,
            stopped_early,
            m.history,
            elapsed,
            frames_per_s,
        )
        if on_member_done is not None:
            on_member_done(done[i])  # at once: a long stack commits finished members as they stop

    all_groups = list(groups)  # the checkpoint keeps emptied groups, so group order is stable
    names = sorted({c.name for c in configs})
    bar = tqdm(
        total=cfg.max_epochs,
        initial=epoch,
        disable=not progress,
        unit="ep",
        desc="+".join(names) if len(configs) < 4 else f"{len(configs)} members",
    )
    last_ckpt = time.monotonic()
    for g in groups:
        g.model.train()
    while groups and epoch < cfg.max_epochs:
        t0 = time.perf_counter()
        epoch += 1
        perms = [
            torch.stack([torch.randperm(n, generator=members[i].shuffle) for i in g.active]).to(dev)
            for g in groups
        ]
        sums = [torch.zeros(len(g.active), 3, device=dev) for g in groups]
        first_bad = [torch.full((len(g.active),), -1, dtype=torch.long, device=dev) for g in groups]
        for t in range(steps):
            outs = [g.model(train[p[:, t * bsz : (t + 1) * bsz]]) for g, p in zip(groups, perms)]
            for g in groups:
                g.opt.zero_grad(set_to_none=True)
            sum(out.loss.sum() for out in outs).backward()
            for g in groups:
                g.opt.step()
            with torch.no_grad():
                # device-side bookkeeping: no host synchronisation inside the epoch
                for out, sm, fb in zip(outs, sums, first_bad):
                    sm += torch.stack([out.loss, out.recon, out.kl], dim=1).detach()
                    bad = ~torch.isfinite(out.loss.detach()) & (fb < 0)
                    fb.copy_(torch.where(bad, torch.full_like(fb, t), fb))
        for g in groups:
            g.model.on_epoch_end()
        for g, fb in zip(groups, first_bad):
            bad_steps = fb.cpu()
            if (bad_steps >= 0).any():
                j = int(torch.nonzero(bad_steps >= 0)[0])
                bar.close()
                culprit = members[g.active[j]]
                raise NonFiniteLossError(
                    f"{culprit.config.name} (seed {culprit.seed}): non-finite loss "
                    f"at epoch {epoch}, step {int(bad_steps[j])} of {steps}; the last good "
                    f"checkpoint {checkpoint or '(none)'} is left as it was"
                )
        for g, sm in zip(groups, sums):
            train_sums[g.active] += sm.cpu() / steps
        epochs_since_val += 1
        elapsed += time.perf_counter() - t0

        if epoch % every == 0 or epoch == cfg.max_epochs:
            stopped: set[int] = set()
            last_val = math.inf
            for g in groups:
                stats = {k: v.cpu() for k, v in _validate(g.model, val).items()}
                last_val = min(last_val, float(stats["val_loss"].min()))
                for j, i in enumerate(g.active):
                    m = members[i]
                    tr = train_sums[i] / epochs_since_val
                    row = {
                        "epoch": epoch,
                        "step": epoch * steps,
                        "train_loss": float(tr[0]),
                        "train_recon": float(tr[1]),
                        "train_kl": float(tr[2]),
                    }
                    row |= {k: float(v[j]) for k, v in stats.items()}
                    row["elapsed_s"] = elapsed
                    m.history.append(row)
                    if row["val_loss"] < m.best_val:
                        m.best_val, m.best_epoch, m.since_best = row["val_loss"], epoch, 0
                        m.best_state = g.model.member_state(j)  # a copy, by value
                    else:
                        m.since_best += 1
                        if m.since_best >= cfg.patience:
                            stopped.add(i)
            train_sums.zero_()
            epochs_since_val = 0
            for i in sorted(stopped):
                finish(i, stopped_early=True)
            for g in groups:
                g.drop(stopped)
            groups = [g for g in groups if g.active]
            bar.set_postfix(val=f"{last_val:.1f}", active=sum(len(g.active) for g in groups))
        bar.update(1)
        if checkpoint is not None and time.monotonic() - last_ckpt >= cfg.checkpoint_seconds:
            save_checkpoint()
            last_ckpt = time.monotonic()
    bar.close()
    for i in sorted(i for g in groups for i in g.active):
        finish(i, stopped_early=False)
    for g in groups:
        g.active = []
    save_checkpoint()
    return [done[i] for i in range(len(members))]

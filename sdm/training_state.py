"""A stack's training between two epochs, and the checkpoint schema.

`TrainingState` holds everything that goes from one epoch to the next — weights and Adam moments
per shape group, noise and shuffling streams, histories, best snapshots, the epoch and the clock —
and owns the checkpoint schema (format 2, frozen: book/conventions.md): `state_dict` is what a
checkpoint holds, `load_state_dict` puts it back. Its steps are `run_epoch`, `validate` (which
says who stops) and `finish`; sdm.train.fit is a short loop over them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdm.config import ModelConfig, TrainConfig
from sdm.guards import EpochAborted, NonFiniteLossError
from sdm.metrics import hoyer
from sdm.models import SHUFFLE_STREAM, LatentStack, _seed_stream, build_stack, group_members
from sdm.runs import checkpoint_data

CHECKPOINT_FORMAT = 2
VAL_CHUNK = 8192  # frames per validation forward: bounds memory on large corpora


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


def _adam(model: LatentStack, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel: one pass per parameter instead of ~10 elementwise ops.

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
    a random draw (book/conventions.md, "Stopping rule"). The loss is the negative ELBO alone: a
    learned dictionary's coherence penalty is left out, so its runs stop on, and report, the same
    quantity as every other model. Returns per-member tensors (S,).
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
    # a learned dictionary's coherence, for dictionary.csv (results.save_run keeps it out of the
    # frozen history.csv columns); nothing for the other models
    return {k: v / val.shape[0] for k, v in sums.items()} | model.diagnostics()


class _Group:
    """One stack of equally shaped members with its own Adam; `active` holds member indices."""

    def __init__(self, model: LatentStack, active: list[int], lr: float) -> None:
        self.model, self.active, self.lr = model, active, lr
        self.members = list(active)  # every member the group started with
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


class TrainingState:
    """A stack's training between two epochs: weights, Adam moments, noise and shuffling streams,
    histories, best snapshots, the epoch and the clock. `state_dict` is exactly what a checkpoint
    holds (format 2, frozen) and `load_state_dict` puts it back; the steps of the loop are
    `run_epoch`, `validate` (which says who stops) and `finish`.

    train, val: (N, 513) power frames, already on `dev`."""

    def __init__(
        self,
        configs: Sequence[ModelConfig],
        seeds: Sequence[int],
        train: torch.Tensor,
        val: torch.Tensor,
        cfg: TrainConfig,
        dev: torch.device,
        data: Mapping[str, str] | None = None,
    ) -> None:
        if train.shape[0] == 0 or val.shape[0] == 0:
            raise ValueError(
                f"need training and validation frames, got {len(train)} and {len(val)}"
            )
        if len(configs) != len(seeds) or not configs:
            raise ValueError("fit needs one seed per member and at least one member")
        self.train, self.val, self.cfg, self.dev = train, val, cfg, dev
        self.data = None if data is None else dict(data)  # {"name", "sha256"} of the corpus
        self.steps = math.ceil(train.shape[0] / cfg.batch_size)
        self.every = cfg.val_interval(self.steps)
        self.members = [
            _Member(c, s, torch.Generator().manual_seed(_seed_stream(s, SHUFFLE_STREAM)))
            for c, s in zip(configs, seeds)
        ]
        index = {(c, s): i for i, (c, s) in enumerate(zip(configs, seeds))}
        if len(index) != len(self.members):
            raise ValueError("fit: a (variant, seed) member is listed twice")
        self.groups: list[_Group] = []  # every group, emptied ones too: checkpoints keep them
        for group in group_members(list(zip(configs, seeds))):
            ids = [index[m] for m in group]
            model = build_stack(
                [self.members[i].config for i in ids], [self.members[i].seed for i in ids]
            )
            self.groups.append(_Group(model.to(dev), ids, cfg.lr))
        self.done: dict[int, MemberResult] = {}
        self.epoch, self.elapsed = 0, 0.0
        self.train_sums = torch.zeros(len(self.members), 3)
        self.epochs_since_val = 0
        self.member_key = [(c.to_dict(), s) for c, s in zip(configs, seeds)]

    @property
    def training(self) -> list[_Group]:
        """The groups that still have members to train."""
        return [g for g in self.groups if g.active]

    @property
    def n_active(self) -> int:
        return sum(len(g.active) for g in self.groups)

    # -- the checkpoint schema -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "device_type": self.dev.type,
            "members": self.member_key,
            "train_config": self.cfg.to_dict(),
            "groups": [g.state(self.dev) for g in self.groups],
            "member_states": [
                {
                    "shuffle": m.shuffle.get_state(),
                    "history": m.history,
                    "best_val": m.best_val,
                    "best_epoch": m.best_epoch,
                    "best_state": m.best_state,
                    "since_best": m.since_best,
                }
                for m in self.members
            ],
            "epoch": self.epoch,
            "elapsed": self.elapsed,
            "train_sums": self.train_sums,
            "epochs_since_val": self.epochs_since_val,
            "done": {i: vars(r) for i, r in self.done.items()},
        } | ({} if self.data is None else {"data": self.data})

    def load_state_dict(self, st: dict[str, Any], source: Path | str = "checkpoint") -> None:
        """Resume from a checkpoint's content; refuses one of other members, settings, device or
        data, or one whose content does not fit (one line naming `source`)."""
        try:
            self._load(st, source)
        except (KeyError, IndexError, TypeError, RuntimeError, AttributeError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"{source}: damaged or foreign training checkpoint ({type(err).__name__}: "
                f"{reason[:200]}); remove it, or pass --overwrite to train from scratch"
            ) from None

    def _load(self, st: dict[str, Any], source: Path | str) -> None:
        if st.get("format") != CHECKPOINT_FORMAT or st.get("members") != self.member_key:
            raise ValueError(
                f"{source}: checkpoint belongs to other members or an older format; "
                "remove it or --overwrite"
            )
        saved_cfg = {k: v for k, v in st["train_config"].items() if k != "checkpoint_seconds"}
        if saved_cfg != self.cfg.result_settings():
            raise ValueError(
                f"{source}: checkpoint was written with other training settings ({saved_cfg}, "
                f"requested {self.cfg.result_settings()}); remove it or --overwrite"
            )
        if st["device_type"] != self.dev.type:
            raise ValueError(
                f"{source}: written on {st['device_type']}, cannot resume on {self.dev.type} "
                "(the noise streams differ); resume there, or remove it or --overwrite"
            )
        self.data = checkpoint_data(st.get("data"), self.data, source)
        self.done = {i: MemberResult(**r) for i, r in st["done"].items()}
        for g, gst in zip(self.groups, _group_states(self.groups, st["groups"])):
            g.load(gst, self.dev)
        for m, ms in zip(self.members, st["member_states"]):
            m.shuffle.set_state(ms["shuffle"])
            m.history, m.best_val, m.best_epoch = ms["history"], ms["best_val"], ms["best_epoch"]
            m.best_state, m.since_best = ms["best_state"], ms["since_best"]
        self.epoch, self.elapsed = st["epoch"], st["elapsed"]
        self.train_sums, self.epochs_since_val = st["train_sums"], st["epochs_since_val"]

    # -- the steps of the loop -------------------------------------------------------------------

    def run_epoch(
        self, checkpoint: Path | None = None, stop: Callable[[], object] | None = None
    ) -> None:
        """One pass over the training frames for every active member, one optimizer step for all
        groups at a time; raises NonFiniteLossError naming the first member whose loss broke, and
        EpochAborted when `stop()` turns true before a step (the state is then mid-epoch: resume
        from the last epoch's checkpoint, never from it)."""
        t0 = time.perf_counter()
        self.epoch += 1
        groups, n, bsz, steps = self.training, self.train.shape[0], self.cfg.batch_size, self.steps
        perms = [
            torch.stack(
                [torch.randperm(n, generator=self.members[i].shuffle) for i in g.active]
            ).to(self.dev)
            for g in groups
        ]
        sums = [torch.zeros(len(g.active), 3, device=self.dev) for g in groups]
        first_bad = [
            torch.full((len(g.active),), -1, dtype=torch.long, device=self.dev) for g in groups
        ]
        for t in range(steps):
            reason = stop() if stop is not None else None
            if reason:
                raise EpochAborted(self.epoch, reason)
            outs = [
                g.model(self.train[p[:, t * bsz : (t + 1) * bsz]]) for g, p in zip(groups, perms)
            ]
            for g in groups:
                g.opt.zero_grad(set_to_none=True)
            objective = sum(out.loss.sum() for out in outs)
            for g in groups:  # terms outside the ELBO (a learned D's coherence), where there are
                if (penalty := g.model.penalty()) is not None:
                    objective = objective + penalty.sum()
            objective.backward()
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
                culprit = self.members[g.active[j]]
                raise NonFiniteLossError(
                    f"{culprit.config.name} (seed {culprit.seed}): non-finite loss "
                    f"at epoch {self.epoch}, step {int(bad_steps[j])} of {steps}; the last good "
                    f"checkpoint {checkpoint or '(none)'} is left as it was"
                )
        for g, sm in zip(groups, sums):
            self.train_sums[g.active] += sm.cpu() / steps
        self.epochs_since_val += 1
        self.elapsed += time.perf_counter() - t0

    def validation_due(self) -> bool:
        return self.epoch % self.every == 0 or self.epoch == self.cfg.max_epochs

    def validate(self) -> tuple[list[int], float]:
        """Validate every active member, append its history row, keep a new best by value;
        returns the members whose patience ran out (sorted) and the lowest validation loss."""
        stopped: set[int] = set()
        last_val = math.inf
        for g in self.training:
            stats = {k: v.cpu() for k, v in _validate(g.model, self.val).items()}
            last_val = min(last_val, float(stats["val_loss"].min()))
            for j, i in enumerate(g.active):
                m = self.members[i]
                tr = self.train_sums[i] / self.epochs_since_val
                row = {
                    "epoch": self.epoch,
                    "step": self.epoch * self.steps,
                    "train_loss": float(tr[0]),
                    "train_recon": float(tr[1]),
                    "train_kl": float(tr[2]),
                }
                row |= {k: float(v[j]) for k, v in stats.items()}
                row["elapsed_s"] = self.elapsed
                m.history.append(row)
                if row["val_loss"] < m.best_val:
                    m.best_val, m.best_epoch, m.since_best = row["val_loss"], self.epoch, 0
                    m.best_state = g.model.member_state(j)  # a copy, by value
                else:
                    m.since_best += 1
                    if m.since_best >= self.cfg.patience:
                        stopped.add(i)
        self.train_sums.zero_()
        self.epochs_since_val = 0
        return sorted(stopped), last_val

    def finish(self, members: Sequence[int], stopped_early: bool) -> list[MemberResult]:
        """Hand members over (best weights, history) and take them out of their stacks."""
        finished = []
        for i in members:
            m = self.members[i]
            frames_per_s = (
                self.train.shape[0] * self.epoch / self.elapsed if self.elapsed > 0 else math.nan
            )
            self.done[i] = MemberResult(
                m.config,
                m.seed,
                m.best_state,
                m.best_epoch,
                m.best_val,
                self.epoch,
                stopped_early,
                m.history,
                self.elapsed,
                frames_per_s,
            )
            finished.append(self.done[i])
        for g in self.training:
            g.drop(set(members))
        return finished

    def results(self) -> list[MemberResult]:
        return [self.done[i] for i in range(len(self.members))]


def _group_states(groups: list[_Group], saved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group's saved state. Checkpoints list every group in order; those written by a resumed
    run before this module was reorganised left out the groups that had emptied (format 2 all the
    same), so their states are matched to groups by the members they hold."""
    if len(saved) == len(groups):
        return saved
    empty = {"active": []}
    by_group = {id(g): empty for g in groups}
    for st in saved:
        owner = next((g for g in groups if st["active"] and st["active"][0] in g.members), None)
        if owner is not None:
            by_group[id(owner)] = st
    return [by_group[id(g)] for g in groups]

"""Typed, frozen settings: every string from a CLI, a notebook or a file
becomes one of these once."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

FAMILIES = ("vae", "vsc", "sdm")
DICTIONARIES = ("identity", "dct", "learned")
LEARNED = "learned"  # the dictionary trained with the networks (beyond the paper)


def _is_int(v: object) -> bool:
    """An integer, but not a bool (True would otherwise pass as 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    """A real number, not a string such as '0.5' (which would fail later with a TypeError)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class ModelConfig:
    """One model: the family, the latent size m and what only some families use.

    `k` is the number of atoms (columns of D, the size of the code a) for SDM-VAE; `alpha` is
    VSC's prior probability that a latent dimension is active. `coherence` is the weight λ of the
    mutual-coherence penalty of a learned dictionary (>= 0; None for every other model, and then
    left out of `to_dict`, so the saved form of every fixed-dictionary model is what it was before
    learned dictionaries existed).
    """

    family: Literal["vae", "vsc", "sdm"]
    m: int
    hidden: int = 128
    alpha: float | None = None
    dictionary: Literal["identity", "dct", "learned"] | None = None
    k: int | None = None
    coherence: float | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family: expected one of {FAMILIES}, got {self.family!r}")
        if not (_is_int(self.m) and self.m >= 1):
            raise ValueError(f"m: expected a positive integer latent size, got {self.m!r}")
        if not (_is_int(self.hidden) and self.hidden >= 1):
            raise ValueError(f"hidden: expected a positive layer width, got {self.hidden!r}")
        if self.family == "vsc":
            if not _is_real(self.alpha) or not 0.0 < self.alpha < 1.0:
                raise ValueError(
                    f"alpha: VSC needs a prior spike probability in (0, 1), got {self.alpha!r}"
                )
        elif self.alpha is not None:
            raise ValueError(f"alpha is used by VSC only, not by {self.family!r}")
        if self.family == "sdm":
            if self.dictionary not in DICTIONARIES:
                raise ValueError(
                    f"dictionary: expected one of {DICTIONARIES}, got {self.dictionary!r}"
                )
            if not (_is_int(self.k) and self.k >= 1):
                raise ValueError(f"k: expected a positive number of atoms, got {self.k!r}")
            if self.dictionary == "identity" and self.k != self.m:
                raise ValueError(
                    f"the identity dictionary needs k == m, got k={self.k}, m={self.m}"
                )
        elif self.dictionary is not None or self.k is not None:
            raise ValueError(f"dictionary and k are used by SDM-VAE only, not by {self.family!r}")
        self._check_coherence()

    def _check_coherence(self) -> None:
        if self.learns_dictionary:
            ok = _is_real(self.coherence) and math.isfinite(self.coherence) and self.coherence >= 0
            if not ok:
                raise ValueError(
                    "coherence: the learned dictionary needs a penalty weight λ >= 0 (0: no "
                    f"penalty), got {self.coherence!r}"
                )
        elif self.coherence is not None:
            what = f"the {self.dictionary!r} dictionary" if self.dictionary else repr(self.family)
            raise ValueError(
                f"coherence is used by the learned dictionary only, not by {what}; "
                f"got {self.coherence!r}"
            )

    @property
    def name(self) -> str:
        """Derived from the fields, so names and settings cannot drift apart."""
        if self.family == "vae":
            return f"vae-m{self.m}"
        if self.family == "vsc":
            return f"vsc-a{self.alpha:g}-m{self.m}"
        if self.dictionary == "identity":
            return f"sdm-I-m{self.m}"
        if self.learns_dictionary:  # the weight itself is in the config, not the name
            return f"sdm-learned-k{self.k}-m{self.m}" + ("-coh" if self.coherence > 0 else "")
        return f"sdm-dct-k{self.k}-m{self.m}"

    @property
    def learns_dictionary(self) -> bool:
        """D is trained with the networks (an nn.Parameter), not a fixed buffer."""
        return self.family == "sdm" and self.dictionary == LEARNED

    @property
    def code_dim(self) -> int:
        """Length of the code the encoder outputs: k for SDM-VAE (the code a), m otherwise (z)."""
        return self.k if self.family == "sdm" else self.m

    @property
    def shape_key(self) -> tuple[str, int, int, int, bool]:
        """Members with equal keys have equally shaped weights and can share one stack (a learned
        dictionary is a weight, a fixed one a buffer: they never share one)."""
        return (self.family, self.m, self.code_dim, self.hidden, self.learns_dictionary)

    def to_dict(self) -> dict[str, Any]:
        """The saved form (config.json, checkpoints, run identities): `coherence` only when set."""
        d = dataclasses.asdict(self)
        if d["coherence"] is None:
            del d["coherence"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. The defaults are the paper's (Adam, lr 1e-4, batch 128, patience 20).

    `val_every_steps` sets the validation interval: every ceil(val_every_steps / steps per epoch)
    epochs, so that patience spans a similar number of optimizer steps on a 5-minute corpus and on
    TCD-TIMIT (book/conventions.md, "Stopping rule"). `max_epochs` is large so that early
    stopping decides.
    """

    lr: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 10_000
    patience: int = 20
    val_every_steps: int = 1000
    checkpoint_seconds: float = 30.0

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "batch_size": isinstance(self.batch_size, int) and self.batch_size >= 1,
            "max_epochs": isinstance(self.max_epochs, int) and self.max_epochs >= 1,
            "patience": isinstance(self.patience, int) and self.patience >= 1,
            "val_every_steps": isinstance(self.val_every_steps, int) and self.val_every_steps >= 1,
            "checkpoint_seconds": self.checkpoint_seconds >= 0,
        }
        for field, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{field}: expected a positive value, got {getattr(self, field)!r}"
                )

    def val_interval(self, steps_per_epoch: int) -> int:
        """Epochs between validations: v = ceil(val_every_steps / steps per epoch), at least 1."""
        return max(1, math.ceil(self.val_every_steps / max(1, steps_per_epoch)))

    def result_settings(self) -> dict[str, Any]:
        """The settings that change a run's result (the checkpoint period does not): the "train"
        part of a run's identity."""
        d = dataclasses.asdict(self)
        d.pop("checkpoint_seconds")
        return d

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


QUICK = TrainConfig(max_epochs=3, patience=2)
"""A smoke-test profile: a few epochs (validated at the last), written into its own results tree.

Only max_epochs and patience differ from the defaults, so the train notebook run with those two
parameters is the same run as `--quick` on the command line."""

"""The paper's claims C1–C10 tested on our runs: a statistic, a 95% interval, a computed verdict;
and two claims beyond the paper, B1 and B2, on the learned dictionaries, judged the same way.

This module says what each claim is and how a verdict is reached; sdm.judging judges them on runs.
A claim is one or more *comparisons*. A comparison reduces the per-utterance metrics of a few
variants to one number — a paired difference of means, the gap to the best other model, or a
difference of ranges — and says on which side of a boundary the claim puts it: 0 for "better",
−margin for "not worse" (non-inferiority, MARGINS). C10 compares the benchmark's SDM-VAE / VAE
time per training step with STEP_TIME_LIMIT.

Interval: a bootstrap over seeds and utterances (sdm.stats.bootstrap). Verdict: holds when the
interval lies entirely on the claim's side of the boundary, fails when it lies entirely on the other
side, inconclusive when it covers it. A claim with several comparisons holds when all hold, fails
when any fails, and is inconclusive otherwise (`combine`). Each claim is judged under both metric
conventions (sdm.metrics.CONVENTIONS).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from sdm.config import ModelConfig
from sdm.metrics import CONVENTIONS
from sdm.variants import (
    COHERENCE_WEIGHT,
    LATENT_SIZES,
    LEARNED_ATOMS,
    LEARNED_M,
    VARIANTS,
    VSC_ALPHAS,
    learned_variant,
)

MARGINS: Mapping[str, float] = MappingProxyType({"pesq": 0.05, "stoi": 0.01})
"""Non-inferiority margins: "not worse" means the difference's interval lies above −margin."""
STEP_TIME_LIMIT = 1.25
"""C10's "negligible": the SDM-VAE / VAE step-time ratio's interval lies below this."""

ANY = "any"  # the convention of claims judged on Hoyer or timings alone

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
MISSING = "inconclusive: missing runs"
NO_BENCHMARK = "inconclusive: no benchmark"


def verdict(ci_low: float, ci_high: float, boundary: float = 0.0, side: str = "greater") -> str:
    """holds / fails / inconclusive for the claim "statistic > boundary" (side="greater") or
    "statistic < boundary" (side="less"), from the statistic's interval."""
    if side not in ("greater", "less"):
        raise ValueError(f"side: expected 'greater' or 'less', got {side!r}")
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return INCONCLUSIVE
    above, below = ci_low > boundary, ci_high < boundary
    if side == "less":
        above, below = below, above
    return HOLDS if above else FAILS if below else INCONCLUSIVE


def combine(verdicts: Iterable[str]) -> str:
    """All hold -> holds; any fails -> fails; else inconclusive (naming missing runs/benchmark)."""
    found = list(verdicts)
    if FAILS in found:
        return FAILS
    if found and all(v == HOLDS for v in found):
        return HOLDS
    return next((v for v in (MISSING, NO_BENCHMARK) if v in found), INCONCLUSIVE)


def _best(means: np.ndarray) -> np.ndarray:
    return means.max(axis=-1)


def _range(means: np.ndarray) -> np.ndarray:
    return means.max(axis=-1) - means.min(axis=-1)


_REDUCE = {"best": _best, "range": _range}


@dataclass(frozen=True)
class Comparison:
    """how(first) − how(second) on one metric role; how = best (max; the value itself for one
    variant) or range (max − min). The claim: it is > boundary (side "greater") or < boundary."""

    label: str
    role: Literal["pesq", "stoi", "hoyer"]
    first: tuple[str, ...]
    second: tuple[str, ...]
    how: Literal["best", "range"] = "best"
    side: Literal["greater", "less"] = "greater"
    non_inferiority: bool = False  # boundary −MARGINS[role] instead of 0
    counted: bool = True  # False: shown beside the claim, not part of its verdict

    @property
    def variants(self) -> tuple[str, ...]:
        return self.first + self.second

    @property
    def boundary(self) -> float:
        return -MARGINS[self.role] if self.non_inferiority else 0.0

    def statistic(self, means: np.ndarray) -> np.ndarray:
        """means (..., V) in `variants` order -> the compared number (...)."""
        n, reduce = len(self.first), _REDUCE[self.how]
        return reduce(means[..., :n]) - reduce(means[..., n:])


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and the comparisons that test it; none: judged from the benchmark."""

    id: str
    statement: str
    comparisons: tuple[Comparison, ...] = ()

    @property
    def conventions(self) -> tuple[str, ...]:
        if all(c.role == "hoyer" for c in self.comparisons):  # also C10: no comparisons
            return (ANY,)
        return tuple(CONVENTIONS)


def _vae(m: int) -> str:
    return ModelConfig("vae", m).name


def _vsc(alpha: float, m: int) -> str:
    return ModelConfig("vsc", m, alpha=alpha).name


def _dct(k: int, m: int) -> str:
    return ModelConfig("sdm", m, dictionary="dct", k=k).name


def _sdm(m: int) -> tuple[str, ...]:
    return (ModelConfig("sdm", m, dictionary="identity", k=m).name, _dct(32, m), _dct(64, m))


def _at(m: int) -> tuple[str, ...]:
    return tuple(name for name, config in VARIANTS.items() if config.m == m)


def _diff(role: Any, a: str, b: str, **kw: Any) -> Comparison:
    return Comparison(f"{a} − {b}", role, (a,), (b,), **kw)


def _claims() -> dict[str, Claim]:
    identity64 = _sdm(64)[0]
    dct_all = tuple(_dct(k, m) for m in LATENT_SIZES for k in (32, 64))
    vsc_all = tuple(_vsc(a, m) for m in LATENT_SIZES for a in VSC_ALPHAS)
    dct32 = (_dct(32, 32), _dct(64, 32))
    claims = [
        Claim("C1", "VAE: PESQ drops from m=32 to m=64", (_diff("pesq", _vae(32), _vae(64)),)),
        Claim(
            "C2",
            "SDM-VAE codes are sparser (Hoyer) than VAE codes at the same m",
            tuple(_diff("hoyer", s, _vae(m)) for m in LATENT_SIZES for s in _sdm(m)),
        ),
        Claim(
            "C3",
            "SDM-VAE is not worse than the VAE at the same m (PESQ, STOI; non-inferiority)",
            tuple(
                _diff(role, s, _vae(m), non_inferiority=True)
                for role in ("pesq", "stoi")
                for m in LATENT_SIZES
                for s in _sdm(m)
            ),
        ),
        Claim(
            "C4",
            "more atoms give sparser codes: DCT k=64 vs k=32 at the same m",
            tuple(_diff("hoyer", _dct(64, m), _dct(32, m)) for m in LATENT_SIZES),
        ),
        Claim(
            "C5",
            "D=I gives the best PESQ at m=64 (among the 7 models)",
            (
                Comparison(
                    f"{identity64} − best other m=64",
                    "pesq",
                    (identity64,),
                    tuple(v for v in _at(64) if v != identity64),
                ),
            ),
        ),
        Claim(
            "C6",
            "VSC at m=32: the sparsest prior (α=0.05) costs PESQ",
            tuple(_diff("pesq", _vsc(a, 32), _vsc(0.05, 32)) for a in (0.5, 0.9)),
        ),
        Claim(
            "C7",
            "sparse models: m=32 → 64 does not lower PESQ (except DCT k=32; non-inferiority)",
            tuple(
                _diff("pesq", a, b, non_inferiority=True, counted=a != _dct(32, 64))
                for a, b in zip(
                    [*(_vsc(x, 64) for x in VSC_ALPHAS), *_sdm(64)],
                    [*(_vsc(x, 32) for x in VSC_ALPHAS), *_sdm(32)],
                )
            ),
        ),
        Claim(
            "C8",
            "SDM-VAE DCT is less sensitive to sparsity: its STOI varies less than VSC's, and "
            "at m=64 PESQ rises with Hoyer from k=32 to k=64",
            (
                Comparison(
                    "range over 4 SDM DCT − range over 6 VSC",
                    "stoi",
                    dct_all,
                    vsc_all,
                    how="range",
                    side="less",
                ),
                _diff("hoyer", _dct(64, 64), _dct(32, 64)),
                _diff("pesq", _dct(64, 64), _dct(32, 64)),
            ),
        ),
        Claim(
            "C9",
            "at m=32 a DCT dictionary gives the best PESQ",
            (
                Comparison(
                    "best DCT m=32 − best other m=32",
                    "pesq",
                    dct32,
                    tuple(v for v in _at(32) if v not in dct32),
                ),
            ),
        ),
        Claim("C10", "SDM-VAE adds a negligible cost per training step over the VAE (same m)"),
    ]
    return {c.id: c for c in claims}


CLAIMS: Mapping[str, Claim] = MappingProxyType(_claims())
"""Claim id -> Claim, C1 … C10 (book/conventions.md lists where each is in the paper)."""


def _learned(k: int, penalised: bool) -> str:
    return learned_variant(k, COHERENCE_WEIGHT if penalised else 0.0).name


def _beyond() -> dict[str, Claim]:
    learned = tuple(_learned(k, p) for k in LEARNED_ATOMS for p in (False, True))
    fixed = _sdm(LEARNED_M)  # D = I and both DCT dictionaries: every fixed D at m = 64
    best = f"best learned m={LEARNED_M} − best fixed m={LEARNED_M}"
    claims = [
        Claim(
            "B1",
            f"a learned dictionary gives a better PESQ than the best fixed one at m={LEARNED_M}",
            (
                Comparison(best, "pesq", learned, fixed),
                Comparison(best, "stoi", learned, fixed, counted=False),
            ),
        ),
        Claim(
            "B2",
            "the coherence penalty makes the codes of a learned dictionary sparser (Hoyer), "
            "at every number of atoms",
            tuple(_diff("hoyer", _learned(k, True), _learned(k, False)) for k in LEARNED_ATOMS),
        ),
    ]
    return {c.id: c for c in claims}


BEYOND_CLAIMS: Mapping[str, Claim] = MappingProxyType(_beyond())
"""Claims beyond the paper, on its future work (a dictionary learned with a coherence penalty):
B1 and B2, judged like C1–C10 (sdm.judging.judge_claims(..., claims=BEYOND_CLAIMS))."""

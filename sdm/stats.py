"""Statistics shared by Table 1 and the claims: summaries over seeds and utterances, and the
bootstrap interval the claims are judged by.

`summarise` reduces a metric's per-utterance values of several seeds to the numbers Table 1 and the
noise table show: the mean over seeds, the half-width of the 95% t-interval of the seed means,
their standard deviation, and the per-utterance spread (SD and standard error of the mean, each
averaged over seeds); `noise_table` sets them beside the paper's stated order.

`bootstrap` resamples seeds and utterances. Each resample draws the seeds with replacement and,
independently, the test utterances with replacement; one utterance draw serves every seed and
variant, because every run is scored on the same test set (drawing utterances per seed would treat
them as independent and understate their spread), and pairs stay paired by seed and utterance.
With as few as 5 seeds a plain percentile interval is too narrow (it covers ≈ 83% when seeds
dominate), so it is widened around the estimate by √(n/(n−1))·t(n−1)/z — Hesterberg's (2015)
expanded percentile interval — with n − 1 the Satterthwaite degrees of freedom of the seed and
utterance parts. Cells where a metric is missing for any variant are left out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

N_RESAMPLES = 4000
RNG_SEED = 2022
LEVEL = 0.95

PAPER_SD: Mapping[str, float] = MappingProxyType(
    {"pesq_raw_nb": 0.01, "pesq_wb": 0.01, "estoi": 0.001, "stoi": 0.001, "hoyer": 0.001}
)
"""The paper's "standard deviation ... in the order of 0.01 for PESQ, 0.001 for STOI and Hoyer"."""


class SeedSummary(NamedTuple):
    """One metric of one variant over its seeds (NaN where undefined)."""

    mean: float  # mean over seeds of the per-seed means
    ci95: float  # half-width of the 95% t-interval of the seed means (NaN with one seed)
    seed_sd: float  # SD of the seed means (NaN with one seed)
    utterance_sd: float  # per-utterance SD, averaged over seeds
    utterance_se: float  # per-utterance standard error of the mean, averaged over seeds
    n_seeds: int  # seeds with at least one finite value
    n_utterances: int  # the fewest finite values of any seed


def summarise(per_seed: Sequence[np.ndarray]) -> SeedSummary:
    """Summarise per-utterance values (one array per seed; NaN values are dropped)."""
    from scipy import stats

    values = [np.asarray(x, dtype=float) for x in per_seed]
    values = [x[np.isfinite(x)] for x in values]
    values = [x for x in values if len(x)]
    if not values:
        return SeedSummary(math.nan, math.nan, math.nan, math.nan, math.nan, 0, 0)
    means = [x.mean() for x in values]
    sds = [x.std(ddof=1) for x in values if len(x) > 1]
    ses = [x.std(ddof=1) / math.sqrt(len(x)) for x in values if len(x) > 1]
    n = len(means)
    seed_sd = float(np.std(means, ddof=1)) if n > 1 else math.nan
    ci = float(stats.t.ppf(0.975, n - 1) * seed_sd / math.sqrt(n)) if n > 1 else math.nan
    return SeedSummary(
        mean=float(np.mean(means)),
        ci95=ci,
        seed_sd=seed_sd,
        utterance_sd=float(np.mean(sds)) if sds else math.nan,
        utterance_se=float(np.mean(ses)) if ses else math.nan,
        n_seeds=n,
        n_utterances=min(len(x) for x in values),
    )


@dataclass(frozen=True, eq=False)
class Estimate:
    """A statistic, its interval, and the bootstrap replicates behind it (for plots)."""

    estimate: float
    ci_low: float
    ci_high: float
    df: float  # Satterthwaite degrees of freedom used to widen the percentile interval
    n_seeds: int
    n_utterances: int
    replicates: np.ndarray = field(repr=False)  # (n_resamples,)


@functools.lru_cache(maxsize=32)
def _draws(s: int, u: int, n_resamples: int, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Resampling counts of seeds (B, S) and utterances (B, U); shared by equal-sized calls."""
    rng = np.random.default_rng(rng_seed)
    ws = rng.multinomial(s, np.full(s, 1 / s), size=n_resamples).astype(float)
    wu = rng.multinomial(u, np.full(u, 1 / u), size=n_resamples).astype(float)
    ws.flags.writeable = wu.flags.writeable = False
    return ws, wu


def _means(sums: np.ndarray, counts: np.ndarray, ws: np.ndarray) -> np.ndarray:
    """Means per variant (B, V) from per-seed sums (V, S, B or 1) over the drawn utterances and
    the numbers of kept cells they add up (S, B or 1), seeds weighted by ws (B, S)."""
    v, s, _ = sums.shape
    b = len(ws)
    num = np.einsum("bs,vsb->bv", ws, np.broadcast_to(sums, (v, s, b)))
    den = np.einsum("bs,sb->b", ws, np.broadcast_to(counts, (s, b)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den[:, None]


def bootstrap(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    n_resamples: int = N_RESAMPLES,
    rng_seed: int = RNG_SEED,
    level: float = LEVEL,
) -> Estimate:
    """Estimate and interval of statistic(means) over seeds and utterances (see the module doc).

    values: (V, S, U) per-utterance metric of V variants, S seeds, U utterances — or (S, U) for
    one variant; NaN cells are dropped for every variant. statistic maps means (..., V) to (...);
    default: the first variant's mean. The same RNG seed gives every comparison the same draws.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"bootstrap: expected values (V, S, U) with no empty axis, got {x.shape}")
    statistic = statistic or (lambda means: means[..., 0])
    _, s, u = x.shape
    keep = np.isfinite(x).all(axis=0)  # (S, U): cells where every variant has the metric
    if not keep.any():
        raise ValueError("bootstrap: no seed/utterance cell has the metric for every variant")
    x0, w = np.where(keep, x, 0.0), keep.astype(float)
    ws, wu = _draws(s, u, n_resamples, rng_seed)
    all_s = np.ones((n_resamples, s))
    # sums over the drawn utterances in numpy's own loops, not BLAS: a BLAS kernel picked at run
    # time for the CPU may add in another order, and the claims CSVs would change in the last digit
    drawn = (
        np.einsum("nu,bu->nb", x0.reshape(-1, u), wu, optimize=False).reshape(len(x0), s, -1),
        np.einsum("su,bu->sb", w, wu, optimize=False),
    )  # (V, S, B), (S, B)
    every = x0.sum(-1, keepdims=True), w.sum(-1, keepdims=True)  # each utterance once
    point = float(statistic(_means(*every, all_s[:1]))[0])
    reps = statistic(_means(*drawn, ws))
    # the seed and utterance parts alone, to count the interval's degrees of freedom
    var_s = np.nanvar(statistic(_means(*every, ws))) * s / (s - 1) if s > 1 else 0.0
    var_u = np.nanvar(statistic(_means(*drawn, all_s))) * u / (u - 1) if u > 1 else 0.0
    den = (var_s**2 / (s - 1) if s > 1 else 0.0) + (var_u**2 / (u - 1) if u > 1 else 0.0)
    df = (var_s + var_u) ** 2 / den if den > 0 else math.inf
    q = (1 + level) / 2
    widen = 1.0
    if math.isfinite(df):
        widen = math.sqrt((df + 1) / df) * stats.t.ppf(q, df) / stats.norm.ppf(q)
    lo, hi = np.nanpercentile(reps, [100 * (1 - q), 100 * q])
    # widen around the estimate; a deviation of the wrong sign (a biased max) counts as zero
    return Estimate(
        estimate=point,
        ci_low=point - widen * max(point - lo, 0.0),
        ci_high=point + widen * max(hi - point, 0.0),
        df=df,
        n_seeds=s,
        n_utterances=int(keep.any(axis=0).sum()),
        replicates=reps,
    )


NOISE_METRICS = ("pesq_raw_nb", "estoi", "hoyer", "pesq_wb", "stoi")


def noise_table(metrics: Mapping[tuple[str, int], pd.DataFrame]) -> pd.DataFrame:
    """Per variant and metric: the mean over seeds, the seed-to-seed SD of the seed means, the
    per-utterance SD and SE (each averaged over seeds; sdm.stats.summarise), and the paper's
    stated order (PAPER_SD), which does not say over what it was taken."""
    import pandas as pd

    from sdm.variants import ALL_VARIANTS

    records = []
    for variant in ALL_VARIANTS:
        seeds = sorted(s for v, s in metrics if v == variant)
        for metric in NOISE_METRICS:
            summary = summarise([metrics[variant, s][metric].to_numpy(float) for s in seeds])
            if not summary.n_seeds:
                continue
            records.append(
                {"variant": variant, "metric": metric}
                | {k: getattr(summary, k) for k in ("mean", "seed_sd", "utterance_sd")}
                | {"utterance_se": summary.utterance_se, "paper_sd": PAPER_SD[metric]}
                | {"n_seeds": summary.n_seeds, "n_utterances": summary.n_utterances}
            )
    return pd.DataFrame(records, columns=list(NOISE_COLUMNS))


NOISE_COLUMNS = tuple(
    "variant metric mean seed_sd utterance_sd utterance_se paper_sd n_seeds n_utterances".split()
)

"""How long early stopping let each run train, set against how well the run scores.

Seeds of one variant differ in their initial weights and batch order, and through those in where
the noisy validation loss happens to dip: patience then ends the run some validations later. When
the later-stopping seed of a variant tends to score higher, part of the seed-to-seed spread, and
of any difference between variants, is training length rather than the model. This module measures
that from the committed runs (their config.json and metrics.csv); it trains and evaluates nothing.

Beside it, the seed spread: how far the seeds of one variant lie apart, set against how far the
variants' means lie apart, which is what the landing page's headline needs to be read right.

Two numbers per corpus: the Spearman rank correlation between the best epoch and the test-set mean
over all runs (variants pooled, so it mixes in the variants' own differences), and, within each
variant, for every pair of seeds, whether the seed that stopped later scores higher (a count that
no difference between variants can produce).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sdm import results
from sdm.results import RESULTS_ROOT

if TYPE_CHECKING:
    import pandas as pd

QUALITY = "pesq_raw_nb"  # the paper's "PESQ"
LENGTH_COLUMNS = ("variant", "seed", "best_epoch", "epochs_run")


def run_lengths(
    data: str, preprocessing: str = "clean", root: Path = RESULTS_ROOT, metric: str = QUALITY
) -> pd.DataFrame:
    """One row per evaluated Table-1 run of a corpus: variant, seed, best_epoch, epochs_run and
    the test-set mean of `metric` (NaN utterances left out). Empty when nothing is evaluated."""
    import pandas as pd

    rows = []
    for (variant, seed), table in results.collect_metrics(root, data, preprocessing).items():
        run = results.run_dir(root, data, preprocessing, variant, seed)
        config = results.read_config(run)
        result = (config or {}).get("result") or {}
        if "best_epoch" not in result or "epochs_run" not in result:
            raise ValueError(
                f"{run / results.CONFIG_FILE}: expected a trained run's result with best_epoch "
                f"and epochs_run, found {sorted(result) or 'none'}"
            )
        if metric not in table:
            raise ValueError(f"{run}: the metrics table has no column {metric!r}")
        rows.append(
            {
                "variant": variant,
                "seed": seed,
                "best_epoch": int(result["best_epoch"]),
                "epochs_run": int(result["epochs_run"]),
                metric: float(table[metric].mean()),
            }
        )
    return pd.DataFrame(rows, columns=[*LENGTH_COLUMNS, metric])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties take their average rank); NaN for fewer than 3 pairs
    or a constant variable."""
    import pandas as pd

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"spearman: expected two 1-D arrays of one length, got {x.shape}, {y.shape}"
        )
    keep = np.isfinite(x) & np.isfinite(y)
    rx, ry = (pd.Series(v[keep]).rank().to_numpy() for v in (x, y))
    if len(rx) < 3 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass(frozen=True)
class StoppingEffect:
    """Training length against quality on one corpus (see the module's docstring)."""

    n_runs: int
    n_variants: int  # variants with at least two evaluated seeds
    rho: float  # Spearman, best epoch vs the metric's test-set mean, all runs pooled
    pairs: int  # seed pairs of one variant whose best epochs differ
    later_higher: int  # ... of which the seed that stopped later has the higher mean


def stopping_effect(lengths: pd.DataFrame, metric: str = QUALITY) -> StoppingEffect:
    """Summarise a run_lengths table."""
    pairs = later_higher = n_variants = 0
    for _, group in lengths.groupby("variant", sort=False):
        runs = list(zip(group["best_epoch"], group[metric], strict=True))
        n_variants += len(runs) >= 2
        for (epoch_a, score_a), (epoch_b, score_b) in itertools.combinations(runs, 2):
            if epoch_a == epoch_b or not np.isfinite(score_a - score_b):
                continue
            pairs += 1
            later_higher += (epoch_a - epoch_b) * (score_a - score_b) > 0
    return StoppingEffect(
        n_runs=len(lengths),
        n_variants=n_variants,
        rho=spearman(lengths["best_epoch"], lengths[metric]),
        pairs=pairs,
        later_higher=int(later_higher),
    )


@dataclass(frozen=True)
class SeedSpread:
    """How far the seeds of one variant lie apart, against how far the variants lie apart."""

    n_variants: int  # variants with at least two evaluated seeds
    median_range: float  # over those variants: the best seed's test-set mean less the worst's
    max_range: float
    widest: str  # the variant with max_range ("" when none has two seeds)
    between: float  # the best variant's mean over its seeds less the worst variant's


def seed_spread(lengths: pd.DataFrame, metric: str = QUALITY) -> SeedSpread:
    """Summarise a run_lengths table's seed-to-seed and variant-to-variant spread of `metric`."""
    if lengths.empty:
        raise ValueError("seed_spread: expected evaluated runs, got an empty table")
    scores = lengths.dropna(subset=[metric]).groupby("variant", sort=False)[metric]
    ranges = (scores.max() - scores.min())[scores.count() >= 2]
    means = scores.mean()
    return SeedSpread(  # an empty Series' median and max are NaN
        n_variants=len(ranges),
        median_range=float(ranges.median()),
        max_range=float(ranges.max()),
        widest=str(ranges.idxmax()) if len(ranges) else "",
        between=float(means.max() - means.min()),
    )

"""Judging the claims on runs: each comparison's bootstrap interval (sdm.stats) and verdict
(sdm.claims), C10 from the step-time benchmark's result files, and the tables the book and the
CLI show (sdm.render writes them as Markdown).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from sdm.claims import (
    CLAIMS,
    FAILS,
    HOLDS,
    MISSING,
    NO_BENCHMARK,
    STEP_TIME_LIMIT,
    Claim,
    Comparison,
    combine,
    verdict,
)
from sdm.metrics import CONVENTIONS
from sdm.stats import N_RESAMPLES, RNG_SEED, Estimate, bootstrap

if TYPE_CHECKING:
    import pandas as pd

BENCHMARK_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
BENCHMARK_KEY = "c10_sdm_over_vae_step"
"""What benchmarks/train_speed.py writes into benchmarks/results/<machine>.json: {label (m32,
m64): {"ratios": per-repeat SDM-VAE / VAE step-time ratios, ...}}."""


@dataclass(frozen=True, eq=False)
class ClaimsReport:
    """summary: one row per claim and convention; comparisons: one row per comparison;
    replicates: (claim, convention, comparison label, metric) -> bootstrap statistics."""

    summary: pd.DataFrame
    comparisons: pd.DataFrame
    replicates: Mapping[tuple[str, str, str, str], np.ndarray]


def _row(claim: str, convention: str, label: str, metric: str, how: str, **rest: Any) -> dict:
    return {
        "claim": claim,
        "convention": convention,
        "comparison": label,
        "metric": metric,
        "statistic": how,
        **rest,
    }


def _judge_comparison(
    tables: Mapping[tuple[str, int], pd.DataFrame],
    comp: Comparison,
    metric: str,
    n_resamples: int,
    rng_seed: int,
) -> tuple[dict[str, Any], Estimate | None]:
    """One comparison's row fields and its Estimate (None when runs are missing)."""
    side = ">" if comp.side == "greater" else "<"
    base = {"side": side, "boundary": comp.boundary, "counted": comp.counted}
    seeds_of = {v: {s for name, s in tables if name == v} for v in comp.variants}
    missing = [v for v, seeds in seeds_of.items() if not seeds]
    seeds = sorted(set.intersection(*seeds_of.values())) if not missing else []
    utterances = (
        sorted(set.intersection(*(set(tables[v, s].index) for v in comp.variants for s in seeds)))
        if seeds
        else []
    )
    if not utterances:
        note = f"missing: {', '.join(missing)}" if missing else "no seed or utterance in common"
        return {**base, "verdict": MISSING, "note": note}, None
    x = np.stack(
        [
            [tables[v, s][metric].reindex(utterances).to_numpy(float) for s in seeds]
            for v in comp.variants
        ]
    )
    if not np.isfinite(x).all(axis=0).any():
        return {**base, "verdict": MISSING, "note": f"no utterance has {metric} for all"}, None
    est = bootstrap(x, comp.statistic, n_resamples, rng_seed)
    note = "1 seed: utterance spread only" if len(seeds) == 1 else ""
    return {
        **base,
        "estimate": est.estimate,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
        "verdict": verdict(est.ci_low, est.ci_high, comp.boundary, comp.side),
        "n_seeds": est.n_seeds,
        "n_utterances": est.n_utterances,
        "df": est.df,
        "note": note,
    }, est


def step_time_ratios(directory: str | Path = BENCHMARK_DIR) -> dict[str, list[float]]:
    """Label "<file stem>:<m label>" -> SDM-VAE / VAE step-time ratios (one per timed repeat),
    from every <directory>/*.json that holds BENCHMARK_KEY; {} when there is none."""
    out: dict[str, list[float]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(blob, dict) or BENCHMARK_KEY not in blob:
            continue
        entries = blob[BENCHMARK_KEY]
        for label, entry in entries.items() if isinstance(entries, dict) else [("", entries)]:
            ratios = entry.get("ratios") if isinstance(entry, dict) else None
            if not (isinstance(ratios, list) and ratios and all(map(_positive, ratios))):
                raise ValueError(
                    f"{path}: {BENCHMARK_KEY}.{label}: expected {{'ratios': [positive "
                    f"step-time ratios]}} as benchmarks/train_speed.py writes, got {entry!r}"
                )
            out[f"{path.stem}:{label}"] = [float(r) for r in ratios]
    return out


def _positive(r: Any) -> bool:
    return isinstance(r, int | float) and not isinstance(r, bool) and math.isfinite(r) and r > 0


def _judge_benchmark(
    directory: str | Path, n_resamples: int, rng_seed: int
) -> list[tuple[str, dict[str, Any], Estimate | None]]:
    base = {"side": "<", "boundary": STEP_TIME_LIMIT, "counted": True}
    ratios = step_time_ratios(directory)
    if not ratios:
        note = f"no {BENCHMARK_KEY} in {directory}/*.json"
        return [("SDM-VAE / VAE step time", {**base, "verdict": NO_BENCHMARK, "note": note}, None)]
    out = []
    for label, values in ratios.items():
        est = bootstrap(np.asarray(values)[None, None], None, n_resamples, rng_seed)
        row = {
            **base,
            "estimate": est.estimate,
            "ci_low": est.ci_low,
            "ci_high": est.ci_high,
            "verdict": verdict(est.ci_low, est.ci_high, STEP_TIME_LIMIT, "less"),
            "df": est.df,
            "note": f"{len(values)} timing(s)" + (": no spread" if len(values) == 1 else ""),
        }
        out.append((f"SDM-VAE / VAE step time, {label}", row, est))
    return out


SUMMARY_COLUMNS = tuple(
    "claim convention statement verdict n_comparisons n_holds n_fails n_inconclusive "
    "estimate ci_low ci_high side boundary n_seeds n_utterances".split()
)
COMPARISON_COLUMNS = tuple(
    "claim convention comparison metric statistic estimate ci_low ci_high side boundary "
    "verdict counted n_seeds n_utterances df note".split()
)


def judge_claims(
    metrics: Mapping[tuple[str, int], pd.DataFrame],
    benchmarks: str | Path = BENCHMARK_DIR,
    n_resamples: int = N_RESAMPLES,
    rng_seed: int = RNG_SEED,
    claims: Mapping[str, Claim] = CLAIMS,
) -> ClaimsReport:
    """Judge every claim from per-utterance tables {(variant, seed): DataFrame (sdm.evaluate
    COLUMNS)} and the step-time benchmark. Variants or seeds that are absent make the comparisons
    that need them "inconclusive: missing runs"; comparisons use the seeds all their variants have.
    `claims`: the paper's C1-C10 by default; the claims beyond it (sdm.claims.BEYOND_CLAIMS) are
    judged the same way.
    """
    import pandas as pd

    tables = {}
    for key, table in metrics.items():
        indexed = table.set_index("utterance")
        if indexed.index.has_duplicates:
            raise ValueError(f"metrics of {key[0]} seed {key[1]}: utterances listed twice")
        tables[key] = indexed
    rows, replicates = [], {}
    for claim in claims.values():
        for convention in claim.conventions:
            if claim.comparisons:
                found = []
                for comp in claim.comparisons:
                    metric = CONVENTIONS.get(convention, CONVENTIONS["paper"])[comp.role]
                    fields, est = _judge_comparison(tables, comp, metric, n_resamples, rng_seed)
                    found.append((comp.label, metric, comp.how, fields, est))
            else:
                found = [
                    (label, "step time ratio", "mean", fields, est)
                    for label, fields, est in _judge_benchmark(benchmarks, n_resamples, rng_seed)
                ]
            for label, metric, how, fields, est in found:
                rows.append(_row(claim.id, convention, label, metric, how, **fields))
                if est is not None:
                    replicates[claim.id, convention, label, metric] = est.replicates
    comparisons = pd.DataFrame(rows).reindex(columns=list(COMPARISON_COLUMNS))
    comparisons = comparisons.astype({"n_seeds": "Int64", "n_utterances": "Int64"})
    return ClaimsReport(_summarise(comparisons, claims), comparisons, MappingProxyType(replicates))


def _summarise(comparisons: pd.DataFrame, claims: Mapping[str, Claim]) -> pd.DataFrame:
    import pandas as pd

    records = []
    for (claim, convention), group in comparisons.groupby(["claim", "convention"], sort=False):
        counted = group[group["counted"].astype(bool)]
        verdicts = counted["verdict"].tolist()
        record = {
            "claim": claim,
            "convention": convention,
            "statement": claims[claim].statement,
            "verdict": combine(verdicts),
            "n_comparisons": len(verdicts),
            "n_holds": verdicts.count(HOLDS),
            "n_fails": verdicts.count(FAILS),
            "n_inconclusive": len(verdicts) - verdicts.count(HOLDS) - verdicts.count(FAILS),
            "n_seeds": counted["n_seeds"].min(),
            "n_utterances": counted["n_utterances"].min(),
        }
        if len(counted) == 1:  # one number: show it beside the verdict
            only = counted.iloc[0]
            record |= {k: only[k] for k in ("estimate", "ci_low", "ci_high", "side", "boundary")}
        records.append(record)
    summary = pd.DataFrame(records).reindex(columns=list(SUMMARY_COLUMNS))
    return summary.astype({"n_seeds": "Int64", "n_utterances": "Int64"})


def replicates_table(report: ClaimsReport) -> pd.DataFrame:
    """The bootstrap statistics as a tidy DataFrame (claim, convention, comparison, metric,
    replicate, value), for histograms and interval plots on the book page."""
    import pandas as pd

    frames = [
        pd.DataFrame(
            {
                "claim": claim,
                "convention": convention,
                "comparison": label,
                "metric": metric,
                "replicate": np.arange(len(values)),
                "value": values,
            }
        )
        for (claim, convention, label, metric), values in report.replicates.items()
    ]
    columns = ["claim", "convention", "comparison", "metric", "replicate", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

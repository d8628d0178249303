"""The paper's claims C1–C10 tested on our runs: a statistic, a 95% interval, a computed verdict.

A claim is one or more *comparisons*. A comparison reduces the per-utterance metrics of a few
variants to one number — a paired difference of means, the gap to the best other model, or a
difference of ranges — and says on which side of a boundary the claim puts it: 0 for "better",
−margin for "not worse" (non-inferiority, MARGINS). C10 compares the benchmark's SDM-VAE / VAE
time per training step with STEP_TIME_LIMIT.

Interval: a bootstrap over seeds and utterances (`bootstrap`). Each resample draws the seeds with
replacement and, independently, the test utterances with replacement; one utterance draw serves
every seed and variant, because every run is scored on the same test set (drawing utterances per
seed would treat them as independent and understate their spread), and pairs stay paired by seed
and utterance. With as few as 5 seeds a plain percentile interval is too narrow (it covers ≈ 83%
when seeds dominate), so it is widened around the estimate by √(n/(n−1))·t(n−1)/z — Hesterberg's
(2015) expanded percentile interval — with n − 1 the Satterthwaite degrees of freedom of the seed
and utterance parts. Cells where a metric is missing for any variant of a comparison are left out.

Verdict: holds when the interval lies entirely on the claim's side of the boundary, fails when it
lies entirely on the other side, inconclusive when it covers it. A claim with several comparisons
holds when all hold, fails when any fails, and is inconclusive otherwise (`combine`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sdm.config import ModelConfig, TrainConfig
from sdm.variants import LATENT_SIZES, VARIANTS, VSC_ALPHAS

if TYPE_CHECKING:
    from sdm.cluster import Launcher

N_RESAMPLES = 4000
RNG_SEED = 2022
LEVEL = 0.95
MARGINS: Mapping[str, float] = MappingProxyType({"pesq": 0.05, "stoi": 0.01})
"""Non-inferiority margins: "not worse" means the difference's interval lies above −margin."""
STEP_TIME_LIMIT = 1.25
"""C10's "negligible": the SDM-VAE / VAE step-time ratio's interval lies below this."""

CONVENTIONS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "paper": MappingProxyType({"pesq": "pesq_raw_nb", "stoi": "estoi", "hoyer": "hoyer"}),
        "ours": MappingProxyType({"pesq": "pesq_wb", "stoi": "stoi", "hoyer": "hoyer"}),
    }
)
"""Metric role -> column: the paper's PESQ is raw narrow-band P.862 and its STOI is ESTOI."""
ANY = "any"  # the convention of claims judged on Hoyer or timings alone

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
MISSING = "inconclusive: missing runs"
NO_BENCHMARK = "inconclusive: no benchmark"

BENCHMARK_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
BENCHMARK_KEYS = ("sdm_over_vae_step_time", "c10_sdm_over_vae_step")
"""Keys read from benchmarks/results/*.json, first found wins: a ratio, a list of per-repeat
ratios, or a mapping label -> one of those or {"ratio": r, "ratios": [...]} ("ratios" preferred)."""

PAPER_SD: Mapping[str, float] = MappingProxyType(
    {"pesq_raw_nb": 0.01, "pesq_wb": 0.01, "estoi": 0.001, "stoi": 0.001, "hoyer": 0.001}
)
"""The paper's "standard deviation ... in the order of 0.01 for PESQ, 0.001 for STOI and Hoyer"."""


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
"""Claim id -> Claim, C1 … C10 (../shared/PAPER.md)."""


@dataclass(frozen=True, eq=False)
class ClaimsReport:
    """summary: one row per claim and convention; comparisons: one row per comparison;
    replicates: (claim, convention, comparison label, metric) -> bootstrap statistics."""

    summary: Any
    comparisons: Any
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
    tables: Mapping[tuple[str, int], Any],
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
    """Label ("<file stem>:<m>" or "<file stem>") -> SDM-VAE / VAE step-time ratios, from every
    <directory>/*.json holding one of BENCHMARK_KEYS; {} when there is none."""
    out: dict[str, list[float]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        key = next((k for k in BENCHMARK_KEYS if isinstance(blob, dict) and k in blob), None)
        if key is None:
            continue
        entry = blob[key]
        items = entry.items() if isinstance(entry, dict) and "ratio" not in entry else [("", entry)]
        for label, value in items:
            ratios = _ratios(value)
            if ratios is None:
                raise ValueError(
                    f"{path}: {key}{'.' + label if label else ''}: expected a positive ratio, a "
                    f"list of them, or {{'ratio': r, 'ratios': [...]}}, got {value!r}"
                )
            out[f"{path.stem}:{label}" if label else path.stem] = ratios
    return out


def _ratios(value: Any) -> list[float] | None:
    if isinstance(value, dict):
        value = value.get("ratios", value.get("ratio"))
    values = value if isinstance(value, list) else [value]
    ok = values and all(
        isinstance(r, int | float) and not isinstance(r, bool) and math.isfinite(r) and r > 0
        for r in values
    )
    return [float(r) for r in values] if ok else None


def _judge_benchmark(
    directory: str | Path, n_resamples: int, rng_seed: int
) -> list[tuple[str, dict[str, Any], Estimate | None]]:
    base = {"side": "<", "boundary": STEP_TIME_LIMIT, "counted": True}
    ratios = step_time_ratios(directory)
    if not ratios:
        note = f"no {' or '.join(BENCHMARK_KEYS)} in {directory}/*.json"
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
    metrics: Mapping[tuple[str, int], Any],
    benchmarks: str | Path = BENCHMARK_DIR,
    n_resamples: int = N_RESAMPLES,
    rng_seed: int = RNG_SEED,
) -> ClaimsReport:
    """Judge every claim from per-utterance tables {(variant, seed): DataFrame (sdm.evaluate
    COLUMNS)} and the step-time benchmark. Variants or seeds that are absent make the comparisons
    that need them "inconclusive: missing runs"; comparisons use the seeds all their variants have.
    """
    import pandas as pd

    tables = {}
    for key, table in metrics.items():
        indexed = table.set_index("utterance")
        if indexed.index.has_duplicates:
            raise ValueError(f"metrics of {key[0]} seed {key[1]}: utterances listed twice")
        tables[key] = indexed
    rows, replicates = [], {}
    for claim in CLAIMS.values():
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
    return ClaimsReport(_summarise(comparisons), comparisons, MappingProxyType(replicates))


def _summarise(comparisons: Any) -> Any:
    import pandas as pd

    records = []
    for (claim, convention), group in comparisons.groupby(["claim", "convention"], sort=False):
        counted = group[group["counted"].astype(bool)]
        verdicts = counted["verdict"].tolist()
        record = {
            "claim": claim,
            "convention": convention,
            "statement": CLAIMS[claim].statement,
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


def replicates_table(report: ClaimsReport) -> Any:
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


NOISE_METRICS = ("pesq_raw_nb", "estoi", "hoyer", "pesq_wb", "stoi")


def noise_table(metrics: Mapping[tuple[str, int], Any]) -> Any:
    """Per variant and metric: the mean over seeds, the seed-to-seed SD of the seed means, the
    per-utterance SD and SE (each averaged over seeds), and the paper's stated order (PAPER_SD),
    which does not say over what it was taken."""
    import pandas as pd

    records = []
    for variant in VARIANTS:
        seeds = sorted(s for v, s in metrics if v == variant)
        for metric in NOISE_METRICS:
            per_seed = [metrics[variant, s][metric].to_numpy(float) for s in seeds]
            per_seed = [x[np.isfinite(x)] for x in per_seed]
            per_seed = [x for x in per_seed if len(x)]
            if not per_seed:
                continue
            means = [x.mean() for x in per_seed]
            sds = [x.std(ddof=1) if len(x) > 1 else math.nan for x in per_seed]
            records.append(
                {
                    "variant": variant,
                    "metric": metric,
                    "mean": float(np.mean(means)),
                    "seed_sd": float(np.std(means, ddof=1)) if len(means) > 1 else math.nan,
                    "utterance_sd": float(np.mean(sds)),
                    "utterance_se": float(
                        np.mean([sd / math.sqrt(len(x)) for sd, x in zip(sds, per_seed)])
                    ),
                    "paper_sd": PAPER_SD[metric],
                    "n_seeds": len(per_seed),
                    "n_utterances": min(len(x) for x in per_seed),
                }
            )
    columns = [
        "variant",
        "metric",
        "mean",
        "seed_sd",
        "utterance_sd",
        "utterance_se",
        "paper_sd",
        "n_seeds",
        "n_utterances",
    ]
    return pd.DataFrame(records, columns=columns)


_DECIMALS = {"pesq_raw_nb": 3, "pesq_wb": 3, "estoi": 4, "stoi": 4, "hoyer": 4}
_CONVENTION_NAMES = {
    "paper": "paper-comparable (raw-nb PESQ, ESTOI)",
    "ours": "ours (wide-band PESQ, STOI)",
}
_DASH = "—"


def _interval(estimate: float, lo: float, hi: float, metric: str) -> str:
    if not math.isfinite(estimate):
        return _DASH
    sign = "" if metric not in _DECIMALS else "+"  # a ratio has no sign to show
    d = _DECIMALS.get(metric, 3)
    return f"{estimate:{sign}.{d}f} [{lo:{sign}.{d}f}, {hi:{sign}.{d}f}]"


def _side(side: str, boundary: float) -> str:
    return f"{side} {boundary:g}"


def _summary_cell(row: Any, comparisons: Any) -> str:
    cell = f"**{row['verdict']}**"
    if row["n_comparisons"] == 1:
        if not math.isfinite(row["estimate"]):
            return cell
        mine = (comparisons["claim"] == row["claim"]) & (
            comparisons["convention"] == row["convention"]
        )
        metric = comparisons.loc[mine & comparisons["counted"].astype(bool), "metric"].iloc[0]
        return f"{cell} · {_interval(row['estimate'], row['ci_low'], row['ci_high'], metric)}"
    return f"{cell} · {row['n_holds']}/{row['n_comparisons']} hold, {row['n_fails']} fail"


def legend(n_resamples: int = N_RESAMPLES, rng_seed: int = RNG_SEED) -> str:
    """How the numbers were made, in words, for the Markdown file and the book page."""
    return (
        f"Estimate: the statistic on all runs; 95% interval: {n_resamples} bootstrap resamples "
        f"(RNG seed {rng_seed}) drawing seeds and, independently, test utterances with "
        "replacement (one utterance draw for every seed and variant, so differences stay paired), "
        "percentile interval widened by √(n/(n−1))·t(n−1)/z with n−1 the Satterthwaite degrees "
        "of freedom of the seed and utterance parts (Hesterberg's expanded percentile interval). "
        f"Non-inferiority margins: PESQ {MARGINS['pesq']:g}, STOI/ESTOI {MARGINS['stoi']:g}; "
        f'C10\'s "negligible": step-time ratio < {STEP_TIME_LIMIT:g}. Verdict: holds — the '
        "interval lies on the claim's side of the boundary; fails — on the other side; "
        "inconclusive — it covers it. Several comparisons: all hold → holds, any fails → fails, "
        "else inconclusive. Hoyer and timing claims do not depend on the metric convention."
    )


def to_markdown(
    report: ClaimsReport,
    noise: Any = None,
    title: str | None = "Claims",
    note: str = "",
    n_resamples: int = N_RESAMPLES,
    rng_seed: int = RNG_SEED,
) -> str:
    """Markdown: the verdict per claim and convention, every comparison, and (if given) the
    seed-to-seed and per-utterance noise beside the paper's stated order."""
    import pandas as pd

    summary, comps = report.summary, report.comparisons
    out = ([f"# {title}", ""] if title else []) + ([f"**{note}**", ""] if note else [])
    out += [legend(n_resamples, rng_seed), ""]
    out += [
        "| claim | statement | " + " | ".join(_CONVENTION_NAMES.values()) + " |",
        "|---|---|---|---|",
    ]
    for claim in CLAIMS:
        by = {r["convention"]: r for _, r in summary[summary["claim"] == claim].iterrows()}
        cells = [_summary_cell(by.get(c, by.get(ANY)), comps) for c in _CONVENTION_NAMES]
        out.append(f"| {claim} | {CLAIMS[claim].statement} | " + " | ".join(cells) + " |")
    out += [
        "",
        "**Comparisons**",
        "",
        "| claim | convention | comparison | metric | estimate [95% CI] | claim says | "
        "verdict | seeds | utterances | note |",
        "|" + "---|" * 10,
    ]
    for _, r in comps.iterrows():
        shown = r["verdict"] if r["counted"] else f"({r['verdict']}; not counted)"
        counts = [_DASH if pd.isna(r[k]) else str(r[k]) for k in ("n_seeds", "n_utterances")]
        out.append(
            f"| {r['claim']} | {r['convention']} | {r['comparison']} | {r['metric']} | "
            f"{_interval(r['estimate'], r['ci_low'], r['ci_high'], r['metric'])} | "
            f"{_side(r['side'], r['boundary'])} | {shown} | {' | '.join(counts)} | "
            f"{r['note'] if isinstance(r['note'], str) else ''} |"
        )
    if noise is not None and len(noise):
        out += [
            "",
            "**Noise: seed-to-seed SD / per-utterance SE**",
            "",
            "Each cell: SD of the seed means / standard error of the mean over utterances "
            '(averaged over seeds). Paper: "in the order of 0.01 for PESQ, and 0.001 for STOI '
            'and the Hoyer score", without saying over what.',
            "",
        ]
        metrics = [m for m in NOISE_METRICS if m in set(noise["metric"])]
        out.append(
            "| variant | seeds | "
            + " | ".join(f"{m} (paper ≈ {PAPER_SD[m]:g})" for m in metrics)
            + " |"
        )
        out.append("|" + "---|" * (len(metrics) + 2))
        for variant, group in noise.groupby("variant", sort=False):
            by = group.set_index("metric")
            cells = [
                _DASH
                if m not in by.index
                else f"{_num(by.loc[m, 'seed_sd'], m)} / {_num(by.loc[m, 'utterance_se'], m)}"
                for m in metrics
            ]
            out.append(f"| {variant} | {int(group['n_seeds'].max())} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _num(value: float, metric: str) -> str:
    return _DASH if not math.isfinite(value) else f"{value:.{_DECIMALS[metric]}f}"


def claims_paths(data: str, preprocessing: str, root: str | Path | None = None) -> dict[str, Path]:
    """Where the claim files live: beside table1 in <root>/<data>/<preprocessing>/."""
    from sdm.runs import RESULTS_ROOT, data_slug

    base = Path(root if root is not None else RESULTS_ROOT) / data_slug(data) / preprocessing
    return {
        "summary": base / "claims.csv",
        "comparisons": base / "claims_comparisons.csv",
        "noise": base / "claims_noise.csv",
        "markdown": base / "claims.md",
    }


def write_claims(
    report: ClaimsReport,
    noise: Any,
    paths: Mapping[str, Path],
    title: str = "Claims",
    note: str = "",
    **legend_args: Any,
) -> None:
    """Write the summary, comparison and noise CSVs and the Markdown, each atomically."""
    from sdm.evaluate import write_atomically

    for key, table in (
        ("summary", report.summary),
        ("comparisons", report.comparisons),
        ("noise", noise),
    ):
        write_atomically(Path(paths[key]), lambda p, t=table: t.to_csv(p, index=False))
    text = to_markdown(report, noise, title, note, **legend_args)
    write_atomically(Path(paths["markdown"]), lambda p: p.write_text(text, encoding="utf-8"))


def run_claims(
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    data: str = "shipped",
    preprocessing: str = "clean",
    train: TrainConfig = TrainConfig(),
    root: str | Path | None = None,
    device: str = "auto",
    quick: bool = False,
    progress: bool = True,
    n_jobs: int | None = None,
    benchmarks: str | Path = BENCHMARK_DIR,
    echo: bool = True,
    workers: int | str = "auto",
    variants: Sequence[str] | None = None,
    launcher: Launcher | None = None,
) -> ClaimsReport:
    """Train and evaluate the missing runs of the 14 variants (or the named subset) x seeds
    (finished ones are reused), judge the claims, write claims.{csv,md} (+ comparisons and noise
    CSVs) beside table1. A claim whose variants are left out is judged inconclusive."""
    from sdm.experiment import ensure_evaluated, ensure_trained, make_specs
    from sdm.report import QUICK_NOTE, subset_note
    from sdm.runs import RESULTS_ROOT, data_slug
    from sdm.variants import select_variants

    root = Path(root) if root is not None else RESULTS_ROOT
    chosen = select_variants(variants)
    specs = make_specs(chosen, seeds, data, preprocessing, train)
    ensure_trained(specs, root, device, progress=progress, workers=workers, launcher=launcher)
    tables = ensure_evaluated(specs, root, n_jobs=n_jobs, progress=progress)
    metrics = {(s.model.name, s.seed): t for s, t in tables.items()}
    report = judge_claims(metrics, benchmarks)
    noise = noise_table(metrics)
    paths = claims_paths(data, preprocessing, root)
    title = (
        f"Claims — {data_slug(data)} corpus, {preprocessing} preprocessing, seeds {list(seeds)}"
        + subset_note(chosen)
    )
    note = QUICK_NOTE if quick else ""
    write_claims(report, noise, paths, title, note)
    if echo:
        print(to_markdown(report, noise, title, note))
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return report

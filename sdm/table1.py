"""Table 1: our per-utterance metrics summarised per variant, beside the paper's numbers.

The paper's "PESQ" is raw narrow-band P.862 (pypesq) and its "STOI" is ESTOI, so its numbers sit
beside our `pesq_raw_nb` and `estoi`; `pesq_wb` and `stoi` follow without a paper column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from sdm.config import ModelConfig
from sdm.display import model_label
from sdm.metrics import CONVENTIONS
from sdm.stats import summarise
from sdm.variants import LATENT_SIZES, VARIANTS, get_variant

if TYPE_CHECKING:
    import pandas as pd

PAPER_METRICS = tuple(CONVENTIONS["paper"].values())  # its PESQ, STOI and Hoyer columns
TABLE_METRICS = (*PAPER_METRICS, "pesq_wb", "stoi")
ORACLE = "oracle"

# Sadeghi & Magron (2022), Table 1: (PESQ, STOI, Hoyer) at m = 32, then at m = 64
_PAPER_ROWS = {
    "vae": ((3.29, 0.85, 0.40), (3.26, 0.85, 0.56)),
    "vsc-a0.05": ((3.00, 0.81, 0.57), (3.25, 0.84, 0.51)),
    "vsc-a0.5": ((3.25, 0.84, 0.54), (3.32, 0.85, 0.65)),
    "vsc-a0.9": ((3.25, 0.84, 0.47), (3.26, 0.85, 0.60)),
    "sdm-I": ((3.33, 0.86, 0.64), (3.45, 0.87, 0.73)),
    "sdm-dct-k32": ((3.37, 0.86, 0.66), (3.28, 0.84, 0.66)),
    "sdm-dct-k64": ((3.32, 0.86, 0.87), (3.33, 0.86, 0.76)),
}
PAPER_TABLE1: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        f"{base}-m{m}": MappingProxyType(dict(zip(PAPER_METRICS, values, strict=True)))
        for base, per_m in _PAPER_ROWS.items()
        for m, values in zip(LATENT_SIZES, per_m, strict=True)
    }
)
"""Variant name -> the paper's {pesq_raw_nb, estoi, hoyer} (its PESQ, STOI, Hoyer columns)."""

_STAT_SUFFIXES = ("", "_ci95", "_se")


def row_label(config: ModelConfig) -> str:
    """The Table-1 row a variant belongs to (the same row for m = 32 and m = 64): the model as
    the paper words it, m left out (sdm.display.model_label)."""
    return model_label(config)


def table1_rows(extra: Sequence[str] = ()) -> dict[str, dict[int, str]]:
    """Row label -> {m: variant name}, in the paper's order, then a row per `extra` variant (a
    learned one, asked for by name; build_table1 adds the oracle row)."""
    rows: dict[str, dict[int, str]] = {}
    for name, config in [*VARIANTS.items(), *((n, get_variant(n)) for n in extra)]:
        rows.setdefault(row_label(config), {})[config.m] = name
    return rows


def table1_columns() -> list[str]:
    """Columns of build_table1, for each m: `m32_<metric>` (mean over seeds), `_ci95` (half-width
    of its 95% t-interval over seed means), `_se` (per-utterance standard error, averaged over
    seeds), `_paper` (paper metrics only); then `m32_seeds` and `m32_failed` (utterance rows with a
    failure, summed over seeds)."""
    cols = []
    for m in LATENT_SIZES:
        for metric in TABLE_METRICS:
            cols += [f"m{m}_{metric}{suffix}" for suffix in _STAT_SUFFIXES]
            if metric in PAPER_METRICS:
                cols.append(f"m{m}_{metric}_paper")
        cols += [f"m{m}_seeds", f"m{m}_failed"]
    return cols


def build_table1(
    metrics: Mapping[tuple[str, int], pd.DataFrame],
    oracle: pd.DataFrame | None = None,
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """Summarise per-utterance tables into Table 1 (pandas DataFrame, one row per model + oracle).

    metrics: (variant name, seed) -> per-utterance DataFrame (sdm.evaluate.COLUMNS); variants or
    seeds that are absent leave NaN cells. oracle: the evaluate_oracle table (the same for both m),
    or None. extra: variants beyond Table 1 (learned dictionaries) to add as rows after its 14,
    only when asked for. Columns: table1_columns(). Index: the paper's row labels, the extra
    rows, then "oracle".
    """
    import pandas as pd

    extra = [name for name in dict.fromkeys(extra) if name not in VARIANTS]
    unknown = sorted({name for name, _ in metrics} - set(VARIANTS) - set(extra))
    if unknown:
        raise ValueError(
            f"build_table1: unknown variants {unknown}; valid: {', '.join(VARIANTS)} and the "
            "learned variants passed as extra"
        )
    by_variant: dict[str, list[pd.DataFrame]] = {}
    for (name, _seed), table in sorted(metrics.items(), key=lambda kv: kv[0]):  # any dict order
        by_variant.setdefault(name, []).append(table)

    rows = {  # a learned variant has m = 64 only: its m = 32 cells stay empty
        label: {m: (per_m.get(m), by_variant.get(per_m.get(m), [])) for m in LATENT_SIZES}
        for label, per_m in table1_rows(extra).items()
    }
    rows[ORACLE] = {m: (None, [] if oracle is None else [oracle]) for m in LATENT_SIZES}
    records = []
    for cells in rows.values():
        record: dict[str, float] = {}
        for m, (name, tables) in cells.items():
            for metric in TABLE_METRICS:
                cell = summarise([t[metric].to_numpy(dtype=float) for t in tables])
                stats = (cell.mean, cell.ci95, cell.utterance_se)
                for suffix, value in zip(_STAT_SUFFIXES, stats, strict=True):
                    record[f"m{m}_{metric}{suffix}"] = value
                if metric in PAPER_METRICS:
                    paper = PAPER_TABLE1.get(name, {}) if name else {}
                    record[f"m{m}_{metric}_paper"] = paper.get(metric, math.nan)
            record[f"m{m}_seeds"] = len(tables)
            record[f"m{m}_failed"] = sum(
                int((t["failures"].fillna("") != "").sum()) for t in tables
            )
        records.append(record)
    table = pd.DataFrame(
        records, index=pd.Index(list(rows), name="model"), columns=table1_columns()
    )
    return table.astype({c: int for c in table.columns if c.endswith(("_seeds", "_failed"))})


def compare_corpora(
    tables: Mapping[str, pd.DataFrame], metrics: tuple[str, ...] = PAPER_METRICS
) -> pd.DataFrame:
    """One model's numbers across corpora: {corpus: build_table1 table} -> a DataFrame with one row
    per (model, m) that the last corpus has (a big corpus trains a few variants), then the oracle.

    Columns `<metric> <corpus>` (mean over that corpus's seeds), then `<metric> paper`; the oracle
    row shows how much headroom each corpus's test set leaves, so gaps are read against it.
    """
    import pandas as pd

    if not tables:
        raise ValueError("compare_corpora: expected at least one corpus table, got none")
    last = list(tables.values())[-1]
    cells = [
        (label, m)
        for label, row in last.drop(index=ORACLE).iterrows()
        for m in LATENT_SIZES
        if math.isfinite(row[f"m{m}_{metrics[0]}"])
    ]
    cells.append((ORACLE, LATENT_SIZES[0]))  # the oracle has no code: one row
    records = []
    for label, m in cells:
        record = {}
        for metric in metrics:
            for corpus, table in tables.items():
                value = table.loc[label, f"m{m}_{metric}"] if label in table.index else math.nan
                record[f"{metric} {corpus}"] = float(value)
            if metric in PAPER_METRICS:  # NaN on the oracle row, as in build_table1
                record[f"{metric} paper"] = float(last.loc[label, f"m{m}_{metric}_paper"])
        records.append(record)
    index = [label if label == ORACLE else f"{label}, m={m}" for label, m in cells]
    return pd.DataFrame(records, index=pd.Index(index, name="model"))


def long_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1's seed means in long form: one row per (model, m), columns model, m and the metrics.

    For plots such as quality against sparsity; the oracle row is left out (it has no code).
    """
    import pandas as pd

    rows = []
    for label, row in table.drop(index=ORACLE, errors="ignore").iterrows():
        for m in LATENT_SIZES:
            rows.append({"model": label, "m": m} | {k: row[f"m{m}_{k}"] for k in TABLE_METRICS})
    return pd.DataFrame(rows)

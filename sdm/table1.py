"""Table 1: our per-utterance metrics summarised per variant, beside the paper's numbers.

The paper's "PESQ" is raw narrow-band P.862 (pypesq) and its "STOI" is ESTOI, so its numbers sit
beside our `pesq_raw_nb` and `estoi`; `pesq_wb` and `stoi` follow without a paper column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from sdm.config import ModelConfig
from sdm.evaluate import read_metrics, write_atomically
from sdm.variants import LATENT_SIZES, VARIANTS

PAPER_METRICS = ("pesq_raw_nb", "estoi", "hoyer")
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

# a row of the table is a variant with m left out; its label follows the paper's wording
_LABELS = {
    ("vae", None): "VAE",
    ("vsc", None): "VSC α={alpha:g}",
    ("sdm", "identity"): "SDM-VAE D=I",
    ("sdm", "dct"): "SDM-VAE DCT k={k}",
}
_STAT_SUFFIXES = ("", "_ci95", "_se")


def row_label(config: ModelConfig) -> str:
    """The Table-1 row a variant belongs to (the same row for m = 32 and m = 64)."""
    return _LABELS[(config.family, config.dictionary)].format(alpha=config.alpha, k=config.k)


def table1_rows() -> dict[str, dict[int, str]]:
    """Row label -> {m: variant name}, in the paper's order (build_table1 adds the oracle row)."""
    rows: dict[str, dict[int, str]] = {}
    for name, config in VARIANTS.items():
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


def _cell_stats(tables: list[Any], metric: str) -> tuple[float, float, float]:
    """(mean over seeds, 95% CI half-width from the seed means, mean per-utterance SE)."""
    from scipy import stats

    means, ses = [], []
    for table in tables:
        values = table[metric].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if len(values):
            means.append(values.mean())
        if len(values) > 1:
            ses.append(values.std(ddof=1) / math.sqrt(len(values)))
    if not means:
        return math.nan, math.nan, math.nan
    n = len(means)
    ci = math.nan
    if n > 1:
        ci = float(stats.t.ppf(0.975, n - 1) * np.std(means, ddof=1) / math.sqrt(n))
    return float(np.mean(means)), ci, float(np.mean(ses)) if ses else math.nan


def build_table1(metrics: Mapping[tuple[str, int], Any], oracle: Any | None = None) -> Any:
    """Summarise per-utterance tables into Table 1 (pandas DataFrame, one row per model + oracle).

    metrics: (variant name, seed) -> per-utterance DataFrame (sdm.evaluate.COLUMNS); variants or
    seeds that are absent leave NaN cells. oracle: the evaluate_oracle table (the same for both m),
    or None. Columns: table1_columns(). Index: the paper's row labels, then "oracle".
    """
    import pandas as pd

    unknown = sorted({name for name, _ in metrics} - set(VARIANTS))
    if unknown:
        raise ValueError(f"build_table1: unknown variants {unknown}; valid: {', '.join(VARIANTS)}")
    by_variant: dict[str, list[Any]] = {}
    for (name, _seed), table in sorted(metrics.items(), key=lambda kv: kv[0]):  # any dict order
        by_variant.setdefault(name, []).append(table)

    rows = {
        label: {m: (name, by_variant.get(name, [])) for m, name in per_m.items()}
        for label, per_m in table1_rows().items()
    }
    rows[ORACLE] = {m: (None, [] if oracle is None else [oracle]) for m in LATENT_SIZES}
    records = []
    for cells in rows.values():
        record: dict[str, float] = {}
        for m, (name, tables) in cells.items():
            for metric in TABLE_METRICS:
                stats = _cell_stats(tables, metric)
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


_NAMES = {
    "pesq_raw_nb": "PESQ raw-nb",
    "estoi": "ESTOI",
    "hoyer": "Hoyer",
    "pesq_wb": "PESQ wb",
    "stoi": "STOI",
}
_DECIMALS = {"pesq_raw_nb": 2, "pesq_wb": 2, "estoi": 3, "stoi": 3, "hoyer": 3}
_DASH = "—"


def _number(value: float, decimals: int) -> str:
    return _DASH if not math.isfinite(value) else f"{value:.{decimals}f}"


def format_table1(table: Any) -> list[list[str]]:
    """The table as rows of text cells, header first: `mean ± CI (se)`, the paper beside each."""
    header = ["model"]
    for m in LATENT_SIZES:
        for metric in TABLE_METRICS:
            header.append(f"{_NAMES[metric]} m={m}")
            if metric in PAPER_METRICS:
                header.append("paper")
    header += ["seeds", "failed"]
    lines = [header]
    for label, row in table.iterrows():
        cells = [str(label)]
        for m in LATENT_SIZES:
            for metric in TABLE_METRICS:
                key, dec = f"m{m}_{metric}", _DECIMALS[metric]
                if math.isfinite(row[key]):
                    ci, se = _number(row[f"{key}_ci95"], dec), _number(row[f"{key}_se"], dec)
                    cells.append(f"{row[key]:.{dec}f} ± {ci} ({se})")
                else:
                    cells.append(_DASH)
                if metric in PAPER_METRICS:
                    cells.append(_number(row[f"{key}_paper"], 2))
        cells.append("/".join(str(int(row[f"m{m}_seeds"])) for m in LATENT_SIZES))
        cells.append("/".join(str(int(row[f"m{m}_failed"])) for m in LATENT_SIZES))
        lines.append(cells)
    return lines


def to_markdown(table: Any, title: str | None = "Table 1", note: str = "") -> str:
    """Markdown: a title (none if None), a legend, the table;
    `note` (e.g. "quick run") goes first."""
    lines = format_table1(table)
    legend = (
        "Each cell: mean over seeds ± half-width of the 95% t-interval of the seed means "
        f"({_DASH} with one seed), then (per-utterance standard error). `paper`: Sadeghi & Magron "
        "(2022), Table 1 — its PESQ is raw narrow-band P.862 (pypesq), its STOI is ESTOI. "
        "`seeds` and `failed` (utterances with a missing metric): m=32/m=64."
    )
    out = [f"# {title}", ""] if title else []
    if note:
        out += [f"**{note}**", ""]
    out += [legend, ""]
    out.append("| " + " | ".join(lines[0]) + " |")
    out.append("|" + "|".join("---" for _ in lines[0]) + "|")
    out += ["| " + " | ".join(cells) + " |" for cells in lines[1:]]
    return "\n".join(out) + "\n"


def compare_corpora(tables: Mapping[str, Any], metrics: tuple[str, ...] = PAPER_METRICS) -> Any:
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


def comparison_markdown(comparison: Any) -> str:
    """compare_corpora's table as Markdown, metrics named as on Table 1."""
    header = ["model"]
    for column in comparison.columns:
        metric, corpus = column.split(" ", 1)  # metric names have no spaces; corpora may
        header.append(f"{_NAMES[metric]} {corpus}")
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for label, row in comparison.iterrows():
        cells = [str(label)]
        for column, value in row.items():
            metric = column.split(" ", 1)[0]
            cells.append(_number(value, 2 if column.endswith(" paper") else _DECIMALS[metric]))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_csv(table: Any, path: str | Path) -> None:
    """Write build_table1's table as CSV (index = model), atomically."""
    write_atomically(Path(path), lambda p: table.to_csv(p))


def read_csv(path: str | Path) -> Any:
    """Read a table written by write_csv."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no Table-1 CSV; expected one written by write_csv")
    return pd.read_csv(path, index_col="model")


def write_markdown(table: Any, path: str | Path, title: str = "Table 1", note: str = "") -> None:
    """Write to_markdown(table, title, note) to `path`, atomically."""
    text = to_markdown(table, title, note)
    write_atomically(Path(path), lambda p: p.write_text(text, encoding="utf-8"))


_SEED_DIR = re.compile(r"^seed-(\d+)$")


def collect_metrics(
    results_dir: str | Path, filename: str = "metrics.csv"
) -> dict[tuple[str, int], Any]:
    """Read every <results_dir>/<variant>/seed-<s>/<filename> into {(variant, seed): table}.

    results_dir is results/<data>/<preprocessing>; folders that are not Table-1 variants (the
    oracle, ablations) and runs without a metrics file are skipped.
    """
    found = {}
    for path in sorted(Path(results_dir).glob(f"*/seed-*/{filename}")):
        variant, seed = path.parent.parent.name, _SEED_DIR.match(path.parent.name)
        if variant in VARIANTS and seed:
            found[(variant, int(seed.group(1)))] = read_metrics(path)
    return found


def long_summary(table: Any) -> Any:
    """Table 1's seed means in long form: one row per (model, m), columns model, m and the metrics.

    For plots such as quality against sparsity; the oracle row is left out (it has no code).
    """
    import pandas as pd

    rows = []
    for label, row in table.drop(index=ORACLE, errors="ignore").iterrows():
        for m in LATENT_SIZES:
            rows.append({"model": label, "m": m} | {k: row[f"m{m}_{k}"] for k in TABLE_METRICS})
    return pd.DataFrame(rows)

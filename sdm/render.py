"""Markdown for the reports: Table 1, its corpus comparison, and the claims. One set of decimals
and one dash for a missing number, for every table.

Values are shown with DECIMALS[metric] decimals (the paper's own numbers with the 2 it prints);
differences, intervals and spreads of a value with one decimal more, because they are small.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from sdm.claims import ANY, MARGINS, STEP_TIME_LIMIT
from sdm.judging import ClaimsReport
from sdm.stats import N_RESAMPLES, NOISE_METRICS, PAPER_SD, RNG_SEED
from sdm.table1 import PAPER_METRICS, TABLE_METRICS
from sdm.variants import LATENT_SIZES

DECIMALS = {"pesq_raw_nb": 2, "pesq_wb": 2, "estoi": 3, "stoi": 3, "hoyer": 3}
PAPER_DECIMALS = 2
DASH = "—"
NAMES = {
    "pesq_raw_nb": "PESQ raw-nb",
    "estoi": "ESTOI",
    "hoyer": "Hoyer",
    "pesq_wb": "PESQ wb",
    "stoi": "STOI",
}
CONVENTION_NAMES = {
    "paper": "paper-comparable (raw-nb PESQ, ESTOI)",
    "ours": "ours (wide-band PESQ, STOI)",
}  # the keys of sdm.metrics.CONVENTIONS


def number(value: float, decimals: int) -> str:
    return DASH if not math.isfinite(value) else f"{value:.{decimals}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]


def _heading(title: str | None, note: str) -> list[str]:
    return ([f"# {title}", ""] if title else []) + ([f"**{note}**", ""] if note else [])


# -- Table 1 ------------------------------------------------------------------------------------


def table1_cells(table: pd.DataFrame) -> list[list[str]]:
    """Table 1 as rows of text cells, header first: `mean ± CI (se)`, the paper beside each."""
    header = ["model"]
    for m in LATENT_SIZES:
        for metric in TABLE_METRICS:
            header.append(f"{NAMES[metric]} m={m}")
            if metric in PAPER_METRICS:
                header.append("paper")
    header += ["seeds", "failed"]
    lines = [header]
    for label, row in table.iterrows():
        cells = [str(label)]
        for m in LATENT_SIZES:
            for metric in TABLE_METRICS:
                key, dec = f"m{m}_{metric}", DECIMALS[metric]
                if math.isfinite(row[key]):
                    ci, se = number(row[f"{key}_ci95"], dec), number(row[f"{key}_se"], dec)
                    cells.append(f"{row[key]:.{dec}f} ± {ci} ({se})")
                else:
                    cells.append(DASH)
                if metric in PAPER_METRICS:
                    cells.append(number(row[f"{key}_paper"], PAPER_DECIMALS))
        cells.append("/".join(str(int(row[f"m{m}_seeds"])) for m in LATENT_SIZES))
        cells.append("/".join(str(int(row[f"m{m}_failed"])) for m in LATENT_SIZES))
        lines.append(cells)
    return lines


def table1_markdown(table: pd.DataFrame, title: str | None = "Table 1", note: str = "") -> str:
    """Markdown: a title (none if None), `note` (e.g. "quick run"), a legend, the table."""
    lines = table1_cells(table)
    legend = (
        "Each cell: mean over seeds ± half-width of the 95% t-interval of the seed means "
        f"({DASH} with one seed), then (per-utterance standard error). `paper`: Sadeghi & Magron "
        "(2022), Table 1 — its PESQ is raw narrow-band P.862 (pypesq), its STOI is ESTOI. "
        "`seeds` and `failed` (utterances with a missing metric): m=32/m=64."
    )
    out = _heading(title, note) + [legend, ""] + _table(lines[0], lines[1:])
    return "\n".join(out) + "\n"


def comparison_markdown(comparison: pd.DataFrame) -> str:
    """sdm.table1.compare_corpora's table as Markdown, metrics named as on Table 1."""
    header = ["model"]
    for column in comparison.columns:
        metric, corpus = column.split(" ", 1)  # metric names have no spaces; corpora may
        header.append(f"{NAMES[metric]} {corpus}")
    rows = []
    for label, row in comparison.iterrows():
        cells = [str(label)]
        for column, value in row.items():
            metric = column.split(" ", 1)[0]
            paper = column.endswith(" paper")
            cells.append(number(value, PAPER_DECIMALS if paper else DECIMALS[metric]))
        rows.append(cells)
    return "\n".join(_table(header, rows)) + "\n"


# -- the claims ---------------------------------------------------------------------------------


def _interval(estimate: float, lo: float, hi: float, metric: str) -> str:
    if not math.isfinite(estimate):
        return DASH
    sign = "" if metric not in DECIMALS else "+"  # a ratio has no sign to show
    d = DECIMALS[metric] + 1 if metric in DECIMALS else 3
    return f"{estimate:{sign}.{d}f} [{lo:{sign}.{d}f}, {hi:{sign}.{d}f}]"


def _spread(value: float, metric: str) -> str:
    return number(value, DECIMALS[metric] + 1)


def _summary_cell(row: Any, comparisons: pd.DataFrame) -> str:
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


def claims_legend(n_resamples: int = N_RESAMPLES, rng_seed: int = RNG_SEED) -> str:
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


def claims_markdown(
    report: ClaimsReport,
    noise: pd.DataFrame | None = None,
    title: str | None = "Claims",
    note: str = "",
    n_resamples: int = N_RESAMPLES,
    rng_seed: int = RNG_SEED,
) -> str:
    """Markdown: the verdict per claim and convention, every comparison, and (if given) the
    seed-to-seed and per-utterance noise beside the paper's stated order."""
    summary, comps = report.summary, report.comparisons
    out = _heading(title, note) + [claims_legend(n_resamples, rng_seed), ""]
    rows = []
    for claim in dict.fromkeys(summary["claim"]):  # C1-C10, then B1, B2 when judged
        by = {r["convention"]: r for _, r in summary[summary["claim"] == claim].iterrows()}
        cells = [_summary_cell(by.get(c, by.get(ANY)), comps) for c in CONVENTION_NAMES]
        rows.append([claim, next(iter(by.values()))["statement"], *cells])
    out += _table(["claim", "statement", *CONVENTION_NAMES.values()], rows)
    header = "claim convention comparison metric".split() + ["estimate [95% CI]", "claim says"]
    rows = []
    for _, r in comps.iterrows():
        shown = r["verdict"] if r["counted"] else f"({r['verdict']}; not counted)"
        counts = [DASH if pd.isna(r[k]) else str(r[k]) for k in ("n_seeds", "n_utterances")]
        rows.append(
            [r["claim"], r["convention"], r["comparison"], r["metric"]]
            + [_interval(r["estimate"], r["ci_low"], r["ci_high"], r["metric"])]
            + [f"{r['side']} {r['boundary']:g}", shown, *counts]
            + [r["note"] if isinstance(r["note"], str) else ""]
        )
    out += ["", "**Comparisons**", ""]
    out += _table([*header, "verdict", "seeds", "utterances", "note"], rows)
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
        rows = []
        for variant, group in noise.groupby("variant", sort=False):
            by = group.set_index("metric")
            cells = [
                DASH
                if m not in by.index
                else f"{_spread(by.loc[m, 'seed_sd'], m)} / {_spread(by.loc[m, 'utterance_se'], m)}"
                for m in metrics
            ]
            rows.append([variant, str(int(group["n_seeds"].max())), *cells])
        header = ["variant", "seeds", *(f"{m} (paper ≈ {PAPER_SD[m]:g})" for m in metrics)]
        out += _table(header, rows)
    return "\n".join(out) + "\n"

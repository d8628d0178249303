"""The "Beyond the paper" page: the learned dictionaries beside the fixed ones at m = 64.

Everything comes from the results tree: per-utterance metrics (every seed) for the table and the
verdicts B1, B2; seed 0's weights (the first seed asked for) for the pictures of D and of the
codes; dictionary.csv for the coherence over training. Nothing is trained: runs that are missing
are named on the page (`missing_note`), and every section shows what the others allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sdm import results
from sdm.claims import BEYOND_CLAIMS
from sdm.dictionary import coherence, dct, max_abs_coherence
from sdm.display import BEYOND_CLAIMS as BEYOND_STATEMENTS
from sdm.display import model_label, variant_label
from sdm.variants import LEARNED_M, LEARNED_VARIANTS, get_variant

if TYPE_CHECKING:
    import pandas as pd

    from sdm.judging import ClaimsReport
    from sdm.runs import RunSpec

REFERENCES = ("vae-m64", "sdm-I-m64", "sdm-dct-k32-m64", "sdm-dct-k64-m64")
"""The models at m = 64 the learned dictionaries are set beside: the VAE and every fixed D."""
LEARNED = tuple(LEARNED_VARIANTS)
PAGE_VARIANTS = REFERENCES + LEARNED


@dataclass(frozen=True, eq=False)
class BeyondPage:
    """What the page shows: the metrics of every evaluated run of PAGE_VARIANTS, the oracle, the
    runs that are not there, the verdicts B1, B2, and where the runs live."""

    data: str
    preprocessing: str
    root: Path
    seeds: tuple[int, ...]
    metrics: dict[tuple[str, int], pd.DataFrame]
    oracle: pd.DataFrame | None
    missing: tuple[RunSpec, ...]
    report: ClaimsReport

    def run(self, variant: str, seed: int) -> Path:
        return results.run_dir(self.root, self.data, self.preprocessing, variant, seed)


def read_page(
    profile: str = "default",
    seeds: tuple[int, ...] | list[int] = (0, 1, 2, 3, 4),
    data: str = "shipped",
    preprocessing: str = "clean",
) -> BeyondPage:
    """The page's runs under a book profile (its results root and training settings)."""
    from sdm import book

    return read_results(book.pipeline_options(profile, list(seeds), data, preprocessing))


def read_results(options: Any) -> BeyondPage:
    """The page's runs (PAGE_VARIANTS at the seeds of `options`, an sdm.pipeline.Options),
    report-only: nothing is trained; trained runs without metrics are evaluated (their weights
    must be there), the others are listed as missing."""
    import dataclasses

    from sdm import pipeline
    from sdm.judging import judge_claims

    options = dataclasses.replace(options, variants=PAGE_VARIANTS, report_only=True)
    evaluated = pipeline.run(options)
    return BeyondPage(
        data=options.data,
        preprocessing=options.preprocessing,
        root=Path(options.root),
        seeds=tuple(options.seeds),
        metrics=evaluated.metrics,
        oracle=evaluated.oracle,
        missing=evaluated.missing,
        report=judge_claims(evaluated.metrics, claims=BEYOND_CLAIMS),
    )


def missing_note(page: BeyondPage) -> str:
    """A note naming the runs that are not trained (or not evaluated) yet, and the command that
    trains them; empty when every run is there."""
    if not page.missing:
        return ""
    seeds_of: dict[str, list[int]] = {}
    for spec in page.missing:
        seeds_of.setdefault(spec.model.name, []).append(spec.seed)
    listed = "; ".join(
        f"{variant_label(name)} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))})"
        for name, s in seeds_of.items()
    )
    names = " ".join(seeds_of)
    seeds = " ".join(str(s) for s in sorted({s for v in seeds_of.values() for s in v}))
    return (
        "```{note}\n"
        f"Not trained yet, so left out below: {listed}. Every table, figure and verdict on this "
        "page uses the runs that are there, and says so where one is empty. "
        f"`python -m sdm train --data {page.data} --variant {names} --seed {seeds}` trains "
        "them; rendering this page again then scores them.\n```\n"
    )


def comparison_table(page: BeyondPage) -> pd.DataFrame:
    """build_table1's rows of the page's models at m = 64 (the fixed dictionaries, the VAE, the
    learned dictionaries, the oracle): means over seeds, 95% intervals, per-utterance SE."""
    from sdm.table1 import ORACLE, build_table1

    table = build_table1(page.metrics, page.oracle, extra=LEARNED)
    return table.loc[[model_label(get_variant(v)) for v in PAGE_VARIANTS] + [ORACLE]]


def table_markdown(page: BeyondPage) -> str:
    """The comparison table as two numbered tables (the paper's metrics, the usual ones)."""
    from sdm.pagetables import latent_size_tables, seeds_text

    table = comparison_table(page)
    intro = (
        f"Each cell: the mean over {seeds_text(table)} ± the half-width of the 95% t-interval of "
        "the seed means (one seed: ± 1.96 standard errors over the test utterances); — : no "
        "evaluated run.\n\n"
    )
    caption = f"The learned dictionaries beside the fixed ones at m={LEARNED_M}"
    return intro + latent_size_tables(table, LEARNED_M, caption, "tab-beyond")


def coherence_traces(page: BeyondPage) -> pd.DataFrame:
    """dictionary.csv of every learned run: columns variant, seed, epoch, coherence_sum,
    max_abs_coherence (empty when no learned run is trained)."""
    import pandas as pd

    frames = []
    for variant in LEARNED:
        for seed in page.seeds:
            trace = results.read_dictionary_history(page.run(variant, seed))
            if trace is not None:
                frames.append(trace.assign(variant=variant, seed=seed))
    columns = ["variant", "seed", "epoch", *results.DICTIONARY_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def coherence_references() -> dict[str, tuple[float, float]]:
    """The lines the coherence figure is read against: where the learned runs start (the DCT of
    each shape: Σ and max) and the floor of Σ for k > m, k (k − m) / (2 m)."""
    refs = {}
    for k in sorted({get_variant(v).k for v in LEARNED}):
        atoms = dct(LEARNED_M, k)
        refs[f"start: DCT k={k}"] = (float(coherence(atoms)), float(max_abs_coherence(atoms)))
    k = max(get_variant(v).k for v in LEARNED)
    if k > LEARNED_M:
        refs[f"floor of Σ at k={k}"] = (k * (k - LEARNED_M) / (2 * LEARNED_M), math.nan)
    return refs


def saved_dictionaries(page: BeyondPage) -> dict[str, np.ndarray]:
    """D (m, k) of the first seed's saved weights, each learned one beside the DCT it started from:
    short label -> atoms; learned runs without weights are left out (the DCT stays)."""
    from sdm.runs import read_weights

    seed = page.seeds[0]
    shown: dict[str, np.ndarray] = {}
    for variant in LEARNED:
        config = get_variant(variant)
        shown.setdefault(f"DCT, k={config.k}", dct(config.m, config.k).numpy())
        if results.has_weights(page.run(variant, seed)):
            v = read_weights(page.run(variant, seed))["state_dict"]["dictionary.directions"][0]
            penalty = f", λ={config.coherence:g}" if config.coherence else ""
            shown[f"learned, k={config.k}{penalty}"] = (v / v.norm(dim=0, keepdim=True)).numpy()
    return shown


def has_learned_weights(page: BeyondPage) -> bool:
    return any(results.has_weights(page.run(v, page.seeds[0])) for v in LEARNED)


def frame_hoyer(page: BeyondPage) -> pd.DataFrame | None:
    """Per-frame Hoyer score of the first seed's codes over the test split (sdm.analysis), for
    every page model whose weights are there; None without a learned one."""
    from sdm.analysis import frame_hoyer as per_frame
    from sdm.analysis import load_models, seed_specs

    if not has_learned_weights(page):
        return None
    specs = seed_specs(page.seeds[0], page.data, page.preprocessing, variants=PAGE_VARIANTS)
    return per_frame(load_models(specs, page.root), page.data, page.preprocessing)


def has_estimates(page: BeyondPage, claim: str) -> bool:
    """Whether a comparison of claim B1 or B2 could be estimated (its runs are there)."""
    from sdm.pagetables import has_estimates as any_estimate

    return any_estimate(page.report.comparisons, claim)


def claim_figure(page: BeyondPage, claim: str) -> Any:
    """The claim's comparisons, estimates and 95% intervals (sdm.plotting.claim_intervals)."""
    from sdm.plotting import claim_intervals

    return claim_intervals(page.report.comparisons.assign(corpus=page.data), claim)


def verdicts_markdown(page: BeyondPage) -> str:
    """B1 and B2: the summary of verdicts, then each claim's figure and comparisons."""
    from sdm.pagetables import claim_sections, claims_summary

    summary = claims_summary(
        {page.data: page.report},
        BEYOND_STATEMENTS,
        title="Beyond the paper: verdicts per metric convention",
        name="tab-beyond-verdicts",
    )
    both = page.report.comparisons.assign(corpus=page.data)
    sections = claim_sections(both, BEYOND_CLAIMS, {page.data: page.report.summary})
    return summary + "\n" + sections


def figure_markdown(key: str, alt: str, caption: str, shown: bool, absent: str) -> str:
    """A glued figure with its number and caption when it was drawn (`shown`), else `absent`."""
    if not shown:
        return f"*{absent}*\n" if absent else ""
    return f"```{{glue:figure}} {key}\n:name: fig-{key}\n:alt: {alt}\n\n{caption}\n```\n"

"""One pipeline from a set of runs to their metrics, behind `table1`, `claims` and the book.

`run(options)` trains the runs that are missing (unless `report_only`: then it trains nothing and
names what is missing), evaluates trained runs that lack metrics, and adds the oracle. Table 1
(sdm.table1) and the claims (sdm.judging) are pure functions of its output; `table1` and `claims`
below only add writing the files (sdm.results) and the Markdown (sdm.render).

    python -m sdm table1  ->  Options  ->  run  ->  build_table1  ->  results + render
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sdm import results
from sdm.config import TrainConfig
from sdm.data import Corpus, resolve_corpus
from sdm.runs import RunConflictError, RunSpec, identity_differences, make_specs
from sdm.variants import ALL_VARIANTS, VARIANTS, select_variants

log = logging.getLogger(__name__)

QUICK_NOTE = (
    "Quick profile: a few epochs of training, for smoke tests only; not comparable to the paper."
)


@dataclass(frozen=True)
class Options:
    """Which runs a report covers and how the missing ones are made: one value for the CLI's
    `table1` and `claims` and for the book's notebooks."""

    seeds: tuple[int, ...] = (0,)
    data: str = "shipped"
    preprocessing: str = "clean"
    variants: tuple[str, ...] | None = None  # None: the 14 of Table 1 (learned: by name only)
    train: TrainConfig = TrainConfig()
    root: Path = results.RESULTS_ROOT
    report_only: bool = False  # never train: report what is trained (`--no-train`)
    device: str = "auto"
    workers: int | str = "auto"
    quick: bool = False  # label the reports as a smoke test
    progress: bool = True
    n_jobs: int | None = None  # scoring processes (None: all cores)
    launcher: Any = None  # an sdm.cluster.Launcher: train as cluster jobs; None trains here

    @property
    def extra_variants(self) -> tuple[str, ...]:
        """The variants asked for that are not in Table 1 (learned dictionaries): extra rows."""
        return tuple(v for v in self.variants or () if v not in VARIANTS)

    def specs(self) -> list[RunSpec]:
        variants = select_variants(None if self.variants is None else list(self.variants))
        return make_specs(variants, self.seeds, self.data, self.preprocessing, self.train)


@dataclass(frozen=True, eq=False)
class Evaluated:
    """What the pipeline hands to the reports: every evaluated run asked for, the oracle, and the
    runs left out because they are not trained (report-only)."""

    options: Options
    metrics: dict[tuple[str, int], pd.DataFrame]
    oracle: pd.DataFrame | None
    missing: tuple[RunSpec, ...] = field(default=())

    def title(self, kind: str) -> str:
        """`kind` — corpus, preprocessing, and which variants and seeds the numbers cover."""
        o = self.options
        head = f"{kind} — {results.data_slug(o.data)} corpus, {o.preprocessing} preprocessing"
        if not self.missing:
            chosen = o.specs()
            names = list(dict.fromkeys(s.model.name for s in chosen))
            subset = ""
            if not set(names) <= set(VARIANTS):  # learned variants asked for
                subset = f", variants {', '.join(names)}"
            elif len(names) != len(VARIANTS):
                subset = f", {len(names)} of {len(VARIANTS)} variants ({', '.join(names)})"
            return f"{head}, seeds {list(o.seeds)}{subset}"
        return f"{head}, report only: {coverage(self.metrics, len(o.specs()))}"

    def note(self) -> str:
        parts = [QUICK_NOTE] if self.options.quick else []
        if self.missing:
            labels = ", ".join(s.label for s in self.missing)
            parts.append(f"Not trained, left out (report only): {labels}.")
        return " ".join(parts)


def coverage(metrics: dict[tuple[str, int], object], asked: int) -> str:
    """Which runs a report-only report covers: "<n> of <asked> runs: seeds [0, 1] of vae-m64,
    sdm-I-m64; seed [0] of ...", variants grouped by their seeds, in Table 1's order."""
    seeds_of: dict[str, list[int]] = {}
    for name in ALL_VARIANTS:
        seeds = sorted(s for v, s in metrics if v == name)
        if seeds:
            seeds_of[name] = seeds
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, seeds in seeds_of.items():
        groups.setdefault(tuple(seeds), []).append(name)
    parts = [
        f"seed{'s' if len(seeds) > 1 else ''} {list(seeds)} of {', '.join(names)}"
        for seeds, names in groups.items()
    ]
    return f"{len(metrics)} of {asked} runs: " + ("; ".join(parts) or "none evaluated")


def run(options: Options) -> Evaluated:
    """Train what is missing (unless report-only), evaluate what lacks metrics, add the oracle."""
    from sdm.stacks import ensure_trained

    specs = list(dict.fromkeys(options.specs()))
    results.check_output_root(options.root)
    corpus: Corpus | None = None
    if not options.report_only:
        corpus = resolve_corpus(options.data)  # once for the whole command
        ensure_trained(
            specs,
            options.root,
            options.device,
            progress=options.progress,
            workers=options.workers,
            corpora={options.data: corpus},
            launcher=options.launcher,
        )
        trained, missing = specs, []
    else:
        trained = [s for s in specs if results.is_usable(s.directory(options.root))]
        missing = [s for s in specs if s not in trained]
        if missing:
            log.warning(
                "report only: not trained, left out: %s", ", ".join(s.label for s in missing)
            )
    needed = [s for s in trained if not results.is_evaluated(s.directory(options.root))]
    oracle_path = results.oracle_metrics_path(options.root, options.data, options.preprocessing)
    if corpus is None and (needed or not oracle_path.exists()):
        corpus = resolve_corpus(options.data)
    if options.report_only:
        _check_identities(trained, options.root, corpus)
    tables = ensure_evaluated(
        trained, options.root, corpus, n_jobs=options.n_jobs, progress=options.progress
    )
    oracle = oracle_metrics(
        corpus, options.data, options.preprocessing, options.root, options.n_jobs, options.progress
    )
    metrics = {(s.model.name, s.seed): tables[s] for s in trained}
    return Evaluated(options, metrics, oracle, tuple(missing))


def _check_identities(specs: list[RunSpec], root: Path, corpus: Corpus | None) -> None:
    """Report-only reads runs it did not train: refuse one trained with other settings, as
    training would (the data checksum is compared when the corpus is at hand)."""
    for spec in specs:
        saved = results.read_config(spec.directory(root))["identity"]
        wanted = spec.identity(corpus.checksum() if corpus else saved.get("data_sha256"))
        diff = identity_differences(saved, wanted)
        if diff:
            raise RunConflictError(
                f"{spec.directory(root)} holds a run with other settings ({', '.join(diff)}); "
                "report it with the settings it was trained with, or --out another results root"
            )


def ensure_evaluated(
    specs: list[RunSpec],
    root: Path = results.RESULTS_ROOT,
    corpus: Corpus | None = None,
    overwrite: bool = False,
    n_jobs: int | None = None,
    progress: bool = True,
) -> dict[RunSpec, pd.DataFrame]:
    """Per-utterance metric tables of trained runs; computes and writes the missing ones.

    Runs of one corpus, preprocessing and shape are scored together: one inference pass and one
    worker pool for the whole stack."""
    from sdm.evaluate import evaluate_model
    from sdm.runs import load_runs

    missing = [s for s in dict.fromkeys(specs) if overwrite or not _evaluated(s, root)]
    batches: dict[tuple, list[RunSpec]] = {}
    for spec in missing:
        batches.setdefault((spec.data, spec.preprocessing, spec.model.shape_key), []).append(spec)
    for (data, prep, _), batch in batches.items():
        source = corpus if corpus is not None and corpus.name == data else resolve_corpus(data)
        stack = load_runs([s.directory(root) for s in batch])
        tables = evaluate_model(stack, source, prep, n_jobs=n_jobs, progress=progress)
        for spec, table in zip(batch, tables, strict=True):
            results.write_metrics(table, spec.directory(root) / results.METRICS_FILE)
    return {s: results.read_metrics(s.directory(root) / results.METRICS_FILE) for s in specs}


def _evaluated(spec: RunSpec, root: Path) -> bool:
    return results.is_evaluated(spec.directory(root))


def oracle_metrics(
    corpus: Corpus | None,
    data: str,
    preprocessing: str,
    root: Path = results.RESULTS_ROOT,
    n_jobs: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The oracle table (true magnitude, original phase), once per corpus and preprocessing."""
    from sdm.evaluate import evaluate_oracle

    path = results.oracle_metrics_path(root, data, preprocessing)
    if not path.exists():
        source = corpus or resolve_corpus(data)
        results.write_metrics(
            evaluate_oracle(source, preprocessing, n_jobs=n_jobs, progress=progress), path
        )
    return results.read_metrics(path)


def table1(options: Options, echo: bool = True) -> pd.DataFrame:
    """Table 1 of the runs `options` names: run the pipeline, build the table (rows of variants
    left out stay empty), write table1.{csv,md}."""
    from sdm import render
    from sdm.table1 import build_table1

    evaluated = run(options)
    table = build_table1(evaluated.metrics, evaluated.oracle, extra=options.extra_variants)
    title, note = evaluated.title("Table 1"), evaluated.note()
    text = render.table1_markdown(table, title=title, note=note)
    csv_path, md_path = results.table1_paths(options.root, options.data, options.preprocessing)
    results.write_csv(table, csv_path)
    results.write_text(md_path, text)
    if echo:
        print(text)
        print(f"wrote {csv_path} and {md_path}")
    return table


def claims(options: Options, benchmarks: Path | None = None, echo: bool = True) -> tuple:
    """The claims judged on the runs `options` names (a claim whose variants are left out is
    inconclusive; B1, B2 too when learned variants are asked for): writes claims.{csv,md}, the
    comparisons and the noise CSVs beside Table 1. Returns (ClaimsReport, noise table)."""
    from sdm.claims import BEYOND_CLAIMS, CLAIMS
    from sdm.judging import BENCHMARK_DIR, judge_claims
    from sdm.stats import noise_table

    evaluated = run(options)
    # learned variants asked for by name: their claims B1, B2 are judged after C1-C10
    judged = CLAIMS | BEYOND_CLAIMS if options.extra_variants else CLAIMS
    report = judge_claims(evaluated.metrics, benchmarks or BENCHMARK_DIR, claims=judged)
    noise = noise_table(evaluated.metrics)
    paths = results.claims_paths(options.root, options.data, options.preprocessing)
    text = write_claims(report, noise, paths, evaluated.title("Claims"), evaluated.note())
    if echo:
        print(text)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return report, noise


def write_claims(
    report: Any,
    noise: pd.DataFrame,
    paths: dict[str, Path],
    title: str,
    note: str = "",
    **legend: Any,
) -> str:
    """Write the summary, comparison and noise CSVs and the Markdown; returns the Markdown."""
    from sdm import render

    text = render.claims_markdown(report, noise, title, note, **legend)
    results.write_csv(report.summary, paths["summary"], index=False)
    results.write_csv(report.comparisons, paths["comparisons"], index=False)
    results.write_csv(noise, paths["noise"], index=False)
    results.write_text(paths["markdown"], text)
    return text

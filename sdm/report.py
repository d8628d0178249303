"""Table 1 end to end: train what is missing, evaluate, summarise, write CSV and Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdm import table1 as t1
from sdm.config import TrainConfig
from sdm.experiment import ensure_evaluated, ensure_trained, make_specs, oracle_metrics
from sdm.runs import RESULTS_ROOT, data_slug
from sdm.variants import VARIANTS, select_variants

if TYPE_CHECKING:
    from sdm.cluster import Launcher

QUICK_NOTE = (
    "Quick profile: a few epochs of training, for smoke tests only; not comparable to the paper."
)


def subset_note(chosen: Sequence[Any]) -> str:
    """A title suffix naming the variants when a run covers only some of the 14."""
    if len(chosen) == len(VARIANTS):
        return ""
    return f", {len(chosen)} of {len(VARIANTS)} variants ({', '.join(c.name for c in chosen)})"


def table1_paths(data: str, preprocessing: str, root: Path = RESULTS_ROOT) -> tuple[Path, Path]:
    """Where Table 1's CSV and Markdown live for a corpus and preprocessing."""
    base = Path(root) / data_slug(data) / preprocessing
    return base / "table1.csv", base / "table1.md"


def table1(
    seeds: list[int] | tuple[int, ...] = (0,),
    data: str = "shipped",
    preprocessing: str = "clean",
    train: TrainConfig = TrainConfig(),
    root: Path = RESULTS_ROOT,
    device: str = "auto",
    quick: bool = False,
    progress: bool = True,
    n_jobs: int | None = None,
    echo: bool = True,
    workers: int | str = "auto",
    variants: Sequence[str] | None = None,
    launcher: Launcher | None = None,
) -> Any:
    """Train or reuse the 14 variants (or the named subset) x seeds, evaluate them and the
    oracle, write Table 1; rows of variants left out stay empty. `launcher`: train on a cluster
    (sdm.cluster); scoring and the table stay here."""
    chosen = select_variants(variants)
    specs = make_specs(chosen, seeds, data, preprocessing, train)
    ensure_trained(specs, root, device, progress=progress, workers=workers, launcher=launcher)
    tables = ensure_evaluated(specs, root, n_jobs=n_jobs, progress=progress)
    oracle = oracle_metrics(data, preprocessing, root, n_jobs=n_jobs, progress=progress)
    table = t1.build_table1({(s.model.name, s.seed): t for s, t in tables.items()}, oracle)
    csv_path, md_path = table1_paths(data, preprocessing, root)
    note = QUICK_NOTE if quick else ""
    title = (
        f"Table 1 — {data_slug(data)} corpus, {preprocessing} preprocessing, seeds {list(seeds)}"
        + subset_note(chosen)
    )
    t1.write_csv(table, csv_path)
    t1.write_markdown(table, md_path, title=title, note=note)
    if echo:
        print(t1.to_markdown(table, title=title, note=note))
        print(f"wrote {csv_path} and {md_path}")
    return table


def committed_table1(
    data: str = "medium", preprocessing: str = "clean", root: Path = RESULTS_ROOT
) -> Any:
    """Table 1 from whatever runs of a corpus are already evaluated under `root` (no training).

    Used to show the medium corpus's committed results beside the shipped ones; None when there
    are none. The oracle row is included when its metrics are there.
    """
    from sdm.evaluate import read_metrics

    base = Path(root) / data_slug(data) / preprocessing
    metrics = t1.collect_metrics(base)
    if not metrics:
        return None
    oracle_path = base / "oracle" / "metrics.csv"
    oracle = read_metrics(oracle_path) if oracle_path.exists() else None
    return t1.build_table1(metrics, oracle)

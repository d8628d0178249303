"""Which corpus the book's pages lead with, decided from the evaluated runs under a results root.

The medium corpus (4.4 h of speech) is the better test of the paper, but it is trained over days.
It leads once every Table-1 variant has at least MIN_SEEDS evaluated seeds there; until then the
shipped corpus leads and the pages say what the medium corpus still lacks. The campaign only has
to re-render the book as runs land.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sdm.results import RESULTS_ROOT, data_slug
from sdm.variants import VARIANTS

MIN_SEEDS = 3
LEAD_CANDIDATE = "medium"
FALLBACK = "shipped"
_SEED_DIR = re.compile(r"^seed-(\d+)$")


def evaluated_seeds(
    data: str, preprocessing: str = "clean", root: Path = RESULTS_ROOT
) -> dict[str, tuple[int, ...]]:
    """Variant -> the seeds with a metrics.csv under root/<data>/<preprocessing>/ (every variant
    is a key; an empty tuple when none)."""
    base = Path(root) / data_slug(data) / preprocessing
    found: dict[str, set[int]] = {name: set() for name in VARIANTS}
    for path in base.glob("*/seed-*/metrics.csv"):
        variant, seed = path.parent.parent.name, _SEED_DIR.match(path.parent.name)
        if variant in found and seed:
            found[variant].add(int(seed.group(1)))
    return {name: tuple(sorted(seeds)) for name, seeds in found.items()}


@dataclass(frozen=True)
class Lead:
    """The corpus the pages lead with, the others shown after it, and why."""

    data: str
    others: tuple[str, ...]
    reason: str
    missing: tuple[str, ...] = ()  # what the candidate lacks, one line per variant short of seeds


def missing_runs(seeds: dict[str, tuple[int, ...]], min_seeds: int = MIN_SEEDS) -> tuple[str, ...]:
    """One line per variant with fewer than min_seeds evaluated seeds: 'vae-m32: 0 of 3 seeds'."""
    return tuple(
        f"{name}: {len(have)} of {min_seeds} seeds" + (f" ({_seeds(have)})" if have else "")
        for name, have in seeds.items()
        if len(have) < min_seeds
    )


def _seeds(seeds: tuple[int, ...]) -> str:
    return "seed " + ", ".join(map(str, seeds)) if len(seeds) == 1 else f"seeds {list(seeds)}"


def choose_lead(
    data: str = FALLBACK,
    preprocessing: str = "clean",
    root: Path = RESULTS_ROOT,
    min_seeds: int = MIN_SEEDS,
) -> Lead:
    """The lead corpus for a book rendered for `data`.

    A profile rendered for another corpus than the shipped one (the medium profile) leads with
    it. The default book (data "shipped") leads with the medium corpus once all 14 variants have
    >= min_seeds evaluated seeds under root, otherwise with the shipped corpus; the corpus that
    does not lead is listed in `others` when it has any evaluated run.
    """
    if data != FALLBACK:
        return Lead(data, (), f"this book is rendered for the {data} corpus")
    seeds = evaluated_seeds(LEAD_CANDIDATE, preprocessing, root)
    missing = missing_runs(seeds, min_seeds)
    has_any = any(seeds.values())
    if not missing:
        return Lead(
            LEAD_CANDIDATE,
            (FALLBACK,),
            f"all {len(VARIANTS)} variants have at least {min_seeds} evaluated seeds on the "
            f"{LEAD_CANDIDATE} corpus",
        )
    done = sum(len(s) >= min_seeds for s in seeds.values())
    return Lead(
        FALLBACK,
        (LEAD_CANDIDATE,) if has_any else (),
        f"the {LEAD_CANDIDATE} corpus leads once all {len(VARIANTS)} variants have at least "
        f"{min_seeds} evaluated seeds there; {done} of {len(VARIANTS)} have them now",
        missing,
    )

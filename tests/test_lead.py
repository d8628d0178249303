"""The book's lead corpus follows the evaluated runs: medium once 14 variants x >= 3 seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdm.lead import MIN_SEEDS, choose_lead, evaluated_seeds, missing_runs
from sdm.variants import VARIANTS


def _evaluated(root: Path, data: str, variants, seeds) -> None:
    for v in variants:
        for s in seeds:
            run = root / data / "clean" / v / f"seed-{s}"
            run.mkdir(parents=True, exist_ok=True)
            (run / "metrics.csv").write_text("utterance\n")


def test_shipped_leads_while_medium_lacks_runs_and_says_what(tmp_path: Path) -> None:
    _evaluated(tmp_path, "medium", ["vae-m64", "sdm-I-m64", "sdm-dct-k64-m64"], [0])
    lead = choose_lead("shipped", root=tmp_path)
    assert lead.data == "shipped"
    assert lead.others == ("medium",)
    assert len(lead.missing) == len(VARIANTS)
    assert "vae-m64: 1 of 3 seeds (seed 0)" in lead.missing
    assert "vae-m32: 0 of 3 seeds" in lead.missing
    assert "0 of 14 have them" in lead.reason


def test_medium_leads_once_every_variant_has_three_seeds(tmp_path: Path) -> None:
    _evaluated(tmp_path, "medium", VARIANTS, range(MIN_SEEDS))
    lead = choose_lead("shipped", root=tmp_path)
    assert (lead.data, lead.others, lead.missing) == ("medium", ("shipped",), ())


def test_one_variant_short_of_a_seed_keeps_shipped_in_the_lead(tmp_path: Path) -> None:
    _evaluated(tmp_path, "medium", VARIANTS, range(MIN_SEEDS))
    (tmp_path / "medium/clean/vsc-a0.5-m32/seed-2/metrics.csv").unlink()
    lead = choose_lead("shipped", root=tmp_path)
    assert lead.data == "shipped"
    assert lead.missing == ("vsc-a0.5-m32: 2 of 3 seeds (seeds [0, 1])",)


def test_a_trained_run_without_metrics_does_not_count(tmp_path: Path) -> None:
    _evaluated(tmp_path, "medium", VARIANTS, range(MIN_SEEDS))
    (tmp_path / "medium/clean/vae-m32/seed-0/metrics.csv").unlink()
    assert evaluated_seeds("medium", root=tmp_path)["vae-m32"] == (1, 2)
    assert choose_lead(root=tmp_path).data == "shipped"


def test_no_medium_runs_at_all_lists_no_other_corpus(tmp_path: Path) -> None:
    lead = choose_lead(root=tmp_path)
    assert (lead.data, lead.others) == ("shipped", ())


def test_a_profile_for_another_corpus_leads_with_it(tmp_path: Path) -> None:
    assert choose_lead("medium", root=tmp_path).data == "medium"


@pytest.mark.parametrize("n", [0, 1, 2])
def test_missing_runs_counts_against_the_threshold(n: int) -> None:
    seeds = {"vae-m32": tuple(range(n))}
    assert missing_runs(seeds) == (
        f"vae-m32: {n} of 3 seeds"
        + ("" if n == 0 else f" ({'seed 0' if n == 1 else 'seeds [0, 1]'})"),
    )


def test_the_committed_results_choose_a_lead() -> None:
    lead = choose_lead()
    assert lead.data in ("shipped", "medium")

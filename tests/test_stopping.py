"""Training length against quality: rank correlation, the within-variant pair count, and reading
them from a results tree, with clear errors for runs that do not say how long they trained."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sdm import pagetables, plotting
from sdm.results import COLUMNS
from sdm.stopping import SeedSpread, run_lengths, seed_spread, spearman, stopping_effect


def test_spearman_of_monotone_and_reversed_ranks() -> None:
    x = np.array([1.0, 5.0, 20.0, 400.0])
    assert spearman(x, np.log(x)) == pytest.approx(1.0)
    assert spearman(x, -(x**3)) == pytest.approx(-1.0)


def test_spearman_gives_ties_their_average_rank() -> None:
    # ranks x: 1, 2.5, 2.5, 4; y: 1, 3, 2, 4 -> cov 4.5, variances 4.5 and 5 -> 4.5 / sqrt(22.5)
    assert spearman([1, 2, 2, 3], [10, 30, 20, 40]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_spearman_is_undefined_for_few_pairs_or_a_constant() -> None:
    assert math.isnan(spearman([1, 2], [2, 1]))
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    assert math.isnan(spearman([1, 2, np.nan, 4], [1, np.nan, 3, 4]))  # two finite pairs left
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2, 3], [1, 2])


def _lengths() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("vae-m32", 0, 10, 30, 1.0),
            ("vae-m32", 1, 20, 40, 3.0),
            ("vae-m32", 2, 30, 50, 2.0),  # later than seed 1 but lower: 2 of 3 pairs
            ("vae-m64", 0, 15, 35, 2.5),  # one seed: no pair
            ("sdm-I-m32", 0, 40, 60, 2.0),
            ("sdm-I-m32", 1, 40, 60, 2.2),  # same best epoch: not a pair
        ],
        columns=["variant", "seed", "best_epoch", "epochs_run", "pesq_raw_nb"],
    )


def test_the_later_stopping_seed_is_counted_pair_by_pair_within_a_variant() -> None:
    effect = stopping_effect(_lengths())
    assert (effect.n_runs, effect.n_variants, effect.pairs, effect.later_higher) == (6, 2, 3, 2)
    assert effect.rho == pytest.approx(
        spearman(_lengths()["best_epoch"], _lengths()["pesq_raw_nb"])
    )
    text = pagetables.stopping_sentences({"medium": effect})
    assert "in 2 of 3 pairs (67%" in text and "Medium corpus" in text and "(6 runs)" in text


def _run(root: Path, variant: str, seed: int, result: dict | None, pesq: list[float]) -> Path:
    run = root / "medium" / "clean" / variant / f"seed-{seed}"
    run.mkdir(parents=True)
    config = {"status": "trained"} | ({"result": result} if result is not None else {})
    (run / "config.json").write_text(json.dumps(config))
    table = pd.DataFrame({c: 0.5 for c in COLUMNS[2:-1]} | {"pesq_raw_nb": pesq}, index=[0, 1])
    table.insert(0, "utterance", ["a", "b"])
    table.insert(1, "speaker", ["s", "s"])
    table["failures"] = ""
    table.to_csv(run / "metrics.csv", index=False)
    return run


def test_run_lengths_reads_each_evaluated_runs_epochs_and_mean(tmp_path: Path) -> None:
    _run(tmp_path, "vae-m32", 0, {"best_epoch": 12, "epochs_run": 32}, [2.0, 3.0])
    _run(tmp_path, "vae-m32", 1, {"best_epoch": 40, "epochs_run": 60}, [3.0, np.nan])
    _run(tmp_path, "not-a-variant", 0, {"best_epoch": 1, "epochs_run": 2}, [1.0, 1.0])
    table = run_lengths("medium", root=tmp_path).sort_values("seed")
    assert table["variant"].tolist() == ["vae-m32", "vae-m32"]
    assert table["best_epoch"].tolist() == [12, 40]
    assert table["epochs_run"].tolist() == [32, 60]
    assert table["pesq_raw_nb"].tolist() == [2.5, 3.0]  # the NaN utterance is left out
    assert run_lengths("shipped", root=tmp_path).empty


def test_a_run_without_its_training_result_is_named(tmp_path: Path) -> None:
    run = _run(tmp_path, "vae-m64", 0, None, [2.0, 2.0])
    with pytest.raises(ValueError, match=f"{run / 'config.json'}: expected .*best_epoch"):
        run_lengths("medium", root=tmp_path)


def test_the_figure_has_one_panel_per_corpus_with_runs() -> None:
    fig = plotting.quality_vs_training_length({"a": _lengths(), "b": _lengths().iloc[:0]})
    assert [ax.get_title() for ax in fig.axes] == ["a"]
    with pytest.raises(ValueError, match="no corpus has an evaluated run"):
        plotting.quality_vs_training_length({"a": _lengths().iloc[:0]})


def test_one_seed_per_variant_gives_no_pairs_and_says_so() -> None:
    effect = stopping_effect(_lengths().drop_duplicates("variant"))
    assert (effect.pairs, effect.n_variants) == (0, 0)
    assert "no variant has two seeds" in pagetables.stopping_sentences({"shipped": effect})


def test_seed_spread_sets_each_variants_seed_range_against_the_variants_range() -> None:
    spread = seed_spread(_lengths())
    # seed ranges: vae-m32 3.0 - 1.0 = 2.0, sdm-I-m32 2.2 - 2.0 = 0.2 (vae-m64 has one seed);
    # means: vae-m32 2.0, vae-m64 2.5, sdm-I-m32 2.1
    assert spread.n_variants == 2 and spread.widest == "vae-m32"
    assert spread.median_range == pytest.approx(1.1)
    assert spread.max_range == pytest.approx(2.0)
    assert spread.between == pytest.approx(0.5)
    with pytest.raises(ValueError, match="expected evaluated runs"):
        seed_spread(_lengths().iloc[:0])


class _Report:
    def __init__(self, rows: list[tuple]) -> None:
        self.summary = pd.DataFrame(
            rows, columns=["claim", "convention", "verdict", "n_comparisons", "n_holds", "n_fails"]
        )


SPREAD = SeedSpread(n_variants=14, median_range=0.14, max_range=0.34, widest="vae-m32", between=0.3)


def test_the_headline_answers_sparser_and_no_worse_from_the_verdicts() -> None:
    report = _Report(
        [
            ("C2", "any", "holds", 6, 6, 0),
            ("C3", "paper", "inconclusive", 12, 4, 0),
            ("C3", "ours", "fails", 12, 3, 2),
        ]
    )
    text = pagetables.headline(report, SPREAD)
    assert "sparser than the VAE's?** Yes (all 6 comparisons hold)." in text
    assert (
        "no worse?** Not settled (4 of 12 comparisons hold, 0 fail, the rest are open) under the "
        "paper's metrics; under the usual ones, no: SDM-VAE scores lower (2 of 12 comparisons "
        "fail)." in text
    )
    assert "differs by 0.14 between its worst and its best seed" in text
    assert "0.34 for VAE, m=32" in text and "span 0.30" in text


def test_the_headline_says_what_has_not_run_and_leaves_out_a_spread_it_cannot_give() -> None:
    report = _Report([("C2", "any", "inconclusive: missing runs", 6, 0, 0)])
    text = pagetables.headline(report, SeedSpread(0, math.nan, math.nan, "", 0.1))
    assert "sparser than the VAE's?** Not run yet." in text
    assert "no worse?** Not run yet." in text
    assert "seeds" not in text

"""Table 1: shape, the paper's numbers, seed statistics, missing runs and failures, writers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sdm.render import comparison_markdown
from sdm.render import table1_markdown as to_markdown
from sdm.results import COLUMNS, collect_metrics, read_table1, write_csv, write_metrics, write_text
from sdm.table1 import (
    ORACLE,
    PAPER_TABLE1,
    build_table1,
    compare_corpora,
    table1_columns,
    table1_rows,
)
from sdm.variants import VARIANTS

ROWS = [
    "VAE",
    "VSC α=0.05",
    "VSC α=0.5",
    "VSC α=0.9",
    "SDM-VAE D=I",
    "SDM-VAE DCT k=32",
    "SDM-VAE DCT k=64",
]


def fake_table(values: dict[str, list[float]], n: int = 4) -> pd.DataFrame:
    """A per-utterance table with COLUMNS; metrics not given are 0.5."""
    data = {c: values.get(c, [0.5] * n) for c in COLUMNS[2:-1]}
    return pd.DataFrame(
        {"utterance": [f"u{i}.flac" for i in range(n)], "speaker": "s", **data, "failures": ""},
        columns=list(COLUMNS),
    )


def test_paper_numbers_are_stored_for_every_variant():
    assert set(PAPER_TABLE1) == set(VARIANTS)
    assert PAPER_TABLE1["vae-m32"] == {"pesq_raw_nb": 3.29, "estoi": 0.85, "hoyer": 0.40}
    assert PAPER_TABLE1["vsc-a0.05-m32"]["pesq_raw_nb"] == 3.00
    assert PAPER_TABLE1["sdm-I-m64"]["pesq_raw_nb"] == 3.45
    assert PAPER_TABLE1["sdm-dct-k64-m32"]["hoyer"] == 0.87
    assert PAPER_TABLE1["sdm-dct-k32-m64"] == {"pesq_raw_nb": 3.28, "estoi": 0.84, "hoyer": 0.66}


def test_rows_follow_the_paper():
    rows = table1_rows()
    assert list(rows) == ROWS
    assert rows["VSC α=0.05"] == {32: "vsc-a0.05-m32", 64: "vsc-a0.05-m64"}
    assert rows["SDM-VAE DCT k=32"] == {32: "sdm-dct-k32-m32", 64: "sdm-dct-k32-m64"}


def test_table_shape_and_paper_columns():
    table = build_table1({("vae-m32", 0): fake_table({})}, fake_table({}))
    assert list(table.index) == [*ROWS, ORACLE]
    assert list(table.columns) == table1_columns()
    assert table.shape == (8, 2 * (5 * 3 + 3 + 2))
    for label, per_m in table1_rows().items():
        for m, name in per_m.items():
            for metric, value in PAPER_TABLE1[name].items():
                assert table.loc[label, f"m{m}_{metric}_paper"] == value
    assert table.loc[ORACLE, ["m32_pesq_raw_nb_paper", "m64_hoyer_paper"]].isna().all()
    # absent runs leave empty cells, counted as 0 seeds
    assert math.isnan(table.loc["VSC α=0.5", "m64_estoi"])
    assert table.loc["VSC α=0.5", "m64_seeds"] == 0 and table.loc["VAE", "m32_seeds"] == 1


def test_cells_are_seed_means_with_a_t_interval_and_the_utterance_se():
    seeds = {s: [s + 1.0, s + 1.0, s + 2.0, s + 2.0] for s in range(3)}  # seed means 1.5, 2.5, 3.5
    metrics = {("sdm-I-m64", s): fake_table({"pesq_wb": v}) for s, v in seeds.items()}
    row = build_table1(metrics).loc["SDM-VAE D=I"]
    assert row["m64_pesq_wb"] == pytest.approx(2.5)
    assert row["m64_pesq_wb_ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    assert row["m64_pesq_wb_se"] == pytest.approx(np.std([1, 1, 2, 2], ddof=1) / 2)
    assert row["m64_seeds"] == 3


def test_one_seed_has_no_interval_and_shows_a_dash():
    table = build_table1({("vae-m64", 0): fake_table({"estoi": [0.7, 0.8, 0.9, 0.8]})})
    assert table.loc["VAE", "m64_estoi"] == pytest.approx(0.8)
    assert math.isnan(table.loc["VAE", "m64_estoi_ci95"])
    assert "0.800 ± — (0.041)" in to_markdown(table)


def test_failed_utterances_are_skipped_and_counted():
    table = fake_table({"pesq_wb": [4.0, np.nan, 2.0, 3.0]})
    table.loc[1, "failures"] = "pesq_wb: NoUtterancesError: No utterances detected"
    row = build_table1({("vae-m32", 0): table, ("vae-m32", 1): fake_table({})}).loc["VAE"]
    assert row["m32_pesq_wb"] == pytest.approx((3.0 + 0.5) / 2)
    assert row["m32_failed"] == 1


def test_unknown_variant_names_the_valid_ones():
    with pytest.raises(ValueError, match="vae-m32"):
        build_table1({("vae-m16", 0): fake_table({})})


def test_writers_are_atomic_and_round_trip(tmp_path):
    metrics = {("sdm-dct-k64-m32", s): fake_table({"hoyer": [0.8 + s / 100] * 4}) for s in (0, 1)}
    table = build_table1(metrics, fake_table({}))
    write_csv(table, tmp_path / "table1.csv")
    write_text(
        tmp_path / "table1.md", to_markdown(table, note="quick run: not the paper's setting")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1.csv", "table1.md"]
    pd.testing.assert_frame_equal(read_table1(tmp_path / "table1.csv"), table)
    text = (tmp_path / "table1.md").read_text(encoding="utf-8")
    assert "quick run" in text and "| SDM-VAE DCT k=64 |" in text and "| oracle |" in text
    assert "0.805 ± 0.064" in text and "3.45" in text and "0.87" in text
    assert len({line.count("|") for line in text.splitlines() if line.startswith("|")}) == 1


def test_collect_metrics_reads_the_results_tree(tmp_path):
    base = tmp_path / "shipped" / "clean"
    write_metrics(fake_table({}), base / "vae-m32" / "seed-0" / "metrics.csv")
    write_metrics(fake_table({}), base / "vae-m32" / "seed-2" / "metrics.csv")
    write_metrics(fake_table({}), base / "oracle" / "seed-0" / "metrics.csv")
    (base / "sdm-I-m32" / "seed-0").mkdir(parents=True)  # trained, not evaluated
    found = collect_metrics(tmp_path, "shipped", "clean")
    assert sorted(found) == [("vae-m32", 0), ("vae-m32", 2)]
    assert list(found[("vae-m32", 0)].columns) == list(COLUMNS)


def test_a_variant_subset_trains_and_reports_only_those(monkeypatch, tmp_path):
    """`sdm table1 --variant ...` (a big corpus, a few variants at a time): only the named runs are
    trained and evaluated, the other rows stay empty, and the title says which were run."""
    from sdm import pipeline, stacks
    from sdm.__main__ import main

    trained = []
    monkeypatch.setattr(stacks, "ensure_trained", lambda specs, *a, **k: trained.extend(specs))
    monkeypatch.setattr(
        pipeline, "ensure_evaluated", lambda specs, *a, **k: {s: fake_table({}) for s in specs}
    )
    monkeypatch.setattr(pipeline, "oracle_metrics", lambda *a, **k: fake_table({}))
    argv = ["table1", "--variant", "vae-m64", "sdm-I-m64", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    assert [s.model.name for s in trained] == ["vae-m64", "sdm-I-m64"]
    table = read_table1(tmp_path / "shipped" / "clean" / "table1.csv")
    assert table.loc["VAE", "m64_seeds"] == 1 and table.loc["VAE", "m32_seeds"] == 0
    assert table.loc["SDM-VAE DCT k=64", "m64_seeds"] == 0
    title = (tmp_path / "shipped" / "clean" / "table1.md").read_text().splitlines()[0]
    assert "2 of 14 variants (vae-m64, sdm-I-m64)" in title


def test_an_unknown_variant_in_the_subset_is_a_one_line_error(capsys):
    from sdm.__main__ import main

    assert main(["table1", "--variant", "vae-m128", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown variant 'vae-m128'" in err and "vae-m64" in err and len(err.splitlines()) == 1


def test_compare_corpora_lines_up_the_variants_the_last_corpus_has():
    shipped = build_table1(
        {(name, 0): fake_table({"estoi": [0.6] * 4}) for name in VARIANTS},
        fake_table({"estoi": [0.9] * 4}),
    )
    medium = build_table1(
        {("sdm-I-m64", 0): fake_table({"estoi": [0.8] * 4})}, fake_table({"estoi": [1.0] * 4})
    )
    got = compare_corpora({"shipped": shipped, "medium": medium})
    assert list(got.index) == ["SDM-VAE D=I, m=64", ORACLE]
    assert got.loc["SDM-VAE D=I, m=64", "estoi shipped"] == pytest.approx(0.6)
    assert got.loc["SDM-VAE D=I, m=64", "estoi medium"] == pytest.approx(0.8)
    assert got.loc["SDM-VAE D=I, m=64", "estoi paper"] == 0.87
    assert got.loc[ORACLE, "estoi medium"] == pytest.approx(1.0)
    assert math.isnan(got.loc[ORACLE, "estoi paper"])
    text = comparison_markdown(got)
    assert "| ESTOI shipped | ESTOI medium | ESTOI paper |" in text
    assert "| SDM-VAE D=I, m=64 | 0.50 | 0.50 | 3.45 | 0.600 | 0.800 | 0.87 |" in text
    with pytest.raises(ValueError, match="at least one corpus"):
        compare_corpora({})

"""What the book's pages print: Table 1 that fits the page, the claims' summary, C10 as the claims
compute it, the envelope step, notes only for parameters the user set, no machine paths, and
executed notebooks free of run-specific metadata."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from sdm import book, claims, derivation, judging, nbclean, pagetables, perfpage
from sdm.table1 import build_table1
from sdm.variants import VARIANTS


def _metrics(seeds=(0, 1, 2)) -> dict:
    rng = np.random.default_rng(0)
    cols = ["pesq_raw_nb", "pesq_wb", "pesq_nb", "estoi", "stoi", "hoyer", "is_div"]
    out = {}
    for name in VARIANTS:
        for s in seeds:
            table = pd.DataFrame({c: rng.uniform(0.3, 3.0, 15) for c in cols})
            table.insert(0, "utterance", [f"u{i}" for i in range(15)])
            table.insert(1, "speaker", [f"s{i % 6}" for i in range(15)])
            table["failures"] = ""
            out[(name, s)] = table
    return out


def _tables(markdown: str) -> list[list[str]]:
    """Header rows of the Markdown tables in a text."""
    return [
        [c for c in line.strip().strip("|").split("|")]
        for line, nxt in zip(markdown.splitlines(), markdown.splitlines()[1:])
        if line.startswith("|")
        and nxt.startswith("|:")
        or (line.startswith("|") and nxt.startswith("|-"))
    ]


def test_table1_is_two_numbered_tables_of_at_most_12_columns_with_the_test_set_size() -> None:
    text = pagetables.table1_markdown(build_table1(_metrics()), "shipped", 15, 6)
    headers = _tables(text)
    assert len(headers) == 2
    assert all(len(h) <= 12 for h in headers)
    assert text.count("```{table}") == 2
    assert "15 utterances from 6 speakers" in text
    assert "3 seeds" in text
    # "ours ± interval (paper)": the paper's VAE m=32 PESQ is 3.29
    assert re.search(
        r"\| VAE \| \d\.\d\d&thinsp;±&thinsp;\d\.\d\d<br><span class='sdm-paper'>\(3\.29\)", text
    )
    assert "pesq_raw_nb" not in text and "vae-m32" not in text


def test_one_seed_says_its_interval_is_over_utterances() -> None:
    text = pagetables.table1_markdown(build_table1(_metrics(seeds=(0,))), "medium", 992, 2)
    assert "1 seed" in text and "1.96 standard errors over the test utterances" in text


def test_claims_summary_has_a_row_per_claim_linked_to_its_section() -> None:
    report = judging.judge_claims(_metrics(), benchmarks=Path("/nonexistent"))
    text = pagetables.claims_summary({"shipped": report, "medium": report})
    rows = [line for line in text.splitlines() if line.startswith("| {ref}")]
    assert len(rows) == len(claims.CLAIMS)
    assert "{ref}`C1 <claim-c1>`" in text
    assert len(_tables(text)[0]) == 5  # claim, then corpus x convention


def test_claim_sections_define_the_targets_the_summary_links_to() -> None:
    report = judging.judge_claims(_metrics(), benchmarks=Path("/nonexistent"))
    both = report.comparisons.assign(corpus="shipped")
    text = pagetables.claim_sections(both, claims.CLAIMS, {"shipped": report.summary})
    for cid in claims.CLAIMS:
        assert f"(claim-{cid.lower()})=" in text
    assert text.count(":::{dropdown}") == len(claims.CLAIMS)


def test_c10_on_the_performance_page_is_the_claims_estimate() -> None:
    benchmarks = perfpage.load_benchmarks()
    if not any("c10_sdm_over_vae_step" in b for b in benchmarks.values()):
        pytest.skip("no committed benchmark with C10")
    report = judging.judge_claims(_metrics())
    c10 = report.comparisons[report.comparisons["claim"] == "C10"]
    for name, bench in benchmarks.items():
        for row in perfpage.c10_rows(bench):
            label = f"SDM-VAE / VAE step time, {name}:m{row['m']}"
            (estimate,) = c10.loc[c10["comparison"] == label, "estimate"]
            assert row["estimate"] == pytest.approx(estimate, rel=1e-12)


def test_the_envelope_step_holds_to_rounding() -> None:
    gaps = derivation.envelope_gradients(n=500, seed=3)
    assert gaps["mu_abs"] < 1e-12 and gaps["logvar_abs"] < 1e-12


def test_the_log_penalty_outgrows_l1_only_up_to_a_point() -> None:
    n = derivation.log_outgrows_l1_until(0.1, 4.0)
    assert 1 < n < 4.0 / 0.1 * 10
    assert derivation.log_penalty_limit(0.1, 4.0) == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("model", "k", "alpha", "noted"),
    [
        ("sdm", 64, 0.5, []),  # the defaults: nothing was set by the user
        ("sdm", 64, 0.05, ["alpha"]),
        ("vae", 64, 0.5, []),
        ("vae", 32, 0.9, ["k", "alpha"]),
        ("vsc", 32, 0.5, ["k"]),
    ],
)
def test_a_note_only_for_a_parameter_the_user_set_and_the_model_ignores(
    capsys, model: str, k: int, alpha: float, noted: list[str]
) -> None:
    book.train_parameters(model, 64, k, alpha, 0, "shipped", "clean", 10, 2, "")
    out = capsys.readouterr().out
    assert sorted(re.findall(r"parameter '(\w+)' is not used", out)) == sorted(noted)


def test_train_defaults_match_the_notebook() -> None:
    import jupytext

    nb = jupytext.read(Path(__file__).resolve().parents[1] / "notebooks" / "train.py")
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    values: dict = {}
    exec(cell.source, {}, values)
    assert {k: values[k] for k in book.TRAIN_DEFAULTS} == book.TRAIN_DEFAULTS


def test_profiles_pass_relative_paths_only() -> None:
    for profile in book.PROFILES.values():
        out = profile.notebook_parameters("train")["out"]
        assert not Path(out).is_absolute(), (profile.name, out)
    assert book.shown_path(book.REPO_ROOT / "results" / "x") == "results/x"


def test_scrub_removes_timestamps_paths_and_random_ids() -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"input_path": "/abs/in.ipynb", "duration": 3.2}
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00"}
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00"}
    injected = nbformat.v4.new_code_cell("seed = 1")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells = [cell, injected]
    text = nbformat.writes(nbclean.scrub(nb))
    assert "2026-01-01" not in text and "/abs/in.ipynb" not in text and "duration" not in text
    assert nb.cells[1]["id"] == "injected-parameters"


@pytest.mark.parametrize("path", sorted((book.BOOK_DIR / "generated").glob("*.ipynb")))
def test_committed_notebooks_are_clean_and_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert '"papermill"' not in text and "iopub.execute_input" not in text, path.name
    assert str(book.REPO_ROOT) not in text, f"{path.name} holds a machine path"
    assert path.stat().st_size < 5_500_000, f"{path.name}: {path.stat().st_size / 1e6:.1f} MB"


def test_performance_page_takes_a_medium_benchmark_file_when_there_is_one(tmp_path: Path) -> None:
    import json
    import shutil

    for path in perfpage.BENCHMARK_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    medium = {
        "machine": "cpu-2core",
        "data": "medium",
        "device": "cpu",
        "cpu": "AMD EPYC",
        "gpu": None,
        "torch": "2.13.0+cpu",
        "threads": 1,
        "date": "2026-12-02T00:00:00+00:00",
        "command": ".venv/bin/python benchmarks/train_speed.py --data medium",
        "train_frames": 696000,
        "batch_size": 128,
        "load_average_start": 0.1,
        "load_average_end": 0.2,
        "busy_at_start": False,
        "peak_gflops": 150.0,
        "ours": {"variant_frames_per_s": 80000.0, "workers": 2, "train_s": 120.0},
        "epoch_s": 120.0,
        "fraction_of_peak": {"ours": 0.42},
    }
    (tmp_path / "cpu-2core-medium.json").write_text(json.dumps(medium))
    found = perfpage.load_benchmarks(tmp_path)
    assert "cpu-2core-medium" in found
    table = perfpage.training_table(found["cpu-2core-medium"])
    assert "80,000 variant-frames/s" in table and "42.0%" in table and "120 s" in table
    assert "medium corpus" in perfpage.setting(found["cpu-2core-medium"], "cpu-2core-medium")
    assert perfpage.c10_rows(found["cpu-2core-medium"]) == []

"""The notebooks: jupytext pairs in sync, parameters from sdm's defaults, both papermill forms,
clear errors on impossible parameters, the Pages workflow valid, the book's pages present."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from sdm.book import BOOK_DIR, NOTEBOOKS, PROFILES
from sdm.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
BIN = Path(sys.executable).parent


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", [])))
        for c in nb.cells
    ]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_pair_is_in_sync_and_has_no_outputs(name: str) -> None:
    py = jupytext.read(NB_DIR / f"{name}.py")
    ipynb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    assert _cells(py) == _cells(ipynb), (
        f"notebooks/{name}.py and .ipynb differ: run `jupytext --sync notebooks/{name}.py`"
    )
    assert not any(c.get("outputs") for c in ipynb.cells if c.cell_type == "code")


def _parameters(name: str) -> dict[str, object]:
    nb = jupytext.read(NB_DIR / f"{name}.py")
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    values: dict[str, object] = {}
    exec(cell.source, {}, values)  # literals only, by design
    return values


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_has_a_parameters_cell_of_literals(name: str) -> None:
    assert _parameters(name)


def test_train_defaults_are_sdm_defaults() -> None:
    p, d = _parameters("train"), TrainConfig()
    assert (p["max_epochs"], p["patience"]) == (d.max_epochs, d.patience)
    assert (p["model"], p["m"], p["k"], p["seed"]) == ("sdm", 64, 64, 0)
    assert (p["data"], p["preprocessing"], p["device"], p["out"]) == (
        "shipped",
        "clean",
        "auto",
        "",
    )


def test_profiles_pass_only_parameters_that_notebooks_have() -> None:
    for profile in PROFILES.values():
        for name in NOTEBOOKS:
            assert set(profile.notebook_parameters(name)) <= set(_parameters(name)), (name, profile)


def test_result_pages_take_the_seeds_asked_for(monkeypatch) -> None:
    """Table 1 and the claims use the profile's result seeds, which `sdm book --seeds` replaces
    (make reproduce SEEDS=0 must not train seeds 1-4 for the claims page)."""
    import sdm.book
    from sdm.__main__ import main

    executed = []
    monkeypatch.setattr(sdm.book, "execute", lambda profile: executed.append(profile) or "")
    assert main(["book", "--profile", "reproduce", "--seeds", "0", "2"]) == 0
    (profile,) = executed
    for name in ("table1", "claims"):
        assert profile.notebook_parameters(name)["seeds"] == [0, 2]
    assert profile.notebook_parameters("sparsity")["seeds"] == [0]


def test_toc_lists_existing_pages() -> None:
    toc = yaml.safe_load((BOOK_DIR / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert any((BOOK_DIR / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f


def test_pages_workflow_is_valid(check_schema) -> None:
    code, output = check_schema("vendor.github-workflows", ROOT / ".github/workflows/book.yml")
    assert code == 0, output


def _papermill(args: list[str], tmp_path: Path, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    with open(os.devnull) as devnull:
        return subprocess.run(
            [str(BIN / "papermill"), str(NB_DIR / "train.ipynb"), *args],
            stdin=devnull,
            capture_output=True,
            cwd=tmp_path,
            env=env,
            timeout=600,
            **kw,
        )


QUICK_TRAIN = ["-p", "m", "32", "-p", "k", "32", "-p", "max_epochs", "1", "-p", "patience", "1"]


@pytest.mark.slow  # two kernels, each training a run: about a minute
def test_papermill_both_forms(tmp_path: Path) -> None:
    """With an output path, and with the executed notebook on standard output (redirected)."""
    out = ["-p", "out", str(tmp_path / "results")]
    first = _papermill([str(tmp_path / "out.ipynb"), *QUICK_TRAIN, *out], tmp_path)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "sdm-dct-k32-m32, seed 0" in text and "best epoch 1 of 1" in text

    runs = list((tmp_path / "results").glob("shipped/clean/*/seed-0/metrics.csv"))
    assert len(runs) == 1
    written = {p.name: p.stat().st_mtime_ns for p in runs[0].parent.iterdir()}

    second = _papermill([*QUICK_TRAIN, *out], tmp_path)  # stdout is a pipe: notebook JSON there
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    reused = nbformat.reads(second.stdout.decode(), as_version=4)
    outputs = [o for c in reused.cells for o in c.get("outputs", [])]
    assert any("best epoch 1 of 1" in o.get("text", "") for o in outputs)
    # the run is reused, not retrained or re-evaluated: not one of its files was written again
    assert {p.name: p.stat().st_mtime_ns for p in runs[0].parent.iterdir()} == written


@pytest.mark.slow  # a kernel each: about 15 s a case
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "model", "gan"], "model: expected 'vae', 'vsc' or 'sdm'"),
        (
            ["-p", "model", "vsc", "-p", "alpha", "1.5"],
            "alpha: VSC needs a prior spike probability",
        ),
        (["-p", "data", "nowhere/at/all"], "nowhere/at/all"),
        (["-p", "k", "-3"], "k: expected 0 (identity dictionary)"),
    ],
)
def test_impossible_parameter_fails_early_and_clearly(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = _papermill([str(tmp_path / "out.ipynb"), *args, "-p", "out", str(tmp_path)], tmp_path)
    assert result.returncode != 0
    assert message in result.stderr.decode()
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    tags = [set(c.metadata.get("tags", [])) for c in code]
    last_param = max(i for i, t in enumerate(tags) if t & {"parameters", "injected-parameters"})
    first_after = code[last_param + 1]
    assert any(o.output_type == "error" for o in first_after.get("outputs", []))

"""The repository's layout and environment files stay consistent with one another."""

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^=\s;]+$")


def requirement_lines() -> list[str]:
    text = (ROOT / "requirements.txt").read_text()
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in requirement_lines():
        name, version = line.split("==")
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_book_config_is_a_relative_symlink_to_the_top_level_config():
    link = ROOT / "book" / "_config.yml"
    assert link.is_symlink(), "book/_config.yml must be a symlink to ../_config.yml"
    assert not os.path.isabs(os.readlink(link)), "the symlink must be relative to survive a clone"
    assert link.resolve() == (ROOT / "_config.yml").resolve()
    assert yaml.safe_load(link.read_text())["execute"]["execute_notebooks"] == "off"


def test_book_toc_root_page_exists():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    root = ROOT / "book" / toc["root"]
    assert any(root.with_suffix(ext).is_file() for ext in (".md", ".ipynb")), root


def test_every_requirement_is_pinned_exactly():
    lines = requirement_lines()
    assert lines, "requirements.txt is empty"
    unpinned = [line for line in lines if not PIN.match(line)]
    assert not unpinned, f"requirements.txt: expected 'name==version' lines, got {unpinned}"


def test_requirements_pin_torch_without_local_suffix_and_the_core_tools():
    pins = pinned_versions()
    assert pins.get("torch") == "2.13.0", "requirements.txt must pin torch==2.13.0 exactly"
    assert int(pins["jupyter-book"].split(".")[0]) < 2, "the book needs Jupyter Book 1.x"
    needed = {
        "numpy",
        "scipy",
        "librosa",
        "soundfile",
        "soxr",
        "pesq",
        "pystoi",
        "matplotlib",
        "seaborn",
        "pandas",
        "tqdm",
        "papermill",
        "jupytext",
        "ipykernel",
        "pytest",
        "sympy",
        "check-jsonschema",
        "ruff",
    }
    assert not needed - pins.keys(), f"requirements.txt lacks {sorted(needed - pins.keys())}"
    assert "sdm" not in pins, "the package itself is installed editable, not pinned"


def test_environment_yml_installs_the_same_requirements_file_through_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-r requirements.txt"]]
    assert "python=3.11" in env["dependencies"]


def test_pyproject_declares_package_sdm_without_duplicating_the_pins():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "sdm"
    assert meta["tool"]["setuptools"]["packages"] == ["sdm"]
    assert meta["project"]["dependencies"] == [], "dependencies live in requirements.txt only"
    assert meta["tool"]["jupytext"]["formats"] == "ipynb,py:percent"


def test_ci_script_runs_make_test_and_stops_on_errors():
    script = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script
    assert "make test" in script


def test_citation_file_is_valid_cff(check_schema):
    pytest.importorskip("check_jsonschema")
    code, output = check_schema("vendor.citation-file-format", ROOT / "CITATION.cff")
    assert code == 0, output

"""The published build's configuration: repository, issue and Binder buttons from the workflow's
repository; the local configuration stays offline and without buttons."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "publish_config.py"
LOCAL = yaml.safe_load((ROOT / "_config.yml").read_text())
OFFICIAL = "msaadeghii/sdm-vae/tree/d3aaaef89441f4e46fa745b4d461cd76b72d7349"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args, "--out", str(tmp_path / "c.yml")],
        capture_output=True,
        text=True,
    )


def test_published_config_turns_on_repository_issue_and_binder_buttons(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        "--server-url",
        "https://github.com",
        "--repository",
        "someone/sdm",
        "--branch",
        "main",
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "c.yml").read_text())
    assert config["repository"] == {
        **LOCAL["repository"],
        "url": "https://github.com/someone/sdm",
        "branch": "main",
    }
    assert config["html"]["use_repository_button"] and config["html"]["use_issues_button"]
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["launch_buttons"]["colab_url"] == ""  # no install cell: Binder only
    # everything else is the local configuration: offline maths, no download button
    assert config["sphinx"] == LOCAL["sphinx"]
    assert config["sphinx"]["config"]["html_theme_options"]["use_download_button"] is False
    assert "sphinx-mathjax-offline" in config["sphinx"]["extra_extensions"]


def test_the_local_configuration_is_offline_and_without_buttons() -> None:
    html, launch = LOCAL["html"], LOCAL["launch_buttons"]
    assert not (html["use_repository_button"] or html["use_issues_button"])
    assert not any(launch[k] for k in ("binderhub_url", "jupyterhub_url", "colab_url", "thebe"))
    assert LOCAL["repository"]["url"] == ""
    assert LOCAL["sphinx"]["config"]["mathjax_path"].startswith("mathjax/")
    assert OFFICIAL in html["extra_footer"] and "arxiv.org/abs/2203.15758" in html["extra_footer"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server-url", "github.com", "--repository", "a/b"], "--server-url: expected"),
        (["--server-url", "https://github.com", "--repository", "nope"], "--repository: expected"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = _run(tmp_path, *args)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "c.yml").exists()


def test_binder_installs_the_package_and_the_workflow_uses_the_tool() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "-r requirements.txt" in env["dependencies"][-1]["pip"]
    assert "pip install -e . --no-deps" in (ROOT / "postBuild").read_text()
    workflow = (ROOT / ".github/workflows/book.yml").read_text()
    assert "tools/publish_config.py" in workflow and "github.repository" in workflow
    assert "--config" in workflow

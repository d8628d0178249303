"""Shared test set-up: the repo root on sys.path, a `slow` marker, and small real frames."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption(
        "--slurm",
        action="store_true",
        default=False,
        help="run the tests against a real SLURM cluster (make test-slurm)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test, run only with --runslow")
    config.addinivalue_line("markers", "slurm: needs a real SLURM cluster, run only with --slurm")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {}
    if not config.getoption("--runslow"):
        skips["slow"] = pytest.mark.skip(reason="slow: run with --runslow")
    if not config.getoption("--slurm"):
        skips["slurm"] = pytest.mark.skip(reason="real SLURM: run with make test-slurm")
    for item in items:
        for marker, skip in skips.items():
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tests' tensors are tiny: one thread is faster, and immune to a busy machine's
    oversubscription (two spinning OpenMP threads beside other work slow a step many times)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_state_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests write checkpoints, corpora and caches where they say, never into a campaign's
    SDM_STATE_DIR that happens to be set in the shell running them."""
    monkeypatch.delenv("SDM_STATE_DIR", raising=False)


@pytest.fixture(scope="session")
def check_schema():
    """Validate a file against one of check-jsonschema's built-in schemas (offline, in the wheel);
    returns the tool's exit code and output."""
    import subprocess

    def check(schema: str, path: Path) -> tuple[int, str]:
        result = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
            capture_output=True,
            text=True,
        )
        return result.returncode, result.stdout + result.stderr

    return check


@pytest.fixture(scope="session")
def frames_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder private to this test session, so tests never read a stale repo cache."""
    return tmp_path_factory.mktemp("frames-cache")


@pytest.fixture(scope="session")
def shipped_frames(frames_cache: Path) -> np.ndarray:
    """512 real training power frames of the shipped corpus, float32 (512, 513), seeded sample."""
    from sdm.data import frames

    x = frames("shipped", "train", "clean", cache_dir=frames_cache)
    rows = np.random.default_rng(0).choice(len(x), size=512, replace=False)
    return x[np.sort(rows)]

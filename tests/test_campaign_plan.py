"""tools/campaign_plan.py keeps what finishes in the hours given, shortest first, balanced over
processes, and counts a trained run without weights as missing (it cannot be scored)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import campaign_plan as cp  # noqa: E402

from sdm import results  # noqa: E402


def runs(*epochs: float) -> list[cp.Run]:
    return [cp.Run(f"v{i}", 1, e) for i, e in enumerate(epochs)]


def test_plan_keeps_the_shortest_that_fit_and_balances_them():
    packed = cp.plan(
        runs(100, 30, 10, 20), processes=2, seconds=40, seconds_per_member_epoch=1, score_seconds=0
    )
    loads = sorted(sum(r.epochs for r in p) for p in packed)
    assert loads == [30, 30]  # 30 | 20 + 10; the 100-epoch run is left
    assert {r.epochs for p in packed for r in p} == {10, 20, 30}


def test_plan_counts_scoring_and_can_keep_nothing():
    # 10 epochs + 5 s of scoring per run: two runs of 10 fit 15 s only one per process
    packed = cp.plan(runs(10, 10, 10), 2, seconds=15, seconds_per_member_epoch=1, score_seconds=5)
    assert sorted(len(p) for p in packed) == [1, 1]
    assert cp.plan(runs(50), 2, seconds=40, seconds_per_member_epoch=1, score_seconds=0) == []


def test_plan_refuses_nonsense():
    with pytest.raises(ValueError, match="positive"):
        cp.plan(runs(1), 0, seconds=10, seconds_per_member_epoch=1, score_seconds=0)


def _trained(run: Path, epochs: int, weights: bool = False, metrics: bool = False) -> None:
    run.mkdir(parents=True)
    (run / results.CONFIG_FILE).write_text(
        json.dumps({"status": "trained", "result": {"epochs_run": epochs}})
    )
    (run / results.HISTORY_FILE).write_text("epoch\n1\n")
    if weights:
        (run / results.WEIGHTS_FILE).write_bytes(b"w")
    if metrics:
        (run / results.METRICS_FILE).write_text("utterance\n")


def test_missing_runs_and_expected_epochs(tmp_path: Path):
    run = lambda v, s: results.run_dir(tmp_path, "medium", "clean", v, s)  # noqa: E731
    _trained(run("vae-m32", 0), 60, metrics=True)
    _trained(run("vae-m32", 1), 80, weights=True)  # scorable: done
    _trained(run("vae-m64", 1), 40)  # trained, weights gone, not scored: train again
    epochs = cp.expected_epochs(tmp_path, "medium")
    assert epochs == {"vae-m32": 70.0, "vae-m64": 40.0}
    todo = {
        (r.variant, r.seed): r.epochs
        for r in cp.missing_runs(tmp_path, "medium", [1], epochs, "clean")
    }
    assert ("vae-m32", 1) not in todo
    assert todo[("vae-m64", 1)] == 40.0
    assert todo[("sdm-I-m64", 1)] == 70.0  # no finished seed: the longest known
    assert len(todo) == 13


def test_commands_chain_seeds_in_table1_order(tmp_path: Path):
    process = [cp.Run("vae-m64", 2, 1), cp.Run("sdm-I-m32", 1, 1), cp.Run("vae-m32", 1, 1)]
    line = cp.commands(process, "medium", tmp_path, tmp_path / "state", tmp_path / "r", "p1.log")
    words = shlex.split(line)
    first, second = words[words.index("-c") + 1].split(" && ")  # one train per seed, in turn
    assert "--seed 1 " in first and first.endswith("--variant vae-m32 sdm-I-m32")
    assert "--seed 2 " in second and "--variant vae-m64" in second
    assert "OMP_NUM_THREADS=1" in line and line.endswith("&")

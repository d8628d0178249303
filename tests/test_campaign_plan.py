"""tools/campaign_plan.py keeps what finishes in the hours given, shortest first, balanced over
processes, and counts a trained run without weights as missing (it cannot be scored)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
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


def _held_checkpoint(root: Path, frames: np.ndarray, epochs: int) -> Path:
    """A real stack checkpoint (TrainingState's own state_dict) of vae-m32 and sdm-I-m32, seed 1,
    after `epochs` validated epochs with patience 5, where the results tree `root` keeps them."""
    import torch

    from sdm.config import TrainConfig
    from sdm.training_state import TrainingState
    from sdm.variants import get_variant

    x = torch.from_numpy(frames[:512])
    cfg = TrainConfig(batch_size=128, patience=5, max_epochs=100, val_every_steps=1)
    state = TrainingState(
        [get_variant("vae-m32"), get_variant("sdm-I-m32")],
        [1, 1],
        x[:384],
        x[384:],
        cfg,
        torch.device("cpu"),
    )
    for _ in range(epochs):
        state.run_epoch()
        state.validate()
    path = results.checkpoint_dir(root, "medium", "clean") / "stack-0123456789abcdef.pt"
    path.parent.mkdir(parents=True)
    torch.save(state.state_dict(), path)
    return path


def test_runs_a_checkpoint_holds_resume_there_and_are_not_started_again(
    tmp_path: Path, shipped_frames, monkeypatch
):
    monkeypatch.delenv("SDM_STATE_DIR", raising=False)
    path = _held_checkpoint(tmp_path, shipped_frames, epochs=2)
    # expected 40 epochs for the VAE: 38 still to go; sdm-I-m32 has no finished seed -> the
    # longest known (40) too; with an expected 3 epochs, the patience left (5 - since_best) wins
    held = {(r.variant, r.seed): r for r in cp.held_runs(tmp_path, "medium", {"vae-m32": 40.0})}
    assert set(held) == {("vae-m32", 1), ("sdm-I-m32", 1)}
    assert held[("vae-m32", 1)].epochs == 38.0 and held[("vae-m32", 1)].checkpoint == path
    short = cp.held_runs(tmp_path, "medium", {"vae-m32": 3.0, "sdm-I-m32": 3.0})
    assert all(3.0 <= r.epochs <= 5.0 for r in short)

    todo = cp.missing_runs(tmp_path, "medium", [1], {"vae-m32": 40.0}, "clean", list(held.values()))
    assert len(todo) == 14 and sum(r.checkpoint is not None for r in todo) == 2
    # the held pair stays together even when one process would fit nothing else; new runs fill
    # the other process only
    packed = cp.plan(todo, 2, seconds=45, seconds_per_member_epoch=1, score_seconds=0)
    together = [p for p in packed if any(r.checkpoint for r in p)]
    assert len(together) == 1 and {r.variant for r in together[0]} == {"vae-m32", "sdm-I-m32"}
    line = cp.commands(together[0], "medium", tmp_path, tmp_path / "s", tmp_path, "p1.log")
    first = shlex.split(line)[shlex.split(line).index("-c") + 1].split(" && ")[0]
    assert first.endswith(
        "--seed 1 --workers 1 --checkpoint-seconds 300 "
        f"--out {tmp_path} --variant vae-m32 sdm-I-m32"
    )


def test_a_finished_member_of_a_checkpoint_is_not_held(tmp_path: Path, shipped_frames, monkeypatch):
    monkeypatch.delenv("SDM_STATE_DIR", raising=False)
    _held_checkpoint(tmp_path, shipped_frames, epochs=1)
    _trained(results.run_dir(tmp_path, "medium", "clean", "vae-m32", 1), 30, metrics=True)
    held = cp.held_runs(tmp_path, "medium", {})
    assert [(r.variant, r.seed) for r in held] == [("sdm-I-m32", 1)]


def test_the_plan_needs_the_campaigns_state_folder(monkeypatch, capsys):
    monkeypatch.delenv("SDM_STATE_DIR", raising=False)
    with pytest.raises(SystemExit) as stop:
        cp.main(["--seeds", "1", "--hours", "1"])
    assert stop.value.code == 2
    assert "SDM_STATE_DIR is not set" in capsys.readouterr().err

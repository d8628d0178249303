"""Training through a launcher (`sdm.cluster`), with submitit's local executor standing in for
SLURM: the real pipeline (`ensure_trained`) and real job processes, no cluster.

Every job trains members of the shipped corpus for 2 epochs, with one torch thread, under
pytest's tmp_path. tests/test_slurm.py runs the same against a real SLURM (make test-slurm).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest
import torch

from sdm import results
from sdm.cluster import JobsFailedError, Launcher, TrainingPending, _Job
from sdm.config import TrainConfig
from sdm.jobspec import JobSpec
from sdm.parallel import shard_checkpoint
from sdm.runs import make_specs
from sdm.scheduler import LocalProcesses
from sdm.stacks import ensure_trained
from sdm.variants import get_variant

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [get_variant("vae-m32"), get_variant("sdm-dct-k32-m32")]
TWO_EPOCHS = TrainConfig(max_epochs=2)


@pytest.fixture(autouse=True)
def _job_environment(monkeypatch):
    """Job processes import this checkout's sdm and run one thread, like the tests."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _specs(cfg: TrainConfig = TWO_EPOCHS):
    return make_specs(VARIANTS, [0], "shipped", "clean", cfg)


def _launcher(jobs: int = 2, wait: bool = True) -> Launcher:
    return Launcher(JobSpec(jobs=jobs), wait, False, LocalProcesses(), poll_s=0.3, grace_s=3.0)


def _train(root: Path, launcher: Launcher | None, cfg: TrainConfig = TWO_EPOCHS) -> list[Path]:
    return ensure_trained(_specs(cfg), root, "cpu", progress=False, workers=1, launcher=launcher)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / results.WEIGHTS_FILE, weights_only=True)["state_dict"]


def _assert_same_runs(a: list[Path], b: list[Path], same_stack: bool = True) -> None:
    for x, y in zip(a, b, strict=True):
        wx, wy = _weights(x), _weights(y)
        assert wx.keys() == wy.keys()
        for k in wx:
            assert torch.equal(wx[k], wy[k]), f"{x.name}: {k} differs"
        cx, cy = results.read_config(x), results.read_config(y)
        assert cx["identity"] == cy["identity"]
        if same_stack:
            assert cx["environment"]["stack"] == cy["environment"]["stack"]


def _ckpt(root: Path) -> Path:
    return results.checkpoint_dir(root, "shipped", "clean")


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory) -> list[Path]:
    """The same members trained here, in one process with one thread."""
    return _train(tmp_path_factory.mktemp("local"), None)


def test_jobs_write_what_a_local_run_writes_and_a_failed_one_is_resubmitted_alone(
    local_runs, tmp_path, caplog
):
    # shard 1 of the stack resumes from a checkpoint of other members: its job raises, shard 0's
    # trains (a damaged file would be refused before anything is submitted: test_bad_inputs)
    specs = _specs()
    damaged = shard_checkpoint(results.stack_checkpoint(tmp_path, "shipped", "clean", specs), 1, 2)
    damaged.parent.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "legacy" / "stack-legacy.shard1of2.pt", damaged)
    with pytest.raises(JobsFailedError) as err:
        _train(tmp_path, _launcher(jobs=2))
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith("1 job(s) failed"), lines
    job_line = lines[1]  # one line: the job, the members it held, what happened, its log's tail
    assert job_line.startswith("job ") and "raised " in job_line and "_log.out ends: " in job_line
    (failed,) = [s for s in specs if f"({s.model.name}/seed-0)" in job_line]
    (done,) = [s for s in specs if s != failed]
    assert results.is_trained(done.directory(tmp_path)), "the other job did not go on"
    assert not results.is_trained(failed.directory(tmp_path))

    damaged.unlink()
    caplog.set_level(logging.INFO, logger="sdm")
    trained = _train(tmp_path, _launcher(jobs=2))
    submitted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("submitted")]
    assert len(submitted) == 1 and submitted[0].endswith(f": {failed.model.name}/seed-0")
    # bitwise the weights of a local run; the resubmitted member trained in a stack of its own
    _assert_same_runs(trained, local_runs, same_stack=False)
    for run_dir in trained:
        assert results.read_config(run_dir)["environment"]["threads"] == 1  # the job's one CPU
    folder = _ckpt(tmp_path)
    assert not list(folder.glob("stack-*.pt")), "checkpoints of a finished stack stay behind"
    assert not list((folder / "jobs").glob("*.json")), "job records stay behind"
    assert not list((folder / "jobs").glob("*.pkl")), "submitit pickles stay behind"
    logs = sorted((folder / "jobs").glob("*_log.out"))
    assert len(logs) == 3
    assert all("training with 1 torch thread(s)" in p.read_text() for p in logs)
    # finished runs are reused by identity: nothing is submitted again
    assert _train(tmp_path, _launcher(jobs=2)) == trained
    assert len(list((folder / "jobs").glob("*_log.out"))) == 3


def _kill_job(job_id: str) -> None:
    """What SLURM does to a job it ends: every process of it killed at once."""
    controller = psutil.Process(int(job_id))
    for p in [*controller.children(recursive=True), controller]:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs([controller], timeout=10)


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((_ckpt(root) / "jobs").glob("*.json"))]


@pytest.mark.slow
def test_no_wait_returns_a_rerun_follows_the_jobs_and_resubmits_what_a_killed_job_held(
    local_runs, tmp_path, caplog
):
    with pytest.raises(TrainingPending, match="1 job"):
        _train(tmp_path, _launcher(jobs=1, wait=False))
    (first,) = _records(tmp_path)
    # the same command while the job runs: it is followed, not submitted again
    with pytest.raises(TrainingPending, match=first["job_id"]):
        _train(tmp_path, _launcher(jobs=1, wait=False))
    assert _records(tmp_path) == [first]

    _kill_job(first["job_id"])
    caplog.set_level(logging.INFO, logger="sdm")
    trained = _train(tmp_path, _launcher(jobs=1))
    (warning,) = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("job ")
    ]
    assert warning.startswith(f"job {first['job_id']} (vae-m32/seed-0, sdm-dct-k32-m32/seed-0)")
    assert "ended without a result" in warning and "submitted again" in warning
    _assert_same_runs(trained, local_runs)
    assert _records(tmp_path) == []


def test_a_failure_line_says_how_slurm_ended_the_job_and_ends_with_its_log(tmp_path):
    log = tmp_path / "7_0_log.out"
    log.write_text(
        "2026 training with 4 torch thread(s)\n"
        "submitit WARNING - Bypassing signal SIGTERM\n"
        "slurmstepd: error: Detected 1 oom_kill event in StepId=7.0.\n\n"
    )
    job = _Job(
        "7",
        ("vae-m64/seed-0", "sdm-I-m64/seed-1"),
        (),
        tmp_path / "c.pt",
        tmp_path / "r.json",
        log,
        tmp_path / "7_0_result.pkl",
    )
    line = job.failure("OUT_OF_MEMORY", "None")
    assert line == (
        f"job 7 (vae-m64/seed-0, sdm-I-m64/seed-1) ran out of memory (SLURM state OUT_OF_MEMORY); "
        f"log {log} ends: 2026 training with 4 torch thread(s) | "
        "slurmstepd: error: Detected 1 oom_kill event in StepId=7.0."
    )
    assert "reached its time limit (SLURM state TIMEOUT, reason TimeLimit)" in job.failure(
        "TIMEOUT", "TimeLimit"
    )
    assert "SLURM no longer lists it" in job.failure(None, "")


@pytest.mark.slow
def test_a_requeued_job_resumes_from_its_shard_checkpoint(tmp_path):
    """submitit's preemption signal (USR2) in the middle of training: the job checkpoints its
    call, is requeued, resumes from the shard's training checkpoint and ends with the weights
    of an uninterrupted run."""
    cfg = TrainConfig(max_epochs=6, checkpoint_seconds=0)
    whole = _train(tmp_path / "whole", None, cfg)
    root = tmp_path / "requeued"
    with pytest.raises(TrainingPending):
        _train(root, _launcher(jobs=1, wait=False), cfg)
    (record,) = _records(root)
    checkpoint = Path(record["checkpoint"])
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "no checkpoint was written"
    (task,) = psutil.Process(int(record["job_id"])).children()
    task.send_signal(signal.SIGUSR2)
    trained = _train(root, _launcher(jobs=1), cfg)
    log = Path(record["log"]).read_text()
    assert "Requeued job" in log and "resumed" in log, log
    _assert_same_runs(trained, whole)

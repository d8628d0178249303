"""Against a real SLURM: `make test-slurm` starts a single-node cluster (tools/slurm-up) and runs
these with `pytest --slurm`. Every command is a real `python -m sdm` process; every job is a
real SLURM job with 1 CPU, training members of the shipped corpus under pytest's tmp_path.

Checked: a 2-member, 2-epoch `table1` in 2 jobs writes Table 1 and weights bitwise equal to a
local run of the same members with the same thread count; a scancelled job is one line (job id,
members, log tail) while the other job goes on; `--no-wait` returns, and the same command later
follows the job instead of submitting it again; a rerun submits only what is missing and
resumes from the shard's checkpoint, also after `scontrol requeue`; bad options are refused in
one line before anything is submitted.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["vae-m32", "sdm-dct-k32-m32"]
JOB_NAME = "sdm-train"
# A 1-CPU job trains one shipped member at about 4 epochs/s: 60 epochs leave it running for
# ~15 s after its first checkpoint, so scancel and requeue reach it while it trains (12 epochs,
# 3 s, lost that race on a loaded machine: the job had finished before scancel arrived).
EPOCHS = 60


def _answers() -> str | None:
    """Why there is no cluster to test against, or None when one answers."""
    if shutil.which("sinfo") is None:
        return "no SLURM here (run tools/slurm-up, or make test-slurm)"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 10 s"
    if done.returncode != 0 or not done.stdout.strip():
        return f"the SLURM cluster does not answer: {done.stderr.strip() or 'no nodes'}"
    return None


@pytest.fixture(scope="module", autouse=True)
def _cluster():
    reason = _answers()
    if reason is not None:
        pytest.skip(reason)


def _env() -> dict[str, str]:
    # one thread in the local comparison runs; the jobs run as many threads as their CPUs (1)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("SDM_STATE_DIR", None)
    return env


def _sdm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sdm", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sdm", *args],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _slurm(*args: str) -> list[str]:
    cmd = ["squeue", "-h", "-t", "all", "-n", JOB_NAME, "-o", "%i|%T", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    return out.split()


def _our_jobs() -> dict[str, str]:
    return dict(line.split("|") for line in _slurm())


def _wait_for(what, timeout: float = 300, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what.__doc__ or what}")


def _weights(root: Path, variant: str) -> dict[str, torch.Tensor]:
    path = root / "shipped" / "clean" / variant / "seed-0" / "model.pt"
    return torch.load(path, weights_only=True)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    for variant in VARIANTS:
        wa, wb = _weights(a, variant), _weights(b, variant)
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"{variant}: {k} differs from the local run"


def _train_args(out: Path, epochs: int, *more: str) -> list[str]:
    return [
        "train",
        "--variant",
        *VARIANTS,
        "--max-epochs",
        str(epochs),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
        *more,
    ]


SLURM = ["--launcher", "slurm", "--jobs", "2", "--cpus-per-job", "1", "--time", "15"]


def test_table1_in_two_jobs_equals_a_local_run(tmp_path):
    out, local = tmp_path / "slurm", tmp_path / "local"
    before = set(_our_jobs())
    done = _sdm("table1", "--variant", *VARIANTS, "--max-epochs", "2", "--out", str(out), *SLURM)
    assert done.returncode == 0, done.stderr
    jobs = set(_our_jobs()) - before
    assert len(jobs) == 2, f"expected 2 jobs, SLURM ran {sorted(jobs)}"
    with open(out / "shipped" / "clean" / "table1.csv", newline="") as f:
        seeds = {r["model"]: r["m32_seeds"] for r in csv.DictReader(f)}
    # the two trained rows are scored (here, on the login node), the others stay empty
    assert {m for m, n in seeds.items() if n == "1"} == {"VAE", "SDM-VAE DCT k=32", "oracle"}

    ran = _sdm(*_train_args(local, 2, "--workers", "1"))
    assert ran.returncode == 0, ran.stderr
    _assert_same_weights(out, local)
    folder = out / "shipped" / "clean" / "ckpt"
    assert not list(folder.glob("stack-*.pt")) and not list(folder.glob("jobs/*.json"))
    logs = {p.name.split("_")[0] for p in folder.glob("jobs/*_log.out")}
    assert logs == jobs  # the runs came from these SLURM jobs


def test_scancel_no_wait_requeue_and_rerun(tmp_path):
    out, local = tmp_path / "slurm", tmp_path / "local"
    args = _train_args(out, EPOCHS, "--checkpoint-seconds", "0", *SLURM)
    ckpt = out / "shipped" / "clean" / "ckpt"
    before = set(_our_jobs())

    # 1. scancel a running job: one line for it, while the other job goes on and finishes
    command = _start(*args)

    def running_with_a_checkpoint():
        """a job of ours running, with its shard checkpoint written"""
        running = [j for j, s in _our_jobs().items() if j not in before and s == "RUNNING"]
        return running if running and list(ckpt.glob("stack-*.pt")) else None

    (cancelled,) = _wait_for(running_with_a_checkpoint)[:1]
    subprocess.run(["scancel", cancelled], check=True, timeout=30)
    stdout, stderr = command.communicate(timeout=600)
    assert command.returncode == 1, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("job ")]
    assert len(lines) == 1, stderr
    (line,) = lines
    assert line.startswith(f"job {cancelled} (") and "was cancelled" in line, line
    assert "SLURM state CANCELLED" in line and f"{cancelled}_0_log.out ends: " in line, line
    assert "raised sdm.guards.Interrupted: stopped by SIGTERM" in line, line  # the job's own words
    log_text = (ckpt / "jobs" / f"{cancelled}_0_log.out").read_text()
    assert "CANCELLED AT" in log_text, log_text  # SLURM's, in the log the line points to
    member = re.match(rf"job {cancelled} \(([^)]*)\)", line).group(1)
    assert member in {f"{v}/seed-0" for v in VARIANTS}
    other = next(v for v in VARIANTS if f"{v}/seed-0" != member)
    assert (out / "shipped" / "clean" / other / "seed-0" / "config.json").exists()

    # 2. --no-wait submits only the cancelled job's member and returns
    seen = set(_our_jobs())
    done = _sdm(*args, "--no-wait")
    assert done.returncode == 0, done.stderr
    (resubmitted,) = set(_our_jobs()) - seen
    assert f"1 job(s) queued or running ({resubmitted})" in done.stdout

    # 3. preempted: SLURM requeues the job once it has trained on, and it resumes again
    log = ckpt / "jobs" / f"{resubmitted}_0_log.out"
    (record,) = ckpt.glob("jobs/*.json")
    shard_file = Path(json.loads(record.read_text())["checkpoint"])

    def two_epochs_past_the_resume():
        """the resubmitted job resumed and has checkpointed two more epochs"""
        found = re.search(r"resumed .* at epoch (\d+)", log.read_text() if log.exists() else "")
        if found is None or not shard_file.exists():
            return False
        epoch = torch.load(shard_file, weights_only=False)["epoch"]
        return epoch >= int(found.group(1)) + 2

    _wait_for(two_epochs_past_the_resume)
    subprocess.run(["scontrol", "requeue", resubmitted], check=True, timeout=30)
    # SLURM holds a requeued job back for a while (its begin time); the test lets it go now
    _wait_for(lambda: _our_jobs().get(resubmitted) == "PENDING")
    subprocess.run(
        ["scontrol", "update", f"JobId={resubmitted}", "StartTime=now"], check=True, timeout=30
    )

    # 4. the same command follows the requeued job rather than submitting another
    seen = set(_our_jobs())
    done = _sdm(*args)
    assert done.returncode == 0, done.stderr
    assert not set(_our_jobs()) - seen, "the rerun submitted a job again"
    text = log.read_text()
    assert text.count("resumed") == 2, text  # after scancel, and after the requeue

    ran = _sdm(*_train_args(local, EPOCHS, "--workers", "1"))
    assert ran.returncode == 0, ran.stderr
    _assert_same_weights(out, local)
    assert not list(ckpt.glob("stack-*.pt")) and not list(ckpt.glob("jobs/*.json"))


@pytest.mark.parametrize(
    "more, message",
    [
        (["--partition", "no-such-partition"], "--partition no-such-partition: no such partition"),
        (["--cpus-per-job", "512"], "SLURM refuses jobs with"),
    ],
)
def test_bad_options_are_one_line_before_anything_is_submitted(tmp_path, more, message):
    before = set(_our_jobs())
    done = _sdm(*_train_args(tmp_path, 2, "--launcher", "slurm", *more))
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0], done.stderr
    assert not set(_our_jobs()) - before
    assert not tmp_path.joinpath("shipped").exists()

"""The scheduler seen through its commands: SLURM (sbatch, sinfo, squeue), or this machine's
processes through submitit's local executor (the tests' stand-in for a cluster).

Job states come from `squeue` (with a timeout on every call), not from `sacct`. submitit's own
watcher reads `sacct`, which needs SLURM's accounting database (slurmdbd + MariaDB): without it
every job is UNKNOWN and a job that SLURM killed is waited for forever. Many lab clusters run
without accounting, and a test cluster without it comes up in seconds. squeue lists a job until
MinJobAge (300 s by default) after it ended, with its final state (CANCELLED, TIMEOUT,
OUT_OF_MEMORY, ...); a job that ended without writing its result, whether squeue still lists it or
not, has failed, and its log says how.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdm.jobspec import JobSpec

ENDED = {  # final SLURM states, and how a failure line says them (None: no longer listed)
    "COMPLETED": "ended without a result",
    "FAILED": "failed",
    "CANCELLED": "was cancelled (scancel, or by an administrator)",
    "TIMEOUT": "reached its time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "lost its node",
    "BOOT_FAIL": "could not start its node",
    "DEADLINE": "reached its deadline",
    "PREEMPTED": "was preempted and not requeued",
    None: "ended without a result (SLURM no longer lists it)",
}
# the states in which SLURM, not the job, ended it: a failure line gives this cause first
ENDED_BY_SLURM = frozenset(ENDED) - {"COMPLETED", "FAILED", None}
COMMAND_TIMEOUT_S = 60  # a SLURM command that takes longer counts as no answer
MAX_REQUEUES = 10  # times a job that reaches its time limit is requeued to go on


class LauncherError(ValueError):
    """Launcher options or the cluster refuse the jobs before any is submitted."""


def _run(command: list[str]) -> subprocess.CompletedProcess | None:
    """A SLURM command's result, or None when it did not answer in time."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (subprocess.TimeoutExpired, OSError):
        return None


def last_line(text: str) -> str:
    """The last non-empty line of a command's output or a traceback: what it ended with."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


class Slurm:
    """The cluster, seen through sbatch, sinfo and squeue."""

    def check(self, spec: JobSpec) -> None:
        """Refuse, in one line, what would make every submission fail: no SLURM commands, an
        unknown partition, resources the cluster cannot give (`sbatch --test-only`)."""
        for command in ("sbatch", "squeue", "sinfo", "srun"):
            if shutil.which(command) is None:
                raise LauncherError(
                    f"--launcher slurm: `{command}` is not on PATH (run on a SLURM login node)"
                )
        if spec.partition is not None:
            listed = _run(["sinfo", "-h", "-o", "%P"])
            if listed is None or listed.returncode != 0:
                raise LauncherError(f"--launcher slurm: sinfo does not answer ({_why(listed)})")
            names = [p.strip().rstrip("*") for p in listed.stdout.split()]
            if spec.partition not in names:
                raise LauncherError(
                    f"--partition {spec.partition}: no such partition; this cluster has "
                    + ", ".join(listed.stdout.split())
                )
        test = _run(["sbatch", "--test-only", *spec.sbatch_flags(), "--wrap", "true"])
        if test is None or test.returncode != 0:
            raise LauncherError(
                f"--launcher slurm: SLURM refuses jobs with {' '.join(spec.sbatch_flags())} "
                f"({_why(test)})"
            )

    def executor(self, folder: Path, spec: JobSpec) -> Any:
        import submitit

        executor = submitit.SlurmExecutor(folder, max_num_timeout=MAX_REQUEUES)
        executor.update_parameters(job_name="sdm-train", stderr_to_stdout=True, **spec.sbatch())
        return executor

    def states(self, job_ids: Sequence[str]) -> dict[str, tuple[str, str]] | None:
        """Job id -> (state, reason) of the jobs squeue lists; None when squeue did not answer."""
        done = _run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(job_ids)])
        if done is None:
            return None
        if done.returncode != 0:
            # squeue refuses a list in which it knows no job at all: they all ended long ago
            return {} if "Invalid job id" in done.stderr else None
        states = {}
        for line in done.stdout.splitlines():
            job_id, state, reason = (line.split("|") + ["", ""])[:3]
            states[job_id.strip()] = (state.strip(), reason.strip())
        return states


def _why(done: subprocess.CompletedProcess | None) -> str:
    if done is None:
        return f"no answer within {COMMAND_TIMEOUT_S} s"
    return last_line(done.stderr or done.stdout)


class LocalProcesses:
    """submitit's local executor: jobs are processes of this machine (for the tests: the same
    pipeline, no cluster). A job is alive while its controller process is."""

    def check(self, spec: JobSpec) -> None:
        """Nothing to check: this machine runs every job."""

    def executor(self, folder: Path, spec: JobSpec) -> Any:
        import submitit

        executor = submitit.LocalExecutor(folder, max_num_timeout=MAX_REQUEUES)
        executor.update_parameters(timeout_min=spec.minutes, stderr_to_stdout=True)
        return executor

    def states(self, job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        import psutil

        alive = {}
        for job_id in job_ids:
            try:
                if psutil.Process(int(job_id)).status() != psutil.STATUS_ZOMBIE:
                    alive[job_id] = ("RUNNING", "")
            except psutil.NoSuchProcess:
                pass
        return alive

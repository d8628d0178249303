"""Training on a SLURM cluster through submitit: every shard the pipeline hands over becomes one
job; the launcher follows the jobs, says in one line what became of each one that failed, and
lets a later identical command take over jobs an earlier one left running.

The pipeline (sdm.stacks) decides what to train: it hands over Shards (the members a job
trains, the run folders it writes, the checkpoint it resumes from, and the call that trains it).
This module knows nothing of models; it runs calls somewhere (sdm.scheduler: SLURM, or local
processes for the tests) and keeps a record of each job beside the checkpoints
(`<ckpt folder>/jobs/<shard checkpoint name>.json`, with submitit's pickles and the job's log),
so that `--no-wait` and a rerun can find them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdm.jobspec import JobSpec
from sdm.results import write_text
from sdm.scheduler import ENDED, ENDED_BY_SLURM, LauncherError, LocalProcesses, Slurm, last_line

log = logging.getLogger(__name__)


class JobsFailedError(RuntimeError):
    """Jobs ended without training their shard: one line per job in the message."""


class TrainingPending(Exception):
    """--no-wait: jobs are queued or running; a rerun of the same command collects them."""


@dataclass(frozen=True)
class Shard:
    """One job's work: `train()` trains `members` (names, for messages), writing `runs`, and
    resumes from `checkpoint` when it is there. `train` must be picklable."""

    members: tuple[str, ...]
    runs: tuple[Path, ...]
    checkpoint: Path
    train: Callable[[], Any]


class ShardJob:
    """A shard's training as a job: torch runs as many threads as the job has CPUs.

    Checkpointable in submitit's sense (it has `checkpoint`): a job that SLURM signals before its
    time limit is requeued (sdm.scheduler.MAX_REQUEUES times at most) with the same call, which
    resumes from the shard's checkpoint, as does a job that SLURM preempts and requeues."""

    def __init__(self, train: Callable[[], Any], cpus: int) -> None:
        self.train, self.cpus = train, cpus

    def __call__(self) -> Any:
        import torch

        # sdm's own log lines (resumed at epoch .., best epoch ..) go to the job's log
        logger = logging.getLogger("sdm")
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK", self.cpus))
        torch.set_num_threads(threads)
        log.info("training with %d torch thread(s)", threads)
        return self.train()

    def checkpoint(self) -> Any:
        """What submitit requeues: this same call (the training checkpoint holds the progress)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


@dataclass
class _Job:
    job_id: str
    members: tuple[str, ...]
    runs: tuple[Path, ...]
    checkpoint: Path
    record: Path
    log: Path
    result: Path
    state: str = "PENDING"
    ended_at: float | None = None

    @classmethod
    def read(cls, record: Path) -> _Job:
        d = json.loads(record.read_text())
        return cls(
            d["job_id"],
            tuple(d["members"]),
            tuple(Path(r) for r in d["runs"]),
            Path(d["checkpoint"]),
            record,
            Path(d["log"]),
            Path(d["result"]),
        )

    def write(self) -> None:
        d = {
            "job_id": self.job_id,
            "members": list(self.members),
            "runs": [str(r) for r in self.runs],
            "checkpoint": str(self.checkpoint),
            "log": str(self.log),
            "result": str(self.result),
        }
        write_text(self.record, json.dumps(d, indent=1) + "\n")

    def forget(self) -> None:
        """Remove the record and submitit's pickles; the log stays for the user."""
        folder = self.log.parent
        for path in (self.record, self.result, *folder.glob(f"{self.job_id}_submi*")):
            path.unlink(missing_ok=True)
        for link in folder.glob(".submission_file_*"):  # submitit's links to what was removed
            if link.is_symlink() and not link.exists():
                link.unlink()

    def succeeded(self) -> bool:
        """The job wrote a success result: it trained its shard."""
        return self.result.exists() and _load(self.result)[0] == "success"

    def failure(self, state: str | None, reason: str) -> str:
        """The one line that tells the user what became of this job: SLURM's cause when SLURM
        ended it (scancel, time limit, memory, node), and what the job itself raised."""
        slurm = None
        if state in ENDED_BY_SLURM or not self.result.exists():
            slurm = ENDED.get(state, f"ended {state}")
            if state is not None:
                why = f", reason {reason}" if reason not in ("", "None") else ""
                slurm += f" (SLURM state {state}{why})"
        raised = None
        if self.result.exists():
            outcome, trace = _load(self.result)
            raised = f"raised {last_line(str(trace))}" if outcome == "error" else "failed"
        what = "; it ".join(filter(None, [slurm, raised]))
        held = ", ".join(self.members)
        return f"job {self.job_id} ({held}) {what}; log {self.log} ends: {_tail(self.log)}"


def _load(path: Path) -> tuple[str, Any]:
    """submitit's result file: ("success", value) or ("error", traceback text)."""
    from submitit.core.utils import pickle_load

    return pickle_load(path)


def _tail(path: Path, lines: int = 3, width: int = 400) -> str:
    """The last lines of a log, on one line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    # submitit notes every signal it ignores; SLURM's own lines say more
    kept = [x.strip() for x in text.splitlines() if x.strip() and "Bypassing signal" not in x]
    kept = kept[-lines:]
    tail = " | ".join(kept) or "(empty)"
    return tail if len(tail) <= width else "..." + tail[-width:]


class Launcher:
    """Submits shards as jobs, follows them, collects them (see the module docstring).

    `wait=False` (--no-wait): `finish` returns at once, raising TrainingPending while jobs are
    queued or running. `scheduler`: Slurm() (the default) or LocalProcesses() (tests).
    """

    def __init__(
        self,
        spec: JobSpec = JobSpec(),
        wait: bool = True,
        progress: bool = True,
        scheduler: Slurm | LocalProcesses | None = None,
        poll_s: float = 5.0,
        grace_s: float = 20.0,
        unreachable_s: float = 900.0,
    ) -> None:
        self.spec, self.wait, self.progress = spec, wait, progress
        self.scheduler = scheduler if scheduler is not None else Slurm()
        self.poll_s, self.grace_s, self.unreachable_s = poll_s, grace_s, unreachable_s
        self._jobs: list[_Job] = []
        self._failures: list[str] = []
        self._checked = False

    def check(self) -> None:
        """Once, before the first submission."""
        if not self._checked:
            self.scheduler.check(self.spec)
            self._checked = True

    def adopt(self, folder: Path, runs: set[Path]) -> set[Path]:
        """Take over the jobs that earlier commands submitted from this checkpoint folder to
        train any of `runs`, and return the run folders of those still queued or running (not
        to be submitted again). Those that ended are collected now: a failure is reported, and
        its runs go back to what is missing."""
        known = {job.record for job in self._jobs}
        records = [r for r in sorted((folder / "jobs").glob("*.json")) if r not in known]
        jobs = [job for job in map(_Job.read, records) if runs.intersection(job.runs)]
        if jobs:
            self.check()
            states = self.scheduler.states([job.job_id for job in jobs])
            if states is None:
                raise LauncherError(
                    "squeue does not answer: cannot tell whether the jobs of an earlier command "
                    f"({', '.join(job.job_id for job in jobs)}) still run"
                )
            ended, recent = [], []
            for job in jobs:
                state = states.get(job.job_id)
                if job.succeeded() or state is None or state[0] in ENDED:
                    ended.append((job, state or (None, "")))
                    if state is not None and not job.result.exists():
                        recent.append(job)  # SLURM still lists it: it ended minutes ago
                else:
                    log.info(
                        "following job %s, submitted earlier: %s",
                        job.job_id,
                        ", ".join(job.members),
                    )
                    self._jobs.append(job)
            # a job that just ended may not have its result on a shared file system yet
            deadline = time.monotonic() + self.grace_s
            while any(not job.result.exists() for job in recent) and time.monotonic() < deadline:
                time.sleep(min(1.0, self.poll_s))
            for job, (state, reason) in ended:
                line = self._collect(job, state, reason)
                if line is not None:
                    log.warning("%s; its runs are submitted again", line)
        return {r for job in self._jobs for r in job.runs}

    def submit(self, shards: Sequence[Shard], folder: Path) -> None:
        """One job per shard, its record written beside the checkpoints."""
        if not shards:
            return
        self.check()
        jobs_dir = folder / "jobs"
        jobs_dir.mkdir(parents=True, exist_ok=True)
        executor = self.scheduler.executor(jobs_dir, self.spec)
        for shard in shards:
            job = executor.submit(ShardJob(shard.train, self.spec.cpus))
            record = _Job(
                str(job.job_id),
                shard.members,
                shard.runs,
                shard.checkpoint,
                jobs_dir / f"{shard.checkpoint.stem}.json",
                job.paths.stdout,
                job.paths.result_pickle,
            )
            record.write()
            self._jobs.append(record)
            log.info("submitted job %s: %s", record.job_id, ", ".join(shard.members))

    def finish(self) -> None:
        """Wait for every job (one progress bar), or with wait=False look once.

        Raises JobsFailedError when jobs failed (once all have ended), TrainingPending when not
        waiting and jobs are left."""
        from tqdm import tqdm

        bar = tqdm(
            total=len(self._jobs),
            unit="job",
            desc="jobs",
            disable=not (self.wait and self.progress),
        )
        silent_since = None
        while left := [job for job in self._jobs if job.state != "ENDED"]:
            states = self.scheduler.states([job.job_id for job in left])
            if states is None:  # no answer: the jobs go on meanwhile
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since > self.unreachable_s:
                    raise LauncherError(
                        f"squeue has not answered for {self.unreachable_s:.0f} s; jobs "
                        f"{', '.join(job.job_id for job in left)} may still run: run the same "
                        "command again to collect them"
                    )
            else:
                silent_since = None
                for job in left:
                    self._poll(job, states.get(job.job_id))
                bar.update(sum(job.state == "ENDED" for job in left))
                bar.set_postfix(
                    {
                        "pending": sum(job.state == "PENDING" for job in left),
                        "running": sum(job.state == "RUNNING" for job in left),
                        "failed": len(self._failures),
                    }
                )
            if not self.wait:
                break
            if any(job.state != "ENDED" for job in left):
                try:
                    time.sleep(self.poll_s)
                except KeyboardInterrupt:
                    bar.close()
                    ids = ", ".join(job.job_id for job in left if job.state != "ENDED")
                    log.warning("jobs %s go on; run the same command again to follow them", ids)
                    raise
        bar.close()
        self._jobs = [job for job in self._jobs if job.state != "ENDED"]
        if self._failures:
            failures, self._failures = self._failures, []
            raise JobsFailedError(
                f"{len(failures)} job(s) failed; the same command submits what is missing again:\n"
                + "\n".join(failures)
            )
        if self._jobs:
            raise TrainingPending(
                f"{len(self._jobs)} job(s) queued or running "
                f"({', '.join(job.job_id for job in self._jobs)}); run the same command again to "
                "collect them and submit what is missing"
            )

    def _poll(self, job: _Job, state: tuple[str, str] | None) -> None:
        listed = state is not None and state[0] not in ENDED
        if job.succeeded() or (job.result.exists() and not listed):
            self._end(job, *(state or (None, "")))
            return
        if listed:
            # An error result of a job SLURM still lists is from before a requeue (the job runs
            # again and will overwrite it), or the job is on its way out after scancel or its
            # time limit: SLURM's final state, soon listed, tells which, and the line says it.
            job.state = "RUNNING" if state[0] in ("RUNNING", "COMPLETING") else "PENDING"
            job.ended_at = None
            return
        # ended, or no longer listed, without a result: give a shared file system a moment
        job.ended_at = job.ended_at or time.monotonic()
        if time.monotonic() - job.ended_at >= self.grace_s:
            self._end(job, *(state or (None, "")))

    def _end(self, job: _Job, state: str | None, reason: str) -> None:
        job.state = "ENDED"
        line = self._collect(job, state, reason)
        if line is not None:
            self._failures.append(line)

    def _collect(self, job: _Job, state: str | None, reason: str) -> str | None:
        """None when the job trained its shard, else its failure line; forgets the job."""
        line = None if job.succeeded() else job.failure(state, reason)
        job.forget()
        return line

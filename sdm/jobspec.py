"""What a cluster job asks SLURM for: one typed value from command-line options and a small file.

Every job of a command trains one shard of a stack and gets the same resources. A file holds what
stays the same from run to run on a given cluster (partition, account, time limit); options given
on the command line win over it. The file is TOML, with the options' own names:

    partition = "gpu"
    time = "12:00:00"          # minutes, or SLURM's [days-]hours:minutes:seconds
    cpus-per-job = 4           # torch runs this many threads in each job
    gpus-per-job = 1
    mem = "16G"
    account = "my-lab"
    setup = ["module load python/3.11"]   # shell lines run in the job before training
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_MEM = re.compile(r"^\d+(?:\.\d+)?[KMGT]?B?$", re.IGNORECASE)


def time_minutes(text: str) -> int:
    """SLURM's time formats (minutes, minutes:seconds, hours:minutes:seconds, days-hours,
    days-hours:minutes, days-hours:minutes:seconds) as whole minutes, rounded up."""
    match = _TIME.match(str(text).strip())
    if not match or str(text).strip() in ("0", ""):
        raise ValueError(
            f"time: expected minutes or [days-]hours:minutes:seconds (e.g. 90, 4:00:00, "
            f"1-12:00:00), got {text!r}"
        )
    days, a, b, c = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        seconds = ((days * 24 + a) * 60 + (b or 0)) * 60 + (c or 0)
    elif c is not None:  # hours:minutes:seconds
        seconds = (a * 60 + b) * 60 + c
    elif b is not None:  # minutes:seconds
        seconds = a * 60 + b
    else:  # minutes
        seconds = a * 60
    if seconds <= 0:
        raise ValueError(f"time: expected a positive time limit, got {text!r}")
    return math.ceil(seconds / 60)


@dataclass(frozen=True)
class JobSpec:
    """The resources of every job, and how many jobs a stack is split into."""

    jobs: int = 1
    partition: str | None = None
    time: str = "4:00:00"
    cpus: int = 1
    gpus: int = 0
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, low in (("jobs", 1), ("cpus", 1), ("gpus", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{_OPTION[name]}: expected an integer >= {low}, got {value!r}")
        time_minutes(self.time)
        if self.mem is not None and not _MEM.match(str(self.mem)):
            raise ValueError(f"mem: expected a size such as 4000M or 16G, got {self.mem!r}")
        for name in ("partition", "account", "qos", "constraint"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name}: expected a non-empty name, got {value!r}")
        if not isinstance(self.setup, tuple) or not all(isinstance(s, str) for s in self.setup):
            raise ValueError(f"setup: expected a list of shell lines, got {self.setup!r}")

    @property
    def minutes(self) -> int:
        return time_minutes(self.time)

    @property
    def device(self) -> str:
        """Where the jobs train: a job that asks for GPUs trains on one."""
        return "cuda" if self.gpus else "cpu"

    def sbatch(self) -> dict[str, Any]:
        """The job's resources as submitit's SlurmExecutor parameters."""
        params: dict[str, Any] = {"time": self.minutes, "cpus_per_task": self.cpus}
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        for name in ("partition", "mem", "account", "qos", "constraint"):
            if getattr(self, name) is not None:
                params[name] = getattr(self, name)
        if self.setup:
            params["setup"] = list(self.setup)
        return params

    def sbatch_flags(self) -> list[str]:
        """The same resources as sbatch command-line flags (for `sbatch --test-only`)."""
        flags = [f"--time={self.minutes}", f"--cpus-per-task={self.cpus}"]
        if self.gpus:
            flags.append(f"--gpus-per-node={self.gpus}")
        for name in ("partition", "mem", "account", "qos", "constraint"):
            if getattr(self, name) is not None:
                flags.append(f"--{name}={getattr(self, name)}")
        return flags


# option (and file key) of each field
_OPTION = {
    "jobs": "jobs",
    "partition": "partition",
    "time": "time",
    "cpus": "cpus-per-job",
    "gpus": "gpus-per-job",
    "mem": "mem",
    "account": "account",
    "qos": "qos",
    "constraint": "constraint",
    "setup": "setup",
}
assert set(_OPTION) == {f.name for f in fields(JobSpec)}


def job_spec(path: str | Path | None = None, **options: Any) -> JobSpec:
    """A JobSpec from a TOML file (optional) and options; options that are None are not given.

    Unknown keys and bad values name the file or the option and what was expected."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{path}: no such launcher configuration file") from None
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML ({err})") from None
        by_key = {key: name for name, key in _OPTION.items()}
        for key, value in table.items():
            if key not in by_key:
                raise ValueError(
                    f"{path}: unknown key {key!r}; expected some of {', '.join(_OPTION.values())}"
                )
            values[by_key[key]] = (
                tuple(value) if key == "setup" and isinstance(value, list) else value
            )
        try:
            JobSpec(**values)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    unknown = set(options) - set(_OPTION)
    if unknown:
        raise TypeError(f"job_spec: unknown options {sorted(unknown)}")
    values |= {k: v for k, v in options.items() if v is not None}
    return JobSpec(**values)

"""What keeps results and checkpoints safe: from a damaged, foreign or planted file, and from
being stopped.

`load_torch` reads files that torch.save wrote without running code from them. `stopping` turns
SIGTERM and Ctrl-C into a request the training loop answers at its next step: it writes the
checkpoint of its last finished epoch and raises `Interrupted`. `holding` keeps one writer per
stack and run folder: a kernel lock, released when its holder ends, however it ends.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_requests: list[int] = []  # signals received while a `stopping` block is active


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or inf loss; the message names variant, epoch and first bad step."""


class EpochAborted(Exception):
    """An epoch was left half done (a stop was requested): the state in memory is not a
    checkpoint. args: (epoch, signal number)."""


class Interrupted(Exception):
    """Training was asked to stop (SIGTERM, SIGINT): what was finished is saved; the message says
    where. `signum` gives the exit status, 128 + signum."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(signum, message)  # both in args: it crosses process boundaries pickled
        self.signum, self.message = signum, message

    def __str__(self) -> str:
        return self.message


def stop_requested() -> int | None:
    """The first stop signal received while training, or None."""
    return _requests[0] if _requests else None


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Ask a training loop of this process to stop at its next step (what SIGTERM does): for a job
    scheduler's own checkpoint hook."""
    _requests.append(signum)


@contextmanager
def stopping(on_signal: Callable[[int], None] | None = None) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT request a stop (`stop_requested`) instead of
    killing the process at once, and `on_signal(signum)` runs (a parent forwards the request to
    its workers).

    Compatible with a job scheduler's handlers (submitit bypasses SIGTERM and requeues on
    SIGUSR1/SIGUSR2): a Python handler installed before is called too and put back afterwards, and
    no other signal is touched. Outside the main thread nothing is installed."""
    _requests.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        _requests.append(signum)
        if on_signal is not None:
            on_signal(signum)
        old = previous.get(signum)
        if callable(old) and old is not signal.default_int_handler:
            old(signum, frame)  # e.g. a scheduler's logging handler

    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _requests.clear()


def load_torch(path: Path, what: str) -> Any:
    """A file torch.save wrote, loaded without running any code from it.

    Only a torch archive (a zip file) is opened, and it is unpickled with weights_only=True:
    tensors, numbers, strings and containers, plus ModelConfig, which checkpoints hold. A plain
    pickle is refused before anything in it is read; random bytes, an empty or cut-off file, or
    one holding other objects are refused with one line naming the file."""
    import pickle
    import zipfile

    import torch

    from sdm.config import ModelConfig

    path = Path(path)
    fix = "remove it, or pass --overwrite to train from scratch"
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a {what}; {fix}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a torch archive, so not a {what} sdm wrote (refused unread); {fix}"
        )
    torch.serialization.add_safe_globals([ModelConfig])
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise ValueError(
            f"{path}: holds objects a {what} never holds, so it was not loaded ({reason}); {fix}"
        ) from None
    except Exception as err:  # a cut-off or damaged archive: zip, pickle and storage errors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: damaged {what}, cannot be read ({reason}); {fix}") from None


class LockedError(ValueError):
    """Another process trains this stack or run; the message names its PID and host."""


@contextmanager
def holding(locks: Sequence[tuple[Path, str]]) -> Iterator[None]:
    """Hold an exclusive kernel lock (fcntl.flock) on each (lock file, what it guards) while the
    block runs. The kernel releases it when the holder ends, even by SIGKILL or a restart, so a
    lock file left behind locks nothing. A second process is refused with one line naming the
    holder's PID and host."""
    import fcntl

    held: list[int] = []
    try:
        for path, what in locks:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise LockedError(
                    f"{what} is being trained by {holder} (lock {path}); wait for that command "
                    "to end, or stop it"
                ) from None
            held.append(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode())
        yield
    finally:
        for fd in held:
            os.close(fd)  # closing the file releases its lock


def is_locked(path: Path) -> bool:
    """True when another process holds the lock file `path` (it is left alone then)."""
    import fcntl

    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

"""Training a stack across CPU cores: which members go together (`shard_members`, a pure function of
the member list) and starting one single-threaded process per shard (`fit_in_processes`).

Why processes and not threads: the model's GEMMs are small (128 x 513 x 128), and torch's intra-op
threads synchronise at every kernel. Two processes with one thread each, every one running its own
stack, train ≈ 1.6x more variant-frames per second on a 2-core CPU than one process with two
threads (benchmarks/train_speed.py, book page "Performance"). Members never interact, and each has
its own seed streams, so a member's result does not depend on which process trained it.

On a GPU one process drives the device; sharding is for the CPU only. A cluster job trains one
shard by itself (sdm.stacks.train_shard), with the same shards and shard files as here.
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from sdm.config import ModelConfig, TrainConfig
from sdm.guards import Interrupted, stopping
from sdm.nets import N_BINS
from sdm.results import shard_checkpoint
from sdm.train import MemberResult, fit, pick_device

_start_barrier: Any = None  # set in each worker by _init_worker


def resolve_workers(workers: int | str, device: str, n_members: int) -> int:
    """'auto': one process per torch thread on the CPU (so OMP_NUM_THREADS=1 means one process),
    never more than there are members; always 1 on a GPU. An int is taken as given (>= 1)."""
    if workers == "auto":
        if pick_device(device).type != "cpu":
            return 1
        return max(1, min(torch.get_num_threads(), n_members))
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers: expected 'auto' or an integer >= 1, got {workers!r}")
    return min(workers, max(1, n_members))


def member_cost(config: ModelConfig) -> int:
    """Multiply-accumulates of one forward frame: what a member adds to its process's step."""
    heads = 3 if config.family == "vsc" else 2
    dictionary = config.k * config.m if config.family == "sdm" else 0
    h = config.hidden
    return N_BINS * h + h * heads * config.code_dim + config.m * h + h * N_BINS + dictionary


def shard_members(configs: Sequence[ModelConfig], seeds: Sequence[int], n: int) -> list[list[int]]:
    """Member indices per process, balanced by cost: members sorted by cost are dealt in a snake
    order (0, 1, .., n-1, n-1, .., 0, ...). Deterministic, so a resumed run finds its shards."""
    order = sorted(
        range(len(configs)), key=lambda i: (-member_cost(configs[i]), configs[i].name, seeds[i])
    )
    shards: list[list[int]] = [[] for _ in range(n)]
    for rank, i in enumerate(order):
        turn, pos = divmod(rank, n)
        shards[pos if turn % 2 == 0 else n - 1 - pos].append(i)
    return [sorted(s) for s in shards if s]


_parent = 0  # the pool's process, in each worker
_busy = False  # a worker is inside fit (whose own handlers then stop it at its next step)


def _init_worker(barrier: Any, threads: int) -> None:
    global _start_barrier, _parent
    _start_barrier, _parent = barrier, os.getppid()
    torch.set_num_threads(threads)
    # Ctrl-C reaches the whole process group: while training, the worker's own handler turns it
    # into a stop (sdm.guards); between tasks it is the parent's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # an idle worker must not die holding the task queue's lock (the pool would hang): SIGTERM
    # ends it only when its parent is gone; otherwise the pool's own shutdown ends it
    signal.signal(signal.SIGTERM, _on_sigterm)
    _end_with_parent(_parent)


def _on_sigterm(signum: int, frame: Any) -> None:
    if not _busy and os.getppid() != _parent:
        os._exit(0)


def _end_with_parent(parent: int) -> None:
    """A worker whose parent dies (even by SIGKILL) stops like on SIGTERM: it saves the checkpoint
    of its last finished epoch and exits, instead of training on and hanging."""
    try:  # Linux: the kernel sends SIGTERM when the parent dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # everywhere, and when the signal was missed
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(120.0)  # time to write the checkpoint; then go, whatever happens
        os._exit(1)

    threading.Thread(target=watch, name="sdm-parent-watch", daemon=True).start()


def _fit_shard(kwargs: dict[str, Any]) -> bytes:
    global _busy
    with contextlib.suppress(threading.BrokenBarrierError):  # a shard that failed to start
        _start_barrier.wait(
            timeout=300
        )  # every process starts its first epoch together: fair timings
    buffer = io.BytesIO()
    _busy = True
    try:
        done = fit(**kwargs)
    except Interrupted:
        if os.getppid() != _parent:  # orphaned: nobody to report to
            os._exit(0)
        raise
    finally:
        _busy = False
    # results go back as one blob: torch's pickler would share every weight tensor through its
    # own file descriptor, and a 70-member stack would run into the open-file limit
    torch.save([vars(r) for r in done], buffer)
    return buffer.getvalue()


def fit_in_processes(
    configs: Sequence[ModelConfig],
    seeds: Sequence[int],
    train: torch.Tensor,
    val: torch.Tensor,
    cfg: TrainConfig,
    device: str,
    checkpoint: Path | None,
    on_member_done: Callable[[MemberResult], None] | None,
    progress: bool,
    n: int,
    data: Mapping[str, str] | None = None,
) -> list[MemberResult]:
    """`sdm.train.fit` over `n` processes, each training one shard into its own shard file.

    `on_member_done` runs in the worker process, so it must be picklable (a module-level function,
    a partial of one, or an instance of a module-level class). Only the first process shows a
    progress bar. Results in input order."""
    shards = shard_members(configs, seeds, n)
    n = len(shards)
    threads = max(1, math.floor(torch.get_num_threads() / n))
    # tensors travel through shared memory (torch's pickler), not as copies
    train, val = train.cpu().share_memory_(), val.cpu().share_memory_()
    ctx = torch.multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    found: list[MemberResult | None] = [None] * len(configs)
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # spawned interpreters start with this many
    try:
        pool = ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_init_worker, initargs=(barrier, threads)
        )
        futures = [
            pool.submit(
                _fit_shard,
                {
                    "configs": [configs[i] for i in shard],
                    "seeds": [seeds[i] for i in shard],
                    "train": train,
                    "val": val,
                    "cfg": cfg,
                    "device": device,
                    "checkpoint": None
                    if checkpoint is None
                    else shard_checkpoint(checkpoint, j, n),
                    "on_member_done": on_member_done,
                    "progress": progress and j == 0,
                    "data": data,
                },
            )
            for j, shard in enumerate(shards)
        ]

        def forward(signum: int) -> None:  # the workers stop too, each saving its shard
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

        try:
            with stopping(forward):
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)  # all, unless one failed
            for future in finished:
                if isinstance(future.exception(), Interrupted) and checkpoint is not None:
                    signum = future.exception().signum
                    raise Interrupted(
                        signum,
                        f"stopped by {signal.Signals(signum).name}: each of the {n} processes "
                        f"saved its last finished epoch beside {checkpoint}; run the same command "
                        "to resume",
                    )
                if future.exception() is not None:
                    raise future.exception()
            torch.serialization.add_safe_globals([ModelConfig])
            for shard, future in zip(shards, futures):
                blob = io.BytesIO(future.result())
                for i, r in zip(shard, torch.load(blob, weights_only=True)):
                    found[i] = MemberResult(**r)
        except Interrupted:
            raise  # every worker was asked to stop (forward): they save, then the pool ends
        except BaseException:
            # one shard failed: stop the others now rather than after their training (SIGTERM:
            # each saves its last finished epoch, sdm.guards)
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            # an exception's traceback keeps this frame alive: free the barrier's semaphores now,
            # or the resource tracker reports them leaked at exit
            pool = barrier = None
            gc.collect()  # the pool's queues sit in reference cycles
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    return [r for r in found if r is not None]


def fit_sharded(*args: Any, workers: int | str = "auto", **kwargs: Any) -> list[MemberResult]:
    """`sdm.train.fit` with its workers defaulting to 'auto' (one process per core): the name
    fit had before it took `workers`, kept for scripts written against it."""
    return fit(*args, workers=workers, **kwargs)


__all__ = [
    "fit_in_processes",
    "fit_sharded",
    "member_cost",
    "resolve_workers",
    "shard_checkpoint",
    "shard_members",
]

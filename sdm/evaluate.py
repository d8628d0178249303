"""Test-set evaluation as in the paper: decode the posterior mean, resynthesise, score utterances.

Resynthesis: the square root of the decoded power variance is the magnitude, the original STFT gives
the phase, the inverse STFT (trimmed to the original length) gives the estimate. The reference is
the test utterance after the run's preprocessing (`official`: peak-normalised; test audio is never
trimmed). The official code scales the reference to peak 1 and the estimate to peak 0.9 before
scoring; PESQ normalises levels itself and STOI is scale-invariant, so we score the signals as they
are. Its "PESQ" is our `pesq_raw_nb` and its "STOI" our `estoi` (see sdm.metrics).

The test audio and its STFTs come from sdm.data.load_split (the path every split takes), and the
tables are written by sdm.results: this module only decodes, resynthesises and scores.

Model inference runs once in this process (all test frames, in large batches); PESQ/STOI, which
dominate the cost, run in worker processes. Results come back in utterance order whatever the number
of workers, so serial and parallel runs give identical tables.
"""

from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from sdm.audio import SAMPLE_RATE, istft
from sdm.data import Corpus, SplitAudio, load_split
from sdm.metrics import hoyer, pesq_note, utterance_metrics
from sdm.results import COLUMNS, METRIC_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_FRAMES_PER_CALL = 16384  # frames decoded per model call: bounds memory on large test sets

# decode(power (n, 513)) -> variance (S, n, 513), per-frame Hoyer (S, n) or None, IS (S, n)
Decoder = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None, np.ndarray]]


def resynthesise(power_variance: np.ndarray, spec: np.ndarray, length: int) -> np.ndarray:
    """Waveform (length,) float32 from a decoded power variance and the original STFT's phase.

    power_variance: (frames, 513), >= 0 (negative values are clipped to 0); spec: the original
    complex STFT (frames, 513) from sdm.audio.stft; length: the original number of samples.
    """
    power_variance, spec = np.asarray(power_variance), np.asarray(spec)
    if power_variance.shape != spec.shape or power_variance.ndim != 2:
        raise ValueError(
            f"resynthesise: expected power_variance and spec of the same (frames, bins) shape, "
            f"got {power_variance.shape} and {spec.shape}"
        )
    magnitude = np.sqrt(np.maximum(power_variance, 0.0))
    phase = np.exp(1j * np.angle(spec))  # a zero bin has angle 0: its phase is taken as 1
    return istft((magnitude * phase).astype(np.complex64), length)


def _model_decoder(model: Any) -> Decoder:
    """Wrap model.reconstruct: posterior-mean variance, per-frame Hoyer of the code and IS."""
    import torch

    from sdm.losses import is_divergence

    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    device = first.device if first is not None else torch.device("cpu")

    def decode(power: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        x = torch.from_numpy(np.array(power, dtype=np.float32)).to(device)
        with torch.no_grad():
            variance, code = model.reconstruct(x)  # (S, n, 513), (S, n, d)
            is_div = is_divergence(x.unsqueeze(0), variance)  # (S, n)
            sparsity = hoyer(code)  # (S, n)
        return _numpy(variance), _numpy(sparsity), _numpy(is_div)

    return decode


def _oracle_decode(power: np.ndarray) -> tuple[np.ndarray, None, np.ndarray]:
    """The ceiling of the resynthesis method: the true power as 'decoded' variance, no code."""
    return power[None], None, np.zeros((1, len(power)))


def _numpy(t: Any) -> np.ndarray:
    return t.detach().to("cpu").numpy()


def _score(ref: np.ndarray, spec: np.ndarray, variance: np.ndarray) -> dict[str, Any]:
    """Worker job: one member's estimate of one utterance, scored."""
    return utterance_metrics(ref, resynthesise(variance, spec, len(ref)), SAMPLE_RATE)


class _InlineExecutor(Executor):
    """Runs each job at submit time: the n_jobs=1 path shares every line with the parallel one."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def default_jobs() -> int:
    """All cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _executor(n_jobs: int) -> Executor:
    if n_jobs == 1:
        return _InlineExecutor()
    # fork: workers start in milliseconds and inherit the imports; they never call torch, so the
    # usual fork-after-threads hazard of torch does not apply. Elsewhere, spawn is the safe choice.
    method = "fork" if sys.platform == "linux" else "spawn"
    return ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context(method))


def _groups(offsets: np.ndarray, max_frames: int) -> list[range]:
    """Consecutive utterance ranges of at most max_frames frames (a longer utterance: alone)."""
    groups, start, n = [], 0, len(offsets) - 1
    for u in range(n):
        if u > start and offsets[u + 1] - offsets[start] > max_frames:
            groups.append(range(start, u))
            start = u
    groups.append(range(start, n))
    return groups


def _evaluate(
    test_set: SplitAudio, decode: Decoder, n_jobs: int | None, progress: bool, desc: str
) -> list[pd.DataFrame]:
    """One table per member; see evaluate_model."""
    import pandas as pd
    from tqdm import tqdm

    n_jobs = default_jobs() if n_jobs is None else n_jobs
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs: expected a positive integer or None (all cores), got {n_jobs!r}")
    ts, offsets = test_set, test_set.offsets
    for name, signal in zip(ts.names, ts.signals, strict=True):
        if note := pesq_note(len(signal), SAMPLE_RATE):
            logger.warning("%s: %s", name, note)
    rows: list[list[dict[str, Any]]] = []
    bar: Any = None  # created at the first decode, when the number of members is known
    previous: list[tuple[dict[str, Any], Future]] = []
    with _executor(n_jobs) as pool:
        for group in _groups(offsets, _FRAMES_PER_CALL):
            lo = offsets[group.start]
            variance, sparsity, is_div = decode(ts.power[lo : offsets[group.stop]])
            if not rows:
                rows = [[{} for _ in range(len(ts))] for _ in range(len(variance))]
                bar = tqdm(total=len(rows) * len(ts), desc=desc, disable=not progress, unit="utt")
            current = []
            for u in group:
                a, b = offsets[u] - lo, offsets[u + 1] - lo
                for s, member_rows in enumerate(rows):
                    row = member_rows[u]
                    row.update(utterance=ts.names[u], speaker=ts.speakers[u])
                    row["hoyer"] = math.nan if sparsity is None else float(sparsity[s, a:b].mean())
                    row["is_div"] = float(is_div[s, a:b].mean())
                    job = pool.submit(_score, ts.signals[u], ts.specs[u], variance[s, a:b])
                    job.add_done_callback(functools.partial(_advance, bar))
                    current.append((row, job))
            # collect the previous group while this one runs: at most two groups held in memory
            _collect(previous)
            previous = current
        _collect(previous)
    bar.close()
    return [pd.DataFrame(member_rows, columns=list(COLUMNS)) for member_rows in rows]


def _advance(bar: Any, _job: Future) -> None:
    bar.update(1)  # runs in the pool's result thread (at submit time when serial)


def _collect(jobs: list[tuple[dict[str, Any], Future]]) -> None:
    for row, job in jobs:  # in submission order: the same tables for any number of workers
        row.update(job.result())


def evaluate_model(
    model: Any,
    data: Corpus | str = "shipped",
    preprocessing: str = "clean",
    split: str = "test",
    n_jobs: int | None = None,
    progress: bool = True,
) -> list[pd.DataFrame]:
    """Score every member of a model stack on a split: one pandas DataFrame per member, in order.

    model: anything with reconstruct(x (N, 513) tensor) -> (variance (S, N, 513), code (S, N, d)),
    the posterior mean decoded (sdm.models). One row per utterance with COLUMNS: utterance (path
    relative to the corpus root), speaker, pesq_wb, pesq_nb, pesq_raw_nb, stoi, estoi, hoyer (of the
    code, per frame, averaged over the utterance's frames), is_div (sdm.losses.is_divergence between
    the true power and the decoded variance, per frame, averaged over frames; powers floored at
    sdm.losses.POWER_FLOOR), failures (why a metric is NaN; "" if none).
    n_jobs: worker processes for PESQ/STOI (None: all cores; 1: in this process).
    Beside the paper, compare pesq_raw_nb (its PESQ, pypesq) and estoi (its STOI).
    """
    test_set = load_split(data, preprocessing, split)
    name = getattr(data, "name", data)
    return _evaluate(test_set, _model_decoder(model), n_jobs, progress, f"evaluate {name}/{split}")


def evaluate_oracle(
    data: Corpus | str = "shipped",
    preprocessing: str = "clean",
    split: str = "test",
    n_jobs: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The `oracle` table: resynthesis from the true magnitude and original phase, scored the same.

    It is the ceiling the resynthesis method allows (STFT round trip only); hoyer is NaN (no code)
    and is_div is 0. Same columns as evaluate_model.
    """
    test_set = load_split(data, preprocessing, split)
    name = getattr(data, "name", data)
    return _evaluate(test_set, _oracle_decode, n_jobs, progress, f"oracle {name}/{split}")[0]


class SignalResult(NamedTuple):
    """One member's resynthesis of one signal and its metrics (METRIC_COLUMNS and failures)."""

    estimate: np.ndarray
    metrics: dict[str, Any]


def evaluate_signal(model: Any, x: np.ndarray) -> list[SignalResult]:
    """Resynthesise and score one prepared 16 kHz signal with every member of `model`.

    PESQ runs in child processes (sdm.metrics, `isolated`): a signal of any length gives metrics
    or NaN with a reason, never a crashed process."""
    ts = SplitAudio.from_signals(["signal"], [""], [x])
    variance, sparsity, is_div = _model_decoder(model)(ts.power)
    results = []
    for s in range(len(variance)):
        estimate = resynthesise(variance[s], ts.specs[0], len(ts.signals[0]))
        metrics = utterance_metrics(ts.signals[0], estimate, SAMPLE_RATE, isolated=True)
        metrics["hoyer"] = float(sparsity[s].mean()) if sparsity is not None else math.nan
        metrics["is_div"] = float(is_div[s].mean())
        ordered = {k: metrics[k] for k in (*METRIC_COLUMNS, "failures")}
        results.append(SignalResult(estimate, ordered))
    return results


def evaluate_file(model: Any, path: str | Path, preprocessing: str = "clean") -> list[SignalResult]:
    """evaluate_signal on an audio file (any rate or channel count sdm.audio.load_audio accepts),
    prepared as test audio under `preprocessing`."""
    from sdm.audio import load_audio
    from sdm.data import prepare_audio

    x = prepare_audio(load_audio(path), "test", preprocessing, str(path))
    return evaluate_signal(model, x)

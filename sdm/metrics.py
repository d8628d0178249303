"""Per-utterance metrics: Hoyer sparsity (eq. 12), PESQ (three named flavours), STOI and ESTOI.

Which number is which, because the literature mixes them up:
- `pesq_wb`: wide-band MOS-LQO (ITU-T P.862.2) from the `pesq` package.
- `pesq_nb`: narrow-band MOS-LQO (P.862 followed by the P.862.1 mapping) from the `pesq` package.
- `pesq_raw_nb`: the raw narrow-band P.862 score, recovered from `pesq_nb` by inverting P.862.1.
  This is what the paper's official code reports (it uses `pypesq`), so it is the paper's "PESQ".
- `stoi` and `estoi`: pystoi with `extended=False` and `extended=True`. The official code's "STOI"
  is ESTOI, so `estoi` is the paper's "STOI".
pesq and pystoi are imported where they are used, so `import sdm` works without them.

Long signals: the `pesq` package runs the P.862 reference C code, which holds at most 50 speech
"utterances" (stretches between pauses) per call and writes past its arrays beyond that, so the
process dies with a segmentation fault. Measured here: concatenated shipped speech crashes from
149 s (narrow-band) and 158 s (wide-band); 60 bursts of speech 0.3 s long with 0.5 s pauses, 48 s
in all, crash too (52 such bursts return a narrow-band score of 4.64, above its 4.55 ceiling,
without crashing); the committed test sets (longest utterance 64.3 s) never crashed. Signals up to
WHOLE_SIGNAL_MAX_S are scored in one call, as every committed score was. A longer one is cut at
pauses into segments of at most 30 s (P.862.3, the application guide, advises 8-30 s), each scored
in a child process, and its PESQ is the length-weighted mean of the segments' scores (`pesq_note`
says so). A crash there costs that metric of that signal (NaN, with the reason), never the process
or the other results. `isolated=True` scores a short signal in a child process too (same value).
"""

from __future__ import annotations

import io
import json
import math
import signal
import subprocess
import sys
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

PESQ_COLUMNS = ("pesq_wb", "pesq_nb", "pesq_raw_nb")
INTELLIGIBILITY_COLUMNS = ("stoi", "estoi")
WAVEFORM_METRICS = PESQ_COLUMNS + INTELLIGIBILITY_COLUMNS

CONVENTIONS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "paper": MappingProxyType({"pesq": "pesq_raw_nb", "stoi": "estoi", "hoyer": "hoyer"}),
        "ours": MappingProxyType({"pesq": "pesq_wb", "stoi": "stoi", "hoyer": "hoyer"}),
    }
)
"""The two metric conventions, role -> column, defined here once: the paper's (its PESQ is raw
narrow-band P.862, its STOI is ESTOI) and the usual one (wide-band PESQ, STOI). Table 1 puts the
paper's columns beside its numbers; every claim is judged under both."""

WHOLE_SIGNAL_MAX_S = 65.0
"""Longest signal scored by one PESQ call. The longest committed test utterance (medium corpus) is
64.3 s, so every committed score was computed this way and stays valid."""
PESQ_SEGMENT_S = 25.0  # nominal segment length; each cut moves to a pause up to 2.5 s away
_CUT_SEARCH_S = 2.5
_CUT_FRAME = 160  # 10 ms at 16 kHz: the energy frame whose quietest instance is a cut

# ITU-T P.862.1: MOS-LQO = LOW + (HIGH - LOW) / (1 + exp(-SLOPE * raw + OFFSET))
_LOW, _HIGH, _SLOPE, _OFFSET = 0.999, 4.999, 1.4945, 4.6607


class MetricError(RuntimeError):
    """A metric is undefined for this utterance (silent, too short, ...); the message says why."""


def hoyer(codes: Any, axis: int = -1) -> Any:
    """Hoyer sparsity of each vector along `axis` (eq. 12): (sqrt(d) - |v|_1/|v|_2) / (sqrt(d) - 1).

    d = codes.shape[axis], the vector's length (m for a VAE/VSC code z, k atoms for an SDM-VAE code
    a); d >= 2. The score is in [0, 1]: 0 when all entries have the same magnitude, 1 when exactly
    one entry is non-zero; it does not change when the vector is scaled. The zero vector has no
    |v|_1/|v|_2; by convention it scores 0 (the constant-vector value, which is also its value as a
    constant vector), so frame averages never turn NaN because of it. NaN entries give NaN.

    numpy in -> numpy out (float32 kept, otherwise float64); torch in -> torch out (same device,
    differentiable away from the zero vector). (..., d, ...) -> the same shape without `axis`.
    """
    torch = sys.modules.get("torch")  # only look for torch if the caller already imported it
    is_tensor = torch is not None and isinstance(codes, torch.Tensor)
    shape = tuple(codes.shape) if is_tensor else np.shape(codes)
    if len(shape) == 0:
        raise ValueError("hoyer: expected an array of vectors, got a scalar")
    d = shape[axis]
    if d < 2:
        raise ValueError(f"hoyer: vectors along axis {axis} need length d >= 2, got shape {shape}")
    root_d = math.sqrt(d)
    if is_tensor:
        v = codes if codes.is_floating_point() else codes.double()
        l1 = v.abs().sum(dim=axis)
        l2 = torch.linalg.vector_norm(v, dim=axis)
        ratio = torch.where(l2 == 0, torch.full_like(l2, root_d), l1 / l2)
        return ((root_d - ratio) / (root_d - 1.0)).clamp(0.0, 1.0)
    v = np.asarray(codes)
    if v.dtype != np.float32:
        v = v.astype(np.float64)
    l1 = np.abs(v).sum(axis=axis)
    l2 = np.sqrt((v * v).sum(axis=axis))
    ratio = np.divide(l1, l2, out=np.full_like(l1, root_d), where=l2 != 0)
    return np.clip((root_d - ratio) / (root_d - 1.0), 0.0, 1.0)


def nb_mos_from_raw(raw: Any) -> Any:
    """ITU-T P.862.1: raw narrow-band P.862 score -> MOS-LQO (what `pesq`'s 'nb' mode returns)."""
    r = np.asarray(raw, dtype=np.float64)
    mos = _LOW + (_HIGH - _LOW) / (1.0 + np.exp(-_SLOPE * r + _OFFSET))
    return float(mos) if mos.ndim == 0 else mos


def raw_from_nb_mos(mos: Any) -> Any:
    """Inverse of P.862.1: raw = (4.6607 - ln((4.999 - y) / (y - 0.999))) / 1.4945.

    Recovers the raw P.862 score that `pypesq` (the official code's metric) reports from the
    narrow-band MOS-LQO. Defined for 0.999 < y < 4.999; outside that range the result is NaN.
    """
    y = np.asarray(mos, dtype=np.float64)
    inside = (y > _LOW) & (y < _HIGH)
    safe = np.where(inside, y, 0.5 * (_LOW + _HIGH))
    raw = np.where(inside, (_OFFSET - np.log((_HIGH - safe) / (safe - _LOW))) / _SLOPE, np.nan)
    return float(raw) if raw.ndim == 0 else raw


def _check_pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape problems are the caller's bug, so they raise; content problems are MetricErrors."""
    ref, est = np.asarray(ref), np.asarray(est)
    if ref.ndim != 1 or est.ndim != 1 or ref.shape != est.shape:
        raise ValueError(
            f"metrics: expected two 1-D signals of the same length, got shapes {ref.shape} "
            f"(reference) and {est.shape} (estimate)"
        )
    return ref.astype(np.float64), est.astype(np.float64)


def _check_content(ref: np.ndarray, est: np.ndarray) -> None:
    if not np.all(np.isfinite(ref)):
        raise MetricError("reference has non-finite samples")
    if not np.all(np.isfinite(est)):
        raise MetricError("estimate has non-finite samples")
    if not np.any(ref):
        raise MetricError("reference is silent (all samples are 0)")


def _reason(exc: BaseException) -> str:
    msg = exc.args[0] if exc.args else ""
    if isinstance(msg, bytes):  # the pesq package's errors carry C strings
        msg = msg.decode(errors="replace")
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _pesq(ref: np.ndarray, est: np.ndarray, fs: int, mode: str, isolated: bool = False) -> float:
    _check_content(ref, est)
    if isolated or len(ref) > WHOLE_SIGNAL_MAX_S * fs:
        return _pesq_isolated(ref, est, fs, mode)
    from pesq import pesq

    try:
        # pesq scales both signals by their joint peak and aligns levels, so the signals' absolute
        # scale (e.g. the official code's 1.0 vs 0.9 peak) does not matter
        return float(pesq(fs, ref, est, mode))
    except Exception as exc:  # pesq raises its own types (NoUtterancesError, ...) and ValueError
        raise MetricError(_reason(exc)) from exc


def pesq_segments(ref: np.ndarray, fs: int = 16000) -> list[tuple[int, int]]:
    """Sample ranges [a, b) PESQ scores separately: one for a signal up to WHOLE_SIGNAL_MAX_S,
    otherwise n = ceil(duration / PESQ_SEGMENT_S) parts, each cut moved to the quietest 10 ms of
    the reference within 2.5 s of the equal split, so that no part exceeds 30 s."""
    n_samples = len(ref)
    if n_samples <= WHOLE_SIGNAL_MAX_S * fs:
        return [(0, n_samples)]
    n = math.ceil(n_samples / (PESQ_SEGMENT_S * fs))
    frame = _CUT_FRAME * fs // 16000
    energy = np.square(np.asarray(ref, dtype=np.float64)[: n_samples // frame * frame])
    energy = energy.reshape(-1, frame).sum(axis=1)
    reach = int(_CUT_SEARCH_S * fs) // frame
    cuts = [0]
    for i in range(1, n):
        centre = round(i * n_samples / n) // frame
        lo, hi = max(centre - reach, 0), min(centre + reach + 1, len(energy))
        cuts.append((lo + int(np.argmin(energy[lo:hi]))) * frame + frame // 2)
    cuts.append(n_samples)
    return list(zip(cuts[:-1], cuts[1:]))


def pesq_note(n_samples: int, fs: int = 16000) -> str:
    """ "" for a signal PESQ scores whole, else how its PESQ was computed (for the output)."""
    if n_samples <= WHOLE_SIGNAL_MAX_S * fs:
        return ""
    n = math.ceil(n_samples / (PESQ_SEGMENT_S * fs))
    return (
        f"PESQ of this {n_samples / fs:.1f} s signal is the length-weighted mean over {n} "
        f"segments of at most 30 s, cut at pauses: P.862 scores at most 50 utterances per call, "
        f"so signals over {WHOLE_SIGNAL_MAX_S:g} s are scored in parts"
    )


# Runs in a separate interpreter, so that a segmentation fault in the pesq extension ends it and
# not the caller. Reads ref, est, bounds, fs and mode (an .npz) from stdin; prints one JSON value
# per segment as soon as it is known: a score, or the error's name and message.
_PESQ_CHILD = """
import io, json, sys
import numpy as np
from pesq import pesq
d = np.load(io.BytesIO(sys.stdin.buffer.read()))
fs, mode, ref, est = int(d["fs"]), str(d["mode"]), d["ref"], d["est"]
for a, b in d["bounds"]:
    try:
        out = float(pesq(fs, ref[a:b], est[a:b], mode))
    except Exception as exc:
        msg = exc.args[0] if exc.args else ""
        msg = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
        out = {"error": type(exc).__name__, "message": msg}
    print(json.dumps(out), flush=True)
"""


def _pesq_in_child(
    ref: np.ndarray, est: np.ndarray, fs: int, mode: str, bounds: list[tuple[int, int]]
) -> list[float | dict | str]:
    """Each segment's pesq() result from child interpreters, in order: a float, an error dict,
    or a string saying why the child died there. A crash costs only the segment it happened in:
    the segments after it are scored by a new child."""
    results: list[float | dict | str] = []
    while len(results) < len(bounds):
        todo = np.asarray(bounds[len(results) :], dtype=np.int64)
        buffer = io.BytesIO()
        np.savez(buffer, ref=ref, est=est, bounds=todo, fs=fs, mode=mode)
        seconds = 60 + 30 * len(todo)
        try:
            child = subprocess.run(
                [sys.executable, "-c", _PESQ_CHILD],
                input=buffer.getvalue(),
                capture_output=True,
                timeout=seconds,
            )
        except subprocess.TimeoutExpired as exc:
            done = (exc.stdout or b"").decode().splitlines()
            results += [json.loads(line) for line in done]
            results.append(f"pesq did not finish within {seconds} s")
            continue
        lines = child.stdout.decode().splitlines()
        results += [json.loads(line) for line in lines]
        if child.returncode != 0 and len(results) < len(bounds):
            results.append(_death(child.returncode, child.stderr.decode(errors="replace")))
    return results


def _death(returncode: int, stderr: str) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the pesq extension crashed ({name})"
    last = stderr.strip().splitlines()[-1:] or [f"exit status {returncode}"]
    return f"pesq could not run: {last[0]}"


def _child_reason(result: dict | str) -> str:
    """A child's error in the words _reason uses in-process, or why the child died."""
    if isinstance(result, str):
        return result
    return f"{result['error']}: {result['message']}" if result["message"] else result["error"]


def _pesq_isolated(ref: np.ndarray, est: np.ndarray, fs: int, mode: str) -> float:
    """PESQ computed in child processes. One segment (a signal up to WHOLE_SIGNAL_MAX_S): the
    value an in-process call gives. Several: their length-weighted mean; segments without speech
    (pesq's NoUtterancesError) are left out, any other failure makes the score NaN."""
    bounds = pesq_segments(ref, fs)
    results = _pesq_in_child(ref, est, fs, mode, bounds)
    if len(bounds) == 1:
        if not isinstance(results[0], float):
            raise MetricError(_child_reason(results[0]))
        return results[0]
    scores, weights = [], []
    for (a, b), result in zip(bounds, results, strict=True):
        if isinstance(result, dict) and result["error"] == "NoUtterancesError":
            continue
        if not isinstance(result, float):
            where = f"segment {a / fs:.1f}-{b / fs:.1f} s of {len(ref) / fs:.1f} s"
            raise MetricError(f"{where}: {_child_reason(result)}")
        scores.append(result)
        weights.append(b - a)
    if not scores:
        raise MetricError(f"no speech found in any of the {len(bounds)} segments")
    return float(np.average(scores, weights=weights))


def _pesq_nb_and_raw(
    ref: np.ndarray, est: np.ndarray, fs: int, isolated: bool = False
) -> tuple[float, float]:
    nb = _pesq(ref, est, fs, "nb", isolated)
    return nb, raw_from_nb_mos(nb)


def _stoi(ref: np.ndarray, est: np.ndarray, fs: int, extended: bool) -> float:
    from pystoi import stoi

    _check_content(ref, est)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(ref, est, fs, extended=extended))
    for w in caught:
        # pystoi returns 1e-5 with a warning when too little speech is left: not a score
        if "Not enough STFT frames" in str(w.message):
            raise MetricError("too little speech: pystoi needs 30 non-silent frames (384 ms)")
    if not math.isfinite(value):
        raise MetricError("pystoi returned a non-finite value")
    return value


def pesq_scores(ref: np.ndarray, est: np.ndarray, fs: int = 16000) -> dict[str, float]:
    """PESQ of `est` against `ref`: pesq_wb, pesq_nb (MOS-LQO) and pesq_raw_nb (raw P.862).

    The paper reports pesq_raw_nb. Raises MetricError when PESQ is undefined for the pair (silent
    reference, shorter than 0.25 s, ...); `utterance_metrics` turns that into NaN and a reason.
    """
    ref, est = _check_pair(ref, est)
    nb, raw = _pesq_nb_and_raw(ref, est, fs)
    return {"pesq_wb": _pesq(ref, est, fs, "wb"), "pesq_nb": nb, "pesq_raw_nb": raw}


def intelligibility_scores(ref: np.ndarray, est: np.ndarray, fs: int = 16000) -> dict[str, float]:
    """STOI and ESTOI (pystoi, extended=False / True). The paper's "STOI" is `estoi`.

    Raises MetricError when undefined (silent reference, too little speech).
    """
    ref, est = _check_pair(ref, est)
    return {"stoi": _stoi(ref, est, fs, False), "estoi": _stoi(ref, est, fs, True)}


def utterance_metrics(
    ref: np.ndarray, est: np.ndarray, fs: int = 16000, isolated: bool = False
) -> dict[str, Any]:
    """All waveform metrics for one utterance, never raising for a bad utterance.

    Returns pesq_wb, pesq_nb, pesq_raw_nb, stoi, estoi and `failures`: "" when every metric was
    computed, otherwise "metric: reason" entries joined by "; " for the metrics that are NaN.
    Only a shape mismatch raises (ValueError): that is a bug in the caller, not a bad utterance.
    isolated: compute PESQ in child processes even for a short signal (same values), so that
    not even a crash of the pesq extension can end the caller; signals over WHOLE_SIGNAL_MAX_S
    always are (module docstring).
    """
    ref, est = _check_pair(ref, est)
    computations = {
        ("pesq_wb",): lambda: (_pesq(ref, est, fs, "wb", isolated),),
        ("pesq_nb", "pesq_raw_nb"): lambda: _pesq_nb_and_raw(ref, est, fs, isolated),
        ("stoi",): lambda: (_stoi(ref, est, fs, False),),
        ("estoi",): lambda: (_stoi(ref, est, fs, True),),
    }
    row: dict[str, Any] = {}
    failures = []
    for names, compute in computations.items():
        try:
            values = compute()
        except Exception as exc:  # any failure of one metric must not lose the others
            values = (math.nan,) * len(names)
            reason = str(exc) if isinstance(exc, MetricError) else _reason(exc)
            failures.append(f"{', '.join(names)}: {reason}")
        row.update(zip(names, values, strict=True))
    row["failures"] = "; ".join(failures)
    return row

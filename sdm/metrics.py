"""Per-utterance metrics: Hoyer sparsity (eq. 12), PESQ (three named flavours), STOI and ESTOI.

Which number is which, because the literature mixes them up:
- `pesq_wb`: wide-band MOS-LQO (ITU-T P.862.2) from the `pesq` package.
- `pesq_nb`: narrow-band MOS-LQO (P.862 followed by the P.862.1 mapping) from the `pesq` package.
- `pesq_raw_nb`: the raw narrow-band P.862 score, recovered from `pesq_nb` by inverting P.862.1.
  This is what the paper's official code reports (it uses `pypesq`), so it is the paper's "PESQ".
- `stoi` and `estoi`: pystoi with `extended=False` and `extended=True`. The official code's "STOI"
  is ESTOI, so `estoi` is the paper's "STOI".
pesq and pystoi are imported where they are used, so `import sdm` works without them.
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

import numpy as np

PESQ_COLUMNS = ("pesq_wb", "pesq_nb", "pesq_raw_nb")
INTELLIGIBILITY_COLUMNS = ("stoi", "estoi")
WAVEFORM_METRICS = PESQ_COLUMNS + INTELLIGIBILITY_COLUMNS

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


def _pesq(ref: np.ndarray, est: np.ndarray, fs: int, mode: str) -> float:
    from pesq import pesq

    _check_content(ref, est)
    try:
        # pesq scales both signals by their joint peak and aligns levels, so the signals' absolute
        # scale (e.g. the official code's 1.0 vs 0.9 peak) does not matter
        return float(pesq(fs, ref, est, mode))
    except Exception as exc:  # pesq raises its own types (NoUtterancesError, ...) and ValueError
        raise MetricError(_reason(exc)) from exc


def _pesq_nb_and_raw(ref: np.ndarray, est: np.ndarray, fs: int) -> tuple[float, float]:
    nb = _pesq(ref, est, fs, "nb")
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


def utterance_metrics(ref: np.ndarray, est: np.ndarray, fs: int = 16000) -> dict[str, Any]:
    """All waveform metrics for one utterance, never raising for a bad utterance.

    Returns pesq_wb, pesq_nb, pesq_raw_nb, stoi, estoi and `failures`: "" when every metric was
    computed, otherwise "metric: reason" entries joined by "; " for the metrics that are NaN.
    Only a shape mismatch raises (ValueError): that is a bug in the caller, not a bad utterance.
    """
    ref, est = _check_pair(ref, est)
    computations = {
        ("pesq_wb",): lambda: (_pesq(ref, est, fs, "wb"),),
        ("pesq_nb", "pesq_raw_nb"): lambda: _pesq_nb_and_raw(ref, est, fs),
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

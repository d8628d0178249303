"""Audio in, spectrograms out: loading, validation and the paper's STFT, defined once.

Every signal that enters `sdm` passes through `load_audio` / `validate_signal`, so a bad file fails
here, with its name, instead of as a NaN loss hours later. `STFT` holds the paper's analysis
settings (1024-sample sine window, 75 % overlap); training, evaluation and resynthesis all read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_PEAK = 100.0
"""Largest |sample| accepted, 40 dB above full scale (1.0). Float audio may exceed full scale a
little; a larger peak means samples stored at another scale (e.g. 16-bit integers as floats, or
garbage such as 1e30), whose power overflows float32 and turns every metric into NaN."""


class AudioError(ValueError):
    """A file or signal that cannot be used as speech; the message names it and the expectation."""


@dataclass(frozen=True)
class STFTConfig:
    """Short-time Fourier transform settings (paper, Sec. 4: 1024-sample sine window, hop 256).

    `pad` is how the signal is extended by n_fft / 2 at both ends so that frame t is centred on
    sample t * hop ("reflect", as librosa.stft did in the official code).
    """

    n_fft: int = 1024
    hop: int = 256
    window: str = "sine"
    pad: str = "reflect"

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.n_fft % 2:
            raise ValueError(f"STFTConfig.n_fft: expected an even integer >= 2, got {self.n_fft}")
        if self.hop < 1 or self.n_fft % self.hop:
            raise ValueError(
                f"STFTConfig.hop: expected a divisor of n_fft={self.n_fft}, got {self.hop}"
            )
        if self.window not in _WINDOWS:
            raise ValueError(
                f"STFTConfig.window: expected one of {sorted(_WINDOWS)}, got {self.window!r}"
            )
        if self.pad not in ("reflect", "constant"):
            raise ValueError(f"STFTConfig.pad: expected 'reflect' or 'constant', got {self.pad!r}")

    @property
    def n_bins(self) -> int:
        """Frequency bins of a one-sided spectrum: n_fft / 2 + 1 (513 for the paper)."""
        return self.n_fft // 2 + 1

    def window_array(self) -> np.ndarray:
        """The analysis (= synthesis) window, float32 (n_fft,)."""
        return _window(self.window, self.n_fft)


_WINDOWS = {
    # sine window w[n] = sin(pi (n + 1/2) / N): its square is a Hann window, so analysis and
    # synthesis with it sum to a constant at 75 % overlap
    "sine": lambda n: np.sin(np.pi * (np.arange(n) + 0.5) / n),
    "hann": lambda n: np.sin(np.pi * np.arange(n) / n) ** 2,
}


@lru_cache(maxsize=8)
def _window(name: str, n_fft: int) -> np.ndarray:
    w = _WINDOWS[name](n_fft).astype(np.float32)
    w.flags.writeable = False
    return w


STFT = STFTConfig()


def validate_signal(x: np.ndarray, name: str = "signal") -> np.ndarray:
    """Return `x` as float32 (samples,), or raise AudioError saying what is wrong with it."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise AudioError(f"{name}: expected a 1-D mono signal, got an array of shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise AudioError(f"{name}: expected real-valued samples, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    _check_finite(x, name)
    _check_scale(x, name)
    if len(x) < STFT.n_fft:
        raise AudioError(
            f"{name}: {len(x)} samples is shorter than one STFT frame; expected at least "
            f"{STFT.n_fft} samples ({1000 * STFT.n_fft / SAMPLE_RATE:.0f} ms at {SAMPLE_RATE} Hz)"
        )
    if not np.any(x):
        raise AudioError(f"{name}: every sample is zero (digital silence); expected speech")
    return x


def _check_finite(x: np.ndarray, name: str) -> None:
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise AudioError(
            f"{name}: {bad} of {x.size} samples are NaN or infinite; expected finite samples"
        )


def _check_scale(x: np.ndarray, name: str) -> None:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > MAX_PEAK:
        raise AudioError(
            f"{name}: samples reach {peak:.3g}, {20 * np.log10(peak):.0f} dB above full scale; "
            f"expected audio scaled to [-1, 1] (at most {MAX_PEAK:g}). Rescale the file (divide by "
            "32768 if it holds 16-bit integer values as floats)"
        )


def _truncation(path: Path, info: object) -> str | None:
    """How much audio a WAV file's header declares beyond the end of the file, or None.

    libsndfile reads what is there without complaint; the header's data size says what is not."""
    if getattr(info, "format", None) != "WAV":
        return None
    with open(path, "rb") as f:
        header = f.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while chunk := f.read(8):
            if len(chunk) < 8:
                return None
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                missing = size - (path.stat().st_size - f.tell())
                if size in (0, 0xFFFFFFFF) or missing <= 0:  # 0 / -1: size left unknown
                    return None
                seconds = missing / (info.samplerate * info.channels * _bytes_per_sample(info))
                return f"{seconds:.2f} s"
            f.seek(size + size % 2, 1)  # chunks are 2-byte aligned
    return None


def _bytes_per_sample(info: object) -> int:
    widths = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
    return widths.get(getattr(info, "subtype", ""), 8)


def load_audio(path: str | Path) -> np.ndarray:
    """Read any file soundfile reads as float32 mono at 16 kHz (samples,).

    Multichannel audio is averaged to mono and other sample rates are resampled (soxr, very high
    quality); both are logged, because both change the signal the model sees.
    """
    import soundfile as sf

    path = Path(path)
    expected = "an audio file soundfile can read (wav, flac, ogg, ...)"
    if not path.exists():
        raise AudioError(f"{path}: no such file; expected {expected}")
    if not path.is_file():
        raise AudioError(f"{path}: is not a file; expected {expected}")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); expected {expected}")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)  # (samples, channels)
        missing = _truncation(path, sf.info(path))
    except Exception as err:  # libsndfile reports corrupt and unknown formats alike
        raise AudioError(f"{path}: cannot be decoded ({err}); expected {expected}") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no samples; expected {expected} with speech in it")
    if missing:
        # the samples that are there are intact: a cut recording is still speech, so read it
        logger.warning(
            "%s: truncated WAV: the header declares %s more audio than the file holds; "
            "reading the %.2f s present",
            path,
            missing,
            data.shape[0] / sr,
        )
    _check_finite(data, str(path))
    _check_scale(data, str(path))
    if data.shape[1] > 1:
        logger.info("%s: %d channels downmixed to mono (channel mean)", path, data.shape[1])
    x = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if sr != SAMPLE_RATE:
        logger.info("%s: resampled from %d Hz to %d Hz", path, sr, SAMPLE_RATE)
        x = _resample(x, sr, SAMPLE_RATE)
    return validate_signal(np.ascontiguousarray(x), str(path))


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    try:
        import soxr
    except ImportError:  # soxr ships with librosa; scipy is the fallback without it
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sr_in, sr_out)
        return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)
    return soxr.resample(x, sr_in, sr_out, quality="VHQ").astype(np.float32, copy=False)


def stft(x: np.ndarray, config: STFTConfig = STFT) -> np.ndarray:
    """Centred STFT of a 1-D signal: complex64 (frames, n_bins), frames first.

    Frame t covers samples [t*hop - n_fft/2, t*hop + n_fft/2); there are 1 + len(x) // hop frames
    (the layout of librosa.stft(center=True), transposed).
    """
    import scipy.fft

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"stft: expected a 1-D signal, got an array of shape {x.shape}")
    half = config.n_fft // 2
    xp = np.pad(x, half, mode=config.pad)
    windows = np.lib.stride_tricks.sliding_window_view(xp, config.n_fft)[:: config.hop]
    spec = scipy.fft.rfft(windows * config.window_array(), axis=1)
    return spec.astype(np.complex64, copy=False)


def istft(spec: np.ndarray, length: int, config: STFTConfig = STFT) -> np.ndarray:
    """Inverse of `stft` by weighted overlap-add: float32 (length,).

    Each frame is windowed again and the sum divided by the summed squared windows, so
    istft(stft(x), len(x)) == x up to rounding (least-squares inverse for modified spectra).
    """
    import scipy.fft

    spec = np.asarray(spec)
    if spec.ndim != 2 or spec.shape[1] != config.n_bins:
        raise ValueError(
            f"istft: expected a spectrogram of shape (frames, {config.n_bins}), got {spec.shape}"
        )
    n_frames, hop = spec.shape[0], config.hop
    w = config.window_array()
    frames = scipy.fft.irfft(spec.astype(np.complex64), n=config.n_fft, axis=1) * w
    # overlap-add in hop-sized blocks: block b receives chunk j of frame b - j
    r = config.n_fft // hop
    chunks = frames.reshape(n_frames, r, hop)
    w2 = (w * w).reshape(r, hop)
    out = np.zeros((n_frames + r - 1, hop), dtype=np.float32)
    norm = np.zeros_like(out)
    for j in range(r):
        out[j : j + n_frames] += chunks[:, j]
        norm[j : j + n_frames] += w2[j]
    y = (out / np.maximum(norm, 1e-8)).ravel()[config.n_fft // 2 :]
    if len(y) < length:
        y = np.pad(y, (0, length - len(y)))
    return np.ascontiguousarray(y[:length], dtype=np.float32)


def power(spec: np.ndarray) -> np.ndarray:
    """|STFT|^2 of a spectrogram as re^2 + im^2: float32 (frames, n_bins), the models' input (no
    log, no scaling). The frame caches' bytes are this formula's (frozen)."""
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def power_spectrogram(x: np.ndarray, config: STFTConfig = STFT) -> np.ndarray:
    """power(stft(x)): a signal's power frames."""
    return power(stft(x, config))


def peak_normalise(x: np.ndarray) -> np.ndarray:
    """Scale so that max |x| = 1, as the official code does for every utterance."""
    x = np.asarray(x, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(peak) or peak == 0.0:
        raise AudioError(f"peak_normalise: expected a finite, non-silent signal, got peak {peak}")
    return x / peak


def trim_silence(x: np.ndarray, top_db: float = 30) -> np.ndarray:
    """Cut leading and trailing parts quieter than `top_db` below the peak (librosa.effects.trim,
    the official code's training-data trim, with librosa's default 2048/512 framing)."""
    import librosa

    trimmed, _ = librosa.effects.trim(np.asarray(x, dtype=np.float32), top_db=top_db)
    return trimmed


def write_audio(path: str | Path, x: np.ndarray, fs: int = SAMPLE_RATE) -> None:
    """Write a waveform, format from the suffix (.wav, .flac, .ogg), through a temporary file."""
    from sdm.results import atomic_write

    path = check_audio_suffix(path)
    fmt = path.suffix.lstrip(".").upper()
    atomic_write(path, lambda p: _write(p, x, fs, fmt))


def check_audio_suffix(path: str | Path) -> Path:
    """`path` when its suffix names an audio format soundfile writes; one clear line otherwise,
    so a bad --out fails before any work."""
    import soundfile as sf

    path = Path(path)
    if path.suffix.lstrip(".").upper() not in sf.available_formats():
        raise AudioError(f"{path}: unknown audio suffix; expected .wav, .flac or .ogg")
    return path


def _write(path: Path, x: np.ndarray, fs: int, fmt: str) -> None:
    import soundfile as sf

    sf.write(path, np.asarray(x, dtype=np.float32), fs, format=fmt)

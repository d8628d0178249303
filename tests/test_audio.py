"""sdm.audio: loading, validation with clear messages, and the paper's STFT."""

import dataclasses
import logging

import numpy as np
import pytest
import soundfile as sf

from sdm.audio import (
    SAMPLE_RATE,
    STFT,
    AudioError,
    STFTConfig,
    istft,
    load_audio,
    peak_normalise,
    power_spectrogram,
    stft,
    trim_silence,
    validate_signal,
)
from sdm.data import resolve_corpus


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - est) ** 2)))


def tone(n: int, sr: int = SAMPLE_RATE, f: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


def test_stft_settings_are_the_papers():
    n = np.arange(1024)
    assert (STFT.n_fft, STFT.hop, STFT.n_bins) == (1024, 256, 513)
    np.testing.assert_allclose(STFT.window_array(), np.sin(np.pi * (n + 0.5) / 1024), atol=1e-7)


def test_stft_config_is_frozen_and_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        STFT.hop = 128
    with pytest.raises(ValueError, match="hop"):
        STFTConfig(hop=300)
    with pytest.raises(ValueError, match="window"):
        STFTConfig(window="kaiser")


def test_stft_is_frames_first_and_matches_librosa():
    librosa = pytest.importorskip("librosa")
    x = load_audio(resolve_corpus("shipped").utterances("val")[0].path)
    spec = stft(x)
    assert spec.dtype == np.complex64
    assert spec.shape == (1 + len(x) // STFT.hop, STFT.n_bins)
    ref = librosa.stft(
        x, n_fft=1024, hop_length=256, window=STFT.window_array(), pad_mode="reflect"
    )
    np.testing.assert_allclose(spec, ref.T, atol=1e-3 * np.abs(ref).max())


def test_power_spectrogram_is_squared_magnitude():
    x = tone(4000)
    p = power_spectrogram(x)
    assert p.dtype == np.float32 and p.shape == (1 + 4000 // 256, 513)
    np.testing.assert_allclose(p, np.abs(stft(x)) ** 2, rtol=1e-5, atol=1e-6)


def test_istft_of_stft_reproduces_shipped_speech_above_60_db():
    for utt in resolve_corpus("shipped").utterances("test"):
        x = load_audio(utt.path)
        y = istft(stft(x), len(x))
        assert y.dtype == np.float32 and y.shape == x.shape
        assert snr_db(x, y) > 60, utt.path


def test_istft_pads_or_cuts_to_the_requested_length():
    x = tone(5000)
    spec = stft(x)
    assert istft(spec, 4000).shape == (4000,)
    y = istft(spec, 6000)
    assert y.shape == (6000,) and snr_db(x, y[:5000]) > 60
    with pytest.raises(ValueError, match="513"):
        istft(spec[:, :100], 5000)


def test_load_resamples_and_downmixes_with_a_notice(tmp_path, caplog):
    n = 44100
    left, right = tone(n, 44100, 300.0), tone(n, 44100, 700.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100)
    with caplog.at_level(logging.INFO, logger="sdm.audio"):
        x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - SAMPLE_RATE) <= 1
    assert "downmixed" in caplog.text and "resampled from 44100 Hz" in caplog.text
    # the mixture keeps both tones at half amplitude: check the 300 Hz one
    expected = 0.5 * tone(len(x), SAMPLE_RATE, 300.0) + 0.5 * tone(len(x), SAMPLE_RATE, 700.0)
    middle = slice(1000, len(x) - 1000)
    assert snr_db(expected[middle], x[middle]) > 40


def test_load_keeps_16k_mono_untouched(tmp_path, caplog):
    x = tone(4000)
    path = tmp_path / "mono.flac"
    sf.write(path, x, SAMPLE_RATE, subtype="PCM_24")
    with caplog.at_level(logging.INFO, logger="sdm.audio"):
        y = load_audio(path)
    assert caplog.text == ""
    np.testing.assert_allclose(y, x, atol=1e-6)


def _write_bad(kind: str, path):
    if kind == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    elif kind == "empty file":
        path.write_bytes(b"")
    elif kind == "no samples":
        sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    elif kind == "zeros":
        sf.write(path, np.zeros(8000, dtype=np.float32), SAMPLE_RATE)
    elif kind == "too short":
        sf.write(path, tone(1000), SAMPLE_RATE)
    elif kind in ("nan", "inf"):
        x = tone(8000)
        x[100] = np.nan if kind == "nan" else np.inf
        sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "no such file; expected an audio file"),
        ("corrupt", "cannot be decoded .*; expected an audio file"),
        ("empty file", r"the file is empty \(0 bytes\); expected an audio file"),
        ("no samples", "contains no samples; expected"),
        ("zeros", "every sample is zero .*; expected speech"),
        ("too short", "1000 samples is shorter than one STFT frame; expected at least 1024"),
        ("nan", "1 of 8000 samples are NaN or infinite; expected finite samples"),
        ("inf", "1 of 8000 samples are NaN or infinite; expected finite samples"),
    ],
)
def test_bad_input_names_the_file_and_the_expectation(tmp_path, kind, message):
    path = tmp_path / f"bad-{kind.replace(' ', '-')}.wav"
    _write_bad(kind, path)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert str(err.value).startswith(str(path))


def test_validate_signal_rejects_wrong_shapes_and_types():
    with pytest.raises(AudioError, match="x: expected a 1-D mono signal"):
        validate_signal(np.ones((2, 2048)), "x")
    with pytest.raises(AudioError, match="expected real-valued"):
        validate_signal(np.ones(2048, dtype=np.complex64), "x")
    assert validate_signal(np.ones(2048, dtype=np.float64)).dtype == np.float32


def test_peak_normalise_scales_the_peak_to_one():
    y = peak_normalise(np.array([0.1, -0.25, 0.2]))
    np.testing.assert_allclose(y, [0.4, -1.0, 0.8])
    with pytest.raises(AudioError, match="non-silent"):
        peak_normalise(np.zeros(10))


def test_trim_silence_cuts_quiet_edges_like_librosa():
    librosa = pytest.importorskip("librosa")
    quiet = np.full(8000, 1e-4, dtype=np.float32)
    x = np.concatenate([quiet, tone(16000), quiet])
    y = trim_silence(x, top_db=30)
    assert 16000 <= len(y) < len(x)
    np.testing.assert_array_equal(y, librosa.effects.trim(x, top_db=30)[0])

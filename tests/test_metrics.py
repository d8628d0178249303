"""Metrics: PESQ/STOI at the ceiling for identical signals, lower when noisy; failures recorded."""

import math

import numpy as np
import pytest
import torch

from sdm.metrics import (
    MetricError,
    hoyer,
    intelligibility_scores,
    nb_mos_from_raw,
    pesq_scores,
    raw_from_nb_mos,
    utterance_metrics,
)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """The first shipped test utterance longer than 2 s (STOI needs 384 ms of speech)."""
    from sdm.data import load_utterance, resolve_corpus

    for utt in resolve_corpus("shipped").utterances("test"):
        x = load_utterance(utt, "clean")
        if len(x) > 32000:
            return x
    raise AssertionError("no shipped test utterance longer than 2 s")


def test_identical_signals_score_at_the_ceiling(speech):
    row = utterance_metrics(speech, speech, 16000)
    assert row["pesq_wb"] == pytest.approx(4.64, abs=0.01)
    assert row["pesq_nb"] == pytest.approx(4.55, abs=0.01)
    assert row["pesq_raw_nb"] == pytest.approx(4.5, abs=0.01)
    assert row["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert row["estoi"] == pytest.approx(1.0, abs=1e-6)
    assert row["failures"] == ""


def test_noisy_estimate_scores_clearly_lower(speech):
    noise = np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    noise *= np.sqrt(np.mean(speech**2) / np.mean(noise**2)) / np.sqrt(10.0)  # 10 dB SNR
    row = utterance_metrics(speech, speech + noise, 16000)
    assert row["pesq_wb"] < 2.5 and row["pesq_raw_nb"] < 3.5
    assert row["stoi"] < 0.95 and row["estoi"] < 0.85
    assert row["failures"] == ""


def test_named_score_functions_return_their_metrics(speech):
    assert set(pesq_scores(speech, speech)) == {"pesq_wb", "pesq_nb", "pesq_raw_nb"}
    assert set(intelligibility_scores(speech, speech)) == {"stoi", "estoi"}


def test_raw_pesq_inverts_the_p862_1_mapping():
    raw = np.linspace(-0.5, 4.5, 41)
    np.testing.assert_allclose(raw_from_nb_mos(nb_mos_from_raw(raw)), raw, atol=1e-9)
    mos = np.linspace(1.02, 4.55, 41)
    np.testing.assert_allclose(nb_mos_from_raw(raw_from_nb_mos(mos)), mos, atol=1e-9)
    # the ceiling the pesq package reports for identical signals, 4.5486, is raw 4.5
    assert raw_from_nb_mos(4.548638343811035) == pytest.approx(4.5, abs=1e-6)
    assert isinstance(raw_from_nb_mos(3.0), float)


@pytest.mark.parametrize("mos", [0.999, 0.5, 4.999, 6.0])
def test_raw_pesq_is_nan_outside_the_mapping_range(mos):
    assert math.isnan(raw_from_nb_mos(mos))


def test_silent_reference_is_missing_with_a_reason():
    silence = np.zeros(48000, dtype=np.float32)
    row = utterance_metrics(silence, silence, 16000)
    for name in ("pesq_wb", "pesq_nb", "pesq_raw_nb", "stoi", "estoi"):
        assert math.isnan(row[name])
        assert name in row["failures"]
    assert "silent" in row["failures"]
    with pytest.raises(MetricError, match="silent"):
        pesq_scores(silence, silence)


def test_too_short_and_non_finite_signals_are_missing_with_reasons(speech):
    short = speech[:3000]
    row = utterance_metrics(short, short, 16000)
    assert math.isnan(row["pesq_wb"]) and math.isnan(row["estoi"])
    assert "BufferTooShortError" in row["failures"] and "pystoi" in row["failures"]
    broken = speech.copy()
    broken[100] = np.nan
    row = utterance_metrics(speech, broken, 16000)
    assert math.isnan(row["pesq_wb"]) and "non-finite" in row["failures"]


def test_mismatched_lengths_are_a_caller_error(speech):
    with pytest.raises(ValueError, match="same length"):
        utterance_metrics(speech, speech[:-1], 16000)


BACKENDS = [np.asarray, lambda a: torch.as_tensor(np.asarray(a))]


@pytest.mark.parametrize("wrap", BACKENDS, ids=["numpy", "torch"])
def test_hoyer_is_within_bounds(wrap):
    codes = np.random.default_rng(0).standard_normal((200, 32)) ** 3
    h = np.asarray(hoyer(wrap(codes)))
    assert h.shape == (200,)
    assert np.all((h >= 0) & (h <= 1))


@pytest.mark.parametrize("wrap", BACKENDS, ids=["numpy", "torch"])
def test_hoyer_is_0_for_constant_magnitude_and_1_for_one_hot(wrap):
    assert np.allclose(np.asarray(hoyer(wrap(np.full((3, 16), -2.5)))), 0.0)
    assert np.allclose(np.asarray(hoyer(wrap([[1.0, -1.0, 1.0, -1.0]]))), 0.0)
    assert np.allclose(np.asarray(hoyer(wrap(np.eye(16) * 3.0))), 1.0)
    # [1, 1, 0, 0]: (2 - sqrt(2)) / (2 - 1)
    assert float(hoyer(wrap([1.0, 1.0, 0.0, 0.0]))) == pytest.approx(2.0 - math.sqrt(2.0))


@pytest.mark.parametrize("wrap", BACKENDS, ids=["numpy", "torch"])
def test_hoyer_is_scale_invariant(wrap):
    codes = np.random.default_rng(1).standard_normal((50, 64))
    base = np.asarray(hoyer(wrap(codes)))
    for scale in (1e-3, -7.0, 1e4):
        np.testing.assert_allclose(np.asarray(hoyer(wrap(codes * scale))), base, rtol=1e-6)


def test_hoyer_conventions_zero_vector_axis_dtype_and_errors():
    assert hoyer(np.zeros((2, 8))).tolist() == [0.0, 0.0]
    assert float(hoyer(torch.zeros(8))) == 0.0
    assert math.isnan(float(hoyer(np.array([np.nan, 1.0]))))
    codes = np.random.default_rng(2).standard_normal((5, 7)).astype(np.float32)
    assert hoyer(codes).dtype == np.float32
    np.testing.assert_allclose(hoyer(codes, axis=0), hoyer(codes.T), rtol=1e-6)
    np.testing.assert_allclose(hoyer(torch.from_numpy(codes)).numpy(), hoyer(codes), rtol=1e-5)
    with pytest.raises(ValueError, match="d >= 2"):
        hoyer(np.ones((4, 1)))

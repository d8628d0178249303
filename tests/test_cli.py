"""`python -m sdm train`: kill-and-resume in real processes, reuse and refusal, bad arguments.

Every command writes under pytest's tmp_path (--out), never into results/.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sdm.data
from sdm.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
VARIANT = "sdm-dct-k32-m32"
RUN = Path("shipped") / "clean" / VARIANT / "seed-0"

# Runs the CLI in-process and SIGKILLs itself in the middle of the epoch after the first checkpoint
# was written (the checkpoint, epoch 1, is complete on disk; epoch 2 is half done in memory).
KILLER = """
import os, signal, sys
import sdm.train
from sdm.models import LatentStack

saved, steps = [], []
atomic_save, forward = sdm.train.save_checkpoint, LatentStack.forward

def save(obj, path):
    atomic_save(obj, path)
    saved.append(path)

def killing_forward(self, x, sample=True):
    if saved and sample:
        steps.append(1)
        if len(steps) == int(os.environ["KILL_AFTER_STEPS"]):
            os.kill(os.getpid(), signal.SIGKILL)
    return forward(self, x, sample)

sdm.train.save_checkpoint, LatentStack.forward = save, killing_forward
from sdm.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def _env(**extra: str) -> dict[str, str]:
    # one thread in every process: bitwise comparisons need the same reduction order
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(args: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _train_args(out: Path, *more: str) -> list[str]:
    return [
        "train",
        "--variant",
        VARIANT,
        "--max-epochs",
        "3",
        "--checkpoint-seconds",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
        *more,
    ]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in csv.DictReader(f)]


def test_killed_mid_epoch_and_resumed_ends_with_the_uninterrupted_weights(tmp_path):
    """SIGKILL in epoch 2 of 3 on the whole shipped corpus (113 steps per epoch), then resume."""
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    run = _run(["-c", KILLER, *_train_args(killed, "--quiet")], KILL_AFTER_STEPS="40")
    assert run.returncode == -signal.SIGKILL, run.stderr
    (ckpt,) = (killed / "shipped" / "clean" / "ckpt").glob("stack-*.pt")
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    assert not (killed / RUN / "model.pt").exists()

    resumed = _run(["-m", "sdm", *_train_args(killed)])  # the same command, with its log shown
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr and "at epoch 1" in resumed.stderr
    assert not ckpt.exists()
    uninterrupted = _run(["-m", "sdm", *_train_args(whole, "--quiet")])
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    a = torch.load(killed / RUN / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(whole / RUN / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after kill and resume"
    assert _rows(killed / RUN) == _rows(whole / RUN)


@pytest.fixture
def small_data(frames_cache, monkeypatch):
    """In-process CLI runs train on 1024 / 256 real shipped frames."""
    real = {
        "train": sdm.data.frames("shipped", "train", "clean", cache_dir=frames_cache)[:1024].copy(),
        "val": sdm.data.frames("shipped", "val", "clean", cache_dir=frames_cache)[:256].copy(),
    }
    monkeypatch.setattr(sdm.data, "frames", lambda data, split, *a, **k: real[split])
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield real
    torch.set_num_threads(torch_threads)


def _cli(capsys, args: list[str]) -> tuple[int, list[str]]:
    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


def test_reuse_refusal_and_overwrite(small_data, tmp_path, capsys):
    args = [
        "train",
        "--variant",
        VARIANT,
        "--max-epochs",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert _cli(capsys, args) == (0, [])
    weights = tmp_path / RUN / "model.pt"
    first = weights.stat().st_mtime_ns

    assert _cli(capsys, args) == (0, [])  # the same identity: reused
    assert weights.stat().st_mtime_ns == first

    code, err = _cli(capsys, [*args, "--patience", "3"])
    assert code == 2 and len(err) == 1, err
    assert "train.patience" in err[0] and "--overwrite" in err[0] and "--out" in err[0]
    assert weights.stat().st_mtime_ns == first

    assert _cli(capsys, [*args, "--patience", "3", "--overwrite"]) == (0, [])
    assert weights.stat().st_mtime_ns != first
    assert '"patience": 3' in (tmp_path / RUN / "config.json").read_text()


def test_nan_is_one_line_naming_variant_epoch_and_step(small_data, tmp_path, capsys):
    small_data["train"][700] = np.nan
    code, err = _cli(
        capsys,
        [
            "train",
            "--variant",
            VARIANT,
            "--max-epochs",
            "2",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(tmp_path),
        ],
    )
    assert code == 1 and len(err) == 1, err
    assert VARIANT in err[0] and "epoch 1," in err[0] and "step " in err[0]
    assert not (tmp_path / RUN / "config.json").exists()


BAD = {
    "unknown variant": (["--variant", "sdm-dct-k99-m32"], "unknown variant"),
    "bad device": (["--variant", VARIANT, "--device", "tpu"], "device"),
    "non-cpu/cuda device": (["--variant", VARIANT, "--device", "meta"], "device"),
    "negative max-epochs": (["--variant", VARIANT, "--max-epochs", "-3"], "max_epochs"),
    "zero patience": (["--variant", VARIANT, "--patience", "0"], "patience"),
    "bad data name": (["--variant", VARIANT, "--data", "no-such-corpus"], "no-such-corpus"),
}
if not torch.cuda.is_available():
    BAD["cuda without a GPU"] = (["--variant", VARIANT, "--device", "cuda"], "no CUDA device")


@pytest.mark.parametrize("case", BAD)
def test_bad_arguments_give_one_line_and_status_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sdm.stacks.fit", lambda *a, **k: pytest.fail("trained anyway"))
    args, expected = BAD[case]
    code, err = _cli(capsys, ["train", *args, "--out", str(tmp_path)])
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("python -m sdm train: error:") and expected in err[0]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["--variant", VARIANT, "--max-epochs", "ten"],
        ["--variant", VARIANT, "--preprocessing", "raw"],
        [],
        ["--variant", VARIANT, "--workers", "0"],
        ["--variant", VARIANT, "--workers", "many"],
    ],
    ids=["not a number", "unknown preprocessing", "no variant", "zero workers", "bad workers"],
)
def test_unparsable_arguments_exit_2_with_argparse_error(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", *args])
    assert exit_.value.code == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1].startswith("python -m sdm train: error:")
    )


@pytest.mark.parametrize("case", ["unknown variant", "bad data name"])
def test_bad_arguments_in_a_real_process_print_no_traceback(case, tmp_path):
    args, expected = BAD[case]
    proc = _run(["-m", "sdm", "train", *args, "--out", str(tmp_path)])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and expected in lines[0]


def test_evaluate_resynthesises_one_file_and_prints_named_metrics(tmp_path):
    """`python -m sdm evaluate` on an 8 kHz stereo file: output written, one metric per line."""
    import numpy as np
    import soundfile as sf

    run = _run(
        [
            "-m",
            "sdm",
            "train",
            "--variant",
            "vae-m32",
            "--max-epochs",
            "1",
            "--out",
            str(tmp_path),
            "--quiet",
            "--device",
            "cpu",
        ]
    )
    assert run.returncode == 0, run.stderr
    from sdm.audio import load_audio

    x = load_audio(ROOT / "data/speech/test/cmu_cards/001.flac")
    stereo = np.stack([x[::2], 0.5 * x[::2]], axis=1)  # 8 kHz, two channels
    sf.write(tmp_path / "in.wav", stereo, 8000)
    run_dir = tmp_path / "shipped/clean/vae-m32/seed-0"
    out = _run(
        [
            "-m",
            "sdm",
            "evaluate",
            "--run",
            str(run_dir),
            "--audio",
            str(tmp_path / "in.wav"),
            "--out",
            str(tmp_path / "out.wav"),
        ]
    )
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert names[:7] == ["pesq_wb", "pesq_nb", "pesq_raw_nb", "stoi", "estoi", "hoyer", "is_div"]
    y, fs = sf.read(tmp_path / "out.wav")
    assert fs == 16000 and y.ndim == 1 and abs(len(y) - 2 * len(stereo)) < 16

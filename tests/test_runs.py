"""Run folders (`sdm.results`, `sdm.runs`) and train-what-is-missing (`sdm.stacks`).

Training reads small slices of real shipped frames (`sdm.data.frames` is patched); the identity
still names the real shipped corpus. Everything is written under pytest's tmp_path.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

import sdm.data
import sdm.stacks
from sdm import results, runs
from sdm.config import TrainConfig
from sdm.data import resolve_corpus
from sdm.models import LatentStack
from sdm.runs import RunConflictError, make_specs
from sdm.stacks import ensure_trained
from sdm.training_state import _validate
from sdm.variants import get_variant

VARIANT = get_variant("sdm-dct-k32-m32")
SMALL = TrainConfig(max_epochs=3, val_every_steps=1)
STEPS = 8  # 1024 frames / batch 128


@pytest.fixture(scope="module")
def small_frames(frames_cache):
    """Stands in for sdm.data.frames: the first 1024 train, 256 val frames of the shipped corpus."""
    from sdm.data import frames

    real = {
        "train": frames("shipped", "train", "clean", cache_dir=frames_cache)[:1024].copy(),
        "val": frames("shipped", "val", "clean", cache_dir=frames_cache)[:256].copy(),
    }

    def small(data, split, preprocessing="clean", cache_dir=None):
        assert (getattr(data, "name", data), preprocessing) == ("shipped", "clean")
        return real[split]

    return small


@pytest.fixture
def patched(small_frames, monkeypatch):
    monkeypatch.setattr(sdm.data, "frames", small_frames)


def _train(root: Path, variants=(VARIANT,), seeds=(0,), cfg=SMALL, **kw) -> list[Path]:
    specs = make_specs(list(variants), list(seeds), "shipped", "clean", cfg)
    return ensure_trained(specs, root, device="cpu", progress=False, **kw)


@pytest.fixture(scope="module")
def trained(small_frames, tmp_path_factory) -> Path:
    """One finished run, shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sdm.data, "frames", small_frames)
        _train(root)
    return root


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / results.HISTORY_FILE, newline="") as f:
        return list(csv.DictReader(f))


def _no_training(*args, **kwargs):
    pytest.fail("a finished run with the same identity was trained again")


def test_run_folder_layout(trained, small_frames):
    run_dir = trained / "shipped" / "clean" / "sdm-dct-k32-m32" / "seed-0"
    spec = make_specs([VARIANT], [0], train=SMALL)[0]
    assert spec.directory(trained) == run_dir
    assert {p.name for p in run_dir.iterdir()} == {"config.json", "history.csv", "model.pt"}
    assert results.is_trained(run_dir) and not results.is_evaluated(run_dir)
    assert not list((trained / "shipped" / "clean" / "ckpt").glob("*.pt")), "resume file left"

    config = json.loads((run_dir / "config.json").read_text())
    assert config["status"] == "trained"
    assert config["identity"] == spec.identity(resolve_corpus("shipped").checksum())
    assert config["identity"]["train"] == SMALL.result_settings()
    assert config["result"]["epochs_run"] == 3
    assert config["result"]["val_interval_epochs"] == 1

    rows = _history(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # one row per validation
    expected = {
        "epoch",
        "step",
        "train_loss",
        "train_recon",
        "train_kl",
        "val_loss",
        "val_recon",
        "val_kl",
        "val_hoyer",
        "gamma_mean",
        "gamma_median",
        "elapsed_s",
    }
    assert expected <= set(rows[0])
    for r in rows:
        v = {k: float(x) for k, x in r.items()}
        assert v["train_loss"] == pytest.approx(v["train_recon"] + v["train_kl"], rel=1e-4)
        assert v["val_loss"] == pytest.approx(v["val_recon"] + v["val_kl"], rel=1e-4)
        assert 0.0 <= v["val_hoyer"] <= 1.0 and v["gamma_mean"] > 0

    # model.pt rebuilds the model from the folder alone, with the best epoch's weights
    model = runs.load_runs([run_dir])
    assert model.configs == [VARIANT] and model.seeds == [0]
    val = torch.from_numpy(small_frames("shipped", "val"))
    best = float(_validate(model, val)["val_loss"][0])
    assert best == pytest.approx(config["result"]["best_val_loss"], rel=1e-6)
    rec = model.reconstruct(val[:10])
    assert rec.variance.shape == (1, 10, 513) and torch.isfinite(rec.variance).all()


def test_history_of_other_families_has_no_gamma(patched, tmp_path):
    (run_dir,) = _train(tmp_path, [get_variant("vae-m32")], cfg=TrainConfig(max_epochs=1))
    (row,) = _history(run_dir)
    assert "gamma_mean" not in row and 0.0 <= float(row["val_hoyer"]) <= 1.0


def test_a_finished_run_with_the_same_identity_is_reused(trained, patched, monkeypatch):
    run_dir = make_specs([VARIANT], [0], train=SMALL)[0].directory(trained)
    before = _mtimes(run_dir)
    monkeypatch.setattr(sdm.stacks, "fit", _no_training)
    assert _train(trained) == [run_dir]
    # the checkpoint period, the device and the stack are not part of the identity
    stack = [VARIANT, get_variant("sdm-I-m32")]
    assert _train(trained, cfg=TrainConfig(max_epochs=3, val_every_steps=1, checkpoint_seconds=1))
    assert _mtimes(run_dir) == before
    # a stack that holds the finished run trains only the missing member
    trained_members = []
    monkeypatch.setattr(
        sdm.stacks,
        "fit",
        lambda configs, seeds, *a, **k: trained_members.extend(zip(configs, seeds)) or [],
    )
    _train(trained, stack)
    assert trained_members == [(stack[1], 0)]
    assert _mtimes(run_dir) == before


@pytest.mark.parametrize(
    ("changed", "setting"),
    [
        (TrainConfig(max_epochs=3, val_every_steps=1, patience=5), "train.patience"),
        (TrainConfig(max_epochs=4, val_every_steps=1), "train.max_epochs"),
        (TrainConfig(max_epochs=3, val_every_steps=1, lr=1e-3), "train.lr"),
    ],
)
def test_a_finished_run_with_another_identity_is_refused(
    trained, patched, monkeypatch, changed, setting
):
    run_dir = make_specs([VARIANT], [0], train=SMALL)[0].directory(trained)
    before = _mtimes(run_dir)
    monkeypatch.setattr(sdm.stacks, "fit", _no_training)
    with pytest.raises(RunConflictError) as err:
        _train(trained, cfg=changed)
    msg = str(err.value)
    assert str(run_dir) in msg and setting in msg and "--overwrite" in msg and "--out" in msg
    assert "\n" not in msg
    assert _mtimes(run_dir) == before


def test_overwrite_retrains_a_finished_run(trained, patched, tmp_path, monkeypatch):
    root = tmp_path / "results"
    shutil.copytree(trained, root)
    run_dir = make_specs([VARIANT], [0], train=SMALL)[0].directory(root)
    old = torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]
    calls = []
    fit = sdm.stacks.fit
    monkeypatch.setattr(sdm.stacks, "fit", lambda *a, **k: calls.append(1) or fit(*a, **k))
    other = TrainConfig(max_epochs=2, val_every_steps=1, lr=1e-3)
    _train(root, cfg=other, overwrite=True)
    assert calls == [1]
    config = results.read_config(run_dir)
    assert (
        config["identity"]["train"] == other.result_settings()
        and config["result"]["epochs_run"] == 2
    )
    new = torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]
    assert not torch.equal(old["encoder.hidden.weight"], new["encoder.hidden.weight"])


class _Killed(Exception):
    """Stands in for SIGKILL inside one process: raised mid-epoch, nothing is written after it."""


def test_an_interrupted_stack_resumes_and_keeps_the_members_it_finished(
    patched, tmp_path, monkeypatch, caplog
):
    """Two seeds stop at different epochs; interrupted after the first one is saved, the rerun
    resumes the stack from its checkpoint (no restart) and ends as an uninterrupted run."""
    cfg = TrainConfig(lr=1e-3, max_epochs=30, patience=2, val_every_steps=1, checkpoint_seconds=0)
    whole = _train(tmp_path / "whole", seeds=(0, 1), cfg=cfg)
    epochs = [results.read_config(d)["result"]["epochs_run"] for d in whole]
    assert epochs[0] < epochs[1], f"seed 0 must stop before seed 1, got {epochs}; pick other seeds"

    root = tmp_path / "interrupted"
    forward, steps = LatentStack.forward, []

    def killed(self, x, sample=True):
        steps.append(sample)
        if steps.count(True) == epochs[0] * STEPS + STEPS // 2:
            raise _Killed
        return forward(self, x, sample)

    monkeypatch.setattr(LatentStack, "forward", killed)
    with pytest.raises(_Killed):
        _train(root, seeds=(0, 1), cfg=cfg)
    monkeypatch.setattr(LatentStack, "forward", forward)
    first, second = (s.directory(root) for s in make_specs([VARIANT], [0, 1], train=cfg))
    assert results.is_trained(first) and not results.is_trained(second)
    first_files = _mtimes(first)

    with caplog.at_level(logging.INFO, logger="sdm.train"):
        _train(root, seeds=(0, 1), cfg=cfg)
    assert f"at epoch {epochs[0]}" in caplog.text, "the stack restarted instead of resuming"
    assert _mtimes(first) == first_files
    for done, expected in zip((first, second), whole):
        a = torch.load(done / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(expected / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert [r["val_loss"] for r in _history(done)] == [
            r["val_loss"] for r in _history(expected)
        ]
    assert not list((root / "shipped" / "clean" / "ckpt").glob("*.pt"))


def test_a_run_named_twice_is_trained_once(patched, tmp_path, monkeypatch):
    members = []
    fit = sdm.stacks.fit

    def spy(configs, seeds, *a, **k):
        members.extend(zip(configs, seeds))
        return fit(configs, seeds, *a, **k)

    monkeypatch.setattr(sdm.stacks, "fit", spy)
    _train(tmp_path, [VARIANT, VARIANT], seeds=(0, 0), cfg=TrainConfig(max_epochs=1))
    assert members == [(VARIANT, 0)]


def test_data_slug_and_load_runs_errors(tmp_path):
    assert results.data_slug("shipped") == "shipped"
    assert results.data_slug("tcd-timit:/x/y") == "tcd-timit"
    assert results.data_slug(str(tmp_path / "my corpus")) == "folder-my_corpus"
    with pytest.raises(FileNotFoundError, match="model.pt"):
        runs.load_runs([tmp_path])


def test_a_stack_resumes_through_table1_when_fewer_variants_are_listed(
    patched, tmp_path, monkeypatch, caplog
):
    """A three-member stack is killed after one member finished; `table1` listing only the two
    unfinished variants (a new member list, so a new checkpoint name) finds the stack's checkpoint,
    says so, and ends as the uninterrupted stack did."""
    from sdm import pipeline

    names = ["vae-m64", "sdm-I-m64", "sdm-dct-k32-m32"]  # three shape groups
    variants = [get_variant(n) for n in names]
    cfg = TrainConfig(lr=1e-3, max_epochs=30, patience=2, val_every_steps=1, checkpoint_seconds=0)
    whole = _train(tmp_path / "whole", variants, seeds=(3,), cfg=cfg)
    epochs = [results.read_config(d)["result"]["epochs_run"] for d in whole]
    assert epochs[2] < min(epochs[:2]), f"seed 3 of the DCT member must stop first, got {epochs}"

    root = tmp_path / "interrupted"
    forward, steps = LatentStack.forward, []

    def killed(self, x, sample=True):
        steps.append(sample)
        if steps.count(True) == epochs[2] * STEPS * 3 + STEPS // 2 * 2:  # mid-epoch, 2 left
            raise _Killed
        return forward(self, x, sample)

    monkeypatch.setattr(LatentStack, "forward", killed)
    with pytest.raises(_Killed):
        _train(root, variants, seeds=(3,), cfg=cfg)
    monkeypatch.setattr(LatentStack, "forward", forward)
    dirs = [s.directory(root) for s in make_specs(variants, [3], train=cfg)]
    assert [results.is_trained(d) for d in dirs] == [False, False, True]

    monkeypatch.setattr(pipeline, "ensure_evaluated", lambda specs, *a, **k: dict.fromkeys(specs))
    monkeypatch.setattr(pipeline, "oracle_metrics", lambda *a, **k: None)
    resolved, resolve = [], sdm.data._manifest_corpus
    monkeypatch.setattr(sdm.data, "_manifest_corpus", lambda *a: resolved.append(a) or resolve(*a))
    caplog.clear()
    options = pipeline.Options(
        seeds=(3,), train=cfg, root=root, device="cpu", progress=False, variants=tuple(names[:2])
    )
    with caplog.at_level(logging.INFO, logger="sdm"):
        pipeline.run(options)
    assert len(resolved) == 1, "the corpus is resolved once per command"
    assert f"at epoch {epochs[2]}" in caplog.text, "the stack restarted instead of resuming"
    assert "resuming" in caplog.text and "starting fresh" not in caplog.text
    for done, expected in zip(dirs, whole):
        a = torch.load(done / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(expected / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(results.checkpoint_dir(root, "shipped", "clean").glob("*.pt"))


def test_a_fresh_stack_says_so(patched, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="sdm"):
        _train(tmp_path, cfg=TrainConfig(max_epochs=1))
    assert (
        "starting fresh: no checkpoint" in caplog.text and "sdm-dct-k32-m32/seed-0" in caplog.text
    )


def test_a_member_done_in_the_checkpoint_but_missing_on_disk_is_saved_from_it(patched, tmp_path):
    """Killed after the final checkpoint but before the run folders were written (or a folder
    removed since): the rerun writes them from the checkpoint instead of losing the training."""
    cfg = TrainConfig(max_epochs=2, val_every_steps=1, checkpoint_seconds=0)
    specs = make_specs([VARIANT], [0, 1], "shipped", "clean", cfg)
    ckpt = results.stack_checkpoint(tmp_path, "shipped", "clean", specs)
    from sdm.train import fit

    train, val = (torch.from_numpy(sdm.data.frames("shipped", s)) for s in ("train", "val"))
    finished = fit([VARIANT, VARIANT], [0, 1], train, val, cfg, "cpu", ckpt, None, False, 2)
    assert list(ckpt.parent.glob("stack-*.shard*of2.pt"))
    _train(tmp_path, seeds=(0, 1), cfg=cfg)
    for spec, result in zip(specs, finished):
        saved = torch.load(spec.directory(tmp_path) / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(saved[k], result.best_state[k]) for k in saved)
    assert not list(ckpt.parent.glob("*.pt"))


def test_state_dir_moves_checkpoints_medium_and_caches_out_of_the_tree(tmp_path, monkeypatch):
    from sdm import data, state

    monkeypatch.delenv(state.STATE_ENV, raising=False)
    root = tmp_path / "results"
    assert results.checkpoint_dir(root, "medium", "clean") == root / "medium" / "clean" / "ckpt"
    assert data.medium_dir() == data.MEDIUM_DIR and data.frames_cache_dir() == data.CACHE_DIR
    monkeypatch.setenv(state.STATE_ENV, str(tmp_path / "state"))
    ckpt = results.checkpoint_dir(root, "medium", "clean")
    assert ckpt.parent.parent.parent == tmp_path / "state" / "ckpt"
    assert ckpt.parent.parent.name.startswith("results-") and ckpt.parts[-2:] == ("medium", "clean")
    assert results.checkpoint_dir(tmp_path / "other" / "results", "medium", "clean") != ckpt
    assert data.medium_dir() == tmp_path / "state" / "data" / "medium"
    assert data.frames_cache_dir() == tmp_path / "state" / "cache" / "frames"
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(state.STATE_ENV, str(tmp_path / "file"))
    with pytest.raises(ValueError, match="SDM_STATE_DIR=.*expected a folder"):
        state.state_dir()

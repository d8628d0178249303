"""Frozen formats: checkpoints written before the reorganisation still resume, and the trainer's
arithmetic is pinned by a golden hash.

The fixture (tests/fixtures/legacy/, written by its make_fixture.py with the code of commit
4f689fc) holds one unsharded and one 2-shard checkpoint of the same five members — every family,
both fixed dictionaries, one member already stopped early — interrupted mid-training. The hashes
below were computed with that same code on this machine class (x86-64, torch 2.13.0+cpu, one
thread). A change that alters the weights a run ends with, or that stops these files resuming,
fails here: it needs a migration (and a new fixture beside this one), not a new hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy"
sys.path.insert(0, str(FIXTURE))
import make_fixture  # noqa: E402

from sdm.config import ModelConfig, TrainConfig  # noqa: E402
from sdm.parallel import fit_sharded  # noqa: E402
from sdm.train import fit  # noqa: E402

GOLDEN_2_EPOCHS = "baa902860ce61ee7f1c01db0598f55a083ea6d3b4970277f0e0f164989478844"
GOLDEN_RESUMED = "9a443d0e4f70a06ae8fca674414121a786254d30f7c063a376c225a03fc4724b"
# In two processes the two DCT members sit in stacks of one instead of one stack of two, and with
# 2 hidden units the batched kernels round differently: the sharded layout has its own hash (its
# resumed result equals its own uninterrupted run, checked when the hash was taken).
GOLDEN_RESUMED_SHARDED = "d1a63d1ae4a0176100583c79c65baaa617657f7d2a661a7b9f4526df72ddcbb2"


def weights_hash(results) -> str:
    """sha256 of every member's best weights (name, dtype, shape, bytes), epochs, best epoch."""
    h = hashlib.sha256()
    for r in results:
        h.update(json.dumps([r.config.to_dict(), r.seed, r.epochs_run, r.best_epoch]).encode())
        for name in sorted(r.best_state):
            t = r.best_state[name].detach().cpu().contiguous()
            h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
    return h.hexdigest()


def _members():
    return [c for c, _ in make_fixture.MEMBERS], [s for _, s in make_fixture.MEMBERS]


def test_the_fixture_is_what_make_fixture_describes():
    info = json.loads((FIXTURE / "fixture.json").read_text())
    assert info["checkpoint_format"] == 2
    assert TrainConfig(**info["train_config"]) == make_fixture.CFG
    assert [(ModelConfig.from_dict(c), s) for c, s in info["members"]] == make_fixture.MEMBERS
    assert {c.family for c, _ in make_fixture.MEMBERS} == {"vae", "vsc", "sdm"}
    # one member stopped before the kill, the others were still training
    assert min(info["uninterrupted_epochs_run"]) < info["killed_in_epoch"] - 1
    assert max(info["uninterrupted_epochs_run"]) > info["killed_in_epoch"]


def test_golden_hash_of_two_epochs():
    train, val = make_fixture.frames()
    cfg = TrainConfig(lr=1e-3, max_epochs=2, val_every_steps=1)
    results = fit(*_members(), train, val, cfg, "cpu", progress=False)
    assert weights_hash(results) == GOLDEN_2_EPOCHS


def test_the_legacy_unsharded_checkpoint_resumes_to_the_uninterrupted_result(tmp_path):
    shutil.copy(FIXTURE / make_fixture.UNSHARDED, tmp_path / make_fixture.UNSHARDED)
    train, val = make_fixture.frames()
    resumed = fit(
        *_members(),
        train,
        val,
        make_fixture.CFG,
        "cpu",
        tmp_path / make_fixture.UNSHARDED,
        progress=False,
    )
    whole = fit(*_members(), train, val, make_fixture.CFG, "cpu", progress=False)
    assert weights_hash(resumed) == weights_hash(whole) == GOLDEN_RESUMED
    info = json.loads((FIXTURE / "fixture.json").read_text())
    assert [r.epochs_run for r in resumed] == info["uninterrupted_epochs_run"]


def test_the_legacy_sharded_checkpoint_resumes_to_its_pinned_result(tmp_path):
    for p in FIXTURE.glob("stack-legacy.shard*of2.pt"):
        shutil.copy(p, tmp_path / p.name)
    train, val = make_fixture.frames()
    resumed = fit_sharded(
        *_members(),
        train,
        val,
        make_fixture.CFG,
        "cpu",
        tmp_path / make_fixture.UNSHARDED,
        progress=False,
        workers=1,  # the shard files on disk decide the layout: 2 processes
    )
    assert weights_hash(resumed) == GOLDEN_RESUMED_SHARDED
    assert [r.epochs_run for r in resumed] == [40, 12, 40, 40, 36]

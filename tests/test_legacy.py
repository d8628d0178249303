"""Frozen formats: checkpoints written before the reorganisation still resume, and the trainer's
arithmetic is pinned by reference weights.

The fixture (tests/fixtures/legacy/, written by its make_fixture.py with the code of commit
4f689fc) holds one unsharded and one 2-shard checkpoint of the same five members — every family,
both fixed dictionaries, one member already stopped early — interrupted mid-training. golden.py
beside it holds the reference weights of three runs and the tolerance that absorbs how CPUs round
(its docstring says how it was measured). A change that alters the weights a run ends with, or
when a member stops, or that stops these files resuming, fails here: it needs a migration (and a
new fixture beside this one), not a new reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy"
sys.path.insert(0, str(FIXTURE))
import golden  # noqa: E402
import make_fixture  # noqa: E402

from sdm.config import ModelConfig, TrainConfig  # noqa: E402
from sdm.train import fit  # noqa: E402


def test_the_fixture_is_what_make_fixture_describes():
    info = json.loads((FIXTURE / "fixture.json").read_text())
    assert info["checkpoint_format"] == 2
    assert TrainConfig(**info["train_config"]) == make_fixture.CFG
    assert [(ModelConfig.from_dict(c), s) for c, s in info["members"]] == make_fixture.MEMBERS
    assert {c.family for c, _ in make_fixture.MEMBERS} == {"vae", "vsc", "sdm"}
    # one member stopped before the kill, the others were still training
    assert min(info["uninterrupted_epochs_run"]) < info["killed_in_epoch"] - 1
    assert max(info["uninterrupted_epochs_run"]) > info["killed_in_epoch"]


def test_two_epochs_match_the_reference_weights():
    golden.assert_matches(golden.two_epochs(), "two_epochs")


def test_the_legacy_unsharded_checkpoint_resumes_to_the_uninterrupted_result(tmp_path):
    resumed = golden.resumed_unsharded(tmp_path)
    golden.assert_matches(resumed, "resumed")
    info = json.loads((FIXTURE / "fixture.json").read_text())
    assert [r.epochs_run for r in resumed] == info["uninterrupted_epochs_run"]
    # on one machine, resuming is bitwise: an uninterrupted run equals the resumed one
    # (the fixture's first epochs ran on another machine, so that run is the reference here)
    whole = fit(*golden.members(), *make_fixture.frames(), make_fixture.CFG, "cpu", progress=False)
    golden.assert_matches(whole, "resumed")


def test_the_legacy_sharded_checkpoint_resumes_to_its_pinned_result(tmp_path):
    # In two processes the two DCT members sit in stacks of one instead of one stack of two, and
    # with 2 hidden units the batched kernels round differently: the sharded layout has its own
    # reference (its resumed result equals its own uninterrupted run, checked when it was taken).
    resumed = golden.resumed_sharded(tmp_path)
    golden.assert_matches(resumed, "resumed_sharded")
    assert [r.epochs_run for r in resumed] == [40, 12, 40, 40, 36]


def test_the_reference_catches_a_change_of_arithmetic():
    """A learning rate 1 % off is a change the tolerance must not absorb."""
    frames = make_fixture.frames()
    changed = TrainConfig(lr=1.01e-3, max_epochs=2, val_every_steps=1)
    results = fit(*golden.members(), *frames, changed, "cpu", progress=False)
    try:
        golden.assert_matches(results, "two_epochs")
    except AssertionError as e:
        assert "differs from the reference" in str(e)
    else:
        raise AssertionError("a 1 % change of the learning rate passed as the reference")

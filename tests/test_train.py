"""The one training loop (`sdm.train.fit`), on small slices of real shipped speech.

Every comparison of weights here is bitwise (`torch.equal`): on the CPU with one thread, the same
seed gives the same weights, whether a member trains alone or in a stack, interrupted or not.
"""

from __future__ import annotations

import math

import pytest
import torch

import sdm.train
from sdm.config import TrainConfig
from sdm.models import SHUFFLE_STREAM, LatentStack, _seed_stream, build_model
from sdm.train import MemberResult, NonFiniteLossError, fit, pick_device
from sdm.training_state import _validate
from sdm.variants import get_variant

VARIANT = get_variant("sdm-dct-k32-m32")
N_TRAIN, N_VAL, BATCH = 1024, 256, 128
STEPS = N_TRAIN // BATCH  # 8 optimizer steps per epoch
# a learning rate 10x the paper's makes the validation loss turn within a few epochs, so that
# early stopping has something to stop on in a test of seconds
FAST_STALL = TrainConfig(lr=1e-3, max_epochs=30, patience=2, val_every_steps=1)
# three members of one shape: two variants, two seeds
STACK = [(VARIANT, 0), (get_variant("sdm-I-m32"), 0), (VARIANT, 1)]


class _Killed(Exception):
    """Stands in for SIGKILL inside one process: raised mid-epoch, nothing is written after it."""


@pytest.fixture(scope="module")
def data(frames_cache) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 1024 training and 256 validation power frames of the shipped corpus."""
    from sdm.data import frames

    train = frames("shipped", "train", "clean", cache_dir=frames_cache)[:N_TRAIN]
    val = frames("shipped", "val", "clean", cache_dir=frames_cache)[:N_VAL]
    return torch.from_numpy(train.copy()), torch.from_numpy(val.copy())


def _fit(data, members, cfg, **kw) -> list[MemberResult]:
    train, val = data
    configs, seeds = zip(*members)
    return fit(list(configs), list(seeds), train, val, cfg, device="cpu", progress=False, **kw)


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def _without_time(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in history]


def _val_loss(state: dict[str, torch.Tensor], val: torch.Tensor, config=VARIANT, seed=0) -> float:
    model = build_model(config, seed)
    model.load_state_dict(state)
    return float(_validate(model, val)["val_loss"][0])


@pytest.fixture(scope="module")
def stack_run(data) -> list[MemberResult]:
    return _fit(data, STACK, FAST_STALL)


def test_validation_interval_spans_about_1000_steps(frames_cache):
    cfg = TrainConfig()
    from sdm.data import frames

    shipped_steps = math.ceil(
        len(frames("shipped", "train", "clean", cache_dir=frames_cache)) / 128
    )
    assert shipped_steps == 113
    assert cfg.val_interval(shipped_steps) == 9  # book/conventions.md: every 9 epochs on shipped
    assert cfg.val_interval(14_000) == 1  # TCD-TIMIT: every epoch, the paper's rule
    assert cfg.val_interval(1000) == 1
    assert cfg.val_interval(999) == 2
    assert cfg.val_interval(STEPS) == math.ceil(1000 / STEPS)


def test_validation_every_v_epochs_and_always_at_the_last(data):
    # 8 steps per epoch, validate every 20 steps: v = ceil(20 / 8) = 3; 7 epochs -> 3, 6 and 7
    (r,) = _fit(data, [(VARIANT, 0)], TrainConfig(max_epochs=7, val_every_steps=20))
    assert [row["epoch"] for row in r.history] == [3, 6, 7]
    assert [row["step"] for row in r.history] == [3 * STEPS, 6 * STEPS, 7 * STEPS]
    assert r.epochs_run == 7 and not r.stopped_early


def test_loss_decreases_on_shipped_speech_within_a_few_epochs(data):
    (r,) = _fit(data, [(VARIANT, 0)], TrainConfig(max_epochs=4, val_every_steps=1))
    train_loss = [row["train_loss"] for row in r.history]
    val_loss = [row["val_loss"] for row in r.history]
    assert all(b < a for a, b in zip(train_loss, train_loss[1:])), train_loss
    assert val_loss[-1] < val_loss[0], val_loss
    assert all(math.isfinite(v) for row in r.history for v in row.values())


def test_one_epoch_changes_every_trained_weight_and_no_fixed_dictionary(data):
    (r,) = _fit(data, [(VARIANT, 0)], TrainConfig(max_epochs=1))
    init = build_model(VARIANT, 0).state_dict()
    for name, value in r.best_state.items():
        if name.startswith("dictionary."):
            assert torch.equal(value, init[name]), "the fixed dictionary D must not train"
        else:
            assert not torch.equal(value, init[name]), f"{name} did not change in one epoch"


def test_early_stopping_restores_the_best_epoch_not_the_last(data, tmp_path):
    """Regression test for the official code, whose 'best' state aliased the live weights."""
    ckpt = tmp_path / "ckpt.pt"
    (r,) = _fit(data, [(VARIANT, 0)], FAST_STALL, checkpoint=ckpt)
    val_losses = [row["val_loss"] for row in r.history]
    assert r.stopped_early and r.epochs_run < FAST_STALL.max_epochs
    assert [row["epoch"] for row in r.history] == list(range(1, r.epochs_run + 1))
    # stopped after `patience` validations without a new best
    assert r.epochs_run - r.best_epoch == FAST_STALL.patience
    assert r.best_val == min(val_losses) == val_losses[r.best_epoch - 1]
    assert r.best_epoch < r.epochs_run

    # the returned weights reproduce the best epoch's validation loss ...
    assert _val_loss(r.best_state, data[1]) == pytest.approx(r.best_val, rel=1e-6)
    # ... while the last weights (kept in the final checkpoint) reproduce the last epoch's
    last = torch.load(ckpt, weights_only=False)["groups"][0]["model"]
    assert _val_loss(last, data[1]) == pytest.approx(val_losses[-1], rel=1e-6)
    assert any(not torch.equal(last[k], v) for k, v in r.best_state.items())


def test_same_seed_same_weights_other_seed_other_weights(data):
    cfg = TrainConfig(max_epochs=2)
    (a,) = _fit(data, [(VARIANT, 0)], cfg)
    (b,) = _fit(data, [(VARIANT, 0)], cfg)
    (c,) = _fit(data, [(VARIANT, 1)], cfg)
    _assert_same_weights(a.best_state, b.best_state)
    assert _without_time(a.history) == _without_time(b.history)
    assert not torch.equal(
        a.best_state["encoder.hidden.weight"], c.best_state["encoder.hidden.weight"]
    )


def test_stack_members_stop_on_their_own_and_come_back_in_input_order(stack_run):
    assert [(r.config, r.seed) for r in stack_run] == STACK
    for r in stack_run:
        assert r.stopped_early and r.epochs_run - r.best_epoch == FAST_STALL.patience
        assert len(r.history) == r.epochs_run  # a dropped member stops getting rows
    runs = sorted(r.epochs_run for r in stack_run)
    # the data and seeds are fixed, so this is deterministic: some member outlived another one
    assert runs[0] < runs[-1], f"all members stopped at the same epoch {runs}; pick other seeds"


@pytest.mark.parametrize("member", range(len(STACK)))
def test_member_in_a_stack_equals_the_member_trained_alone(data, stack_run, member):
    """Bitwise equal, including the member that kept training after others were dropped."""
    config, seed = STACK[member]
    (alone,) = _fit(data, [(config, seed)], FAST_STALL)
    in_stack = stack_run[member]
    _assert_same_weights(alone.best_state, in_stack.best_state)
    assert (alone.best_epoch, alone.epochs_run) == (in_stack.best_epoch, in_stack.epochs_run)
    assert _without_time(alone.history) == _without_time(in_stack.history)


def test_interrupted_stack_resumes_to_the_uninterrupted_result(
    data, stack_run, tmp_path, monkeypatch
):
    """Interrupt mid-epoch after a member has been dropped; the resumed run ends bit-identical."""
    first_stop = min(r.epochs_run for r in stack_run)
    kill_at = first_stop * STEPS + STEPS // 2  # a training step in the middle of the next epoch
    ckpt = tmp_path / "stack.pt"
    forward, calls, handed = LatentStack.forward, [], []

    def interrupted(self, x, sample=True):
        calls.append(sample)
        if calls.count(True) == kill_at:
            raise _Killed
        return forward(self, x, sample)

    cfg = TrainConfig(**{**FAST_STALL.to_dict(), "checkpoint_seconds": 0.0})
    monkeypatch.setattr(LatentStack, "forward", interrupted)
    with pytest.raises(_Killed):
        _fit(data, STACK, cfg, checkpoint=ckpt, on_member_done=handed.append)
    monkeypatch.setattr(LatentStack, "forward", forward)
    saved = torch.load(ckpt, weights_only=False)
    active = sum(len(g["active"]) for g in saved["groups"])
    assert saved["epoch"] == first_stop and active < len(STACK)
    before = [(r.config, r.seed) for r in handed]
    assert before and len(before) < len(STACK)

    resumed = _fit(data, STACK, cfg, checkpoint=ckpt, on_member_done=handed.append)
    # members finished before the interruption are not handed over twice
    assert sorted((r.config.name, r.seed) for r in handed) == sorted((c.name, s) for c, s in STACK)
    for r, expected in zip(resumed, stack_run):
        _assert_same_weights(r.best_state, expected.best_state)
        assert _without_time(r.history) == _without_time(expected.history)
        assert (r.best_epoch, r.epochs_run) == (expected.best_epoch, expected.epochs_run)


def test_a_finished_checkpoint_returns_its_results_without_training(data, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt.pt"
    (first,) = _fit(data, [(VARIANT, 0)], TrainConfig(max_epochs=2), checkpoint=ckpt)
    monkeypatch.setattr(LatentStack, "forward", lambda *a, **k: pytest.fail("trained again"))
    (again,) = _fit(data, [(VARIANT, 0)], TrainConfig(max_epochs=2), checkpoint=ckpt)
    _assert_same_weights(first.best_state, again.best_state)
    assert again.history == first.history


def test_resume_refuses_a_checkpoint_of_other_members_or_settings(data, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    _fit(data, [(VARIANT, 0)], TrainConfig(max_epochs=1), checkpoint=ckpt)
    with pytest.raises(ValueError, match="other members"):
        _fit(data, [(VARIANT, 1)], TrainConfig(max_epochs=1), checkpoint=ckpt)
    with pytest.raises(ValueError, match="other training settings"):
        _fit(data, [(VARIANT, 0)], TrainConfig(max_epochs=1, patience=3), checkpoint=ckpt)


def test_nan_in_training_frames_names_variant_epoch_step_and_keeps_the_checkpoint(
    data, tmp_path, monkeypatch
):
    train, val = data[0].clone(), data[1]
    bad_frame = 500
    ckpt = tmp_path / "ckpt.pt"
    atomic_save, saves = sdm.train.save_checkpoint, []

    def save_then_poison(obj, path):
        atomic_save(obj, path)
        saves.append(path)
        train[bad_frame] = float("nan")  # in place: fit trains on this very tensor (CPU, float32)

    monkeypatch.setattr(sdm.train, "save_checkpoint", save_then_poison)
    cfg = TrainConfig(max_epochs=5, val_every_steps=1, checkpoint_seconds=0.0)
    with pytest.raises(NonFiniteLossError) as err:
        fit([VARIANT], [0], train, val, cfg, device="cpu", checkpoint=ckpt, progress=False)

    # the frame's position in epoch 2's permutation gives the first bad step
    shuffle = torch.Generator().manual_seed(_seed_stream(0, SHUFFLE_STREAM))
    torch.randperm(N_TRAIN, generator=shuffle)  # epoch 1
    position = int(torch.nonzero(torch.randperm(N_TRAIN, generator=shuffle) == bad_frame)[0])
    msg = str(err.value)
    assert VARIANT.name in msg and "epoch 2," in msg and f"step {position // BATCH} " in msg
    assert len(saves) == 1  # nothing written after the bad epoch
    state = torch.load(ckpt, weights_only=False)  # the epoch-1 checkpoint, intact
    assert state["epoch"] == 1
    model = build_model(VARIANT, 0)
    model.load_state_dict(state["groups"][0]["model"])
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "meta", "mps", "", "cuda:x"):
        with pytest.raises(ValueError, match="device"):
            pick_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            pick_device("cuda")
    else:  # named with its index, like the generators and tensors on it
        assert pick_device("cuda").index is not None and pick_device("auto").index is not None
        with pytest.raises(ValueError, match="CUDA devices"):
            pick_device(f"cuda:{torch.cuda.device_count()}")


def test_no_frames_is_a_clear_error(data):
    with pytest.raises(ValueError, match="training and validation frames"):
        fit(
            [VARIANT],
            [0],
            data[0][:0],
            data[1],
            TrainConfig(max_epochs=1),
            device="cpu",
            progress=False,
        )


class _Stop(Exception):
    """Raised at the end of an epoch's training, before its checkpoint is written."""


def _fit_killed_after(data, members, cfg, ckpt, saves_before_kill, monkeypatch):
    """fit() killed once `saves_before_kill` checkpoints were written in this run (one a epoch)."""
    save, end, saves = sdm.train.save_checkpoint, LatentStack.on_epoch_end, []

    def counting(content, path):
        save(content, path)
        saves.append(torch.load(path, weights_only=False)["epoch"])

    def killing(self):
        if len(saves) == saves_before_kill:
            raise _Stop
        end(self)

    with monkeypatch.context() as mp:
        mp.setattr(sdm.train, "save_checkpoint", counting)
        mp.setattr(LatentStack, "on_epoch_end", killing)
        with pytest.raises(_Stop):
            _fit(data, members, cfg, checkpoint=ckpt)
    return saves[-1]


def test_a_stack_resumed_twice_after_a_whole_group_stopped_ends_as_uninterrupted(
    data, tmp_path, monkeypatch
):
    """Two shape groups; one stops first. Killed once its group is empty, resumed, killed again,
    resumed: every checkpoint keeps both groups (an emptied one too), and the end is bitwise the
    uninterrupted run's."""
    members = [(get_variant("vae-m64"), 2), (get_variant("sdm-I-m64"), 3)]
    cfg = TrainConfig(**{**FAST_STALL.to_dict(), "checkpoint_seconds": 0.0})
    whole = _fit(data, members, cfg)
    first, last = sorted(r.epochs_run for r in whole)
    assert first + 1 < last, f"pick members whose stops are further apart, got {first}, {last}"
    ckpt = tmp_path / "stack.pt"
    assert _fit_killed_after(data, members, cfg, ckpt, first, monkeypatch) == first
    saved = torch.load(ckpt, weights_only=False)
    assert len(saved["groups"]) == 2 and [] in [g["active"] for g in saved["groups"]]
    assert _fit_killed_after(data, members, cfg, ckpt, 1, monkeypatch) == first + 1
    assert len(torch.load(ckpt, weights_only=False)["groups"]) == 2
    resumed = _fit(data, members, cfg, checkpoint=ckpt)
    for r, expected in zip(resumed, whole):
        _assert_same_weights(r.best_state, expected.best_state)
        assert (r.best_epoch, r.epochs_run) == (expected.best_epoch, expected.epochs_run)

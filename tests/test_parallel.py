"""Training across CPU processes (`fit(workers=2)`, sdm.parallel): the same results as one
process, bitwise."""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest
import torch

from sdm import parallel, results
from sdm.config import TrainConfig
from sdm.train import MemberResult, fit
from sdm.variants import VARIANTS, get_variant

N_TRAIN, N_VAL = 1024, 256
CFG = TrainConfig(lr=1e-3, max_epochs=4, patience=1, val_every_steps=1)
# three shapes, two seeds of one variant: the shards differ from the one-process grouping
MEMBERS = [
    (get_variant("sdm-dct-k32-m32"), 0),
    (get_variant("vae-m64"), 0),
    (get_variant("vsc-a0.5-m32"), 3),
    (get_variant("sdm-dct-k32-m32"), 1),
]


@pytest.fixture(scope="module")
def data(frames_cache) -> tuple[torch.Tensor, torch.Tensor]:
    from sdm.data import frames

    train = frames("shipped", "train", "clean", cache_dir=frames_cache)[:N_TRAIN]
    val = frames("shipped", "val", "clean", cache_dir=frames_cache)[:N_VAL]
    return torch.from_numpy(train.copy()), torch.from_numpy(val.copy())


def _record(path, result: MemberResult) -> None:
    """A picklable on_member_done: it runs in the worker process."""
    with open(path, "a") as f:
        f.write(f"{result.config.name} {result.seed}\n")


def _fail(result: MemberResult) -> None:
    raise RuntimeError(f"callback failed on {result.config.name}")


def test_shards_cover_every_member_once_and_balance_cost():
    configs = list(VARIANTS.values()) * 2
    seeds = [0] * 14 + [1] * 14
    shards = parallel.shard_members(configs, seeds, 2)
    assert sorted(i for s in shards for i in s) == list(range(28))
    costs = [sum(parallel.member_cost(configs[i]) for i in s) for s in shards]
    assert max(costs) / min(costs) < 1.01
    # both seeds of a variant go to different processes: each process holds all 14 variants
    for s in shards:
        assert Counter(configs[i].name for i in s) == Counter(list(VARIANTS))
    assert parallel.shard_members(configs, seeds, 2) == shards  # deterministic, for resuming


def test_more_workers_than_members_gives_one_member_each():
    configs = [get_variant("vae-m32"), get_variant("vae-m64")]
    assert parallel.shard_members(configs, [0, 0], 5) == [[1], [0]]
    assert parallel.resolve_workers(5, "cpu", 2) == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_bad_worker_counts_are_refused(bad):
    with pytest.raises(ValueError, match="workers: expected 'auto' or an integer >= 1"):
        parallel.resolve_workers(bad, "cpu", 3)


def test_auto_follows_torch_threads():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert parallel.resolve_workers("auto", "cpu", 14) == 2
        assert parallel.resolve_workers("auto", "cpu", 1) == 1
        torch.set_num_threads(1)  # OMP_NUM_THREADS=1: one process, the old behaviour
        assert parallel.resolve_workers("auto", "cpu", 14) == 1
    finally:
        torch.set_num_threads(threads)


def test_two_processes_train_exactly_what_one_does(data, tmp_path):
    train, val = data
    configs, seeds = map(list, zip(*MEMBERS))
    one = fit(configs, seeds, train, val, CFG, device="cpu", progress=False)
    log = tmp_path / "done.txt"
    ckpt = tmp_path / "ckpt" / "stack.pt"
    two = fit(
        configs,
        seeds,
        train,
        val,
        CFG,
        device="cpu",
        checkpoint=ckpt,
        on_member_done=partial(_record, log),
        progress=False,
        workers=2,
    )
    assert [(r.config, r.seed) for r in two] == MEMBERS  # input order
    for a, b in zip(one, two):
        assert (a.best_epoch, a.epochs_run) == (b.best_epoch, b.epochs_run)
        for k in a.best_state:
            assert torch.equal(a.best_state[k], b.best_state[k]), f"{a.config.name}: {k}"
    assert sorted(log.read_text().splitlines()) == sorted(f"{c.name} {s}" for c, s in MEMBERS)
    # each process wrote its own resume file; the layout is found again, then cleaned up
    assert sorted(p.name for p in ckpt.parent.iterdir()) == [
        "stack.shard0of2.pt",
        "stack.shard1of2.pt",
    ]
    assert results.existing_layout(ckpt) == 2
    results.remove_checkpoints(ckpt)
    assert results.existing_layout(ckpt) is None and not list(ckpt.parent.iterdir())


def test_an_unsharded_checkpoint_keeps_its_layout(tmp_path):
    ckpt = tmp_path / "stack.pt"
    ckpt.write_bytes(b"")
    assert results.existing_layout(ckpt) == 1


def test_a_worker_error_reaches_the_caller(data):
    train, val = data
    configs, seeds = map(list, zip(*MEMBERS[:2]))
    with pytest.raises(RuntimeError, match="callback failed on"):
        fit(
            configs,
            seeds,
            train,
            val,
            TrainConfig(max_epochs=1),
            device="cpu",
            on_member_done=_fail,
            progress=False,
            workers=2,
        )

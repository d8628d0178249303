"""The pipeline (`sdm.pipeline`): report-only mode, one shard trained on its own as a cluster job
would, and the one atomic writer (`sdm.results.atomic_write`).

Training reads small slices of real shipped frames (`sdm.data.frames` is patched); evaluation
scores the real shipped test set.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import sdm.data
import sdm.stacks
from sdm import pipeline, results
from sdm.config import TrainConfig
from sdm.runs import make_specs
from sdm.stacks import ensure_trained, plan_stacks, train_shard
from sdm.variants import get_variant

VARIANT = get_variant("sdm-dct-k32-m32")
OTHER = get_variant("vae-m32")
SMALL = TrainConfig(max_epochs=3, val_every_steps=1)


@pytest.fixture(scope="module")
def small_frames(frames_cache):
    from sdm.data import frames

    real = {
        "train": frames("shipped", "train", "clean", cache_dir=frames_cache)[:1024].copy(),
        "val": frames("shipped", "val", "clean", cache_dir=frames_cache)[:256].copy(),
    }
    return lambda data, split, preprocessing="clean", cache_dir=None: real[split]


@pytest.fixture
def patched(small_frames, monkeypatch):
    monkeypatch.setattr(sdm.data, "frames", small_frames)


def _no_training(*args, **kwargs):
    pytest.fail("report-only mode trained")


def test_report_only_evaluates_what_is_trained_and_names_what_is_not(
    patched, tmp_path, monkeypatch, caplog
):
    (trained,) = ensure_trained(
        make_specs([VARIANT], [0], train=SMALL), tmp_path, "cpu", progress=False
    )
    assert results.is_trained(trained) and not results.is_evaluated(trained)
    untrained = make_specs([OTHER], [0], train=SMALL)[0].directory(tmp_path)
    monkeypatch.setattr(sdm.stacks, "fit", _no_training)
    resolved, resolve = [], sdm.data._manifest_corpus
    monkeypatch.setattr(sdm.data, "_manifest_corpus", lambda *a: resolved.append(a) or resolve(*a))
    options = pipeline.Options(
        variants=(VARIANT.name, OTHER.name),
        train=SMALL,
        root=tmp_path,
        report_only=True,
        progress=False,
        n_jobs=1,
    )
    with caplog.at_level(logging.WARNING, logger="sdm"):
        table = pipeline.table1(options, echo=False)
    assert len(resolved) == 1, "the corpus is resolved once per command"
    assert results.is_evaluated(trained)  # trained but not evaluated: evaluated now
    assert not untrained.exists()  # not trained: left alone
    assert "not trained, left out: vae-m32/seed-0" in caplog.text
    assert table.loc["SDM-VAE DCT k=32", "m32_seeds"] == 1 and table.loc["VAE", "m32_seeds"] == 0
    text = results.table1_paths(tmp_path, "shipped", "clean")[1].read_text()
    title, rest = text.split("\n", 1)
    assert title == (
        "# Table 1 — shipped corpus, clean preprocessing, report only: "
        "1 of 2 runs: seed [0] of sdm-dct-k32-m32"
    )
    assert "Not trained, left out (report only): vae-m32/seed-0." in rest

    report, noise = pipeline.claims(options, tmp_path / "no-benchmarks", echo=False)
    claims_md = results.claims_paths(tmp_path, "shipped", "clean")["markdown"].read_text()
    assert claims_md.startswith(
        "# Claims — shipped corpus, clean preprocessing, report only: 1 of 2"
    )
    assert list(noise["variant"].unique()) == [VARIANT.name]


def test_report_only_on_the_command_line(patched, tmp_path, monkeypatch, capsys):
    from sdm.__main__ import main

    monkeypatch.setattr(sdm.stacks, "fit", _no_training)
    monkeypatch.setattr(pipeline, "oracle_metrics", lambda *a, **k: None)
    argv = ["table1", "--variant", OTHER.name, "--no-train", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "report only: 0 of 1 runs: none evaluated" in out
    assert not (tmp_path / "shipped" / "clean" / OTHER.name).exists()


def test_a_stack_trained_shard_by_shard_equals_the_stack_trained_at_once(patched, tmp_path):
    """What a cluster job does: plan the stack, then train each shard on its own (one after the
    other here); the run folders hold bitwise what one process trains."""
    specs = make_specs([VARIANT, OTHER], [0, 1], train=SMALL)
    whole = ensure_trained(specs, tmp_path / "whole", "cpu", progress=False, workers=1)
    (stack,) = plan_stacks(specs, tmp_path / "jobs", "cpu")
    shards = stack.shards(workers=2)
    assert len(shards) == 2 and sorted(len(sh.specs) for sh in shards) == [2, 2]
    assert {s for sh in shards for s in sh.specs} == set(specs)
    assert [sh.checkpoint.name.split(".")[1] for sh in shards] == ["shard0of2", "shard1of2"]
    for shard in shards:
        train_shard(shard, device="cpu", progress=False)
    for spec, expected in zip(specs, whole):
        got = spec.directory(tmp_path / "jobs")
        assert results.is_trained(got)
        a = torch.load(got / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(expected / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert results.read_config(got)["environment"]["stack"] == [s.label for s in stack.specs]


def test_atomic_write_leaves_no_temporary_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    results.write_text(path, "old\n")

    def fails(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        results.atomic_write(path, fails)
    assert path.read_text() == "old\n" and sorted(p.name for p in path.parent.iterdir()) == [
        "table.csv"
    ]
    results.write_text(path, "new\n")
    assert path.read_text() == "new\n" and results.temporary_files(path.parent) == []

"""The training-speed benchmark runs end to end at tiny sizes and reports what the issue asks for.

Only that it runs and what it prints and writes are checked here: speed targets are measured by
the benchmark itself, never by timed tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from sdm.judging import step_time_ratios
from sdm.variants import get_variant

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_gemm_flops_per_frame_matches_the_hand_count(bench):
    # SDM-VAE m = k = 64: 3 * 155,904 network MACs - 65,664 (no input gradient for the data)
    # + 2 * 4,096 for z = D a (fixed D: input gradient only), 2 FLOPs per MAC
    assert bench.gemm_flops_per_frame(get_variant("sdm-dct-k64-m64")) == 820_480
    assert bench.gemm_flops_per_frame(get_variant("vae-m64")) == 804_096
    vsc = bench.gemm_flops_per_frame(get_variant("vsc-a0.5-m64"))
    assert vsc == 804_096 + 2 * 3 * 128 * 64  # the spike head: one more 128 x m layer


def test_benchmark_runs_and_reports_every_figure(bench, shipped_frames, tmp_path, capsys):
    frames = torch.from_numpy(shipped_frames)
    tiny = bench.Sizes(
        max_frames=256, reference_steps=2, epochs=1, c10_epochs=1, c10_repeats=2, peak_reps=10
    )
    result = bench.run(frames[:256], frames[256:384], tiny, device="cpu")
    print(bench.report(result))
    out = capsys.readouterr().out
    for needle in (
        "GFLOP/s",
        "MFLOP",
        "frames/s",
        "variant-frames/s",
        "ratio",
        "fraction of peak",
        "C10 SDM-VAE / VAE time per step at m32",
        "at m64",
    ):
        assert needle in out
    path = tmp_path / f"{result['machine']}.json"
    bench.write_json(result, path)
    saved = json.loads(path.read_text())
    for key in (
        "machine",
        "torch",
        "threads",
        "cpu",
        "date",
        "command",
        "peak_gflops",
        "gemm_flops_per_frame_mean",
        "reference",
        "ours",
        "ratio",
        "fraction_of_peak",
        "c10_sdm_over_vae_step",
    ):
        assert key in saved
    assert saved["machine"] == f"cpu-{os.cpu_count()}core"
    assert saved["ratio"] > 0 and saved["peak_gflops"] > 0
    assert set(saved["c10_sdm_over_vae_step"]) == {"m32", "m64"}
    assert len(saved["c10_sdm_over_vae_step"]["m64"]["ratios"]) == 2
    assert len(saved["ours"]["variants"]) == 14
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temp file left
    # claim C10 reads the file as it is written
    assert set(step_time_ratios(tmp_path)) == {
        f"{result['machine']}:m32",
        f"{result['machine']}:m64",
    }


def test_trainer_only_mode_for_a_big_corpus(bench, shipped_frames, tmp_path, capsys, monkeypatch):
    """`--data medium`: only the stacked trainer and the peak, into <machine>-<data>.json; the
    reference loop and C10 (which the claims read from the shipped-corpus file) are not run."""
    monkeypatch.setattr(bench, "reference_frames_per_s", lambda *a, **k: pytest.fail("reference"))
    monkeypatch.setattr(bench, "c10_step_ratios", lambda *a, **k: pytest.fail("C10"))
    monkeypatch.setattr("sdm.data.frames", lambda data, split, *a, **k: shipped_frames[:256])
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(bench, "TRAINER_ONLY", bench.Sizes(256, 0, 1, 0, 0, 10))
    assert bench.main(["--data", "medium", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "medium-corpus training frames" in out and "s per 14-variant epoch" in out
    (path,) = tmp_path.glob("*.json")
    assert path.name == f"cpu-{os.cpu_count()}core-medium.json"
    saved = json.loads(path.read_text())
    assert saved["data"] == "medium" and saved["ours"]["epochs"] == 1
    assert "reference" not in saved and "c10_sdm_over_vae_step" not in saved
    assert saved["ours"]["variant_frames_per_s"] > 0 and saved["train_frames"] == 256
    assert step_time_ratios(tmp_path) == {}  # the claims never read C10 from this file


def test_stack_rate_reads_a_live_checkpoint(shipped_frames, tmp_path, capsys):
    """benchmarks/stack_rate.py: member-epochs x frames / the trainer's clock, per shard file."""
    from sdm.config import TrainConfig
    from sdm.train import fit

    spec = importlib.util.spec_from_file_location("stack_rate", SCRIPT.with_name("stack_rate.py"))
    stack_rate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stack_rate)
    x = torch.from_numpy(shipped_frames)
    cfg = TrainConfig(max_epochs=2, val_every_steps=1, checkpoint_seconds=0)
    vae, sdm = get_variant("vae-m32"), get_variant("sdm-I-m32")
    fit([vae, sdm], [0, 0], x[:256], x[256:], cfg, "cpu", tmp_path / "stack-x.pt", progress=False)
    rate = stack_rate.shard_rate(tmp_path / "stack-x.pt", None)
    assert (rate["epoch"], rate["members"], rate["member_epochs"]) == (2, 2, 4)
    assert rate["variant_frames_per_s"] == 4 * 256 / rate["elapsed_s"]
    assert stack_rate.main([str(tmp_path)]) == 0
    assert "2 members, 0 active" in capsys.readouterr().out


SHARED = Path(__file__).resolve().parents[1] / "benchmarks" / "shared_layers.py"


@pytest.fixture(scope="module")
def shared_bench():
    spec = importlib.util.spec_from_file_location("shared_layers", SHARED)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_one_product_for_the_shared_layers_is_bitwise_the_trainers_step(
    shared_bench, shipped_frames
):
    # three families, three shape groups: the one-product forward must give the trainer's losses
    # and gradients bit for bit, or the benchmark's speed-up would compare different work
    frames = torch.from_numpy(shipped_frames[:2048])
    names = ["vae-m32", "vsc-a0.5-m32", "sdm-dct-k64-m32"]
    assert len(shared_bench.build_groups(names)) == 3
    assert shared_bench.check_bitwise(names, frames) == {"concatenated": True, "stored": True}


def test_shared_layers_benchmark_writes_what_the_performance_page_shows(
    shared_bench, tmp_path, capsys
):
    from sdm import perfpage

    out = tmp_path / "shared.json"
    assert shared_bench.main(["--quick", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["cases"]) == {"table1", "campaign-stack"}
    case = r["cases"]["table1"]
    assert case["shape_groups"] == 8 and len(case["variants"]) == 14
    assert case["ways"]["trainer"]["speedup_vs_trainer"] == 1.0
    table = perfpage.shared_layers_table(r)
    assert table.count("\n") == 2 + 6  # header, rule, three ways for each of two cases
    assert "all 14 Table-1 variants (8 shape groups)" in table and "**no**" not in table
    assert "VSC α=0.05, m=32; VSC α=0.9, m=32; VAE, m=64 (2 shape groups)" in table
    case["bitwise_equal_to_trainer"]["stored"] = False
    assert "**no**" in perfpage.shared_layers_table(r)


def test_busy_is_what_the_cores_did_just_before_not_the_load_average(bench, tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal: 300 of 400 jiffies idle between samples
    stat.write_text("cpu  100 0 0 1000 0 0 0 0 0 0\ncpu0 1 2 3\n")
    later = "cpu  170 0 30 1290 10 0 0 0 0 0\n"
    monkeypatch.setattr(bench.time, "sleep", lambda s: stat.write_text(later))
    assert bench.cpu_busy_fraction(1.0, stat) == pytest.approx(0.25)
    assert bench.cpu_busy_fraction(1.0, tmp_path / "none") is None
    # a stopped campaign still weighs on the 1-minute load average: the CPU share decides
    assert not bench.busy_at_start(0.05, load_average=4.0)
    assert bench.busy_at_start(0.9, load_average=0.0)
    assert bench.busy_at_start(None, load_average=100.0)
    assert not bench.busy_at_start(None, load_average=None)

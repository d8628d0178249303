"""Claims: verdicts, interval coverage, the claim table from metric files, missing runs, C10."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from sdm import claims as cl
from sdm import judging, pipeline, results, stats
from sdm.metrics import CONVENTIONS
from sdm.results import COLUMNS, collect_metrics, write_metrics
from sdm.variants import VARIANTS

N_UTT = 20


def fake_table(values: dict[str, np.ndarray], n: int = N_UTT) -> pd.DataFrame:
    """A per-utterance table with COLUMNS; metrics not given are 0.5."""
    data = {c: values.get(c, np.full(n, 0.5)) for c in COLUMNS[2:-1]}
    return pd.DataFrame(
        {"utterance": [f"u{i}.flac" for i in range(n)], "speaker": "s", **data, "failures": ""},
        columns=list(COLUMNS),
    )


def synthetic_metrics(
    effects: dict[str, float] | None = None, seeds=(0, 1, 2), sd: float = 0.05, rng_seed: int = 0
) -> dict[tuple[str, int], pd.DataFrame]:
    """Every variant x seed: a shared utterance level + a per-variant effect + noise, on every
    metric (so one `effects` entry moves PESQ, STOI and Hoyer of a variant together)."""
    rng = np.random.default_rng(rng_seed)
    effects = effects or {}
    utterance_level = rng.normal(0, 0.3, N_UTT)
    out = {}
    for name in VARIANTS:
        for s in seeds:
            base = 1.0 + utterance_level + effects.get(name, 0.0)
            values = {c: base + rng.normal(0, sd, N_UTT) for c in stats.NOISE_METRICS}
            out[name, s] = fake_table(values)
    return out


def row(report: judging.ClaimsReport, claim: str, convention: str) -> pd.Series:
    s = report.summary
    return s[(s["claim"] == claim) & (s["convention"] == convention)].iloc[0]


# --- verdict logic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "boundary", "side", "expected"),
    [
        (0.1, 0.3, 0.0, "greater", cl.HOLDS),
        (-0.3, -0.1, 0.0, "greater", cl.FAILS),
        (-0.1, 0.1, 0.0, "greater", cl.INCONCLUSIVE),
        (0.0, 0.1, 0.0, "greater", cl.INCONCLUSIVE),  # touching the boundary is not "entirely"
        (-0.04, 0.02, -0.05, "greater", cl.HOLDS),  # non-inferiority within the margin
        (-0.09, -0.06, -0.05, "greater", cl.FAILS),
        (1.02, 1.10, 1.25, "less", cl.HOLDS),
        (1.30, 1.40, 1.25, "less", cl.FAILS),
        (1.20, 1.30, 1.25, "less", cl.INCONCLUSIVE),
        (math.nan, 0.1, 0.0, "greater", cl.INCONCLUSIVE),
    ],
)
def test_verdict_follows_the_interval(lo, hi, boundary, side, expected):
    assert cl.verdict(lo, hi, boundary, side) == expected


def test_verdict_rejects_an_unknown_side():
    with pytest.raises(ValueError, match="side"):
        cl.verdict(0.0, 1.0, side="above")


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([cl.HOLDS, cl.HOLDS], cl.HOLDS),
        ([cl.HOLDS, cl.FAILS, cl.INCONCLUSIVE], cl.FAILS),
        ([cl.HOLDS, cl.INCONCLUSIVE], cl.INCONCLUSIVE),
        ([cl.HOLDS, cl.MISSING], cl.MISSING),
        ([cl.FAILS, cl.MISSING], cl.FAILS),
        ([cl.NO_BENCHMARK], cl.NO_BENCHMARK),
        ([], cl.INCONCLUSIVE),
    ],
)
def test_combine_all_hold_any_fails(verdicts, expected):
    assert cl.combine(verdicts) == expected


@pytest.mark.parametrize(
    ("vae32", "expected"), [(0.3, cl.HOLDS), (-0.3, cl.FAILS), (0.0, cl.INCONCLUSIVE)]
)
def test_a_clear_difference_holds_a_reversed_one_fails_none_is_inconclusive(vae32, expected):
    # C1: PESQ(vae-m32) - PESQ(vae-m64) > 0, with noise sd 0.05 per utterance
    report = judging.judge_claims(synthetic_metrics({"vae-m32": vae32}), n_resamples=2000)
    for convention in CONVENTIONS:
        got = row(report, "C1", convention)
        assert got["verdict"] == expected
        assert got["ci_low"] < vae32 < got["ci_high"]
        assert got["n_seeds"] == 3 and got["n_utterances"] == N_UTT


def test_non_inferiority_uses_the_margin():
    # SDM-VAE 0.02 worse than the VAE everywhere: within PESQ's 0.05 margin, outside STOI's 0.01
    worse = {n: -0.02 for n in VARIANTS if n.startswith("sdm-")}
    report = judging.judge_claims(synthetic_metrics(worse, sd=0.002), n_resamples=2000)
    comps = report.comparisons[report.comparisons["claim"] == "C3"]
    assert (comps[comps["metric"].str.startswith("pesq")]["verdict"] == cl.HOLDS).all()
    assert (comps[comps["metric"].isin(["stoi", "estoi"])]["verdict"] == cl.FAILS).all()
    assert row(report, "C3", "paper")["verdict"] == cl.FAILS


def test_best_of_group_statistic_picks_the_best_other_model():
    # C5: D=I best at m=64 by 0.2 over the best other; C9: best m=32 is not DCT -> fails
    effects = {"sdm-I-m64": 0.5, "vsc-a0.5-m64": 0.3, "vae-m32": 0.4}
    report = judging.judge_claims(synthetic_metrics(effects, sd=0.01), n_resamples=2000)
    c5 = row(report, "C5", "ours")
    assert c5["verdict"] == cl.HOLDS and c5["estimate"] == pytest.approx(0.2, abs=0.02)
    c9 = row(report, "C9", "ours")
    assert c9["verdict"] == cl.FAILS and c9["estimate"] == pytest.approx(-0.4, abs=0.02)


# --- the interval ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed_sd", "utterance_sd", "cell_sd"),
    [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 1.0, 1.0)],
    ids=["seeds-dominate", "utterances-dominate", "mixed"],
)
def test_bootstrap_interval_covers_the_true_mean_at_the_nominal_rate(
    seed_sd, utterance_sd, cell_sd
):
    # x[s, u] = seed effect + utterance effect + cell noise, true mean 0; 5 seeds, 15 utterances
    # (the shipped test set). A plain percentile interval covers ~83% when seeds dominate.
    trials, level = 200, 0.95
    tolerance = 3 * math.sqrt(level * (1 - level) / trials)  # 3 binomial SDs: ±0.046
    rng = np.random.default_rng(12345)
    hits = 0
    for t in range(trials):
        x = (
            rng.normal(0, seed_sd, (5, 1))
            + rng.normal(0, utterance_sd, (1, 15))
            + rng.normal(0, cell_sd, (5, 15))
        )
        est = stats.bootstrap(x, n_resamples=2000, rng_seed=t)
        hits += est.ci_low < 0 < est.ci_high
    assert abs(hits / trials - level) <= tolerance, f"coverage {hits / trials:.3f}"


def test_bootstrap_pairs_variants_by_seed_and_utterance():
    # b = a + 0.1 exactly: the paired difference has no spread even though a varies a lot
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4, 30))
    est = stats.bootstrap(np.stack([a + 0.1, a]), lambda m: m[..., 0] - m[..., 1])
    assert est.estimate == pytest.approx(0.1)
    assert est.ci_low == pytest.approx(0.1) and est.ci_high == pytest.approx(0.1)


def test_bootstrap_drops_cells_missing_for_any_variant():
    a = np.array([[1.0, 2.0, 3.0, np.nan]])
    b = np.array([[0.0, 0.0, 0.0, 100.0]])
    est = stats.bootstrap(np.stack([a, b]), lambda m: m[..., 0] - m[..., 1])
    assert est.estimate == pytest.approx(2.0)  # the 4th utterance is left out for both
    assert est.n_utterances == 3


def test_bootstrap_rejects_empty_input():
    with pytest.raises(ValueError, match="bootstrap"):
        stats.bootstrap(np.zeros((2, 0)))


# --- the table from files, missing runs, C10 -------------------------------------------------


def test_claims_table_builds_from_metric_files(tmp_path):
    for (name, seed), table in synthetic_metrics(seeds=(0, 1)).items():
        write_metrics(table, tmp_path / "shipped" / "clean" / name / f"seed-{seed}" / "metrics.csv")
    metrics = collect_metrics(tmp_path, "shipped", "clean")
    report = judging.judge_claims(metrics, benchmarks=tmp_path / "none", n_resamples=500)

    one_convention = {"C2", "C4", "C10"}  # Hoyer or timing only
    conventions = {c: (cl.ANY,) if c in one_convention else ("paper", "ours") for c in cl.CLAIMS}
    expected = [(c, v) for c in cl.CLAIMS for v in conventions[c]]
    assert list(zip(report.summary["claim"], report.summary["convention"])) == expected
    allowed = {cl.HOLDS, cl.FAILS, cl.INCONCLUSIVE, cl.MISSING, cl.NO_BENCHMARK}
    assert set(report.summary["verdict"]) <= allowed
    assert row(report, "C10", cl.ANY)["verdict"] == cl.NO_BENCHMARK
    assert set(report.comparisons["n_seeds"].dropna()) == {2}
    paper = report.comparisons[report.comparisons["convention"] == "paper"]
    assert set(paper["metric"]) == {"pesq_raw_nb", "estoi", "hoyer"}

    reps = judging.replicates_table(report)
    assert list(reps.columns) == [
        "claim",
        "convention",
        "comparison",
        "metric",
        "replicate",
        "value",
    ]
    assert len(reps) == 500 * report.comparisons["estimate"].notna().sum()

    noise = stats.noise_table(metrics)
    paths = results.claims_paths(tmp_path / "out", "shipped", "clean")
    pipeline.write_claims(report, noise, paths, title="Claims test", n_resamples=500)
    assert pd.read_csv(paths["summary"])["claim"].tolist() == report.summary["claim"].tolist()
    assert len(pd.read_csv(paths["comparisons"])) == len(report.comparisons)
    text = paths["markdown"].read_text()
    assert all(f"| {c} |" in text for c in cl.CLAIMS) and "500 bootstrap" in text


def test_missing_variants_are_inconclusive_not_a_crash(tmp_path):
    metrics = {k: v for k, v in synthetic_metrics().items() if k[0] != "vae-m64"}
    report = judging.judge_claims(metrics, n_resamples=200)
    c1 = report.comparisons[report.comparisons["claim"] == "C1"]
    assert (c1["verdict"] == cl.MISSING).all()
    assert c1["note"].str.contains("vae-m64").all()
    assert row(report, "C1", "paper")["verdict"] == cl.MISSING
    # comparisons that do not need vae-m64 are still judged
    c2 = report.comparisons[report.comparisons["claim"] == "C2"]
    assert (c2["comparison"].str.endswith("vae-m32") == (c2["verdict"] != cl.MISSING)).all()

    failed = synthetic_metrics(seeds=(0,))
    failed["vae-m32", 0]["pesq_wb"] = np.nan  # the metric failed on every utterance
    c1 = judging.judge_claims(failed, n_resamples=200).comparisons.query("claim == 'C1'")
    assert c1.set_index("convention").loc["ours", "verdict"] == cl.MISSING

    empty = judging.judge_claims({}, benchmarks=tmp_path, n_resamples=200)  # no benchmark files
    assert set(empty.summary["verdict"]) <= {cl.MISSING, cl.NO_BENCHMARK}


def test_seeds_are_those_every_variant_of_a_comparison_has():
    metrics = synthetic_metrics(seeds=(0, 1, 2))
    del metrics["vae-m64", 2]
    report = judging.judge_claims(metrics, n_resamples=200)
    c1 = report.comparisons[report.comparisons["claim"] == "C1"]
    assert set(c1["n_seeds"]) == {2}


def _benchmark(**ratios: list[float]) -> str:
    """A result file as benchmarks/train_speed.py writes it (other keys left out)."""
    c10 = {m: {"ratio": sum(r) / len(r), "ratios": r} for m, r in ratios.items()}
    return json.dumps({"machine": "x", "c10_sdm_over_vae_step": c10})


def test_step_time_ratio_from_the_benchmark_file(tmp_path):
    (tmp_path / "cpu-2core.json").write_text(_benchmark(m32=[1.05, 1.06], m64=[1.1, 1.12]))
    (tmp_path / "gpu.json").write_text(_benchmark(m32=[1.02, 1.04, 1.03]))
    (tmp_path / "other.json").write_text(json.dumps({"ratio": 3.0}))  # no C10 key: ignored
    assert judging.step_time_ratios(tmp_path) == {
        "cpu-2core:m32": [1.05, 1.06],
        "cpu-2core:m64": [1.1, 1.12],
        "gpu:m32": [1.02, 1.04, 1.03],
    }
    report = judging.judge_claims({}, benchmarks=tmp_path, n_resamples=500)
    assert row(report, "C10", cl.ANY)["verdict"] == cl.HOLDS

    (tmp_path / "slow.json").write_text(_benchmark(m64=[1.5, 1.6, 1.55]))
    report = judging.judge_claims({}, benchmarks=tmp_path, n_resamples=500)
    assert row(report, "C10", cl.ANY)["verdict"] == cl.FAILS


def test_the_committed_benchmark_file_is_read():
    ratios = judging.step_time_ratios(judging.BENCHMARK_DIR)
    assert {"cpu-2core:m32", "cpu-2core:m64"} <= set(ratios)
    assert all(len(r) == 5 for k, r in ratios.items() if k.startswith("cpu-2core:"))


@pytest.mark.parametrize("entry", [{"m32": {"ratio": 1.05}}, {"m32": {"ratios": "fast"}}, [1.1]])
def test_a_malformed_benchmark_names_the_file(tmp_path, entry):
    (tmp_path / "bad.json").write_text(json.dumps({"c10_sdm_over_vae_step": entry}))
    with pytest.raises(ValueError, match=r"bad\.json.*c10_sdm_over_vae_step"):
        judging.step_time_ratios(tmp_path)


def test_noise_table_gives_seed_sd_and_utterance_se():
    metrics = synthetic_metrics(seeds=(0, 1, 2))
    noise = stats.noise_table(metrics).set_index(["variant", "metric"])
    means = [metrics["vae-m32", s]["stoi"].mean() for s in range(3)]
    got = noise.loc[("vae-m32", "stoi")]
    assert got["seed_sd"] == pytest.approx(np.std(means, ddof=1))
    ses = [metrics["vae-m32", s]["stoi"].std(ddof=1) / math.sqrt(N_UTT) for s in range(3)]
    assert got["utterance_se"] == pytest.approx(np.mean(ses))
    assert got["paper_sd"] == 0.001 and noise.loc[("vae-m32", "pesq_raw_nb"), "paper_sd"] == 0.01
    one_seed = stats.noise_table({k: v for k, v in metrics.items() if k[1] == 0})
    assert one_seed["seed_sd"].isna().all()


def test_cli_passes_its_arguments(monkeypatch, tmp_path):
    import sdm.__main__ as cli

    seen = []
    monkeypatch.setattr(pipeline, "claims", lambda options, benchmarks: seen.append(options))
    argv = ["claims", "--seeds", "0", "1", "--quick", "--out", str(tmp_path), "--quiet"]
    assert cli.main(argv) == 0
    (options,) = seen
    assert options.seeds == (0, 1) and options.quick and options.root == tmp_path
    assert options.train.max_epochs == cli.QUICK.max_epochs and not options.progress
    assert options.variants is None  # all 14 unless --variant names some
    assert not options.report_only and cli.main([*argv, "--no-train"]) == 0
    assert seen[1].report_only

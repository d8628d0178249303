"""The learned dictionary (beyond the paper): D = V / ||V|| trained with the networks, its coherence
penalty, the four variants, their run files, and that nothing of the fixed-dictionary variants
changed (configs, identities, stacks)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import sdm.data
from sdm import results, runs, sweep
from sdm.claims import BEYOND_CLAIMS
from sdm.config import ModelConfig, TrainConfig
from sdm.dictionary import LearnedDictionary, coherence, dct, max_abs_coherence
from sdm.display import model_label
from sdm.judging import judge_claims
from sdm.models import build_model, build_stack, group_members
from sdm.runs import make_specs
from sdm.stacks import ensure_trained
from sdm.table1 import build_table1
from sdm.variants import (
    COHERENCE_WEIGHT,
    LEARNED_VARIANTS,
    VARIANTS,
    get_variant,
    learned_variant,
    select_variants,
)

ROOT = Path(__file__).resolve().parents[1]
B = 32
LEARNED = ["sdm-learned-k64-m64", "sdm-learned-k64-m64-coh", "sdm-learned-k128-m64"]
SMALL = TrainConfig(max_epochs=2, val_every_steps=1)


@pytest.fixture(scope="module")
def x(shipped_frames) -> torch.Tensor:
    """(2, B, 513): two batches of real power frames, one per stack member."""
    return torch.from_numpy(shipped_frames[: 2 * B]).reshape(2, B, 513)


# the variants and their configs ----------------------------------------------------------------


def test_four_learned_variants_beside_the_14_of_table1():
    assert list(LEARNED_VARIANTS) == [
        "sdm-learned-k64-m64",
        "sdm-learned-k64-m64-coh",
        "sdm-learned-k128-m64",
        "sdm-learned-k128-m64-coh",
    ]
    assert [(c.k, c.m, c.coherence) for c in LEARNED_VARIANTS.values()] == [
        (64, 64, 0.0),
        (64, 64, COHERENCE_WEIGHT),
        (128, 64, 0.0),
        (128, 64, COHERENCE_WEIGHT),
    ]
    assert COHERENCE_WEIGHT > 0
    assert len(VARIANTS) == 14 and not set(VARIANTS) & set(LEARNED_VARIANTS)
    assert select_variants(None) == list(VARIANTS.values())  # Table 1's, never the learned ones
    assert [c.name for c in select_variants(["sdm-learned-k128-m64", "vae-m64"])] == [
        "sdm-learned-k128-m64",
        "vae-m64",
    ]
    for name, config in LEARNED_VARIANTS.items():
        assert get_variant(name) is config and config.name == name
        assert ModelConfig.from_dict(config.to_dict()) == config


def test_to_dict_leaves_coherence_out_when_none_so_the_14_saved_configs_are_unchanged():
    keys = {"family", "m", "hidden", "alpha", "dictionary", "k"}
    for config in VARIANTS.values():
        assert config.coherence is None
        assert set(config.to_dict()) == keys
        assert ModelConfig.from_dict(config.to_dict()) == config
    assert get_variant("sdm-dct-k64-m64").to_dict() == {
        "family": "sdm",
        "m": 64,
        "hidden": 128,
        "alpha": None,
        "dictionary": "dct",
        "k": 64,
    }
    learned = get_variant("sdm-learned-k64-m64-coh").to_dict()
    assert learned["coherence"] == COHERENCE_WEIGHT and learned["dictionary"] == "learned"


def test_every_committed_run_keeps_its_identity():
    """config.json of every committed run: its model is its variant's to_dict, and the run is
    reusable by the command that would train it (no retraining, no conflict)."""
    configs = sorted(ROOT.glob("results/*/*/*/seed-*/config.json"))
    assert len(configs) >= 70
    for path in configs:
        identity = json.loads(path.read_text())["identity"]
        config = get_variant(identity["variant"])
        assert identity["model"] == config.to_dict(), path
        spec = runs.RunSpec(
            identity["data"],
            identity["preprocessing"],
            config,
            identity["seed"],
            TrainConfig(**identity["train"]),
        )
        assert spec.identity(identity["data_sha256"]) == identity, path


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dictionary": "learned", "k": 64, "coherence": -1.0},
        {"dictionary": "learned", "k": 64, "coherence": "1"},
        {"dictionary": "learned", "k": 64, "coherence": None},
        {"dictionary": "learned", "k": 64, "coherence": math.nan},
        {"dictionary": "learned", "k": 64, "coherence": True},
        {"dictionary": "dct", "k": 64, "coherence": 1.0},
        {"dictionary": "identity", "k": 64, "coherence": 0.0},
    ],
)
def test_a_bad_coherence_is_one_value_error_naming_the_field(kwargs):
    with pytest.raises(ValueError, match=r"^coherence"):
        ModelConfig("sdm", 64, **kwargs)


@pytest.mark.parametrize("family, extra", [("vae", {}), ("vsc", {"alpha": 0.5})])
def test_coherence_given_for_another_family_is_refused(family, extra):
    with pytest.raises(ValueError, match=r"^coherence is used by the learned dictionary only"):
        ModelConfig(family, 64, coherence=1.0, **extra)


# the dictionary and its penalty ----------------------------------------------------------------


def test_coherence_is_zero_for_orthonormal_atoms_and_one_for_a_repeated_pair():
    assert float(coherence(torch.eye(8))) == 0.0
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))
    assert float(coherence(q)) == pytest.approx(0.0, abs=1e-10)
    atoms = torch.eye(8)
    atoms[:, 1] = atoms[:, 0]  # one pair of identical unit atoms, the others orthonormal
    assert float(coherence(atoms)) == 1.0
    assert float(max_abs_coherence(atoms)) == 1.0
    # batched over members; k unit atoms in m < k dimensions stay above k (k - m) / (2 m)
    both = torch.stack([torch.eye(8), atoms])
    assert coherence(both).tolist() == [0.0, 1.0]
    assert float(coherence(dct(64, 128))) >= 128 * 64 / (2 * 64)


def test_the_learned_dictionary_starts_at_the_dct_and_its_network_weights_are_the_dct_variants():
    learned = build_model(get_variant("sdm-learned-k64-m64"), seed=3)
    fixed = build_model(get_variant("sdm-dct-k64-m64"), seed=3)
    torch.testing.assert_close(learned.dictionary.atoms[0], dct(64, 64), rtol=0, atol=1e-7)
    for (name, p), (other, q) in zip(
        learned.named_parameters(), [*fixed.named_parameters(), (None, None)]
    ):
        if name.startswith("dictionary"):
            continue
        assert name == other and torch.equal(p, q), name


def test_gradients_reach_the_dictionary_only_when_it_is_learned(x):
    learned = build_model(get_variant("sdm-learned-k64-m64-coh"), seed=0)
    assert isinstance(learned.dictionary, LearnedDictionary)
    directions = learned.dictionary.directions
    assert isinstance(directions, torch.nn.Parameter) and directions.shape == (1, 64, 64)
    assert any(p is directions for p in learned.parameters())
    learned(x[:1]).loss.sum().backward()
    assert directions.grad is not None and directions.grad.abs().sum() > 0

    fixed = build_model(get_variant("sdm-dct-k64-m64"), seed=0)
    assert not any(n.startswith("dictionary") for n, _ in fixed.named_parameters())
    assert "dictionary.atoms" in dict(fixed.named_buffers())
    fixed(x[:1]).loss.sum().backward()
    assert fixed.dictionary.atoms.grad is None and fixed.penalty() is None
    assert fixed.diagnostics() == {}


def test_atoms_stay_unit_norm_through_optimiser_steps_and_the_penalty_lowers_coherence(x):
    model = build_stack([get_variant("sdm-learned-k64-m64"), learned_variant(64, 100.0)], [0, 0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = model.dictionary.atoms.detach().clone()
    same = x[:1].expand(2, B, 513)  # both members see the same frames: only λ differs
    for _ in range(5):
        opt.zero_grad()
        out = model(same)
        (out.loss.sum() + model.penalty().sum()).backward()
        opt.step()
    atoms = model.dictionary.atoms.detach()
    assert not torch.equal(atoms, start)
    torch.testing.assert_close(atoms.norm(dim=1), torch.ones(2, 64), rtol=0, atol=1e-6)
    penalty = model.penalty().detach()
    assert float(penalty[0]) == 0.0  # λ = 0: no penalty term
    assert float(penalty[1]) == pytest.approx(100.0 * float(coherence(atoms[1])), rel=1e-5)
    assert float(coherence(atoms[1])) < float(coherence(atoms[0]))


def test_gamma_update_and_loss_are_unchanged_for_the_learned_dictionary(x):
    """γ = μ² + σ² of this batch per frame and atom; the loss is the ELBO alone (the penalty is
    the trainer's to add); z = D a with the learned D."""
    model = build_model(get_variant("sdm-learned-k128-m64-coh"), seed=2)
    out = model(x[:1], sample=False)
    with torch.no_grad():
        mu, logvar = model.encoder(x[:1])
        torch.testing.assert_close(out.gamma, mu**2 + logvar.exp())
        assert out.gamma.shape == (1, B, 128) and out.gamma.grad_fn is None
        torch.testing.assert_close(out.loss, out.recon + out.kl)
        rec = model.reconstruct(x[0])
        z = mu @ model.dictionary.atoms[0].T
        torch.testing.assert_close(rec.variance, model.decoder(z).exp())
        torch.testing.assert_close(rec.code, mu)


def test_learned_and_fixed_members_never_share_a_stack():
    members = [
        (get_variant("sdm-dct-k64-m64"), 0),
        (get_variant("sdm-learned-k64-m64"), 0),
        (get_variant("sdm-I-m64"), 0),
        (get_variant("sdm-learned-k64-m64-coh"), 0),
    ]
    groups = group_members(members)
    assert [[c.name for c, _ in g] for g in groups] == [
        ["sdm-dct-k64-m64", "sdm-I-m64"],
        ["sdm-learned-k64-m64", "sdm-learned-k64-m64-coh"],
    ]
    with pytest.raises(ValueError, match="share family and shape"):
        build_stack([get_variant("sdm-dct-k64-m64"), get_variant("sdm-learned-k64-m64")], [0, 0])


# training, saving, evaluating ------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(shipped_frames, tmp_path_factory) -> Path:
    """One learned run (λ > 0) and one fixed run trained together for 2 epochs."""
    root = tmp_path_factory.mktemp("learned")
    train, val = shipped_frames[:448].copy(), shipped_frames[448:].copy()

    def frames(data, split, preprocessing="clean", cache_dir=None):
        return train if split == "train" else val

    specs = make_specs(
        [get_variant("sdm-learned-k64-m64-coh"), get_variant("sdm-dct-k32-m32")],
        [0],
        "shipped",
        "clean",
        SMALL,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sdm.data, "frames", frames)
        ensure_trained(specs, root, device="cpu", progress=False, workers=1)
    return root


def _run(root: Path, name: str) -> Path:
    return results.run_dir(root, "shipped", "clean", name, 0)


def test_a_learned_run_records_its_dictionary_beside_the_frozen_history(trained):
    learned, fixed = _run(trained, "sdm-learned-k64-m64-coh"), _run(trained, "sdm-dct-k32-m32")
    assert not (fixed / results.DICTIONARY_FILE).exists()
    with open(learned / results.HISTORY_FILE) as f, open(fixed / results.HISTORY_FILE) as g:
        assert next(csv.reader(f)) == next(csv.reader(g))  # the same frozen columns
    trace = results.read_dictionary_history(learned)
    assert list(trace.columns) == ["epoch", "coherence_sum", "max_abs_coherence"]
    assert trace["epoch"].tolist() == [1, 2]
    assert (trace["coherence_sum"] > 0).all() and (trace["max_abs_coherence"] < 1).all()
    config = json.loads((learned / results.CONFIG_FILE).read_text())
    assert config["identity"]["model"]["coherence"] == COHERENCE_WEIGHT
    history = results.read_history(learned)
    assert history["val_loss"].min() == pytest.approx(config["result"]["best_val_loss"])
    # the validation loss is the negative ELBO: IS term + KL, no penalty
    np.testing.assert_allclose(
        history["val_loss"], history["val_recon"] + history["val_kl"], rtol=1e-5
    )


def test_a_learned_run_reloads_with_the_same_dictionary_and_reconstruction(trained, x):
    run = _run(trained, "sdm-learned-k64-m64-coh")
    saved = runs.read_weights(run)["state_dict"]
    assert saved["dictionary.directions"].shape == (1, 64, 64)
    model = runs.load_runs([run])
    assert torch.equal(model.dictionary.directions.detach(), saved["dictionary.directions"])
    assert not torch.equal(model.dictionary.atoms[0].detach(), dct(64, 64))  # it learned
    again = build_model(get_variant("sdm-learned-k64-m64-coh"), 0)
    again.load_state_dict(saved)
    again.eval()
    first, second = model.reconstruct(x[0]), again.reconstruct(x[0])
    assert torch.equal(first.variance, second.variance) and torch.equal(first.code, second.code)
    # the last row of dictionary.csv may be a later epoch; the best epoch's D is the saved one
    trace = results.read_dictionary_history(run).set_index("epoch")
    best = json.loads((run / results.CONFIG_FILE).read_text())["result"]["best_epoch"]
    assert float(coherence(model.dictionary.atoms[0].detach())) == pytest.approx(
        trace.loc[best, "coherence_sum"], rel=1e-5
    )


# reports ---------------------------------------------------------------------------------------


def _metrics(names, seeds=(0, 1, 2), shift=None) -> dict:
    rng = np.random.default_rng(1)
    cols = ["pesq_raw_nb", "pesq_wb", "pesq_nb", "estoi", "stoi", "hoyer", "is_div"]
    out = {}
    for name in names:
        for s in seeds:
            table = pd.DataFrame({c: rng.uniform(0.3, 0.6, 20) for c in cols})
            for col, delta in (shift or {}).get(name, {}).items():
                table[col] += delta
            table.insert(0, "utterance", [f"u{i}" for i in range(20)])
            table.insert(1, "speaker", "s")
            table["failures"] = ""
            out[(name, s)] = table
    return out


def test_table1_adds_rows_for_learned_variants_only_when_asked():
    metrics = _metrics(["vae-m64", "sdm-learned-k64-m64"])
    with pytest.raises(ValueError, match="unknown variants"):
        build_table1(metrics)
    table = build_table1(metrics, extra=["sdm-learned-k64-m64", "sdm-learned-k128-m64-coh"])
    labels = list(table.index)
    assert labels[-3:] == [
        "SDM-VAE learned k=64",
        f"SDM-VAE learned k=128, λ={COHERENCE_WEIGHT:g}",
        "oracle",
    ]
    assert table.loc["SDM-VAE learned k=64", "m64_seeds"] == 3
    assert table.loc["SDM-VAE learned k=64", "m32_seeds"] == 0
    assert list(build_table1(_metrics(["vae-m64"])).index) == labels[:7] + ["oracle"]


def test_b1_and_b2_are_judged_like_the_papers_claims():
    names = [
        "sdm-I-m64",
        "sdm-dct-k32-m64",
        "sdm-dct-k64-m64",
        *LEARNED_VARIANTS,
    ]
    shift = {
        "sdm-learned-k64-m64": {"pesq_raw_nb": 1.0, "pesq_wb": 1.0},
        "sdm-learned-k64-m64-coh": {"hoyer": 0.3},
        "sdm-learned-k128-m64-coh": {"hoyer": 0.3},
    }
    report = judge_claims(_metrics(names, shift=shift), Path("/nonexistent"), claims=BEYOND_CLAIMS)
    verdicts = dict(
        zip(report.summary["claim"] + "/" + report.summary["convention"], report.summary["verdict"])
    )
    assert verdicts == {"B1/paper": "holds", "B1/ours": "holds", "B2/any": "holds"}
    missing = judge_claims(_metrics(names[:3]), Path("/nonexistent"), claims=BEYOND_CLAIMS)
    assert set(missing.summary["verdict"]) == {"inconclusive: missing runs"}


def test_the_sweep_rule_picks_the_largest_weight_within_the_tolerance():
    rows = []
    for k, losses in (
        (64, {0.0: -1500.0, 0.1: -1500.2, 1.0: -1499.5, 10.0: -1498.0}),
        (128, {0.0: -1510.0, 0.1: -1509.9, 1.0: -1509.2, 10.0: -1509.5}),
    ):
        for w, loss in losses.items():
            rows.append(
                {"variant": "v", "k": k, "coherence_weight": w, "seed": 0, "best_val_loss": loss}
            )
    table = sweep.judge(pd.DataFrame(rows))
    assert list(table.columns) == sweep.SUMMARY_COLUMNS
    # λ = 10 costs k = 64 2 nats/frame (> 1): the largest acceptable at both k is λ = 1
    assert sweep.choose_weight(table, [0.1, 1.0, 10.0]) == 1.0
    assert sweep.choose_weight(table[table["coherence_weight"] != 1.0], [1.0]) is None
    # none within the tolerance at both k: the smallest gap averaged over k
    wide = table[table["coherence_weight"] != 1.0].copy()
    wide.loc[wide["coherence_weight"] == 0.1, "acceptable"] = False
    wide.loc[wide["coherence_weight"] == 10.0, "acceptable"] = False
    assert sweep.choose_weight(wide, [0.1, 10.0]) == 0.1
    wide.loc[wide["coherence_weight"] == 0.1, "val_loss_gap"] = 50.0
    assert sweep.choose_weight(wide, [0.1, 10.0]) == 10.0  # gaps (2 + 0.5) / 2 < 50
    # a noisy baseline (seed SD 1.5 nats) widens the tolerance to 2 SD = 3 nats
    noisy = pd.concat(
        [
            pd.DataFrame(rows),
            pd.DataFrame(
                [
                    {"variant": "v", "k": k, "coherence_weight": 0.0, "seed": 1, "best_val_loss": b}
                    for k, b in (
                        (64, -1500.0 + 1.5 * math.sqrt(2)),
                        (128, -1510.0 + 1.5 * math.sqrt(2)),
                    )
                ]
            ),
        ]
    )
    judged = sweep.judge(noisy)
    assert judged["tolerance"].iloc[0] == pytest.approx(3.0)
    assert sweep.choose_weight(judged, [0.1, 1.0, 10.0]) == 10.0


def test_the_sweep_plans_one_root_per_weight_with_the_baseline_at_zero(tmp_path):
    plan = sweep.plan([0.1, 10.0], train=SMALL, out=tmp_path, baseline_seeds=(0, 1))
    assert [(r.spec.model.name, r.weight, r.spec.seed) for r in plan] == [
        ("sdm-learned-k64-m64", 0.0, 0),
        ("sdm-learned-k64-m64", 0.0, 1),
        ("sdm-learned-k64-m64-coh", 0.1, 0),
        ("sdm-learned-k64-m64-coh", 10.0, 0),
        ("sdm-learned-k128-m64", 0.0, 0),
        ("sdm-learned-k128-m64", 0.0, 1),
        ("sdm-learned-k128-m64-coh", 0.1, 0),
        ("sdm-learned-k128-m64-coh", 10.0, 0),
    ]
    assert {r.root.name for r in plan} == {"lambda-0", "lambda-0.1", "lambda-10"}
    assert len({r.directory for r in plan}) == len(plan)
    with pytest.raises(ValueError, match="^coherence"):
        sweep.plan([-1.0], out=tmp_path)


def test_configs_stay_frozen_values():
    config = get_variant("sdm-learned-k64-m64")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.coherence = 2.0
    assert dataclasses.replace(config, coherence=2.0).name == "sdm-learned-k64-m64-coh"


def test_the_beyond_page_names_the_missing_runs_and_shows_what_is_there(tmp_path):
    from sdm import beyond

    references = _metrics(beyond.REFERENCES, seeds=(0, 1))
    missing = tuple(make_specs([get_variant(v) for v in beyond.LEARNED], [0, 1]))
    page = beyond.BeyondPage(
        data="shipped",
        preprocessing="clean",
        root=tmp_path,
        seeds=(0, 1),
        metrics=references,
        oracle=None,
        missing=missing,
        report=judge_claims(references, Path("/nonexistent"), claims=BEYOND_CLAIMS),
    )
    note = beyond.missing_note(page)
    assert note.startswith("```{note}") and "sdm-learned-k128-m64-coh" in note
    for name in beyond.LEARNED:
        assert f"{get_variant(name).name}" in note
    assert "SDM-VAE learned k=64, m=64 (seeds 0, 1)" in note
    table = beyond.comparison_table(page)
    assert list(table.index)[-5:] == [
        *(model_label(get_variant(v)) for v in beyond.LEARNED),
        "oracle",
    ]
    assert table["m64_seeds"].tolist()[:4] == [2, 2, 2, 2]
    text = beyond.table_markdown(page)
    assert text.count("```{table}") == 2 and "sdm-learned" not in text and "pesq_wb" not in text
    verdicts = beyond.verdicts_markdown(page)
    assert "(claim-b1)=" in verdicts and "(claim-b2)=" in verdicts and "– not run" in verdicts
    assert not beyond.has_estimates(page, "B1") and beyond.frame_hoyer(page) is None
    assert beyond.coherence_traces(page).empty
    assert list(beyond.saved_dictionaries(page)) == ["DCT, k=64", "DCT, k=128"]
    refs = beyond.coherence_references()
    assert refs["floor of Σ at k=128"][0] == 64.0
    assert beyond.figure_markdown("k", "alt", "caption", False, "none yet") == "*none yet*\n"
    assert ":name: fig-k" in beyond.figure_markdown("k", "alt", "caption", True, "")
    assert beyond.missing_note(dataclasses.replace(page, missing=())) == ""


def test_sdm_book_renders_only_the_pages_asked_for(monkeypatch, capsys):
    import sdm.book
    from sdm.__main__ import main

    executed = []
    monkeypatch.setattr(
        sdm.book, "execute", lambda profile, notebooks=None: executed.append(notebooks) or ""
    )
    assert main(["book", "--pages", "beyond"]) == 0
    assert executed == [("beyond",)]
    assert main(["book", "--pages", "nowhere"]) == 2
    assert "--pages: unknown ['nowhere']" in capsys.readouterr().err

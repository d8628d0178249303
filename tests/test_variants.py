"""The 14 Table-1 variants: names, settings, lookup errors, frozen configs, bad combinations."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdm.config import ModelConfig
from sdm.variants import LEARNED_VARIANTS, VARIANTS, get_variant, variant_from_parameters

ROOT = Path(__file__).resolve().parents[1]

TABLE1 = [
    name
    for m in (32, 64)
    for name in (
        f"vae-m{m}",
        f"vsc-a0.05-m{m}",
        f"vsc-a0.5-m{m}",
        f"vsc-a0.9-m{m}",
        f"sdm-I-m{m}",
        f"sdm-dct-k32-m{m}",
        f"sdm-dct-k64-m{m}",
    )
]


def test_exactly_the_14_table1_names_in_table_order():
    assert len(VARIANTS) == 14
    assert list(VARIANTS) == TABLE1


@pytest.mark.parametrize("name", TABLE1)
def test_name_is_derived_from_the_settings(name):
    cfg = get_variant(name)
    assert cfg.name == name
    assert cfg.hidden == 128
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_variant_settings_match_table1():
    assert get_variant("vae-m32") == ModelConfig("vae", 32)
    assert get_variant("vsc-a0.05-m64") == ModelConfig("vsc", 64, alpha=0.05)
    assert get_variant("sdm-I-m64") == ModelConfig("sdm", 64, dictionary="identity", k=64)
    assert get_variant("sdm-dct-k32-m64") == ModelConfig("sdm", 64, dictionary="dct", k=32)
    assert get_variant("sdm-dct-k64-m32") == ModelConfig("sdm", 32, dictionary="dct", k=64)
    assert {c.code_dim for c in VARIANTS.values() if c.family != "sdm"} == {32, 64}
    assert get_variant("sdm-dct-k64-m32").code_dim == 64  # the code a has k entries


@pytest.mark.parametrize("bad", ["sdm-dct-k64", "VAE-m32", "vae-m16", ""])
def test_unknown_name_lists_the_valid_ones(bad):
    with pytest.raises(KeyError) as err:
        get_variant(bad)
    message = str(err.value)
    assert repr(bad) in message
    for name in TABLE1:
        assert name in message


def test_configs_and_the_registry_are_read_only():
    cfg = get_variant("sdm-I-m32")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.m = 64
    with pytest.raises(TypeError):
        VARIANTS["mine"] = cfg
    # an ablation is a new value, checked like any other
    assert dataclasses.replace(cfg, m=64, k=64).name == "sdm-I-m64"
    with pytest.raises(ValueError, match="k == m"):
        dataclasses.replace(cfg, m=64)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"family": "ae", "m": 32}, "family"),
        ({"family": "vae", "m": 0}, "m: expected a positive integer"),
        ({"family": "vae", "m": 32.0}, "m: expected a positive integer"),
        ({"family": "vae", "m": True}, "m: expected a positive integer"),
        ({"family": "vae", "m": 32, "hidden": 0}, "hidden"),
        ({"family": "vae", "m": 32, "alpha": 0.5}, "alpha is used by VSC only"),
        ({"family": "vae", "m": 32, "k": 32}, "used by SDM-VAE only"),
        ({"family": "vae", "m": 32, "dictionary": "dct"}, "used by SDM-VAE only"),
        ({"family": "vsc", "m": 32}, "alpha: VSC needs"),
        ({"family": "vsc", "m": 32, "alpha": 0.0}, "alpha: VSC needs"),
        ({"family": "vsc", "m": 32, "alpha": 1.0}, "alpha: VSC needs"),
        ({"family": "vsc", "m": 32, "alpha": float("nan")}, "alpha: VSC needs"),
        ({"family": "vsc", "m": 32, "alpha": "0.5"}, "alpha: VSC needs"),
        ({"family": "vsc", "m": 32, "alpha": 0.5, "k": 32}, "used by SDM-VAE only"),
        ({"family": "sdm", "m": 32, "k": 32}, "dictionary: expected one of"),
        ({"family": "sdm", "m": 32, "dictionary": "learned", "k": 32}, "dictionary"),
        ({"family": "sdm", "m": 32, "dictionary": "dct"}, "k: expected a positive"),
        ({"family": "sdm", "m": 32, "dictionary": "dct", "k": 0}, "k: expected a positive"),
        ({"family": "sdm", "m": 32, "dictionary": "identity", "k": 64}, "k == m"),
        ({"family": "sdm", "m": 32, "dictionary": "dct", "k": 32, "alpha": 0.5}, "VSC only"),
    ],
)
def test_impossible_model_configs_raise_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_variant_from_notebook_parameters():
    assert variant_from_parameters("vae", 32) == get_variant("vae-m32")
    assert variant_from_parameters("vsc", 64, alpha=0.9) == get_variant("vsc-a0.9-m64")
    assert variant_from_parameters("sdm", 64, k=0) == get_variant("sdm-I-m64")
    assert variant_from_parameters("sdm", 32, k=64) == get_variant("sdm-dct-k64-m32")
    with pytest.raises(ValueError, match="model: expected"):
        variant_from_parameters("sdm-vae", 64)
    with pytest.raises(ValueError, match="alpha"):
        variant_from_parameters("vsc", 64)


def test_cli_lists_the_14_variants_with_their_settings(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "sdm", "variants"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    table1, beyond = done.stdout.strip().split("\n\n")
    rows = [line.split() for line in table1.splitlines()[1:]]
    assert [r[0] for r in rows] == TABLE1
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name["vsc-a0.05-m64"] == ["vsc", "64", "0.05"]
    assert by_name["sdm-dct-k32-m64"] == ["sdm", "64", "32", "dct"]
    assert by_name["sdm-I-m32"] == ["sdm", "32", "32", "identity"]
    assert by_name["vae-m32"] == ["vae", "32"]
    heading, _, *learned = beyond.splitlines()  # a heading of their own, then the column names
    assert "Beyond the paper" in heading and "not in Table 1" in heading
    assert [r.split()[0] for r in learned] == list(LEARNED_VARIANTS)
    assert learned[0].split()[1:] == ["sdm", "64", "64", "0", "learned"]


def test_select_variants_defaults_to_all_and_keeps_the_order_asked_for():
    from sdm.variants import select_variants

    assert select_variants() == list(VARIANTS.values())
    assert [v.name for v in select_variants(["sdm-I-m64", "vae-m32", "sdm-I-m64"])] == [
        "sdm-I-m64",
        "vae-m32",
    ]
    with pytest.raises(ValueError, match="variants: expected at least one"):
        select_variants([])

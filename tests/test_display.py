"""Readers see display names, never code ids."""

from __future__ import annotations

import pytest

from sdm.display import metric_label, model_label, replace_ids, variant_label
from sdm.table1 import row_label
from sdm.variants import VARIANTS


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_has_a_label_with_its_row_and_latent_size(name: str) -> None:
    config = VARIANTS[name]
    assert model_label(name) == row_label(config)  # the same words as Table 1's rows
    assert variant_label(name) == f"{row_label(config)}, m={config.m}"


def test_labels_follow_the_paper() -> None:
    assert variant_label("sdm-dct-k64-m32") == "SDM-VAE DCT k=64, m=32"
    assert variant_label("vsc-a0.05-m64") == "VSC α=0.05, m=64"
    assert metric_label("pesq_raw_nb") == "PESQ (raw, narrow-band)"
    assert metric_label("pesq_raw_nb", short=True) == "PESQ raw-nb"
    assert metric_label("val_kl") == "validation KL"
    assert metric_label("something_else") == "something_else"


def test_replace_ids_rewrites_comparison_labels_without_touching_prefixes() -> None:
    text = "sdm-dct-k64-m64 − sdm-dct-k32-m64, vae-m32 − vae-m64"
    assert replace_ids(text) == (
        "SDM-VAE DCT k=64, m=64 − SDM-VAE DCT k=32, m=64, VAE, m=32 − VAE, m=64"
    )

"""Names as readers see them: variants, metrics, history columns, corpora and conventions.

Code ids (`sdm-dct-k64-m32`, `pesq_raw_nb`) stay the keys everywhere; figures, tables and captions
show these labels instead, written the way the paper writes them.
"""

from __future__ import annotations

import math
import re
from types import MappingProxyType

from sdm.config import ModelConfig
from sdm.variants import ALL_VARIANTS, get_variant

METRICS = MappingProxyType(
    {
        "pesq_raw_nb": "PESQ (raw, narrow-band)",
        "pesq_nb": "PESQ (narrow-band MOS-LQO)",
        "pesq_wb": "PESQ (wide-band)",
        "estoi": "ESTOI",
        "stoi": "STOI",
        "hoyer": "Hoyer score",
        "is_div": "IS divergence per frame",
    }
)
"""Metric column -> label. The paper's "PESQ" is the raw narrow-band score, its "STOI" is ESTOI."""

SHORT_METRICS = MappingProxyType(
    {
        "pesq_raw_nb": "PESQ raw-nb",
        "pesq_nb": "PESQ nb",
        "pesq_wb": "PESQ wb",
        "estoi": "ESTOI",
        "stoi": "STOI",
        "hoyer": "Hoyer",
        "is_div": "IS div.",
    }
)
"""Metric column -> a label short enough for a table header."""

HISTORY = MappingProxyType(
    {
        "train_loss": "training loss",
        "val_loss": "validation loss",
        "val_recon": "validation IS term",
        "val_kl": "validation KL",
        "val_hoyer": "validation Hoyer score",
        "gamma_mean": "mean of γ",
        "gamma_median": "median of γ",
    }
)
"""history.csv column -> axis label."""

CORPORA = MappingProxyType(
    {
        "shipped": "shipped corpus (5 min, 11 speakers)",
        "medium": "medium corpus (4.4 h, 8 speakers)",
    }
)

CONVENTIONS = MappingProxyType(
    {
        "paper": "paper's metrics (raw-nb PESQ, ESTOI)",
        "ours": "usual metrics (wide-band PESQ, STOI)",
        "any": "either convention",
    }
)


CLAIMS = MappingProxyType(
    {
        "C1": "the VAE's PESQ drops from m=32 to m=64",
        "C2": "SDM-VAE codes are sparser than the VAE's",
        "C3": "SDM-VAE is not worse than the VAE (PESQ, STOI)",
        "C4": "more DCT atoms give sparser codes",
        "C5": "D=I gives the best PESQ at m=64",
        "C6": "VSC at m=32: the sparsest prior costs PESQ",
        "C7": "sparse models do not lose PESQ from m=32 to 64",
        "C8": "SDM-VAE DCT is less sensitive to sparsity than VSC",
        "C9": "at m=32 a DCT dictionary gives the best PESQ",
        "C10": "SDM-VAE's extra cost per training step is negligible",
    }
)
"""Claim id -> a one-line statement for summaries (sdm.claims.CLAIMS holds the full ones)."""

BEYOND_CLAIMS = MappingProxyType(
    {
        "B1": "a learned dictionary beats the best fixed one at m=64 (PESQ)",
        "B2": "the coherence penalty makes the codes sparser",
    }
)
"""The same for the claims beyond the paper (sdm.claims.BEYOND_CLAIMS)."""


def model_label(config: ModelConfig | str) -> str:
    """The model without its latent size, as Table 1 names its rows: 'SDM-VAE DCT k=64'; a
    learned dictionary: 'SDM-VAE learned k=64', with its penalty 'SDM-VAE learned k=64, λ=1'."""
    config = get_variant(config) if isinstance(config, str) else config
    if config.family == "vae":
        return "VAE"
    if config.family == "vsc":
        return f"VSC α={config.alpha:g}"
    if config.dictionary == "identity":
        return "SDM-VAE D=I"
    if config.learns_dictionary:
        penalty = f", λ={config.coherence:g}" if config.coherence else ""
        return f"SDM-VAE learned k={config.k}{penalty}"
    return f"SDM-VAE DCT k={config.k}"


def variant_label(config: ModelConfig | str) -> str:
    """A variant with its latent size: 'SDM-VAE DCT k=64, m=32'."""
    config = get_variant(config) if isinstance(config, str) else config
    return f"{model_label(config)}, m={config.m}"


def metric_label(column: str, short: bool = False) -> str:
    """A metric or history column's label; unknown columns are returned unchanged."""
    table = SHORT_METRICS if short else METRICS
    return table.get(column) or HISTORY.get(column) or column


def corpus_label(data: str) -> str:
    """'shipped corpus (…)' for the known corpora, the data string itself otherwise."""
    return CORPORA.get(data, data)


_VARIANT_ID = re.compile("|".join(sorted(map(re.escape, ALL_VARIANTS), key=len, reverse=True)))


def replace_ids(text: str) -> str:
    """Every variant id inside a text (a comparison's label) replaced by its display label."""
    return _VARIANT_ID.sub(lambda m: variant_label(m.group(0)), text)


DASH = "—"


def number(value: float, decimals: int) -> str:
    """A number with fixed decimals, or a dash for a missing (NaN) one."""
    return DASH if not math.isfinite(value) else f"{value:.{decimals}f}"

"""The 14 Table-1 variants as named, frozen configurations."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from sdm.config import ModelConfig

LATENT_SIZES = (32, 64)
VSC_ALPHAS = (0.05, 0.5, 0.9)
DCT_ATOMS = (32, 64)


def _table1() -> dict[str, ModelConfig]:
    configs = []
    for m in LATENT_SIZES:
        configs.append(ModelConfig("vae", m))
        configs += [ModelConfig("vsc", m, alpha=a) for a in VSC_ALPHAS]
        configs.append(ModelConfig("sdm", m, dictionary="identity", k=m))
        configs += [ModelConfig("sdm", m, dictionary="dct", k=k) for k in DCT_ATOMS]
    return {c.name: c for c in configs}


VARIANTS: MappingProxyType[str, ModelConfig] = MappingProxyType(_table1())
"""Name -> configuration, in Table 1's order (m = 32 first). 2 x (1 + 3 + 1 + 2) = 14."""


def get_variant(name: str) -> ModelConfig:
    """Look a variant up by name; an unknown name lists the valid ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; valid variants: {', '.join(VARIANTS)}") from None


def select_variants(names: Sequence[str] | None = None) -> list[ModelConfig]:
    """The variants a Table 1 or claims run covers: all 14 by default, or the named subset
    (runs on a big corpus are trained a few at a time; the table leaves the others empty)."""
    if names is None:
        return list(VARIANTS.values())
    if not names:
        raise ValueError("variants: expected at least one variant name, got none")
    return [get_variant(name) for name in dict.fromkeys(names)]


def variant_from_parameters(
    model: str, m: int, k: int = 0, alpha: float | None = None
) -> ModelConfig:
    """Build a configuration from notebook-style parameters (k = 0 means the identity dictionary).

    Parameters the family does not use are ignored here; the caller reports them.
    """
    if model == "vae":
        return ModelConfig("vae", m)
    if model == "vsc":
        return ModelConfig("vsc", m, alpha=alpha)
    if model == "sdm":
        if k == 0:
            return ModelConfig("sdm", m, dictionary="identity", k=m)
        return ModelConfig("sdm", m, dictionary="dct", k=k)
    raise ValueError(f"model: expected 'vae', 'vsc' or 'sdm', got {model!r}")

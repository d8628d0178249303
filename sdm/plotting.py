"""Figures the notebooks show. Each function returns a matplotlib Figure and reads nothing from disk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def sparsity_penalties(sigma2: float = 0.1, energy: float = 4.0, max_atoms: int = 32) -> Any:
    """Why the substituted KL promotes sparsity, in two panels.

    Left: per-atom penalties against the code value: SDM-VAE's 0.5 log(1 + mu^2 / sigma^2), an L1
    (Laplace) penalty and the plain VAE's quadratic, scaled to meet at |mu| = 1. Right: the total
    penalty of a code of fixed energy sum(mu^2) spread evenly over n atoms, relative to n = 1.
    """
    plt = _plt()
    mu = np.linspace(-3, 3, 601)
    scale = 0.5 * np.log1p(1.0 / sigma2)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax.plot(
        mu,
        0.5 * np.log1p(mu**2 / sigma2),
        lw=2,
        label=r"SDM-VAE: $\frac{1}{2}\log(1+\mu^2/\sigma^2)$",
    )
    ax.plot(mu, scale * np.abs(mu), ls="--", label=r"Laplace: $\lambda|\mu|$")
    ax.plot(mu, scale * mu**2, ls=":", label=r"standard normal: $\propto\mu^2$")
    ax.set(
        xlabel=r"code value $\mu_r$",
        ylabel="penalty (nats)",
        ylim=(0, 3),
        title=rf"Penalty per atom ($\sigma^2 = {sigma2:g}$)",
    )
    ax.legend(frameon=False, fontsize="small")
    n = np.arange(1, max_atoms + 1)
    per_atom = energy / n
    curves = {
        "SDM-VAE (log)": n * 0.5 * np.log1p(per_atom / sigma2),
        "Laplace (L1)": n * np.sqrt(per_atom),
        "standard normal (L2)": n * per_atom / 2,
    }
    for (label, c), ls in zip(curves.items(), ("-", "--", ":")):
        bx.plot(n, c / c[0], ls=ls, lw=2 if ls == "-" else 1.5, label=label)
    bx.set(
        xlabel="number of atoms sharing the energy",
        ylabel="total penalty / penalty at n = 1",
        title=rf"A fixed energy $\sum_r\mu_r^2 = {energy:g}$ spread over n atoms",
    )
    bx.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def learning_curves(histories: Mapping[str, Any], column: str = "val_loss") -> Any:
    """One line per run: a history column (pandas DataFrames with an `epoch` column) against epoch."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, h in histories.items():
        ax.plot(h["epoch"], h[column], label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(column.replace("_", " "))
    ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def history_panels(history: Any, columns: Sequence[str]) -> Any:
    """Small multiples of one run's history: one panel per column present in it."""
    plt = _plt()
    columns = [c for c in columns if c in history]
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.0), squeeze=False)
    for ax, col in zip(axes[0], columns):
        ax.plot(history["epoch"], history[col])
        ax.set_title(col.replace("_", " "))
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return fig

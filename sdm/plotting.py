"""Figures the notebooks show.

Each function returns a matplotlib Figure and reads nothing from disk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _plt() -> Any:
    # pyplot picks the backend itself: inline in a notebook, Agg where MPLBACKEND=Agg (scripts, CI)
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


def learning_curves(
    histories: Mapping[str, Any], column: str = "val_loss", log_y: bool = False
) -> Any:
    """One line per run: a history column against epoch (DataFrames with an `epoch` column)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, h in histories.items():
        ax.plot(h["epoch"], h[column], label=name)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(column.replace("_", " "))
    ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def history_panels(
    history: Any, columns: Sequence[str], mark_epoch: int | None = None, log_y: bool = False
) -> Any:
    """Small multiples of one run's history: one panel per column present in it; an optional dashed
    line at the best epoch."""
    plt = _plt()
    columns = [c for c in columns if c in history]
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.0), squeeze=False)
    for ax, col in zip(axes[0], columns):
        ax.plot(history["epoch"], history[col])
        if mark_epoch is not None:
            ax.axvline(mark_epoch, color="grey", ls="--", lw=1)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(col.replace("_", " "))
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return fig


def _db(power: np.ndarray, floor_db: float = -80.0) -> np.ndarray:
    db = 10 * np.log10(np.maximum(power, 1e-12))
    return np.maximum(db, db.max() + floor_db)


def _panels(
    images: Mapping[str, np.ndarray],
    ncols: int,
    size: tuple[float, float],
    hop: int,
    fs: int,
    ylabel: str,
    draw: Any,
) -> Any:
    """A grid with one time-by-row image per entry; `draw(ax, t, image)` paints one panel."""
    plt = _plt()
    names = list(images)
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    for ax, name in zip(axes.flat, names):
        image = images[name]
        draw(ax, np.arange(image.shape[0]) * hop / fs, image)
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("time (s)")
        ax.set_ylabel(ylabel)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def spectrograms(
    panels: Mapping[str, np.ndarray], fs: int = 16000, hop: int = 256, ncols: int = 3
) -> Any:
    """Power spectrograms in dB (frames, bins), one panel each, on the first one's colour scale."""
    db = {name: _db(p) for name, p in panels.items()}
    ref = next(iter(db.values()))

    def draw(ax: Any, t: np.ndarray, spec: np.ndarray) -> None:
        f = np.linspace(0, fs / 2000, spec.shape[1])
        ax.pcolormesh(t, f, spec.T, shading="auto", cmap="magma", vmin=ref.min(), vmax=ref.max())

    return _panels(db, ncols, (4.2, 2.6), hop, fs, "kHz", draw)


def code_heatmaps(
    codes: Mapping[str, np.ndarray], hop: int = 256, fs: int = 16000, ncols: int = 2
) -> Any:
    """|code| over time for one utterance, one panel per model (rows: atoms or latent dims)."""

    def draw(ax: Any, t: np.ndarray, c: np.ndarray) -> None:
        ax.pcolormesh(t, np.arange(c.shape[1]), c.T, shading="auto", cmap="viridis")

    magnitudes = {name: np.abs(c) for name, c in codes.items()}
    return _panels(magnitudes, ncols, (6.0, 2.2), hop, fs, "atom / dim", draw)


def hoyer_distributions(frames: Any) -> Any:
    """Violin plots of per-frame Hoyer scores per variant, one panel per latent size m."""
    import seaborn as sns

    plt = _plt()
    ms = sorted(frames["m"].unique())
    fig, axes = plt.subplots(1, len(ms), figsize=(7 * len(ms), 3.8), squeeze=False)
    for ax, m in zip(axes[0], ms):
        sub = frames[frames["m"] == m]
        sns.violinplot(
            data=sub, x="variant", y="hoyer", ax=ax, cut=0, density_norm="width", inner="quartile"
        )
        ax.set_title(f"m = {m}")
        ax.set_xlabel("")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=35)
    fig.tight_layout()
    return fig


def atom_activation(activations: Mapping[str, np.ndarray], ncols: int = 2) -> Any:
    """Mean |code| per atom (sorted, descending) per model: how many atoms carry the signal."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, act in activations.items():
        a = np.sort(act)[::-1]
        ax.plot(np.arange(1, len(a) + 1), a / a.max(), label=name)
    ax.set_xlabel("atom rank (by mean |code|)")
    ax.set_ylabel("mean |code| / largest")
    ax.set_xscale("log")
    ax.legend(frameon=False, fontsize="x-small", ncol=2)
    fig.tight_layout()
    return fig


def quality_vs_sparsity(summary: Any, quality: str = "pesq_raw_nb") -> Any:
    """Seaborn scatter of a quality metric against Hoyer per model, one marker style per m.

    summary: DataFrame with columns model, m, hoyer, and the quality column (one row per model, m).
    """
    import seaborn as sns

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.scatterplot(data=summary, x="hoyer", y=quality, hue="model", style="m", s=90, ax=ax)
    ax.set_xlabel("Hoyer sparsity of the code")
    ax.set_ylabel(quality)
    ax.legend(frameon=False, fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


VERDICT_COLOURS = {"holds": "tab:green", "fails": "tab:red"}


def claim_intervals(comparisons: Any, claim: str, title: str = "") -> Any:
    """Forest plot of one claim: each comparison's estimate and 95% interval under each metric
    convention, the claim's boundary as a dashed line, colour by verdict (grey: inconclusive)."""
    plt = _plt()
    rows = comparisons[comparisons["claim"] == claim].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(rows)))
    y = np.arange(len(rows))[::-1]
    for yi, (_, r) in zip(y, rows.iterrows()):
        colour = VERDICT_COLOURS.get(str(r["verdict"]), "tab:grey")
        alpha = 1.0 if r["counted"] else 0.4
        ax.errorbar(
            r["estimate"],
            yi,
            xerr=[[r["estimate"] - r["ci_low"]], [r["ci_high"] - r["estimate"]]],
            fmt="o",
            color=colour,
            alpha=alpha,
            capsize=3,
        )
        if np.isfinite(r["boundary"]):
            ax.plot([r["boundary"]] * 2, [yi - 0.4, yi + 0.4], color="k", ls="--", lw=1)
    labels = [f"{r['comparison']}  [{r['metric']}]" for _, r in rows.iterrows()]
    ax.set_yticks(y, labels, fontsize="x-small")
    ax.set_xlabel("estimate with 95% interval (dashed: the claim's boundary)")
    ax.set_title(title or claim, fontsize="small")
    fig.tight_layout()
    return fig

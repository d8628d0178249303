"""Figures the book shows, drawn to be read at the size the page shows them.

Every function returns a matplotlib Figure (not registered with pyplot, so nothing is shown twice)
and reads nothing from disk. Figures are at most WIDTH_IN wide and rendered at DPI, so they fit
the book's text column (688 px at a 1280 px window) without shrinking, and every text is at least
MIN_FONT_PT: 12.5 px on the page. Labels use display names (sdm.display), never code ids.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from sdm.display import metric_label, model_label, replace_ids, variant_label
from sdm.variants import ALL_VARIANTS, LEARNED_VARIANTS

DPI = 100
WIDTH_IN = 6.8  # 680 px at DPI: the text column is 688 px wide at 1280 px
MIN_FONT_PT = 9.0
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9.5,
    "figure.titlesize": 10.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": DPI,
}
MODEL_COLOURS = dict(
    zip(
        ["VAE", "VSC α=0.05", "VSC α=0.5", "VSC α=0.9", "SDM-VAE D=I"]
        + ["SDM-VAE DCT k=32", "SDM-VAE DCT k=64"],
        ["#4d4d4d", "#9ecae1", "#4292c6", "#08519c", "#fdae6b", "#e6550d", "#a63603"],
        strict=True,
    )
)
MODEL_COLOURS |= {
    model_label(config): colour
    for config, colour in zip(
        LEARNED_VARIANTS.values(), ["#74c476", "#006d2c", "#9e9ac8", "#54278f"], strict=True
    )
}
"""Table-1 row -> colour: greys for the VAE, blues for VSC, oranges for SDM-VAE; for the learned
dictionaries greens (k=64) and purples (k=128), darker with the coherence penalty."""
M_MARKERS = {32: "o", 64: "s"}


@contextmanager
def _style() -> Any:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def _figure(height_in: float, nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Any, Any]:
    """A constrained-layout Figure of the column's width and its axes array (squeezed off)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _finish(fig: Any) -> Any:
    # tick labels are created at draw time: fix their size now, whatever rcParams are then
    for ax in fig.axes:
        ax.tick_params(labelsize=STYLE["xtick.labelsize"])
    return fig


def to_png(fig: Any, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes at the book's resolution (no timestamp: the bytes are stable)."""
    buf = io.BytesIO()
    with _style():
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _markers(n_points: int) -> dict[str, Any]:
    """Line style for a history: markers when there are few points, so one point still shows."""
    return {"marker": "o", "ms": 4} if n_points <= 30 else {}


def sparsity_penalties(sigma2: float = 0.1, energy: float = 4.0, max_atoms: int = 1000) -> Any:
    """Why the substituted KL promotes sparsity, in two panels.

    Left: per-atom penalties against the code value: SDM-VAE's ½ log(1 + μ²/σ²), an ℓ1 (Laplace)
    penalty and the plain VAE's quadratic, scaled to meet at |μ| = 1. Right: the total penalty of
    a code of energy Σμ² spread evenly over n atoms, relative to n = 1 (log axes): the log penalty
    rises faster than ℓ1 while each atom's share μ² = E/n is well above σ², then levels off.
    """
    with _style():
        fig, axes = _figure(3.0, 1, 2)
        ax, bx = axes[0]
        mu = np.linspace(-3, 3, 601)
        scale = 0.5 * np.log1p(1.0 / sigma2)
        ax.plot(mu, 0.5 * np.log1p(mu**2 / sigma2), lw=2, label="SDM-VAE (log)")
        ax.plot(mu, scale * np.abs(mu), ls="--", label="Laplace (ℓ1)")
        ax.plot(mu, scale * mu**2, ls=":", label="standard normal (ℓ2)")
        ax.set(xlabel="code value μ", ylabel="penalty (nats)", ylim=(0, 3))
        ax.set_title(f"Penalty of one atom, σ² = {sigma2:g}")
        ax.legend(frameon=False, loc="lower right")
        n = np.unique(np.round(np.geomspace(1, max_atoms, 200)).astype(int))
        for (label, c), ls in zip(total_penalties(n, sigma2, energy).items(), ("-", "--", ":")):
            bx.plot(n, c / c[0], ls=ls, lw=2 if ls == "-" else 1.5, label=label)
        bx.axvline(energy / sigma2, color="grey", lw=1)
        bx.annotate("E/n = σ²", (energy / sigma2, 1.2), xytext=(4, 0), textcoords="offset points")
        bx.set(xscale="log", yscale="log", xlabel="number of atoms n sharing the energy")
        bx.set_ylabel("total penalty / at n = 1")
        bx.set_title(f"Energy E = Σμ² = {energy:g} spread over n atoms")
    return _finish(fig)


def total_penalties(n: np.ndarray, sigma2: float, energy: float) -> dict[str, np.ndarray]:
    """Total penalty of energy `energy` spread evenly over n atoms, per prior (n: array)."""
    n = np.asarray(n, dtype=float)
    return {
        "SDM-VAE (log)": n * 0.5 * np.log1p(energy / n / sigma2),
        "Laplace (ℓ1)": n * np.sqrt(energy / n),
        "standard normal (ℓ2)": n * (energy / n) / 2,
    }


def learning_curves(
    histories: Mapping[str, Any], column: str = "val_loss", log_y: bool = False
) -> Any:
    """One line per run (variant id -> DataFrame with `epoch`): a history column against epoch."""
    with _style():
        fig, axes = _figure(3.2)
        ax = axes[0, 0]
        for name, h in histories.items():
            label = variant_label(name) if name in ALL_VARIANTS else name
            ax.plot(h["epoch"], h[column], label=label, **_markers(len(h)))
        if log_y:
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=metric_label(column))
        ax.legend(frameon=False, ncol=2)
    return _finish(fig)


def history_panels(
    history: Any, columns: Sequence[str], mark_epoch: int | None = None, log_y: bool = False
) -> Any:
    """Small multiples of one run's history, three per row: one panel per column present; a dashed
    line at the best epoch; markers when there are few validations."""
    columns = [c for c in columns if c in history]
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    with _style():
        fig, axes = _figure(2.3 * nrows, nrows, ncols)
        for ax, col in zip(axes.flat, columns):
            ax.plot(history["epoch"], history[col], **_markers(len(history)))
            if mark_epoch is not None:
                ax.axvline(mark_epoch, color="grey", ls="--", lw=1)
            if log_y:
                ax.set_yscale("log")
            ax.set_title(metric_label(col))
            ax.set_xlabel("epoch")
        for ax in axes.flat[len(columns) :]:
            ax.axis("off")
    return _finish(fig)


def power_db(power: np.ndarray) -> np.ndarray:
    """Power in dB (floored at 1e-12 before the log)."""
    return 10 * np.log10(np.maximum(power, 1e-12))


def db_range(reference: np.ndarray, span_db: float = 80.0) -> tuple[float, float]:
    """The colour scale of compared spectrograms: the reference's maximum and span_db below it."""
    top = float(power_db(reference).max())
    return top - span_db, top


def _time_freq(ax: Any, image: np.ndarray, hop: int, fs: int, **kw: Any) -> Any:
    t = np.arange(image.shape[0]) * hop / fs
    f = np.linspace(0, fs / 2000, image.shape[1])
    return ax.pcolormesh(t, f, image.T, shading="auto", rasterized=True, **kw)


def spectrograms(
    panels: Mapping[str, np.ndarray],
    fs: int = 16000,
    hop: int = 256,
    ncols: int = 2,
    error: tuple[str, np.ndarray] | None = None,
) -> Any:
    """Power spectrograms (frames, bins) in dB, one panel each, on one colour scale set by the first
    panel (its maximum and 80 dB below) with one colour bar. `error` = (title, dB difference)
    adds a last panel on a diverging scale with its own colour bar."""
    names = list(panels) + ([error[0]] if error else [])
    nrows = -(-len(names) // ncols)
    vmin, vmax = db_range(next(iter(panels.values())))
    with _style():
        fig, axes = _figure(1.75 * nrows + 0.3, nrows, ncols, sharex=True, sharey=True)
        mesh = None
        for ax, name in zip(axes.flat, panels):
            db = np.clip(power_db(panels[name]), vmin, vmax)
            mesh = _time_freq(ax, db, hop, fs, cmap="magma", vmin=vmin, vmax=vmax)
            ax.set_title(variant_label(name) if name in ALL_VARIANTS else name)
        fig.colorbar(mesh, ax=axes[:, -1].tolist(), label="power (dB)", shrink=0.9)
        if error:
            ax = axes.flat[len(panels)]
            lim = 20.0
            diff = _time_freq(ax, error[1], hop, fs, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(error[0])
            fig.colorbar(diff, ax=ax, label="dB", location="left", shrink=0.9)
        for ax in axes.flat[len(names) :]:
            ax.axis("off")
        for ax in axes[-1]:
            ax.set_xlabel("time (s)")
        for ax in axes[:, 0]:
            ax.set_ylabel("kHz")
    return _finish(fig)


def code_heatmaps(codes: Mapping[str, np.ndarray], hop: int = 256, fs: int = 16000) -> Any:
    """|code| over time for one utterance, one panel per model (rows: atoms or latent dimensions),
    on one colour scale (0 to the 99th percentile over all panels) with one colour bar."""
    magnitudes = {name: np.abs(c) for name, c in codes.items()}
    vmax = float(np.percentile(np.concatenate([m.ravel() for m in magnitudes.values()]), 99))
    nrows = -(-len(magnitudes) // 2)
    with _style():
        fig, axes = _figure(1.6 * nrows + 0.3, nrows, 2, sharex=True)
        mesh = None
        for ax, (name, mag) in zip(axes.flat, magnitudes.items()):
            t = np.arange(mag.shape[0]) * hop / fs
            mesh = ax.pcolormesh(
                t,
                np.arange(1, mag.shape[1] + 1),
                mag.T,
                shading="auto",
                cmap="viridis",
                vmin=0,
                vmax=vmax,
                rasterized=True,
            )
            ax.set_title(model_label(name) if name in ALL_VARIANTS else name)
            ax.set_ylabel(
                "atom" if name in ALL_VARIANTS and ALL_VARIANTS[name].family == "sdm" else "dim"
            )
        fig.colorbar(mesh, ax=axes[:, -1].tolist(), label="|code|", shrink=0.9, extend="max")
        for ax in axes.flat[len(magnitudes) :]:
            ax.axis("off")
        for ax in axes[-1]:
            ax.set_xlabel("time (s)")
    return _finish(fig)


def hoyer_distributions(frames: Any) -> Any:
    """Per-frame Hoyer scores (columns variant, m, hoyer): one horizontal violin per model, a panel
    per latent size m, models named as in Table 1."""
    ms = sorted(frames["m"].unique())
    with _style():
        fig, axes = _figure(3.4, 1, len(ms), sharey=True)
        for ax, m in zip(axes[0], ms):
            sub = frames[frames["m"] == m]
            names = list(dict.fromkeys(sub["variant"]))
            data = [sub.loc[sub["variant"] == v, "hoyer"].to_numpy() for v in names]
            pos = np.arange(len(names))[::-1]
            parts = ax.violinplot(
                data, positions=pos, orientation="horizontal", showmedians=True, widths=0.8
            )
            for body, name in zip(parts["bodies"], names):
                body.set_facecolor(MODEL_COLOURS.get(model_label(name), "grey"))
                body.set_alpha(0.8)
            ax.set_yticks(pos, [model_label(v) for v in names])
            ax.set(xlim=(0, 1), xlabel="Hoyer score of a frame's code", title=f"m = {m}")
    return _finish(fig)


def atom_activation(activations: Mapping[str, np.ndarray]) -> Any:
    """Mean |code| per atom (sorted, descending, scaled by the largest) per model."""
    with _style():
        fig, axes = _figure(3.2)
        ax = axes[0, 0]
        for name, act in activations.items():
            a = np.sort(act)[::-1]
            label = model_label(name) if name in ALL_VARIANTS else name
            ax.plot(
                np.arange(1, len(a) + 1), a / a.max(), label=label, color=MODEL_COLOURS.get(label)
            )
        ax.set(xscale="log", xlabel="atom rank (by mean |code|)", ylabel="mean |code| / largest")
        ax.legend(frameon=False, ncol=2)
    return _finish(fig)


def quality_vs_sparsity(
    table: Any, quality: str = "pesq_raw_nb", height_in: float = 3.6, paper: bool = True
) -> Any:
    """Quality against Hoyer per model and latent size, from a Table-1 table (build_table1):
    filled markers are ours with 95% intervals on both axes, hollow ones the paper's (its
    columns, where it has the metric); colour = model, marker = m."""
    from sdm.table1 import ORACLE
    from sdm.variants import LATENT_SIZES

    with _style():
        fig, axes = _figure(height_in)
        ax = axes[0, 0]
        for label, row in table.drop(index=ORACLE, errors="ignore").iterrows():
            colour = MODEL_COLOURS.get(str(label), "grey")
            for m in LATENT_SIZES:
                x, y = row[f"m{m}_hoyer"], row[f"m{m}_{quality}"]
                if not (np.isfinite(x) and np.isfinite(y)):
                    continue
                ax.errorbar(
                    x,
                    y,
                    xerr=interval(row, f"m{m}_hoyer"),
                    yerr=interval(row, f"m{m}_{quality}"),
                    fmt=M_MARKERS[m],
                    color=colour,
                    ms=7,
                    capsize=2,
                    lw=1,
                )
                px, py = row.get(f"m{m}_hoyer_paper"), row.get(f"m{m}_{quality}_paper")
                if paper and py is not None and np.isfinite(py) and np.isfinite(px):
                    ax.plot(px, py, M_MARKERS[m], mfc="none", mec=colour, ms=7, mew=1.5)
        ax.set(xlabel="Hoyer score of the code (sparser →)", ylabel=metric_label(quality))
        _legend(ax, table, paper and f"m32_{quality}_paper" in table)
    return _finish(fig)


def interval(row: Any, key: str) -> float:
    """Half-width of a Table-1 cell's 95% interval: the t-interval over seed means when there are
    several seeds, else 1.96 per-utterance standard errors (the spread over test utterances)."""
    ci = row.get(f"{key}_ci95", np.nan)
    if np.isfinite(ci):
        return float(ci)
    se = row.get(f"{key}_se", np.nan)
    return float(1.96 * se) if np.isfinite(se) else 0.0


def _legend(ax: Any, table: Any, with_paper: bool) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker="o", color=MODEL_COLOURS[str(label)], label=str(label))
        for label in table.index
        if str(label) in MODEL_COLOURS
    ]
    handles += [
        Line2D([], [], ls="", marker=mk, color="k", label=f"m = {m}") for m, mk in M_MARKERS.items()
    ]
    if with_paper:
        handles += [
            Line2D([], [], ls="", marker="o", color="k", label="ours (95% interval)"),
            Line2D([], [], ls="", marker="o", mfc="none", mec="k", label="the paper"),
        ]
    ax.legend(handles=handles, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))


VERDICT_COLOURS = {"holds": "tab:green", "fails": "tab:red"}


def claim_intervals(comparisons: Any, claim: str) -> Any:
    """Forest plot of one claim: each comparison's estimate and 95% interval, per metric and
    corpus (a `corpus` column, if present), the claim's boundary dashed, colour = verdict (green
    holds, red fails, grey inconclusive), faded = shown but not counted."""
    from sdm.display import metric_label as ml

    rows = comparisons[
        (comparisons["claim"] == claim) & comparisons["estimate"].notna()
    ].reset_index(drop=True)
    with _style():
        fig, axes = _figure(0.7 + 0.3 * max(len(rows), 1))
        ax = axes[0, 0]
        y = np.arange(len(rows))[::-1]
        labels = []
        for yi, (_, r) in zip(y, rows.iterrows()):
            colour = VERDICT_COLOURS.get(str(r["verdict"]), "tab:grey")
            ax.errorbar(
                r["estimate"],
                yi,
                xerr=[[r["estimate"] - r["ci_low"]], [r["ci_high"] - r["estimate"]]],
                fmt="o",
                color=colour,
                alpha=1.0 if r["counted"] else 0.4,
                capsize=3,
            )
            if np.isfinite(r["boundary"]):
                ax.plot([r["boundary"]] * 2, [yi - 0.4, yi + 0.4], color="k", ls="--", lw=1)
            corpus = f", {r['corpus']}" if "corpus" in r and isinstance(r["corpus"], str) else ""
            metric = ml(r["metric"], short=True)
            labels.append(f"{_short_comparison(r['comparison'])} [{metric}{corpus}]")
        ax.set_yticks(y, labels)
        # right-aligned: a narrow axes (long labels) never pushes it off the figure; the caption
        # says what is dashed
        ax.set_xlabel("estimate and 95% interval", loc="right")
    return _finish(fig)


_ONE_MODEL_TWO_SIZES = re.compile(r"^(?P<model>[^,]+), (?P<a>m=\d+) − (?P=model), (?P<b>m=\d+)$")


def _short_comparison(label: str) -> str:
    """A comparison label with model names instead of ids, each shared part said once: the
    latent size of two models ('VSC α=0.5 − VAE (m=32)'), the model of two latent sizes
    ('VAE: m=32 − m=64')."""
    text = replace_ids(label)
    for m in (32, 64):
        if text.count(f", m={m}") == 2 and "m=" not in text.replace(f", m={m}", ""):
            text = text.replace(f", m={m}", "") + f" (m={m})"
    if same := _ONE_MODEL_TWO_SIZES.match(text):
        text = f"{same['model']}: {same['a']} − {same['b']}"
    return text


def coherence_over_training(
    traces: Any, references: Mapping[str, tuple[float, float]], first_seed: int = 0
) -> Any:
    """A learned dictionary's coherence at each validation (columns variant, seed, epoch,
    coherence_sum, max_abs_coherence): Σ_{i<j} (d_iᵀd_j)² on the left (log axis), max |d_iᵀd_j|
    on the right; one colour per variant, `first_seed` drawn bold and the other seeds thin;
    `references`: label -> (sum, max), drawn dashed (the DCT starts, the k=128 floor)."""
    with _style():
        fig, axes = _figure(3.4, 1, 2)
        for ax, column in zip(axes[0], ("coherence_sum", "max_abs_coherence")):
            for (variant, seed), run in traces.groupby(["variant", "seed"], sort=False):
                label = model_label(variant)
                bold = seed == first_seed
                ax.plot(
                    run["epoch"],
                    run[column],
                    color=MODEL_COLOURS.get(label, "grey"),
                    lw=1.8 if bold else 0.8,
                    alpha=1.0 if bold else 0.5,
                    label=label if bold else None,
                    **_markers(len(run)),
                )
            for (name, values), ls in zip(references.items(), ("--", ":", "-.")):
                value = values[0] if column == "coherence_sum" else values[1]
                if np.isfinite(value):
                    ax.axhline(value, color="k", ls=ls, lw=0.9, label=name)
            ax.set_xlabel("epoch")
        axes[0, 0].set(yscale="log", ylabel="Σ over atom pairs of (dᵢᵀdⱼ)²")
        axes[0, 1].set(ylabel="largest |dᵢᵀdⱼ|", ylim=(0, 1.02))
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    return _finish(fig)


def dictionary_images(dictionaries: Mapping[str, np.ndarray], gram: bool = False) -> Any:
    """Dictionaries (label -> D, (m, k)) side by side, three per row: the atoms as columns of an
    image (one colour scale, red positive, blue negative), or with `gram` the |DᵀD| of each
    (0 to 1; the diagonal is 1, off the diagonal is the coherence between two atoms)."""
    ncols = min(3, len(dictionaries))
    nrows = -(-len(dictionaries) // ncols)
    images = {k: np.abs(d.T @ d) if gram else d for k, d in dictionaries.items()}
    peak = max(float(np.abs(v).max()) for v in images.values())
    with _style():
        fig, axes = _figure(2.4 * nrows + 0.4, nrows, ncols)
        for ax, (label, image) in zip(axes.flat, images.items()):
            shown = ax.imshow(
                image,
                aspect="auto",
                interpolation="nearest",
                cmap="magma" if gram else "RdBu_r",
                vmin=0 if gram else -peak,
                vmax=1 if gram else peak,
            )
            ax.set_title(label)
            ax.set(xlabel="atom", ylabel="atom" if gram else "dimension of z")
        for ax in axes.flat[len(images) :]:
            ax.axis("off")
        fig.colorbar(shown, ax=axes.ravel().tolist(), label="|dᵢᵀdⱼ|" if gram else "entry of D")
    return _finish(fig)


def quality_vs_training_length(lengths: Mapping[str, Any], metric: str = "pesq_raw_nb") -> Any:
    """One panel per corpus (label -> a sdm.stopping.run_lengths table): each run's test-set mean
    of `metric` against its best epoch (log scale), colour = model, marker = m, the seeds of one
    variant joined by a thin line in order of their best epochs."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

    from sdm.variants import get_variant

    lengths = {label: table for label, table in lengths.items() if len(table)}
    if not lengths:
        raise ValueError("quality_vs_training_length: no corpus has an evaluated run")
    models: dict[str, None] = {}
    with _style():
        fig, axes = _figure(3.9, 1, len(lengths))
        for ax, (label, table) in zip(axes.flat, lengths.items()):
            for variant, runs in table.groupby("variant", sort=False):
                config = get_variant(variant)
                model = model_label(config)
                models[model] = None
                runs = runs.sort_values("best_epoch")
                colour = MODEL_COLOURS.get(model, "grey")
                ax.plot(runs["best_epoch"], runs[metric], color=colour, lw=0.8, alpha=0.6)
                ax.plot(runs["best_epoch"], runs[metric], M_MARKERS[config.m], color=colour, ms=6)
            ax.set_xscale("log")
            # plain numbers at 1, 2, 5 x 10^n: the default log labels (3x10^2, 4x10^2...) collide
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set(title=label, xlabel="best epoch (log scale)", ylabel=metric_label(metric))
        in_order = [m for m in MODEL_COLOURS if m in models] + [
            m for m in models if m not in MODEL_COLOURS
        ]
        handles = [
            Line2D([], [], ls="", marker="o", color=MODEL_COLOURS.get(m, "grey"), label=m)
            for m in in_order
        ]
        handles += [
            Line2D([], [], ls="", marker=mk, color="k", label=f"m = {m}")
            for m, mk in M_MARKERS.items()
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    return _finish(fig)

"""Figures are legible at the size the book shows them, name things as readers know them, draw
intervals and single points, and share one colour scale where panels are compared."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from sdm import plotting
from sdm.table1 import build_table1
from sdm.variants import ALL_VARIANTS, LEARNED_VARIANTS, VARIANTS

CODE_IDS = re.compile("|".join(map(re.escape, [*ALL_VARIANTS, "pesq_raw_nb", "pesq_wb", "val_kl"])))


def _metrics(seeds=(0, 1)) -> dict:
    rng = np.random.default_rng(0)
    cols = ["pesq_raw_nb", "pesq_wb", "pesq_nb", "estoi", "stoi", "hoyer", "is_div"]
    out = {}
    for name in VARIANTS:
        for s in seeds:
            table = pd.DataFrame({c: rng.uniform(0.3, 3.0, 15) for c in cols})
            table.insert(0, "utterance", [f"u{i}" for i in range(15)])
            table.insert(1, "speaker", [f"s{i % 5}" for i in range(15)])
            table["failures"] = ""
            out[(name, s)] = table
    return out


def _history(n: int) -> pd.DataFrame:
    cols = ["train_loss", "val_loss", "val_recon", "val_kl", "val_hoyer", "gamma_mean"]
    data = {c: np.linspace(1, 2, n) for c in cols}
    return pd.DataFrame({"epoch": np.arange(1, n + 1), **data})


def _figures() -> dict:
    rng = np.random.default_rng(1)
    table = build_table1(_metrics())
    frames = pd.DataFrame(
        {
            "variant": np.repeat(list(VARIANTS), 20),
            "m": np.repeat([VARIANTS[v].m for v in VARIANTS], 20),
            "hoyer": rng.uniform(0, 1, 20 * len(VARIANTS)),
        }
    )
    codes = {v: rng.normal(size=(40, VARIANTS[v].k or VARIANTS[v].m)) for v in list(VARIANTS)[7:]}
    power = rng.uniform(1e-4, 1, size=(40, 513))
    comps = pd.DataFrame(
        {
            "claim": "C1",
            "comparison": ["sdm-dct-k64-m32 − vsc-a0.05-m32"],
            "corpus": ["shipped"],
            "metric": ["pesq_raw_nb"],
            "estimate": [0.1],
            "ci_low": [-0.1],
            "ci_high": [0.3],
            "boundary": [0.0],
            "verdict": ["inconclusive"],
            "counted": [True],
        }
    )
    lengths = pd.DataFrame(
        {
            "variant": np.repeat(list(VARIANTS), 3),
            "seed": np.tile([0, 1, 2], len(VARIANTS)),
            "best_epoch": rng.integers(10, 2000, 3 * len(VARIANTS)),
            "epochs_run": 0,
            "pesq_raw_nb": rng.uniform(2, 3, 3 * len(VARIANTS)),
        }
    )
    traces = pd.DataFrame(
        [
            (v, seed, epoch, rng.uniform(1, 60), rng.uniform(0, 1))
            for v in LEARNED_VARIANTS
            for seed in (0, 1)
            for epoch in (10, 20, 30)
        ],
        columns=["variant", "seed", "epoch", "coherence_sum", "max_abs_coherence"],
    )
    references = {"start: DCT k=64": (1.0, 0.03), "floor of Σ at k=128": (64.0, np.nan)}
    learned = {f"learned {k}": rng.normal(size=(64, k)) for k in (64, 128)}
    return {
        "coherence": plotting.coherence_over_training(traces, references),
        "dictionaries": plotting.dictionary_images(learned),
        "gram": plotting.dictionary_images(learned, gram=True),
        "penalties": plotting.sparsity_penalties(),
        "learning_curves": plotting.learning_curves({"sdm-I-m64": _history(3)}, "gamma_mean"),
        "history_panels": plotting.history_panels(_history(1), ["train_loss", "val_loss"], 1),
        "spectrograms": plotting.spectrograms(
            {"original": power, "vae-m64": power * 0.5}, error=("error", np.zeros((40, 513)))
        ),
        "code_heatmaps": plotting.code_heatmaps(codes),
        "hoyer": plotting.hoyer_distributions(frames),
        "atoms": plotting.atom_activation({v: np.abs(c).mean(0) for v, c in codes.items()}),
        "quality": plotting.quality_vs_sparsity(table, "pesq_raw_nb"),
        "claim": plotting.claim_intervals(comps, "C1"),
        "training_length": plotting.quality_vs_training_length(
            {"shipped corpus (5 min, 11 speakers)": lengths, "medium corpus": lengths}
        ),
    }


@pytest.fixture(scope="module")
def figures() -> dict:
    figs = _figures()
    for fig in figs.values():
        plotting.to_png(fig)  # draw once: tick labels exist only after a draw
    return figs


def _texts(fig) -> list:
    return [
        t
        for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
        if t.get_text().strip() and t.get_visible()
    ]


@pytest.mark.parametrize("name", list(_figures()))
def test_every_text_is_legible_in_the_text_column(figures, name: str) -> None:
    fig = figures[name]
    width_px = fig.get_figwidth() * plotting.DPI
    assert width_px <= 688, f"{name}: {width_px:.0f} px is wider than the 688 px column"
    small = [
        (t.get_text(), t.get_fontsize())
        for t in _texts(fig)
        if t.get_fontsize() < plotting.MIN_FONT_PT
    ]
    assert not small, f"{name}: texts under {plotting.MIN_FONT_PT} pt: {small[:5]}"
    # at DPI, MIN_FONT_PT is 12.5 px: at least 10 px even if the page shrank it to 80%
    assert plotting.MIN_FONT_PT * plotting.DPI / 72 * 0.8 >= 10


@pytest.mark.parametrize("name", list(_figures()))
def test_nothing_drawn_runs_off_the_figure(figures, name: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures[name]
    canvas = FigureCanvasAgg(fig)
    with plotting._style():  # as to_png draws it
        canvas.draw()
        drawn = fig.get_tightbbox(canvas.get_renderer())  # inches; every drawn artist
    width, height = fig.get_size_inches()
    tolerance = 2 / plotting.DPI  # two pixels
    assert drawn.x0 >= -tolerance and drawn.y0 >= -tolerance, f"{name}: cut at the left/bottom"
    assert drawn.x1 <= width + tolerance, f"{name}: {drawn.x1 - width:.2f} in cut at the right"
    assert drawn.y1 <= height + tolerance, f"{name}: {drawn.y1 - height:.2f} in cut at the top"


@pytest.mark.parametrize("name", list(_figures()))
def test_figures_show_display_names_not_code_ids(figures, name: str) -> None:
    ids = [t.get_text() for t in _texts(figures[name]) if CODE_IDS.search(t.get_text())]
    assert not ids, f"{name}: code ids shown: {ids}"


@pytest.mark.parametrize(
    ("comparison", "label"),
    [
        ("vsc-a0.5-m32 − vae-m32", "VSC α=0.5 − VAE (m=32)"),
        ("sdm-dct-k64-m64 − sdm-dct-k64-m32", "SDM-VAE DCT k=64: m=64 − m=32"),
        ("vae-m32 − sdm-I-m64", "VAE, m=32 − SDM-VAE D=I, m=64"),
        ("sdm-I-m64 − best other m=64", "SDM-VAE D=I, m=64 − best other m=64"),
    ],
)
def test_a_comparison_says_what_both_sides_share_once(comparison: str, label: str) -> None:
    assert plotting._short_comparison(comparison) == label


def test_a_single_validation_is_drawn_with_a_marker(figures) -> None:
    for ax in figures["history_panels"].axes:
        for line in ax.get_lines():
            if len(line.get_xdata()) == 1:
                assert line.get_marker() not in (None, "None", "", " ")


def test_quality_scatter_has_intervals_and_the_papers_points(figures) -> None:
    ax = figures["quality"].axes[0]
    bars = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(bars) == len(VARIANTS)  # one point with intervals per variant
    hollow = [ln for ln in ax.get_lines() if ln.get_markerfacecolor() == "none"]
    assert len(hollow) == len(VARIANTS)  # the paper's 14 points


def test_compared_spectrograms_share_one_colour_scale_and_bar(figures) -> None:
    fig = figures["spectrograms"]
    panels = [ax for ax in fig.axes if ax.get_title()]  # colour bars have no title
    meshes = [c for ax in panels for c in ax.collections if c.get_cmap().name == "magma"]
    assert len(meshes) == 2 and len({m.get_clim() for m in meshes}) == 1
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "power (dB)" in labels  # the colour bar


def test_png_bytes_are_stable() -> None:
    fig = plotting.sparsity_penalties()
    assert plotting.to_png(fig) == plotting.to_png(fig)

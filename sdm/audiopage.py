"""The audio page: for one utterance per test speaker, each model's spectrogram beside its player.

Each resynthesis is played at the original's loudness (RMS), so that ears compare quality, not
level; the level each model produced before that matching is reported beside it. A model's level
is its decoder's estimate of the power, and models trained on little speech misjudge it for
unseen voices by a few dB either way (PESQ aligns levels itself and STOI is scale-invariant, so
the metrics are unaffected).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sdm.display import variant_label

AUDIO_VARIANTS = ("vae-m64", "vsc-a0.5-m64", "sdm-I-m64", "sdm-dct-k64-m64")
"""The models on the page: the VAE, VSC α=0.5, SDM-VAE D=I and DCT k=64, all at m=64."""
ERROR_OF = "sdm-dct-k64-m64"
FS = 16000


def one_per_speaker(
    names: Sequence[str], speakers: Sequence[str], lengths: Sequence[int], max_seconds: float = 4.0
) -> list[int]:
    """Index of one utterance per speaker, in speaker order: the longest under max_seconds (a full
    sentence, small enough to embed), else the shortest; ties broken by name."""
    chosen = []
    for speaker in sorted(set(speakers)):
        mine = [i for i, s in enumerate(speakers) if s == speaker]
        fits = [i for i in mine if lengths[i] / FS <= max_seconds]
        if fits:
            chosen.append(max(fits, key=lambda i: (lengths[i], names[i])))
        else:
            chosen.append(min(mine, key=lambda i: (lengths[i], names[i])))
    return chosen


def level_db(x: np.ndarray, reference: np.ndarray) -> float:
    """RMS level of x relative to reference, in dB."""
    rms = np.sqrt(np.mean(np.square(x, dtype=np.float64)))
    ref = np.sqrt(np.mean(np.square(reference, dtype=np.float64)))
    return float(20 * np.log10(max(rms, 1e-12) / max(ref, 1e-12)))


def match_level(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """x scaled to the reference's RMS, then scaled down if it would clip."""
    y = x * 10 ** (-level_db(x, reference) / 20)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    return (y / peak if peak > 1.0 else y).astype(np.float32)


def flac_player(x: np.ndarray) -> str:
    """An <audio> element with the signal embedded as 16-bit FLAC."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(x, dtype=np.float32), -1, 1), FS, format="FLAC")
    b64 = base64.b64encode(buf.getvalue()).decode()
    return f'<audio controls preload="none" src="data:audio/flac;base64,{b64}"></audio>'


def _png(fig: Any, colours: int = 128) -> str:
    """A data URI of the figure as a palette PNG: a third of the size of full colour, which keeps
    a page of 30 spectrograms and players under 5 MB."""
    from PIL import Image

    from sdm.plotting import to_png

    image = Image.open(io.BytesIO(to_png(fig))).convert("RGB")
    buf = io.BytesIO()
    image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(
        buf, format="PNG", optimize=True
    )
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def card_image(image_db: np.ndarray, vmin: float, vmax: float, error: bool = False) -> Any:
    """One small spectrogram (frames, bins) in dB with its colour bar, sized for half the column."""
    from matplotlib.figure import Figure

    from sdm.plotting import DPI, STYLE, _style

    with _style():
        fig = Figure(figsize=(3.3, 1.9), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        t = np.arange(image_db.shape[0]) * 256 / FS
        f = np.linspace(0, FS / 2000, image_db.shape[1])
        mesh = ax.pcolormesh(
            t,
            f,
            np.clip(image_db, vmin, vmax).T,
            shading="auto",
            cmap="RdBu_r" if error else "magma",
            vmin=vmin,
            vmax=vmax,
            rasterized=True,
        )
        fig.colorbar(mesh, ax=ax, label="dB" if error else "power (dB)", pad=0.01)
        ax.set(xlabel="time (s)", ylabel="kHz")
        ax.tick_params(labelsize=STYLE["xtick.labelsize"])
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    return fig


def utterance_grid(
    original: np.ndarray,
    spec: np.ndarray,
    decoded: Mapping[str, Any],
    span_db: float = 80.0,
    error_span_db: float = 20.0,
) -> tuple[str, dict[str, float]]:
    """HTML of one utterance: a card per signal (title, spectrogram, player) for the original and
    each model, then the error spectrogram of ERROR_OF; and each model's level before matching."""
    from sdm.plotting import power_db

    original_db = power_db(np.abs(spec) ** 2)
    vmax = float(original_db.max())
    vmin = vmax - span_db
    cards = [_card("original", card_image(original_db, vmin, vmax), flac_player(original))]
    levels = {}
    for name, d in decoded.items():
        levels[name] = level_db(d.estimate, original)
        note = f"level {levels[name]:+.1f} dB before matching"
        player = flac_player(match_level(d.estimate, original))
        image = card_image(power_db(d.variance), vmin, vmax)
        cards.append(_card(variant_label(name), image, player, note))
    if ERROR_OF in decoded:
        diff = power_db(decoded[ERROR_OF].variance) - original_db
        lim = error_span_db
        image = card_image(diff, -lim, lim, error=True)
        cards.append(
            _card(
                f"error: {variant_label(ERROR_OF)} − original",
                image,
                "",
                "red: the model's power is too high; blue: too low",
            )
        )
    return '<div class="sdm-audio-grid">' + "".join(cards) + "</div>", levels


def _card(title: str, fig: Any, player: str, note: str = "") -> str:
    alt = f"Spectrogram: {title}"
    note_html = f'<div class="sdm-card-note">{html.escape(note)}</div>' if note else ""
    return (
        '<div class="sdm-card">'
        f'<div class="sdm-card-title">{html.escape(title)}</div>'
        f'<img src="{_png(fig)}" alt="{html.escape(alt)}"/>{player}{note_html}</div>'
    )


def figure_directive(key: str, speaker: str, name: str, seconds: float) -> str:
    """The MyST figure that places one glued utterance grid with its caption."""
    return "\n".join(
        [
            f"```{{glue:figure}} {key}",
            f":name: fig-{key}",
            "",
            f"Speaker `{speaker}`, utterance `{name}` ({seconds:.1f} s): power spectrograms on one "
            "colour scale (the original's maximum and 80 dB below) beside each player, and the "
            "error of SDM-VAE DCT k=64 (its dB minus the original's). Resyntheses use the "
            "original phase and play at the original's loudness.",
            "```",
            "",
        ]
    )

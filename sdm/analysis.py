"""What the sparsity and spectrogram pages look at: codes, decodings and audio of trained runs.

Everything reads committed run folders (config, history, best weights, metrics) and the test split;
nothing trains here.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sdm import results
from sdm.audio import power
from sdm.config import TrainConfig
from sdm.data import load_split
from sdm.evaluate import resynthesise
from sdm.metrics import hoyer
from sdm.models import LatentStack
from sdm.results import RESULTS_ROOT
from sdm.runs import RunSpec, load_runs, make_specs
from sdm.variants import VARIANTS, get_variant

if TYPE_CHECKING:
    import pandas as pd


def seed_specs(
    seed: int = 0,
    data: str = "shipped",
    preprocessing: str = "clean",
    train: TrainConfig = TrainConfig(),
    variants: Iterable[str] = VARIANTS,
) -> list[RunSpec]:
    """RunSpecs of variants (default: Table 1's) at one seed, in the order given."""
    return make_specs([get_variant(v) for v in variants], [seed], data, preprocessing, train)


def trained_models(
    seed: int = 0, data: str = "shipped", preprocessing: str = "clean", profile: str = "default"
) -> tuple[list[RunSpec], Path, dict[str, LatentStack]]:
    """The 14 variants at one seed under a book profile, trained if missing: specs, results root
    and the models (best weights), as the sparsity and spectrogram pages need them."""
    from sdm.book import get_profile
    from sdm.stacks import ensure_trained

    settings = get_profile(profile)
    specs = seed_specs(seed, data, preprocessing, settings.train)
    ensure_trained(specs, settings.results, progress=False)
    return specs, settings.results, load_models(specs, settings.results)


def load_models(specs: Iterable[RunSpec], root: Path = RESULTS_ROOT) -> dict[str, LatentStack]:
    """Variant name -> trained model (best weights), for runs whose weights are present."""
    return {
        s.model.name: load_runs([s.directory(root)])
        for s in specs
        if results.has_weights(s.directory(root))
    }


def read_history(spec: RunSpec, root: Path = RESULTS_ROOT) -> pd.DataFrame:
    """A run's history.csv as a DataFrame (one row per validation)."""
    return results.read_history(spec.directory(root))


@dataclass(frozen=True)
class Decoding:
    """One model's view of one utterance: code (frames, d), decoded variance, resynthesis."""

    code: np.ndarray
    variance: np.ndarray
    estimate: np.ndarray


def decode_utterance(model: LatentStack, spec: np.ndarray, length: int) -> Decoding:
    """Posterior-mean decoding of one utterance and its resynthesis with the original phase."""
    rec = model.reconstruct(torch.from_numpy(power(spec)))
    variance = rec.variance[0].numpy()
    return Decoding(rec.code[0].numpy(), variance, resynthesise(variance, spec, length))


def pick_utterance(
    data: str = "shipped", preprocessing: str = "clean", max_seconds: float = 4.0
) -> int:
    """Index of the test utterance shown on the pages: the longest one under max_seconds (a full
    sentence, small enough to embed as audio), ties broken by name."""
    ts = load_split(data, preprocessing)
    lengths = [len(s) / 16000 for s in ts.signals]
    fits = [i for i, d in enumerate(lengths) if d <= max_seconds] or list(range(len(ts)))
    return max(fits, key=lambda i: (lengths[i], ts.names[i]))


def frame_hoyer(
    models: dict[str, LatentStack], data: str = "shipped", preprocessing: str = "clean"
) -> pd.DataFrame:
    """Per-frame Hoyer score of the posterior-mean code over the whole test split: tidy DataFrame
    with columns variant, m, hoyer (one row per frame and model)."""
    import pandas as pd

    frames = torch.from_numpy(np.array(load_split(data, preprocessing).power))
    parts = []
    for name, model in models.items():
        scores = hoyer(model.reconstruct(frames).code[0]).numpy()
        parts.append(pd.DataFrame({"variant": name, "m": get_variant(name).m, "hoyer": scores}))
    return pd.concat(parts, ignore_index=True)


def mean_activation(
    models: dict[str, LatentStack], data: str = "shipped", preprocessing: str = "clean"
) -> dict[str, np.ndarray]:
    """Mean |code| per atom (or latent dimension) over the test split, per model."""
    frames = torch.from_numpy(np.array(load_split(data, preprocessing).power))
    return {
        name: model.reconstruct(frames).code[0].abs().mean(dim=0).numpy()
        for name, model in models.items()
    }


def audio_player(x: np.ndarray, label: str, fs: int = 16000) -> str:
    """An HTML audio player with the signal embedded as FLAC (about half the size of WAV)."""
    import soundfile as sf

    buf = io.BytesIO()
    peak = float(np.max(np.abs(x))) or 1.0
    sf.write(buf, np.asarray(x / max(peak, 1.0), dtype=np.float32), fs, format="FLAC")
    b64 = base64.b64encode(buf.getvalue()).decode()
    return (
        f'<figure style="margin:0.3em 0"><figcaption>{label}</figcaption>'
        f'<audio controls preload="none" src="data:audio/flac;base64,{b64}"></audio></figure>'
    )


def gamma_update_by_optimiser(mu: float, logvar: float) -> tuple[float, float]:
    """(γ found by a generic bounded optimiser on the KL of eq. 8, γ from the closed form eq. 9).

    The optimiser knows nothing of the closed form: it minimises sdm.losses.kl_gaussian_prior over
    log γ in [-30, 30], to 1e-10 in log γ.
    """
    from scipy.optimize import minimize_scalar

    from sdm import losses

    mu_t = torch.tensor([mu], dtype=torch.float64)
    lv_t = torch.tensor([logvar], dtype=torch.float64)

    def kl(log_gamma: float) -> float:
        gamma = torch.tensor([np.exp(log_gamma)], dtype=torch.float64)
        return float(losses.kl_gaussian_prior(mu_t, lv_t, gamma))

    best = minimize_scalar(kl, bounds=(-30, 30), method="bounded", options={"xatol": 1e-10})
    return float(np.exp(best.x)), float(losses.gamma_update(mu_t, lv_t))

"""sdm: VAE, VSC and SDM-VAE for speech power spectrograms (Sadeghi & Magron, Interspeech 2022).

The public API in one place. Heavy optional dependencies (pesq, pystoi, soundfile) are imported
where they are used, so `import sdm` works without them (e.g. on a GPU machine that only trains).
"""

from sdm.config import ModelConfig, TrainConfig
from sdm.dictionary import build_dictionary, dct, eye
from sdm.models import LatentStack, Output, Reconstruction, build_model, build_stack
from sdm.train import fit
from sdm.variants import VARIANTS, get_variant

__all__ = [
    "VARIANTS",
    "LatentStack",
    "ModelConfig",
    "Output",
    "Reconstruction",
    "TrainConfig",
    "build_dictionary",
    "build_model",
    "build_stack",
    "dct",
    "fit",
    "eye",
    "get_variant",
]

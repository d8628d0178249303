"""Run identity: what makes two runs the same run, and when a finished one may be reused.

A run is one (data, preprocessing, variant, seed, training settings). Reuse compares its identity
(data name and manifest checksum, preprocessing, variant, seed, and the training settings that
change the result), not the device, the stack it trained in, the thread count or the folder: a
run trained in a GPU stack is reused by a CPU notebook (book/conventions.md, "Run identity").
Where its files live is sdm.results' business. A checkpoint records the corpus it trains on
(`data_identity`) and resumes only on it (`checkpoint_data`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sdm import results
from sdm.config import ModelConfig, TrainConfig
from sdm.data import PREPROCESSINGS, Corpus
from sdm.models import LatentStack, build_stack, check_seed

log = logging.getLogger(__name__)


class RunConflictError(ValueError):
    """A finished run exists at the path with a different identity."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that changes a run's result."""

    data: str
    preprocessing: str
    model: ModelConfig
    seed: int
    train: TrainConfig

    def identity(self, data_sha256: str) -> dict[str, Any]:
        """The run's identity as config.json stores it (frozen keys)."""
        return {
            "data": self.data
            if self.data in ("shipped", "medium")
            else results.data_slug(self.data),
            "data_sha256": data_sha256,
            "preprocessing": self.preprocessing,
            "variant": self.model.name,
            "model": self.model.to_dict(),
            "seed": self.seed,
            "train": self.train.result_settings(),
        }

    def directory(self, root: Path = results.RESULTS_ROOT) -> Path:
        return results.run_dir(root, self.data, self.preprocessing, self.model.name, self.seed)

    @property
    def label(self) -> str:
        return f"{self.model.name}/seed-{self.seed}"


def make_specs(
    variants: Iterable[ModelConfig],
    seeds: Iterable[int],
    data: str = "shipped",
    preprocessing: str = "clean",
    train: TrainConfig = TrainConfig(),
) -> list[RunSpec]:
    """One RunSpec per (variant, seed), variants outermost."""
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"preprocessing: expected one of {PREPROCESSINGS}, got {preprocessing!r}")
    seeds = [check_seed(s) for s in seeds]
    return [RunSpec(data, preprocessing, v, s, train) for v in variants for s in seeds]


def identity_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Names of the identity settings that differ, flattened (e.g. 'train.patience')."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
        return out

    a, b = flat(saved), flat(wanted)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def check_reusable(run_dir: Path, identity: dict[str, Any]) -> bool:
    """True when a finished run with this identity is there; raise when a different one is.

    A finished run is reusable only while it can still be used: its weights are there, or its
    metrics are (committed seeds without weights are read, never retrained). One with neither is
    trained again, and says so."""
    if not results.is_trained(run_dir):
        return False
    saved = results.read_config(run_dir)["identity"]
    diff = identity_differences(saved, identity)
    if diff:
        details = ", ".join(
            f"{k}: saved {_get(saved, k)!r} vs requested {_get(identity, k)!r}" for k in diff
        )
        raise RunConflictError(
            f"{run_dir} holds a finished run with other settings ({details}); "
            "pass --overwrite to replace it or --out to write elsewhere"
        )
    if not results.has_weights(run_dir) and not results.is_evaluated(run_dir):
        log.warning(
            "%s: config.json says trained, but %s and %s are missing: training it again",
            run_dir,
            results.WEIGHTS_FILE,
            results.METRICS_FILE,
        )
        return False
    return True


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def read_weights(run: Path) -> dict[str, Any]:
    """A run's model.pt: {"model": ModelConfig dict, "seed", "state_dict"}; one line naming the
    file when it is missing or not what `save_run` writes."""
    from sdm.guards import load_torch

    path = Path(run) / results.WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained weights here (train the run first)")
    blob = load_torch(path, "run weights file")
    if not isinstance(blob, dict) or not {"model", "seed", "state_dict"} <= set(blob):
        raise ValueError(
            f"{path}: not a run weights file (expected keys model, seed, state_dict); "
            "remove the run folder or train it again with --overwrite"
        )
    return blob


def load_runs(run_dirs: Sequence[Path], device: str | torch.device = "cpu") -> LatentStack:
    """Trained runs of one shape as one stack (members in the given order), rebuilt from their
    folders alone (config + best weights); one run gives a stack of one."""
    blobs = [read_weights(d) for d in run_dirs]
    if not blobs:
        raise ValueError("load_runs: expected at least one run folder, got none")
    configs = [ModelConfig.from_dict(b["model"]) for b in blobs]
    shapes = {c.shape_key for c in configs}
    if len(shapes) > 1:
        raise ValueError(f"load_runs: runs of different shapes cannot share a stack: {run_dirs}")
    model = build_stack(configs, [b["seed"] for b in blobs])
    try:
        keys = blobs[0]["state_dict"]
        model.load_state_dict({k: torch.cat([b["state_dict"][k] for b in blobs]) for k in keys})
    except (RuntimeError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{results.WEIGHTS_FILE} in {', '.join(map(str, run_dirs))}: weights do not fit the "
            f"model its config names ({first}); remove the run or train it again with --overwrite"
        ) from None
    return model.to(device).eval()


# -- the data a checkpoint trains on ------------------------------------------------------------


class DataMismatchError(ValueError):
    """A checkpoint was trained on another corpus (or another version of this one)."""


def data_identity(corpus: Corpus) -> dict[str, str]:
    """What a checkpoint records of the corpus it trains on: its name, its checksum (compared on
    resume), and its folder when the name is not enough to find it."""
    identity = {"name": corpus.name, "sha256": corpus.checksum()}
    if corpus.name not in ("shipped", "medium"):
        identity["root"] = str(Path(corpus.root).resolve())
    return identity


def describe_data(data: Mapping[str, str]) -> str:
    """'medium (sha256 1234abcd5678…)', with the folder for a corpus named by a path."""
    where = f", {data['root']}" if data.get("root") and data["root"] != data["name"] else ""
    return f"{data['name']} (sha256 {data['sha256'][:12]}…{where})"


def checkpoint_data(
    saved: Mapping[str, str] | None, wanted: Mapping[str, str] | None, source: Path | str
) -> dict[str, str] | None:
    """The data a resumed checkpoint goes on recording. A checkpoint resumes only on the corpus it
    was trained on (DataMismatchError otherwise). One written before checkpoints recorded their
    data (the medium campaign's) is taken to hold the corpus of the results folder it lives
    under, which is the one asked for, and records it from its next save."""
    if saved is None:
        if wanted is not None:
            log.warning(
                "%s: written before checkpoints recorded their data; taking it as %s (sha256 "
                "%s…), the corpus of the folder it lives under, and recording that",
                source,
                wanted["name"],
                wanted["sha256"][:12],
            )
        return None if wanted is None else dict(wanted)
    if wanted is not None and saved["sha256"] != wanted["sha256"]:
        raise DataMismatchError(
            f"{source}: trained on {describe_data(saved)}, but this command's data is "
            f"{describe_data(wanted)}; resume on that corpus, or remove the checkpoint (or "
            "--overwrite) to train on this one from scratch"
        )
    return dict(saved) if wanted is None else dict(wanted)

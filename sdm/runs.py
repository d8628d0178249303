"""Where runs live and when a finished run may be reused.

Layout: <root>/<data>/<preprocessing>/<variant>/seed-<s>/ holding config.json, history.csv,
model.pt (best weights) and, once evaluated, metrics.csv. Resume checkpoints live in an ignored
ckpt/ folder. A run is *trained* when config.json says so and history.csv exists; *evaluated* when
metrics.csv exists. Reuse compares the run's identity only (../shared/DECISIONS.md): not device,
stack, threads or folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sdm.config import ModelConfig, TrainConfig
from sdm.models import LatentStack, build_model, build_stack
from sdm.state import checkpoint_root

RESULTS_ROOT = Path(__file__).resolve().parent.parent / "results"
QUICK_ROOT = RESULTS_ROOT.with_name("results-quick")
CONFIG_FILE, HISTORY_FILE, WEIGHTS_FILE, METRICS_FILE = (
    "config.json",
    "history.csv",
    "model.pt",
    "metrics.csv",
)


class RunConflictError(ValueError):
    """A finished run exists at the path with a different identity."""


def data_slug(data: str) -> str:
    """Folder name for a data string: shipped, medium, tcd-timit, or folder-<name> for a PATH."""
    if data in ("shipped", "medium"):
        return data
    if data.startswith("tcd-timit:"):
        return "tcd-timit"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data).expanduser().resolve().name) or "root"
    return f"folder-{name}"


@dataclass(frozen=True)
class RunSpec:
    """Everything that changes a run's result."""

    data: str
    preprocessing: str
    model: ModelConfig
    seed: int
    train: TrainConfig

    def identity(self, data_sha256: str) -> dict[str, Any]:
        return {
            "data": self.data if self.data in ("shipped", "medium") else data_slug(self.data),
            "data_sha256": data_sha256,
            "preprocessing": self.preprocessing,
            "variant": self.model.name,
            "model": self.model.to_dict(),
            "seed": self.seed,
            "train": self.train.identity(),
        }

    def directory(self, root: Path = RESULTS_ROOT) -> Path:
        return (
            Path(root)
            / data_slug(self.data)
            / self.preprocessing
            / self.model.name
            / f"seed-{self.seed}"
        )


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_config(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON ({err}); delete the run or use --overwrite"
        ) from err


def is_trained(run_dir: Path) -> bool:
    cfg = read_config(run_dir)
    return bool(cfg and cfg.get("status") == "trained" and (Path(run_dir) / HISTORY_FILE).exists())


def is_evaluated(run_dir: Path) -> bool:
    return (Path(run_dir) / METRICS_FILE).exists()


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
    """True when a finished run with this identity is there; raise when a different one is."""
    if not is_trained(run_dir):
        return False
    saved = read_config(run_dir)["identity"]
    diff = identity_differences(saved, identity)
    if diff:
        details = ", ".join(
            f"{k}: saved {_get(saved, k)!r} vs requested {_get(identity, k)!r}" for k in diff
        )
        raise RunConflictError(
            f"{run_dir} holds a finished run with other settings ({details}); "
            "pass --overwrite to replace it or --out to write elsewhere"
        )
    return True


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def save_run(
    run_dir: Path,
    identity: dict[str, Any],
    model: ModelConfig,
    seed: int,
    best_state: dict[str, torch.Tensor],
    history: list[dict[str, float]],
    result: dict[str, Any],
    device: str,
    stack: list[str],
) -> None:
    """Write weights, history and config.json (last, so its presence means the rest is there)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{WEIGHTS_FILE}.tmp{os.getpid()}"
    torch.save({"model": model.to_dict(), "seed": seed, "state_dict": best_state}, tmp)
    os.replace(tmp, run_dir / WEIGHTS_FILE)
    atomic_write_text(run_dir / HISTORY_FILE, _csv(history))
    config = {
        "status": "trained",
        "identity": identity,
        "result": result,
        "environment": {
            "device": device,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "stack": stack,
        },
    }
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config, indent=2) + "\n")


def _csv(rows: list[dict[str, float]]) -> str:
    if not rows:
        return ""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    lines: list[str] = []

    class _W:
        def write(self, s: str) -> None:
            lines.append(s)

    w = csv.DictWriter(_W(), fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return "".join(lines)


def load_run(run_dir: Path, device: str | torch.device = "cpu") -> LatentStack:
    """Rebuild a trained model from its run folder alone (config + best weights)."""
    path = Path(run_dir) / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained weights here (train the run first)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(ModelConfig.from_dict(blob["model"]), blob["seed"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()


def load_runs(run_dirs: list[Path], device: str | torch.device = "cpu") -> LatentStack:
    """Several trained runs of one shape as one stack (members in the given order),
    for evaluation."""
    blobs = []
    for d in run_dirs:
        path = Path(d) / WEIGHTS_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no trained weights here (train the run first)")
        blobs.append(torch.load(path, map_location="cpu", weights_only=True))
    configs = [ModelConfig.from_dict(b["model"]) for b in blobs]
    model = build_stack(configs, [b["seed"] for b in blobs])
    state = {k: torch.cat([b["state_dict"][k] for b in blobs]) for k in blobs[0]["state_dict"]}
    model.load_state_dict(state)
    return model.to(device).eval()


def checkpoint_dir(root: Path, data: str, preprocessing: str) -> Path:
    """The folder of a corpus's resume checkpoints: <root>/<data>/<prep>/ckpt (ignored by git),
    or under $SDM_STATE_DIR when that is set (sdm.state)."""
    base = checkpoint_root(root)
    if base == Path(root):
        return base / data_slug(data) / preprocessing / "ckpt"
    return base / data_slug(data) / preprocessing


def stack_checkpoint(root: Path, data: str, preprocessing: str, specs: list[RunSpec]) -> Path:
    """Resume file of a stack, named by its members and settings."""
    key = json.dumps([(s.model.name, s.seed, s.train.identity()) for s in specs], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return checkpoint_dir(root, data, preprocessing) / f"stack-{digest}.pt"

"""The results tree: the one module that knows where every file lives and how it is written.

    <root>/<data>/<preprocessing>/
        <variant>/seed-<s>/   config.json, history.csv, model.pt (best weights), metrics.csv
                              (+ dictionary.csv for learned-dictionary runs)
        oracle/metrics.csv
        table1.csv, table1.md
        claims.csv, claims_comparisons.csv, claims_noise.csv, claims.md
        ckpt/stack-<digest>.pt or stack-<digest>.shard<i>of<n>.pt   (resume checkpoints)

Checkpoints move under $SDM_STATE_DIR when it is set (sdm.state), in a folder named after the
results root. A run is *trained* when config.json says so and history.csv is there, *evaluated*
when metrics.csv is there. Every file is written through `atomic_write`. The layout, file names,
config.json keys and CSV columns are frozen (book/conventions.md): committed results and running
campaigns read them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdm.metrics import WAVEFORM_METRICS
from sdm.state import state_dir

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from sdm.config import ModelConfig

RESULTS_ROOT = Path(__file__).resolve().parent.parent / "results"
QUICK_ROOT = RESULTS_ROOT.with_name("results-quick")
CONFIG_FILE, HISTORY_FILE, WEIGHTS_FILE, METRICS_FILE = (
    "config.json",
    "history.csv",
    "model.pt",
    "metrics.csv",
)
DICTIONARY_FILE = "dictionary.csv"
DICTIONARY_COLUMNS = ("coherence_sum", "max_abs_coherence")
"""A learned dictionary's record at each validation: dictionary.csv (epoch and these), written
beside history.csv for learned-dictionary runs only, because history.csv's columns are frozen."""
ORACLE_DIR = "oracle"
METRIC_COLUMNS = (*WAVEFORM_METRICS, "hoyer", "is_div")
COLUMNS = ("utterance", "speaker", *METRIC_COLUMNS, "failures")
"""Columns of every per-utterance metrics table, in this order; `failures` is "" when nothing
failed."""

_SEED_DIR = re.compile(r"^seed-(\d+)$")


# -- writing ------------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through a temporary file beside it, then rename: a reader never sees half a
    file, and a failed write removes its temporary file and leaves the old file as it was.

    `write(tmp)` writes the whole content to `tmp` (an existing empty file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # .<name>.<random>.tmp<suffix>: hidden, ignored by git, and of the target's type for writers
    # that look at the suffix
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # what a plain open() makes, not mkstemp's private 0600
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; restored at once
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def temporary_files(folder: Path) -> list[Path]:
    """Temporary files `atomic_write` leaves when its process is killed mid-write."""
    return sorted(Path(folder).glob(".*.tmp*")) if Path(folder).is_dir() else []


# -- where things are ---------------------------------------------------------------------------


def data_slug(data: str) -> str:
    """Folder name for a data string: shipped, medium, tcd-timit, or folder-<name> for a PATH."""
    if data in ("shipped", "medium"):
        return data
    if data.startswith("tcd-timit:"):
        return "tcd-timit"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data).expanduser().resolve().name) or "root"
    return f"folder-{name}"


def corpus_dir(root: Path, data: str, preprocessing: str) -> Path:
    """<root>/<data>/<preprocessing>: a corpus's runs and reports."""
    return Path(root) / data_slug(data) / preprocessing


def run_dir(root: Path, data: str, preprocessing: str, variant: str, seed: int) -> Path:
    return corpus_dir(root, data, preprocessing) / variant / f"seed-{seed}"


def oracle_metrics_path(root: Path, data: str, preprocessing: str) -> Path:
    return corpus_dir(root, data, preprocessing) / ORACLE_DIR / METRICS_FILE


def table1_paths(root: Path, data: str, preprocessing: str) -> tuple[Path, Path]:
    """Table 1's CSV and Markdown."""
    base = corpus_dir(root, data, preprocessing)
    return base / "table1.csv", base / "table1.md"


def claims_paths(root: Path, data: str, preprocessing: str) -> dict[str, Path]:
    """The claim files, beside Table 1."""
    base = corpus_dir(root, data, preprocessing)
    return {
        "summary": base / "claims.csv",
        "comparisons": base / "claims_comparisons.csv",
        "noise": base / "claims_noise.csv",
        "markdown": base / "claims.md",
    }


def check_output_root(root: Path) -> Path:
    """Fail now, with one line, when results cannot be written under `root` (a file, or a folder
    this user cannot write), rather than after hours of training."""
    root = Path(root)
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"--out {root}: {existing} is a file; expected a folder for results")
    try:  # the only sure test of writing is to write (where the tree would start; removed)
        fd, probe = tempfile.mkstemp(
            dir=existing or Path.cwd(), prefix=".write-test.", suffix=".tmp"
        )
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(
            f"--out {root}: cannot write there ({reason}); choose another --out"
        ) from None
    return root


# -- resume checkpoints -------------------------------------------------------------------------


def checkpoint_root(results_root: Path) -> Path:
    """The folder under which a results tree's checkpoints live: the tree itself by default, or
    $SDM_STATE_DIR/ckpt/<root name>-<hash of its path> (two trees never share a checkpoint)."""
    state = state_dir()
    if state is None:
        return Path(results_root)
    resolved = Path(results_root).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    return state / "ckpt" / f"{resolved.name}-{digest}"


def checkpoint_dir(root: Path, data: str, preprocessing: str) -> Path:
    """A corpus's resume checkpoints: <root>/<data>/<prep>/ckpt (ignored by git), or
    <checkpoint_root>/<data>/<prep> under $SDM_STATE_DIR."""
    base = checkpoint_root(root)
    if base == Path(root):
        return corpus_dir(root, data, preprocessing) / "ckpt"
    return base / data_slug(data) / preprocessing


def stack_checkpoint(root: Path, data: str, preprocessing: str, specs: Sequence[Any]) -> Path:
    """Resume file of a stack of RunSpecs, named by a digest of its members (in order) and of
    their training settings."""
    key = json.dumps(
        [(s.model.name, s.seed, s.train.result_settings()) for s in specs], sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return checkpoint_dir(root, data, preprocessing) / f"stack-{digest}.pt"


def shard_checkpoint(checkpoint: Path, index: int, count: int) -> Path:
    """The resume file of shard `index` of `count`: beside the stack's own, named by both."""
    return checkpoint.with_name(f"{checkpoint.stem}.shard{index}of{count}{checkpoint.suffix}")


def shard_files(checkpoint: Path) -> list[Path]:
    return sorted(checkpoint.parent.glob(f"{checkpoint.stem}.shard*of*{checkpoint.suffix}"))


def shard_index(path: Path) -> tuple[int, int]:
    """(index, count) of a checkpoint file: (0, 1) for an unsharded one."""
    parts = Path(path).name.split(".")
    if len(parts) != 3:
        return 0, 1
    index, count = parts[1][len("shard") :].split("of")
    return int(index), int(count)


def existing_layout(checkpoint: Path) -> int | None:
    """How many processes the checkpoint on disk was written by (1: unsharded), or None.

    A stack resumes with the layout it was started with, whatever `workers` says now."""
    if checkpoint.exists():
        return 1
    counts = {shard_index(p)[1] for p in shard_files(checkpoint)}
    return max(counts) if counts else None


def checkpoint_files(checkpoint: Path) -> list[Path]:
    """The stack's file and its shard files, those that exist."""
    return [p for p in (checkpoint, *shard_files(checkpoint)) if p.exists()]


def stack_lock(checkpoint: Path) -> Path:
    """The lock file of a stack: held while anything trains it or cleans its files."""
    return checkpoint.with_suffix(".lock")


def run_lock(root: Path, data: str, preprocessing: str, variant: str, seed: int) -> Path:
    """The lock file of a run folder: held while it is trained (beside the checkpoints, so the
    committed results tree holds no lock files)."""
    return checkpoint_dir(root, data, preprocessing) / f"run-{variant}-seed-{seed}.lock"


def remove_checkpoints(checkpoint: Path) -> None:
    """Remove the stack's resume file(s), sharded or not."""
    for p in (checkpoint, *shard_files(checkpoint)):
        p.unlink(missing_ok=True)


def checkpoint_stacks(folder: Path) -> dict[Path, list[Path]]:
    """The stacks in a checkpoint folder: the stack's own file name -> its file(s) on disk, shards
    in index order."""
    stacks: dict[Path, list[Path]] = {}
    for path in sorted(Path(folder).glob("stack-*.pt"), key=lambda p: (p.name.split(".")[0], p)):
        stem = path.name.split(".", 1)[0]  # stack-<digest>[.shardIofN].pt
        stacks.setdefault(path.parent / f"{stem}.pt", []).append(path)
    return {k: sorted(v, key=shard_index) for k, v in stacks.items()}


# -- run folders --------------------------------------------------------------------------------


def read_config(run: Path) -> dict[str, Any] | None:
    """A run's config.json, or None when there is none."""
    path = Path(run) / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: not valid JSON ({err}); delete the run or use --overwrite"
        ) from err


def is_trained(run: Path) -> bool:
    cfg = read_config(run)
    return bool(cfg and cfg.get("status") == "trained" and (Path(run) / HISTORY_FILE).exists())


def is_evaluated(run: Path) -> bool:
    return (Path(run) / METRICS_FILE).exists()


def has_weights(run: Path) -> bool:
    return (Path(run) / WEIGHTS_FILE).exists()


def is_usable(run: Path) -> bool:
    """Trained, and its weights or its metrics are there (seeds committed without weights): a run
    a report can use without training it again."""
    return is_trained(run) and (has_weights(run) or is_evaluated(run))


def save_run(
    run: Path,
    identity: dict[str, Any],
    model: ModelConfig,
    seed: int,
    best_state: dict[str, torch.Tensor],
    history: list[dict[str, float]],
    result: dict[str, Any],
    device: str,
    stack: list[str],
) -> None:
    """Write weights, history (and a learned dictionary's dictionary.csv) and config.json (last,
    so its presence means the rest is there).

    Metrics of an earlier training of this folder are removed once the new run is complete."""
    import torch

    run = Path(run)
    atomic_write(
        run / WEIGHTS_FILE,
        lambda p: torch.save({"model": model.to_dict(), "seed": seed, "state_dict": best_state}, p),
    )
    history_rows, dictionary_rows = split_history(history)
    write_text(run / HISTORY_FILE, _csv(history_rows))
    if any(len(row) > 1 for row in dictionary_rows):
        write_text(run / DICTIONARY_FILE, _csv(dictionary_rows))
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
    write_text(run / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    (run / METRICS_FILE).unlink(missing_ok=True)


def split_history(
    history: list[dict[str, float]],
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """A trainer's history rows as (history.csv rows, dictionary.csv rows): the dictionary's columns
    (DICTIONARY_COLUMNS) go to the second, with the epoch; the first keeps every other column."""
    kept = [{k: v for k, v in row.items() if k not in DICTIONARY_COLUMNS} for row in history]
    dictionary = [
        {"epoch": row["epoch"]} | {k: row[k] for k in DICTIONARY_COLUMNS if k in row}
        for row in history
    ]
    return kept, dictionary


def read_dictionary_history(run: Path) -> pd.DataFrame | None:
    """A learned-dictionary run's dictionary.csv (epoch, DICTIONARY_COLUMNS), None for others."""
    import pandas as pd

    path = Path(run) / DICTIONARY_FILE
    return pd.read_csv(path) if path.is_file() else None


def _csv(rows: list[dict[str, float]]) -> str:
    if not rows:
        return ""
    out = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def read_history(run: Path) -> pd.DataFrame:
    """A run's history.csv (one row per validation)."""
    import pandas as pd

    return pd.read_csv(Path(run) / HISTORY_FILE)


# -- metrics tables -----------------------------------------------------------------------------


def write_metrics(table: pd.DataFrame, path: Path) -> None:
    """Write a per-utterance table (COLUMNS) as CSV."""
    atomic_write(Path(path), lambda p: table.to_csv(p, index=False))


def read_metrics(path: Path) -> pd.DataFrame:
    """Read a table written by write_metrics (empty `failures` read back as "")."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics CSV; expected one written by write_metrics")
    # only metric cells may be NaN; text cells stay text ("" = no failure, a speaker named "NA")
    table = pd.read_csv(
        path,
        dtype={"utterance": str, "speaker": str, "failures": str},
        keep_default_na=False,
        na_values={c: ["", "NaN", "nan"] for c in METRIC_COLUMNS},
    )
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(COLUMNS)}")
    return table


def write_csv(table: pd.DataFrame, path: Path, index: bool = True) -> None:
    """Write a report table (Table 1, the claims) as CSV."""
    atomic_write(Path(path), lambda p: table.to_csv(p, index=index))


def read_table1(path: Path) -> pd.DataFrame:
    """Read a Table-1 CSV written by write_csv."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no Table-1 CSV; expected one written by `sdm table1`")
    return pd.read_csv(path, index_col="model")


def collect_metrics(
    root: Path, data: str, preprocessing: str, variants: Sequence[str] | None = None
) -> dict[tuple[str, int], pd.DataFrame]:
    """Every evaluated run of a corpus, {(variant, seed): table}; folders that are not runs of
    `variants` (default: the 14 Table-1 variants) are skipped."""
    from sdm.variants import VARIANTS

    names = set(VARIANTS if variants is None else variants)
    found = {}
    for path in sorted(corpus_dir(root, data, preprocessing).glob(f"*/seed-*/{METRICS_FILE}")):
        variant, seed = path.parent.parent.name, _SEED_DIR.match(path.parent.name)
        if variant in names and seed:
            found[(variant, int(seed.group(1)))] = read_metrics(path)
    return found


def read_oracle(root: Path, data: str, preprocessing: str) -> pd.DataFrame | None:
    path = oracle_metrics_path(root, data, preprocessing)
    return read_metrics(path) if path.exists() else None

"""Where long-run state lives: resume checkpoints, built corpora and frame caches.

By default all three sit inside the work tree (ignored by git): `<results>/<data>/<prep>/ckpt/`,
`data/medium/` and `.cache/frames/`. A campaign that runs for days across sessions needs them to
survive the work tree being laid anew, so the environment variable SDM_STATE_DIR moves all three
under one folder outside it:

    $SDM_STATE_DIR/ckpt/<results root name>-<hash of its path>/<data>/<prep>/stack-*.pt
    $SDM_STATE_DIR/data/medium/
    $SDM_STATE_DIR/cache/frames/

The results root's path is part of the checkpoint folder's name, so two results trees (say
`results/` and `results-quick/`, or two clones) never share a checkpoint. File names are unchanged;
sdm.results places the checkpoints, sdm.data the corpus and the caches.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "SDM_STATE_DIR"


def state_dir() -> Path | None:
    """The folder named by SDM_STATE_DIR, or None when it is unset or empty (in-tree defaults).

    Read at every call, so a test or a notebook can set it after import."""
    value = os.environ.get(STATE_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{STATE_ENV}={value}: expected a folder, found a file")
    return path.resolve()


def in_state(relative: str, default: Path) -> Path:
    """`default` (an in-tree folder), or $SDM_STATE_DIR/<relative> when the variable is set."""
    state = state_dir()
    return default if state is None else state / relative

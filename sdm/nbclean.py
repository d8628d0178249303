"""Executed notebooks without what changes from one execution to the next.

papermill records start and end times, durations and its input and output paths; the kernel
records per-cell execution timestamps; papermill gives its injected parameters cell a random id.
None of it is content. Removing it means that re-rendering the book with nothing new leaves the
committed notebooks byte-identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

INJECTED_ID = "injected-parameters"
VOLATILE_CELL_KEYS = ("execution", "papermill", "ExecuteTime")


def scrub(nb: Any) -> Any:
    """Remove run-specific metadata from an nbformat notebook, in place; returns it."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if INJECTED_ID in cell.metadata.get("tags", []):
            cell["id"] = INJECTED_ID
    return nb


def scrub_file(path: str | Path) -> None:
    """scrub() a notebook file in place."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.write(scrub(nb), path)

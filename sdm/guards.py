"""What keeps results and checkpoints safe from a damaged, foreign or planted file.

`load_torch` reads files that torch.save wrote without running code from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_torch(path: Path, what: str) -> Any:
    """A file torch.save wrote, loaded without running any code from it.

    Only a torch archive (a zip file) is opened, and it is unpickled with weights_only=True:
    tensors, numbers, strings and containers, plus ModelConfig, which checkpoints hold. A plain
    pickle is refused before anything in it is read; random bytes, an empty or cut-off file, or
    one holding other objects are refused with one line naming the file."""
    import pickle
    import zipfile

    import torch

    from sdm.config import ModelConfig

    path = Path(path)
    fix = "remove it, or pass --overwrite to train from scratch"
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a {what}; {fix}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a torch archive, so not a {what} sdm wrote (refused unread); {fix}"
        )
    torch.serialization.add_safe_globals([ModelConfig])
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise ValueError(
            f"{path}: holds objects a {what} never holds, so it was not loaded ({reason}); {fix}"
        ) from None
    except Exception as err:  # a cut-off or damaged archive: zip, pickle and storage errors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: damaged {what}, cannot be read ({reason}); {fix}") from None

"""Corpora as (path, speaker, split) lists, named by one string, and their cached power frames.

`data` strings, accepted everywhere (API, CLI, notebooks):

- ``shipped``: the small real-speech corpus in data/speech, splits from its manifest (default);
- ``medium``: data/medium, built on request by ``make data-medium``;
- ``tcd-timit:PATH``: a local TCD-TIMIT copy (speaker folders like ``09F`` anywhere under PATH);
- ``PATH``: any folder, with ``train/ val/ test/`` subfolders or ``<speaker>/**/<utt>.wav|flac``.

The last two are found by walking folders (sdm.corpora); the others are read from a manifest
(columns path, split, speaker, ...: the only contract with the medium corpus's recipe).

A split goes from audio to frames by one path, for train, val and test: `load_utterance` (audio
as loaded, then the run's preprocessing), `stft`, power |STFT|^2 (`sdm.audio.power`).
`frames(corpus, split, preprocessing)` concatenates a split's power frames into one float32
(N, 513) array, cached under a key of everything that changes it (a changed setting never reads
stale data); `load_split` keeps the waveforms and STFTs too (the test set, for resynthesis). Both
take a Corpus (resolved once per command) or a data string.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

from sdm.audio import (
    SAMPLE_RATE,
    STFT,
    STFTConfig,
    load_audio,
    peak_normalise,
    power,
    stft,
    trim_silence,
    validate_signal,
)
from sdm.results import atomic_write
from sdm.state import in_state

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
SHIPPED_DIR = DATA_DIR / "speech"
MEDIUM_DIR = DATA_DIR / "medium"
CACHE_DIR = REPO_ROOT / ".cache" / "frames"

SPLITS = ("train", "val", "test")
PREPROCESSINGS = ("clean", "official")
TRIM_TOP_DB = 30  # the official code's librosa.effects.trim(top_db=30)
AUDIO_SUFFIXES = (".wav", ".flac")
FRAMES_FORMAT = 1  # bump when the way frames are computed changes: old caches are then ignored

VALID_FORMS = (
    "expected one of: 'shipped' (data/speech, the default); 'medium' (data/medium, built by "
    "`make data-medium`); 'tcd-timit:PATH' (a TCD-TIMIT copy with speaker folders like 09F, 24M "
    "under PATH); or PATH, an existing folder with train/ val/ test/ subfolders or "
    "<speaker>/**/<utterance>.wav|flac"
)


class DataError(ValueError):
    """A data name, path or split that cannot be used; the message lists what would work."""


@dataclass(frozen=True)
class Utterance:
    path: Path
    speaker: str
    split: str


class Corpus:
    """A named list of utterances with a speaker-disjoint train/val/test split.

    `checksum()` is a sha256 of what defines the corpus (its manifest, or its sorted file list
    with sizes and split assignment): it changes when the corpus changes, and names caches and runs
    (the "data_sha256" of a run's identity).
    """

    def __init__(self, name: str, root: Path, utterances: list[Utterance], checksum: str):
        self.name = name
        self.root = root
        self._utterances = sorted(utterances, key=lambda u: (SPLITS.index(u.split), str(u.path)))
        self._checksum = checksum

    def utterances(self, split: str) -> list[Utterance]:
        _check_split(split)
        return [u for u in self._utterances if u.split == split]

    def speakers(self, split: str) -> list[str]:
        return sorted({u.speaker for u in self.utterances(split)})

    def checksum(self) -> str:
        return self._checksum

    def __eq__(self, other: object) -> bool:  # the same corpus, however often it was resolved
        return isinstance(other, Corpus) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    @property
    def _key(self) -> tuple[str, str, str]:
        return (self.name, str(self.root), self._checksum)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}: {len(self.speakers(s))} spk" for s in SPLITS)
        return f"Corpus({self.name!r}, {len(self._utterances)} utterances; {counts})"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {SPLITS}")


def _check_preprocessing(preprocessing: str) -> None:
    if preprocessing not in PREPROCESSINGS:
        raise DataError(f"preprocessing {preprocessing!r}: expected one of {PREPROCESSINGS}")


def medium_dir() -> Path:
    """data/medium, or $SDM_STATE_DIR/data/medium when that is set (sdm.state)."""
    return in_state("data/medium", MEDIUM_DIR)


def frames_cache_dir() -> Path:
    """.cache/frames, or $SDM_STATE_DIR/cache/frames when that is set (sdm.state)."""
    return in_state("cache/frames", CACHE_DIR)


def resolve_corpus(data: str = "shipped") -> Corpus:
    """Turn a data string into a Corpus (forms in the module docstring); DataError otherwise."""
    if not isinstance(data, str) or not data.strip():
        raise DataError(f"data {data!r}: {VALID_FORMS}")
    if data == "shipped":
        return _manifest_corpus(data, SHIPPED_DIR)
    if data == "medium":
        medium = medium_dir()
        if not (medium / "manifest.csv").is_file():
            raise DataError(
                f"data 'medium': the medium corpus is not built yet ({medium / 'manifest.csv'} "
                "is missing); build it with `make data-medium` (python recipes/medium.py build)"
            )
        return _manifest_corpus(data, medium)
    from sdm import corpora  # the folder-walking forms

    if data.startswith("tcd-timit:"):
        root = Path(data.split(":", 1)[1]).expanduser()
        if not root.is_dir():
            raise DataError(f"data {data!r}: {root} is not a folder; {VALID_FORMS}")
        return corpora.tcd_timit_corpus(data, root)
    root = Path(data).expanduser()
    if not root.is_dir():
        raise DataError(f"data {data!r}: unknown name and not an existing folder; {VALID_FORMS}")
    return corpora.folder_corpus(data, root)


def _manifest_corpus(name: str, root: Path) -> Corpus:
    """A corpus described by root/manifest.csv with columns path, split, speaker (and more)."""
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise DataError(f"data {name!r}: {manifest} is missing; expected the corpus manifest")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    utts = []
    for row in rows:
        relative = PurePosixPath(row["path"])
        if relative.is_absolute() or ".." in relative.parts:
            raise DataError(
                f"{manifest}: path {row['path']!r} leads outside the corpus folder; expected a "
                f"path relative to {root}, without '..'"
            )
        path = root / relative
        if row["split"] not in SPLITS:
            raise DataError(f"{manifest}: split {row['split']!r} of {path}; expected {SPLITS}")
        if not path.is_file():
            raise DataError(f"{manifest}: lists {path}, which is missing")
        utts.append(Utterance(path, row["speaker"], row["split"]))
    return Corpus(name, root, utts, hashlib.sha256(manifest.read_bytes()).hexdigest())


def prepare_audio(
    x: np.ndarray, split: str, preprocessing: str, name: str = "signal"
) -> np.ndarray:
    """Apply a named preprocessing to a loaded utterance.

    `clean`: the audio as loaded. `official`: the official code's - peak-normalised, and train/val
    audio trimmed of leading/trailing silence (top_db=30); test audio is never trimmed.
    """
    _check_split(split)
    _check_preprocessing(preprocessing)
    x = validate_signal(x, name)
    if preprocessing == "official":
        x = peak_normalise(x)
        if split != "test":
            x = validate_signal(trim_silence(x, TRIM_TOP_DB), f"{name} (after trimming)")
    return x


def load_utterance(utt: Utterance, preprocessing: str = "clean") -> np.ndarray:
    """load_audio + prepare_audio: float32 (samples,) at 16 kHz."""
    return prepare_audio(load_audio(utt.path), utt.split, preprocessing, str(utt.path))


def cache_key(corpus: Corpus, split: str, preprocessing: str, config: STFTConfig = STFT) -> str:
    """sha256 of every setting that changes a split's frames."""
    settings = {
        "format": FRAMES_FORMAT,
        "corpus": corpus.checksum(),
        "split": split,
        "preprocessing": preprocessing,
        "trim_top_db": TRIM_TOP_DB if preprocessing == "official" else None,
        "sample_rate": SAMPLE_RATE,
        "stft": asdict(config),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _corpus(data: Corpus | str) -> Corpus:
    return data if isinstance(data, Corpus) else resolve_corpus(data)


def frames(
    data: Corpus | str = "shipped",
    split: str = "train",
    preprocessing: str = "clean",
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """Power-spectrogram frames of every utterance of a split: float32 (N, 513), in file order.

    Computed once, then read from `cache_dir` (default: frames_cache_dir()) under `cache_key`.
    """
    _check_split(split)
    _check_preprocessing(preprocessing)
    corpus = _corpus(data)
    cache_dir = Path(cache_dir) if cache_dir is not None else frames_cache_dir()
    name = corpus.name
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", corpus.root.name if name != "shipped" else name)
    key = cache_key(corpus, split, preprocessing)
    path = cache_dir / f"{label}-{split}-{preprocessing}-{key[:20]}.npy"
    if path.is_file():
        return _read_cache(path)
    utts = corpus.utterances(split)
    if not utts:
        raise DataError(f"data {name!r}: split {split!r} has no utterances")
    # one utterance at a time: a big corpus's waveforms and STFTs never sit in memory together
    x = np.concatenate([power(stft(load_utterance(u, preprocessing))) for u in utts])
    atomic_write(path, lambda p: _save_array(p, x))
    logger.info("%s %s/%s: %d frames cached in %s", name, split, preprocessing, len(x), path)
    return x


def _save_array(path: Path, x: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to a path
        np.save(f, x)


def _read_cache(path: Path) -> np.ndarray:
    """A cached frames array, or DataError naming the file to delete when it is not one."""
    try:
        x = np.load(path)  # allow_pickle=False: a pickle is refused, never run
    except (OSError, ValueError, EOFError) as err:  # truncated, empty or foreign content
        problem = f"unreadable: {str(err).split('. ')[0]}"
    else:
        if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape[1:] == (STFT.n_bins,):
            return x
        shape = (
            f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else "zip archive"
        )
        problem = f"holds a {shape}"
    raise DataError(
        f"{path}: corrupt frames cache ({problem}); expected float32 (frames, {STFT.n_bins}) "
        "power frames. Delete this file: it is rebuilt from the audio on the next run"
    )


@dataclass(frozen=True, eq=False)
class SplitAudio:
    """A split's utterances, preprocessed, with their STFTs: computed once and shared by every
    evaluation of a session, so the arrays are read-only."""

    names: tuple[str, ...]
    speakers: tuple[str, ...]
    signals: tuple[np.ndarray, ...]  # float32 (samples,)
    specs: tuple[np.ndarray, ...]  # complex64 (frames, 513)

    @classmethod
    def from_signals(
        cls, names: Sequence[str], speakers: Sequence[str], signals: Sequence[np.ndarray]
    ) -> SplitAudio:
        """Build from waveforms already prepared (16 kHz, float); computes each STFT."""
        if not (len(names) == len(speakers) == len(signals)) or not signals:
            raise ValueError(
                f"SplitAudio: expected as many names, speakers and signals (at least one), got "
                f"{len(names)}, {len(speakers)} and {len(signals)}"
            )
        sigs = tuple(_read_only(np.asarray(x, dtype=np.float32)) for x in signals)
        specs = tuple(_read_only(stft(x)) for x in sigs)
        return cls(tuple(map(str, names)), tuple(map(str, speakers)), sigs, specs)

    def __len__(self) -> int:
        return len(self.signals)

    @cached_property
    def offsets(self) -> np.ndarray:
        """Frame offsets (len + 1,): utterance u is frames offsets[u]:offsets[u + 1] of `power`."""
        return np.concatenate([[0], np.cumsum([len(s) for s in self.specs])])

    @cached_property
    def power(self) -> np.ndarray:
        """All frames' power, float32 (N, 513): the model's input, as `frames` computes it."""
        return _read_only(np.concatenate([power(s) for s in self.specs]))


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def load_split(
    data: Corpus | str = "shipped", preprocessing: str = "clean", split: str = "test"
) -> SplitAudio:
    """A split's utterances with their STFTs; cached in memory per corpus content (the key holds
    the corpus checksum, so a changed corpus is read again)."""
    return _load_split(_corpus(data), preprocessing, split)


@lru_cache(maxsize=8)
def _load_split(corpus: Corpus, preprocessing: str, split: str) -> SplitAudio:
    utts = corpus.utterances(split)
    if not utts:
        raise DataError(f"data {corpus.name!r}: the {split!r} split has no utterances")
    names = [_relative_name(u.path, corpus.root) for u in utts]
    signals = [load_utterance(u, preprocessing) for u in utts]
    return SplitAudio.from_signals(names, [u.speaker for u in utts], signals)


def _relative_name(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)

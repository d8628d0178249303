"""Corpora as (path, speaker, split) lists, named by one string, and their cached power frames.

`data` strings, accepted everywhere (API, CLI, notebooks):

- ``shipped``: the small real-speech corpus in data/speech, splits from its manifest (default);
- ``medium``: data/medium, built on request by ``make data-medium``;
- ``tcd-timit:PATH``: a local TCD-TIMIT copy (speaker folders like ``09F`` anywhere under PATH);
- ``PATH``: any folder, with ``train/ val/ test/`` subfolders or ``<speaker>/**/<utt>.wav|flac``.

`frames(data, split, preprocessing)` turns a split into one float32 (N, 513) array of power
frames, cached under a key of everything that changes it: a changed setting never reads stale data.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import random
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from sdm.audio import (
    SAMPLE_RATE,
    STFT,
    STFTConfig,
    load_audio,
    peak_normalise,
    power_spectrogram,
    trim_silence,
    validate_signal,
)
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

# NTCD-TIMIT's test speakers, the paper's test set
TCD_TIMIT_TEST = ("09F", "24M", "26M", "27M", "33F", "40F", "47M", "49F", "56M")
TCD_TIMIT_COUNTS = {"train": 39, "val": 8, "test": 9}
_TCD_SPEAKER = re.compile(r"^\d{2}[FM]$")

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

    `identity()` is a sha256 of what defines the corpus (its manifest, or its sorted file list
    with sizes and split assignment): it changes when the corpus changes, and names caches and runs.
    """

    def __init__(self, name: str, root: Path, utterances: list[Utterance], identity: str):
        self.name = name
        self.root = root
        self._utterances = sorted(utterances, key=lambda u: (SPLITS.index(u.split), str(u.path)))
        self._identity = identity

    def utterances(self, split: str) -> list[Utterance]:
        _check_split(split)
        return [u for u in self._utterances if u.split == split]

    def speakers(self, split: str) -> list[str]:
        return sorted({u.speaker for u in self.utterances(split)})

    def identity(self) -> str:
        return self._identity

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
                "is missing); build it with `make data-medium` or `python -m sdm data build-medium`"
            )
        return _manifest_corpus(data, medium)
    if data.startswith("tcd-timit:"):
        root = Path(data.split(":", 1)[1]).expanduser()
        if not root.is_dir():
            raise DataError(f"data {data!r}: {root} is not a folder; {VALID_FORMS}")
        return _tcd_timit_corpus(data, root)
    root = Path(data).expanduser()
    if not root.is_dir():
        raise DataError(f"data {data!r}: unknown name and not an existing folder; {VALID_FORMS}")
    return _folder_corpus(data, root)


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
    identity = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return Corpus(name, root, utts, identity)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
    )


def _listing_identity(root: Path, utts: list[Utterance]) -> str:
    """sha256 of the sorted (relative path, size, speaker, split) list: no audio is read, so
    resolving stays fast; a changed file list, size or split gives a new identity."""
    h = hashlib.sha256()
    for u in sorted(utts, key=lambda u: str(u.path)):
        rel = u.path.relative_to(root).as_posix()
        h.update(f"{rel}\t{u.path.stat().st_size}\t{u.speaker}\t{u.split}\n".encode())
    return h.hexdigest()


def tcd_timit_validation_speakers(candidates: list[str], n: int = 8) -> list[str]:
    """The validation speakers of a TCD-TIMIT copy, chosen from the non-test speakers.

    Rule: n/2 female and n/2 male speakers (the test set is near-balanced, 4 F + 5 M), each taken
    evenly spaced through that sex's speakers sorted by id, so that validation spans the recording
    sessions (ids follow recording order). No random generator is involved, so the choice is the
    same on every machine and library version; a sex with too few speakers is filled from the other.
    """
    fem = sorted(s for s in candidates if s.endswith("F"))
    mal = sorted(s for s in candidates if s.endswith("M"))
    n_f = min(len(fem), n // 2)
    n_m = min(len(mal), n - n_f)
    n_f = min(len(fem), n - n_m)

    def spread(pool: list[str], k: int) -> list[str]:
        return [pool[int((i + 0.5) * len(pool) / k)] for i in range(k)]

    return sorted(spread(fem, n_f) + spread(mal, n_m))


def _tcd_timit_corpus(name: str, root: Path) -> Corpus:
    """Speakers are folders named like 09F / 24M anywhere under root; their audio at any depth."""
    speakers: dict[str, list[Path]] = {}
    for dirpath, dirnames, _ in os.walk(root):
        for d in sorted(dirnames):
            if _TCD_SPEAKER.match(d):
                speakers.setdefault(d, []).extend(_audio_files(Path(dirpath) / d))
        dirnames[:] = [d for d in dirnames if not _TCD_SPEAKER.match(d)]  # own files claimed
    speakers = {s: files for s, files in speakers.items() if files}
    if not speakers:
        raise DataError(
            f"data {name!r}: no speaker folders named like 09F or 24M with .wav/.flac audio "
            f"under {root}; {VALID_FORMS}"
        )
    test = [s for s in speakers if s in TCD_TIMIT_TEST]
    rest = sorted(s for s in speakers if s not in TCD_TIMIT_TEST)
    if len(rest) < 2:
        raise DataError(
            f"data {name!r}: found {len(rest)} non-test speakers under {root}; expected at least "
            "2 (one for training, one for validation; the paper has 47)"
        )
    val = tcd_timit_validation_speakers(rest, min(TCD_TIMIT_COUNTS["val"], len(rest) - 1))
    split_of = {s: "test" if s in test else "val" if s in val else "train" for s in speakers}
    utts = [Utterance(p, s, split_of[s]) for s, files in speakers.items() for p in files]
    counts = {sp: sum(1 for s in speakers if split_of[s] == sp) for sp in SPLITS}
    logger.info(
        "%s: %d speakers (train %d, val %d, test %d), %d files; validation: %s",
        root,
        len(speakers),
        counts["train"],
        counts["val"],
        counts["test"],
        len(utts),
        " ".join(val),
    )
    if counts != TCD_TIMIT_COUNTS:
        missing = sorted(set(TCD_TIMIT_TEST) - set(test))
        warnings.warn(
            f"{root}: TCD-TIMIT speakers per split are train {counts['train']}, val "
            f"{counts['val']}, test {counts['test']}; the paper has 39/8/9"
            + (f" (test speakers not found: {' '.join(missing)})" if missing else ""),
            stacklevel=3,
        )
    return Corpus(name, root, utts, _listing_identity(root, utts))


def folder_split(speakers: list[str], seed: int = 0) -> dict[str, str]:
    """Speaker -> split for a folder corpus without split folders.

    Rule: sort the speakers, shuffle them with random.Random(seed), then the first
    round(n * 9/56) (at least 1) are test, the next round(n * 8/56) (at least 1) validation and the
    rest training: the paper's 39/8/9 proportions, speaker-disjoint, the same on every machine.
    """
    if len(speakers) < 3:
        raise DataError(
            f"a folder corpus split by speaker needs at least 3 speaker folders, got "
            f"{len(speakers)} ({', '.join(speakers)}); add speakers, or use train/ val/ test/"
        )
    order = sorted(speakers)
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(order) * 9 / 56))
    n_val = max(1, round(len(order) * 8 / 56))
    return {
        s: "test" if i < n_test else "val" if i < n_test + n_val else "train"
        for i, s in enumerate(order)
    }


def _folder_corpus(name: str, root: Path) -> Corpus:
    present = [s for s in SPLITS if (root / s).is_dir()]
    utts = []
    if present:
        # the official code's layout: split folders; a speaker is the first folder below them
        if len(present) < len(SPLITS):
            missing = [s for s in SPLITS if s not in present]
            raise DataError(
                f"data {name!r}: {root} has {'/ '.join(present)}/ but not {'/ '.join(missing)}/; "
                "expected all of train/ val/ test/ (or none: then speaker folders are split)"
            )
        for split in SPLITS:
            for p in _audio_files(root / split):
                rel = p.relative_to(root / split)
                speaker = rel.parts[0] if len(rel.parts) > 1 else p.stem
                utts.append(Utterance(p, speaker, split))
        splits_of: dict[str, set[str]] = {}
        for u in utts:
            splits_of.setdefault(u.speaker, set()).add(u.split)
        shared = sorted(s for s, splits in splits_of.items() if len(splits) > 1)
        if shared:
            warnings.warn(f"{root}: speakers in more than one split: {shared}", stacklevel=3)
    else:
        by_speaker = {d.name: _audio_files(d) for d in sorted(root.iterdir()) if d.is_dir()}
        by_speaker = {s: files for s, files in by_speaker.items() if files}
        split_of = folder_split(list(by_speaker)) if by_speaker else {}
        utts = [Utterance(p, s, split_of[s]) for s, files in by_speaker.items() for p in files]
    for split in SPLITS:
        if not any(u.split == split for u in utts):
            raise DataError(
                f"data {name!r}: no .wav/.flac files for split {split!r} under {root}; "
                f"{VALID_FORMS}"
            )
    return Corpus(name, root, utts, _listing_identity(root, utts))


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
        "corpus": corpus.identity(),
        "split": split,
        "preprocessing": preprocessing,
        "trim_top_db": TRIM_TOP_DB if preprocessing == "official" else None,
        "sample_rate": SAMPLE_RATE,
        "stft": asdict(config),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def frames(
    data: str = "shipped",
    split: str = "train",
    preprocessing: str = "clean",
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """Power-spectrogram frames of every utterance of a split: float32 (N, 513), in file order.

    Computed once, then read from `cache_dir` (default: frames_cache_dir()) under `cache_key`.
    """
    _check_split(split)
    _check_preprocessing(preprocessing)
    corpus = resolve_corpus(data)
    cache_dir = Path(cache_dir) if cache_dir is not None else frames_cache_dir()
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", corpus.root.name if data != "shipped" else data)
    key = cache_key(corpus, split, preprocessing)
    path = cache_dir / f"{label}-{split}-{preprocessing}-{key[:20]}.npy"
    if path.is_file():
        return _read_cache(path)
    utts = corpus.utterances(split)
    if not utts:
        raise DataError(f"data {data!r}: split {split!r} has no utterances")
    x = np.concatenate([power_spectrogram(load_utterance(u, preprocessing)) for u in utts])
    from sdm.evaluate import write_atomically

    write_atomically(path, lambda tmp: np.save(tmp, x))
    logger.info("%s %s/%s: %d frames cached in %s", data, split, preprocessing, len(x), path)
    return x


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

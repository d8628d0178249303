"""Corpora found by walking folders: a local TCD-TIMIT copy (the paper's corpus) and any folder of
speakers, each with its speaker-disjoint split rule. `sdm.data.resolve_corpus` picks the form.

Their checksum is a sha256 of the file listing (relative path, size, speaker, split): no audio is
read, so resolving stays fast, and a changed file list, size or split gives a new checksum.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import warnings
from pathlib import Path

from sdm.data import AUDIO_SUFFIXES, SPLITS, VALID_FORMS, Corpus, DataError, Utterance

logger = logging.getLogger(__name__)

# NTCD-TIMIT's test speakers, the paper's test set
TCD_TIMIT_TEST = ("09F", "24M", "26M", "27M", "33F", "40F", "47M", "49F", "56M")
TCD_TIMIT_COUNTS = {"train": 39, "val": 8, "test": 9}
_TCD_SPEAKER = re.compile(r"^\d{2}[FM]$")


def _audio_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
    )


def _listing_checksum(root: Path, utts: list[Utterance]) -> str:
    """sha256 of the sorted (relative path, size, speaker, split) list: no audio is read, so
    resolving stays fast; a changed file list, size or split gives a new checksum."""
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


def tcd_timit_corpus(name: str, root: Path) -> Corpus:
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
    return Corpus(name, root, utts, _listing_checksum(root, utts))


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


def folder_corpus(name: str, root: Path) -> Corpus:
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
    return Corpus(name, root, utts, _listing_checksum(root, utts))

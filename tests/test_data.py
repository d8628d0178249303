"""sdm.data: the shipped corpus, corpus names, speaker-disjoint splits and the frame cache."""

import csv
import hashlib
import warnings

import numpy as np
import pytest
import soundfile as sf

import sdm.data as data
from sdm.audio import SAMPLE_RATE, STFTConfig, load_audio
from sdm.corpora import TCD_TIMIT_TEST, tcd_timit_validation_speakers
from sdm.data import (
    SHIPPED_DIR,
    SPLITS,
    DataError,
    cache_key,
    frames,
    prepare_audio,
    resolve_corpus,
)


def manifest_rows() -> list[dict]:
    with open(SHIPPED_DIR / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def write_utterance(path, seconds: float = 0.25, f0: float = 200.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), SAMPLE_RATE)


# shipped corpus


def test_shipped_files_match_their_manifest_sha256():
    rows = manifest_rows()
    assert len(rows) == 51
    for row in rows:
        digest = hashlib.sha256((SHIPPED_DIR / row["path"]).read_bytes()).hexdigest()
        assert digest == row["sha256"], row["path"]
    on_disk = {p.relative_to(SHIPPED_DIR).as_posix() for p in SHIPPED_DIR.rglob("*.flac")}
    assert on_disk == {row["path"] for row in rows}


def test_shipped_corpus_keeps_its_licenses_and_attributions():
    text = (SHIPPED_DIR / "LICENSES.md").read_text()
    assert "Attribution" in text and (SHIPPED_DIR / "README.md").is_file()
    for row in manifest_rows():  # every source package has its license section
        assert row["source_package"].split(":", 1)[1] in text, row["source_package"]
        assert row["license"]


def test_no_speaker_is_in_two_splits():
    corpus = resolve_corpus("shipped")
    speakers = [set(corpus.speakers(s)) for s in SPLITS]
    assert all(speakers)
    assert not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])


def test_every_shipped_file_loads_at_16k_mono():
    for row in manifest_rows():
        path = SHIPPED_DIR / row["path"]
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1), path
        x = load_audio(path)
        assert x.dtype == np.float32 and x.ndim == 1
        assert abs(len(x) / SAMPLE_RATE - float(row["duration_s"])) < 0.01, path


def test_shipped_frames_fixture_is_real_power(shipped_frames):
    assert shipped_frames.shape == (512, 513) and shipped_frames.dtype == np.float32
    assert np.all(np.isfinite(shipped_frames)) and np.all(shipped_frames >= 0)
    assert shipped_frames.sum(axis=1).min() > 0


# corpus names


@pytest.mark.parametrize("name", ["", "shiped", "tcd-timit:/no/such/folder", "/no/such/folder"])
def test_unknown_data_names_list_the_valid_forms(name):
    with pytest.raises(DataError, match="expected one of: 'shipped'.*'medium'.*'tcd-timit:PATH'"):
        resolve_corpus(name)


def test_a_file_is_not_a_corpus(tmp_path):
    write_utterance(tmp_path / "a.wav")
    with pytest.raises(DataError, match="not an existing folder"):
        resolve_corpus(str(tmp_path / "a.wav"))


def test_medium_says_how_to_build_it_until_built(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MEDIUM_DIR", tmp_path / "medium")
    with pytest.raises(
        DataError, match="not built yet.*make data-medium.*python recipes/medium.py build"
    ):
        resolve_corpus("medium")
    for i, split in enumerate(SPLITS):
        write_utterance(tmp_path / "medium" / split / f"s{i}" / "u.flac")
    (tmp_path / "medium" / "manifest.csv").write_text(
        "path,split,speaker\n"
        + "".join(f"{s}/s{i}/u.flac,{s},s{i}\n" for i, s in enumerate(SPLITS))
    )
    assert [len(resolve_corpus("medium").utterances(s)) for s in SPLITS] == [1, 1, 1]


def test_unknown_split_and_preprocessing_are_clear_errors(frames_cache):
    with pytest.raises(DataError, match="split 'dev': expected one of"):
        frames("shipped", "dev", cache_dir=frames_cache)
    with pytest.raises(
        DataError, match="preprocessing 'raw': expected one of .*'clean', 'official'"
    ):
        frames("shipped", "train", "raw", cache_dir=frames_cache)


# TCD-TIMIT


def fake_tcd_timit(root, drop: tuple[str, ...] = ()) -> list[str]:
    """56 volunteer folders (the paper's count) at mixed depths, plus things to ignore."""
    ids = [f"{i:02d}{'F' if i % 3 == 0 else 'M'}" for i in range(1, 60)]
    ids = [s for s in ids if s[:2] not in ("09", "24", "26", "27", "33", "40", "47", "49", "56")]
    ids = sorted(ids[:47] + list(TCD_TIMIT_TEST))
    for n, spk in enumerate(s for s in ids if s not in drop):
        deep = "Clips/straightcam/audio" if n % 2 else "audio"
        write_utterance(root / "volunteers" / spk / deep / "sa1.wav", 0.1)
    write_utterance(root / "lipspeakers" / "Lipspkr1" / "sa1.wav", 0.1)
    (root / "volunteers" / "99F").mkdir()  # a speaker folder without audio is not a speaker
    return ids


def test_tcd_timit_finds_39_8_9_speakers_with_the_papers_test_set(tmp_path, recwarn):
    ids = fake_tcd_timit(tmp_path)
    corpus = resolve_corpus(f"tcd-timit:{tmp_path}")
    assert [len(corpus.speakers(s)) for s in SPLITS] == [39, 8, 9]
    assert corpus.speakers("test") == sorted(TCD_TIMIT_TEST)
    val = corpus.speakers("val")
    assert val == tcd_timit_validation_speakers([s for s in ids if s not in TCD_TIMIT_TEST])
    assert sum(s.endswith("F") for s in val) == 4
    assert not any(issubclass(w.category, UserWarning) for w in recwarn)


def test_tcd_timit_warns_when_counts_differ(tmp_path):
    fake_tcd_timit(tmp_path, drop=("09F", "01M"))
    with pytest.warns(UserWarning, match=r"train 38, val 8, test 8; .*39/8/9.*not found: 09F"):
        corpus = resolve_corpus(f"tcd-timit:{tmp_path}")
    assert "09F" not in corpus.speakers("test")


def test_tcd_timit_validation_rule_is_balanced_and_spread():
    fem = [f"{i:02d}F" for i in range(1, 21)]
    mal = [f"{i:02d}M" for i in range(21, 41)]
    val = tcd_timit_validation_speakers(fem + mal)
    assert val == ["03F", "08F", "13F", "18F", "23M", "28M", "33M", "38M"]
    # too few women: the men fill the remaining places
    few = tcd_timit_validation_speakers(fem[:2] + mal)
    assert few == sorted(["01F", "02F"] + tcd_timit_validation_speakers(mal, 6))


def test_tcd_timit_without_speaker_folders_is_a_clear_error(tmp_path):
    write_utterance(tmp_path / "audio" / "sa1.wav")
    with pytest.raises(DataError, match="no speaker folders named like 09F"):
        resolve_corpus(f"tcd-timit:{tmp_path}")


# folder corpora


def test_folder_with_split_subfolders_uses_them(tmp_path):
    for split, spk in [("train", "a"), ("train", "b"), ("val", "c"), ("test", "d")]:
        write_utterance(tmp_path / split / spk / "u1.wav")
    corpus = resolve_corpus(str(tmp_path))
    assert [corpus.speakers(s) for s in SPLITS] == [["a", "b"], ["c"], ["d"]]


def test_folder_with_some_split_subfolders_names_the_missing_ones(tmp_path):
    write_utterance(tmp_path / "train" / "a" / "u.wav")
    write_utterance(tmp_path / "test" / "b" / "u.wav")
    with pytest.raises(DataError, match="but not val/"):
        resolve_corpus(str(tmp_path))


def test_folder_of_speakers_is_split_by_speaker_deterministically(tmp_path):
    speakers = [f"spk{i}" for i in range(10)]
    for spk in speakers:  # LibriSpeech-style <speaker>/<chapter>/<utterance>
        write_utterance(tmp_path / spk / "ch1" / f"{spk}-1.flac")
        write_utterance(tmp_path / spk / "ch2" / f"{spk}-2.wav")
    first, second = resolve_corpus(str(tmp_path)), resolve_corpus(str(tmp_path))
    split_speakers = [first.speakers(s) for s in SPLITS]
    assert [len(s) for s in split_speakers] == [7, 1, 2]
    assert sorted(sum(split_speakers, [])) == sorted(speakers)
    assert split_speakers == [second.speakers(s) for s in SPLITS]
    assert all(len(first.utterances(s)) == 2 * len(split_speakers[i]) for i, s in enumerate(SPLITS))


def test_folder_with_too_few_speakers_is_a_clear_error(tmp_path):
    write_utterance(tmp_path / "a" / "u.wav")
    write_utterance(tmp_path / "b" / "u.wav")
    with pytest.raises(DataError, match="at least 3 speaker folders, got 2"):
        resolve_corpus(str(tmp_path))


# preprocessing and the frame cache


def test_official_preprocessing_normalises_and_trims_train_only():
    quiet = np.full(16000, 1e-4, dtype=np.float32)
    x = np.concatenate([quiet, 0.2 * np.sin(np.arange(16000, dtype=np.float32) / 5), quiet])
    np.testing.assert_array_equal(prepare_audio(x, "test", "clean"), x)
    for split in ("train", "val"):
        y = prepare_audio(x, split, "official")
        assert np.max(np.abs(y)) == pytest.approx(1.0) and len(y) < len(x)
    y = prepare_audio(x, "test", "official")
    assert np.max(np.abs(y)) == pytest.approx(1.0) and len(y) == len(x)


def test_frames_are_cached_and_read_back(tmp_path, monkeypatch):
    corpus_dir, cache = tmp_path / "corpus", tmp_path / "cache"
    for i in range(4):
        write_utterance(corpus_dir / f"spk{i}" / "u.wav", 0.5, 150.0 + 50 * i)
    x = frames(str(corpus_dir), "train", cache_dir=cache)
    assert x.dtype == np.float32 and x.shape == (2 * (1 + 8000 // 256), 513)
    assert [p.suffix for p in cache.iterdir()] == [".npy"]  # no temp file left behind

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(data, "load_utterance", fail)
    np.testing.assert_array_equal(frames(str(corpus_dir), "train", cache_dir=cache), x)


def test_a_changed_setting_never_reads_a_stale_cache(tmp_path):
    corpus_dir, cache = tmp_path / "corpus", tmp_path / "cache"
    for i in range(4):
        write_utterance(corpus_dir / f"spk{i}" / "u.wav", 0.5, 150.0 + 50 * i)
    clean = frames(str(corpus_dir), "train", "clean", cache_dir=cache)
    official = frames(str(corpus_dir), "train", "official", cache_dir=cache)
    assert not np.allclose(clean, official)  # peak normalisation changes the power
    assert len(list(cache.iterdir())) == 2

    train_speakers = resolve_corpus(str(corpus_dir)).speakers("train")
    write_utterance(corpus_dir / train_speakers[0] / "extra.wav", 0.5)  # the corpus changes
    grown = frames(str(corpus_dir), "train", "clean", cache_dir=cache)
    assert len(grown) == len(clean) + 1 + 8000 // 256

    corpus = resolve_corpus(str(corpus_dir))
    keys = {
        cache_key(corpus, "train", "clean"),
        cache_key(corpus, "val", "clean"),
        cache_key(corpus, "train", "official"),
        cache_key(corpus, "train", "clean", STFTConfig(hop=128)),
        cache_key(corpus, "train", "clean", STFTConfig(pad="constant")),
        cache_key(resolve_corpus("shipped"), "train", "clean"),
    }
    assert len(keys) == 6


def test_frames_of_the_shipped_corpus_have_every_split(frames_cache):
    sizes = [len(frames("shipped", s, cache_dir=frames_cache)) for s in SPLITS]
    assert sizes[0] > sizes[1] > 0 and sizes[2] > 0


def test_identity_ignores_nothing_that_matters(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(3):
            write_utterance(tmp_path / f"s{i}" / "u.wav")
        before = resolve_corpus(str(tmp_path)).checksum()
        write_utterance(tmp_path / "s0" / "u.wav", 0.5)  # same name, new content and size
        assert resolve_corpus(str(tmp_path)).checksum() != before

"""The medium-corpus builder, on tiny fake Debian packages made here: no network, a few seconds."""

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from recipes import medium
from recipes.medium import MediumError, build_medium, check_built
from sdm import data

av = pytest.importorskip("av", reason="PyAV makes and decodes the G.722 test files")
sf = pytest.importorskip("soundfile")

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
ASTERISK_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: asterisk-core-sounds

Files: *
Copyright: 2003-2010, Allison Smith
License: CC-BY-SA-3.0

Files: fr-*
Copyright: 2006-2008, June Wallack
License: CC-BY-SA-3.0

Files: it-*
Copyright: 2012 Carlo Flora
License: CC-BY-3.0

Files: ru-*
Copyright: 2010, Maxim
License: CC-BY-3.0
"""
FILLETS_COPYRIGHT = "Upstream Authors:\n    Ivo Danihelka\n\nCopyright: GPL-2, June 1991.\n"


def speechlike(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A voiced-speech stand-in: a gliding harmonic tone under a 3 Hz syllable envelope."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 11)) * (0.6 - 0.4 * np.cos(2 * np.pi * 3 * t))
    x = 0.5 * x / np.abs(x).max() + 1e-4 * np.random.default_rng(seed).standard_normal(len(t))
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def g722(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="g722") as container:
        stream = container.add_stream("g722", rate=SR, layout="mono")
        pcm = np.round(x * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SR
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buf.getvalue()


def ogg(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def make_deb(path: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    """A minimal real .deb: an ar archive of debian-binary, control.tar.gz and data.tar.xz."""

    def tar(members: dict[str, bytes], mode: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as t:
            for member, content in members.items():
                info = tarfile.TarInfo(f"./{member}")
                info.size, info.mode = len(content), 0o644
                t.addfile(info, io.BytesIO(content))
        return buf.getvalue()

    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: fake\n"
    ).encode()
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", tar({"control": control}, "w:gz")),
        ("data.tar.xz", tar(files, "w:xz")),
    ]
    out = [b"!<arch>\n"]
    for member, content in members:
        out.append(f"{member:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode())
        out.append(content + (b"\n" if len(content) % 2 else b""))
    path.write_bytes(b"".join(out))


def fake_files(pkg: medium.Package) -> dict[str, bytes]:
    files = {f"usr/share/doc/{pkg.name}/copyright": ASTERISK_COPYRIGHT.encode()}
    if pkg.name.startswith("fillets"):
        files = {f"usr/share/doc/{pkg.name}/copyright": FILLETS_COPYRIGHT.encode()}
        lang = pkg.voices[0].lang
        sound = medium._FILLETS
        files |= {
            f"{sound}/level1/{lang}/lv-v-hello.ogg": ogg(speechlike(1.3, 22050), 22050),
            f"{sound}/level1/{lang}/lv-m-hi.ogg": ogg(speechlike(1.1, 44100, channels=2), 44100),
            f"{sound}/share/jokes/{lang}/jk-v-joke.ogg": ogg(speechlike(1.2, 22050, seed=1), 22050),
            f"{sound}/share/jokes/{lang}/jk-m-joke.ogg": ogg(speechlike(1.2, 22050, seed=2), 22050),
            f"{sound}/level1/{lang}/lv-hs-minor.ogg": ogg(speechlike(1.2, 22050), 22050),
            f"{sound}/level1/{lang}/lv-m-loud.ogg": ogg(np.sign(speechlike(1.2, 22050)), 22050),
            f"{sound}/level1/en/lv-v-english.ogg": ogg(speechlike(1.2, 22050), 22050),
        }
        return files
    root = pkg.voices[0].root
    files |= {
        f"{root}/hello.g722": g722(speechlike(1.5, SR)),
        f"{root}/followme/call.g722": g722(speechlike(1.2, SR, seed=3)),
        f"{root}/digits/1.g722": g722(speechlike(0.5, SR)),
        f"{root}/silence/1.g722": g722(1e-4 * np.random.default_rng(0).standard_normal(SR * 2)),
    }
    if "-ru-" in pkg.name:
        files[f"{root}/is.g722"] = b""
    return files


KEPT = {  # speaker -> number of files kept from the fake packages
    "asterisk_allison": 4,
    "asterisk_fr_june": 2,
    "asterisk_it_carlo": 2,
    "asterisk_ru_ivrvoice": 2,
    **{f"fillets_{lang}_{who}": 2 for lang in ("cs", "nl") for who in ("big", "small")},
}
DROPPED = {"shorter than 1.0 s": 5, "mostly silence": 5, "empty file": 1, "clipped": 2}


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("debs")
    for pkg in medium.PACKAGES:
        make_deb(
            folder / f"{pkg.name}_{pkg.version}_all.deb", pkg.name, pkg.version, fake_files(pkg)
        )
    return folder


@pytest.fixture(scope="module")
def built(debs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_medium(tmp_path_factory.mktemp("data") / "medium", debs=debs, workers=2)


def manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_medium_says_how_to_build_it_before_it_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MEDIUM_DIR", tmp_path / "medium")
    with pytest.raises(data.DataError, match="not built yet.*make data-medium"):
        data.resolve_corpus("medium")
    assert "make data-medium" in medium.summary()


def test_build_keeps_main_voices_and_drops_short_silent_clipped_and_empty_files(built):
    rows = manifest(built)
    counts = {s: sum(r["speaker"] == s for r in rows) for s in KEPT}
    assert counts == KEPT
    assert json.loads((built / medium.STAMP).read_text())["dropped"] == DROPPED
    names = " ".join(r["path_in_package"] for r in rows)
    assert "-hs-" not in names and "/en/lv-v" not in names and "digits" not in names


def test_manifest_matches_the_shipped_columns_layout_and_checksums(built):
    shipped = (ROOT / "data" / "speech" / "manifest.csv").read_text().splitlines()[0]
    assert (built / "manifest.csv").read_text().splitlines()[0] == shipped
    for r in manifest(built):
        path = built / r["path"]
        assert r["path"] == f"{r['split']}/{r['speaker']}/{path.name}" and path.suffix == ".flac"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r["sha256"]
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert float(r["duration_s"]) == pytest.approx(info.frames / SR, abs=1e-3)
        assert float(r["duration_s"]) >= medium.MIN_DURATION_S
        assert r["source_package"].startswith("deb:") and r["license"] and r["source_version"]
    assert medium.verify(built) == []


def test_split_is_speaker_disjoint_and_as_documented(built, monkeypatch):
    monkeypatch.setattr(data, "MEDIUM_DIR", built)
    corpus = data.resolve_corpus("medium")
    speakers = {s: set(corpus.speakers(s)) for s in data.SPLITS}
    assert speakers["val"] == {"asterisk_fr_june"}
    assert speakers["test"] == {"asterisk_it_carlo", "fillets_nl_small"}
    assert len(speakers["train"]) == 5
    assert not (speakers["train"] & speakers["val"] or speakers["train"] & speakers["test"])


def test_licenses_quote_each_package_notice(built):
    text = (built / "LICENSES.md").read_text()
    sections = {s.split()[0]: s for s in text.split("\n## ")[1:]}
    assert set(sections) == {p.name for p in medium.PACKAGES}
    assert "Allison Smith" in sections["asterisk-core-sounds-en-g722"]
    assert "June" not in sections["asterisk-core-sounds-en-g722"]
    assert "June Wallack" in sections["asterisk-core-sounds-fr-g722"]
    assert "Ivo Danihelka" in sections["fillets-ng-data-nl"]
    assert "creativecommons.org/licenses/by/3.0/" in sections["asterisk-core-sounds-it-g722"]
    assert sorted(p.name for p in (built / "copyright").iterdir()) == sorted(sections)


def test_second_run_does_nothing(built, debs, monkeypatch, capsys):
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*")}

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although the corpus was complete")

    monkeypatch.setattr(medium, "extract", fail)
    monkeypatch.setattr(medium, "_convert_all", fail)
    assert build_medium(built, debs=debs) == built
    assert medium.main(["build", "--out", str(built), "--debs", str(debs)]) == 0
    assert f"{sum(KEPT.values())} files" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*")} == before


def test_damaged_corpus_is_rebuilt_and_stale_staging_removed(built, debs, tmp_path):
    out = tmp_path / "medium"
    shutil.copytree(built, out)
    victim = out / manifest(out)[0]["path"]
    victim.unlink()
    stale = tmp_path / ".medium.tmp-999999999"  # as a build killed mid-way leaves it: marked
    stale.mkdir()
    mark = {"folder": stale.name, "pid": 999999999, "host": medium.socket.gethostname()}
    (stale / medium.BUILD_MARK).write_text(json.dumps(mark))
    assert "missing" in check_built(out)
    build_medium(out, debs=debs, workers=1)
    assert check_built(out) is None and victim.is_file() and not stale.exists()


def test_interrupted_build_leaves_nothing_and_keeps_a_previous_corpus(built, debs, tmp_path):
    calls = []
    convert = medium._convert

    def flaky(job):
        calls.append(job)
        if len(calls) == 5:
            raise RuntimeError("interrupted")
        return convert(job)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(medium, "_convert", flaky)
        with pytest.raises(RuntimeError, match="interrupted"):
            build_medium(tmp_path / "medium", debs=debs, workers=1)
        assert list(tmp_path.iterdir()) == []
        previous = tmp_path / "previous"
        shutil.copytree(built, previous)
        calls.clear()
        with pytest.raises(RuntimeError, match="interrupted"):
            build_medium(previous, debs=debs, workers=1, force=True)
    assert check_built(previous) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous"]


def test_refuses_to_replace_a_folder_that_is_not_a_corpus(tmp_path, debs):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(MediumError, match="not a medium corpus"):
        build_medium(tmp_path, debs=debs)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_without_apt_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(medium.shutil, "which", lambda name: None)
    with pytest.raises(MediumError, match="apt-get was not found.*fillets-ng-data-nl.*--debs"):
        build_medium(tmp_path / "medium")
    assert list(tmp_path.iterdir()) == []


FAKE_APT = """
import shutil, sys
args = sys.argv[1:]
while args[0] == "-o":
    args = args[2:]
open(LOG, "a").write(" ".join(args[1:] or args) + "\\n")
targets = [t.partition("=") for t in args[1:]]
if any(name == "fillets-ng-data-nl" and version for name, _, version in targets):
    sys.exit("E: Version '1.0.1-1.1' for 'fillets-ng-data-nl' was not found")
for name, _, version in targets:
    src = f"{DEBS}/{name}_{PINNED[name]}_all.deb"
    shutil.copy(src, f"{name}_{version or '1.0.2-1'}_all.deb")
"""


def test_apt_download_falls_back_to_newest_version_with_a_warning(debs, tmp_path, monkeypatch):
    """A fake apt-get on PATH: the nl pin is gone, so the bare package name is downloaded."""
    log, bin_dir, dest = tmp_path / "calls", tmp_path / "bin", tmp_path / "dl"
    bin_dir.mkdir()
    dest.mkdir()
    script = bin_dir / "apt-get"
    pinned = {p.name: p.version for p in medium.PACKAGES}
    script.write_text(
        f"#!{sys.executable}\nLOG, DEBS, PINNED = {str(log)!r}, {str(debs)!r}, {pinned!r}\n"
        + FAKE_APT
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.warns(UserWarning, match="fillets-ng-data-nl: pinned version 1.0.1-1.1 is not"):
        found = medium.download(medium.PACKAGES, dest)
    assert found["fillets-ng-data-nl"].name == "fillets-ng-data-nl_1.0.2-1_all.deb"
    assert medium._deb_version(found["fillets-ng-data-cs"]) == "1.0.1-1.1"
    calls = log.read_text().splitlines()
    pins = [f"{p.name}={p.version}" for p in medium.PACKAGES]
    retry = ["update", pins[-1]] if os.geteuid() == 0 else []  # lists refreshed once, as root
    assert calls == [" ".join(pins), *pins, *retry, "fillets-ng-data-nl"]


def test_debs_folder_needs_one_version_per_package(tmp_path):
    pkg = medium.PACKAGES[0]
    with pytest.raises(MediumError, match=f"expected {pkg.name}_1.6.1-1_all.deb.*found none"):
        medium._pick_deb(pkg, tmp_path)
    (tmp_path / f"{pkg.name}_1.7-1_all.deb").touch()
    (tmp_path / f"{pkg.name}_1%3a1.8-1_all.deb").touch()
    with pytest.raises(MediumError, match="1%3a1.8-1"):
        medium._pick_deb(pkg, tmp_path)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="compares with dpkg-deb")
def test_python_extraction_matches_dpkg_deb(debs, tmp_path):
    deb = next(debs.glob("fillets-ng-data-cs_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "dpkg")], check=True)
    medium._extract_ar(deb, tmp_path / "py")

    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.*")}

    assert tree(tmp_path / "py") == tree(tmp_path / "dpkg")


def test_speech_fraction_tells_speech_from_silence():
    assert medium.speech_fraction(speechlike(2.0, SR)) > 0.9
    assert medium.speech_fraction(1e-4 * np.ones(2 * SR)) == 0.0
    assert medium.speech_fraction(np.zeros(100)) == 0.0

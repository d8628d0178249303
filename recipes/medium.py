"""The medium corpus: about 4.3 h of real 16 kHz speech, 8 speakers, built on request from 7
Debian packages (`make data-medium`). Too large to commit and of mixed licenses: built, not shipped.

A data recipe, not part of the library: the sdm package never imports it, and reads what it builds
through the manifest alone (columns path, split, speaker, ...; sdm.data). Run it as

    python recipes/medium.py build [--out FOLDER] [--debs FOLDER] [--workers N] [--force]
    python recipes/medium.py info [--out FOLDER]

Sources (pinned; the newest version is used, with a warning, when a pin is gone): the G.722 (16 kHz)
Asterisk core sounds in en, es, fr, it, ru, one professional voice each (Allison Smith records both
en and es), and the Fish Fillets NG cs and nl game dialogue, of which only the two main characters
are taken: files ``<lang>/<prefix>-v-*.ogg`` (big fish, male) and ``<lang>/<prefix>-m-*.ogg``
(small fish, female) in the level folders and in share/, one actor per language and character.
Facts and measurements: book/conventions.md, "Data".

Speaker-disjoint split, so validation and test voices are never heard in training:

- train (5 voices, 3.1 h): Allison (en + es, one speaker, so one split), IvrvoiceRU, cs big,
  cs small, nl big: both sexes and both recording styles (studio IVR prompts, acted game dialogue);
- val (1 voice): June (fr), an unseen IVR voice, 22 min, enough to pick the early-stopping epoch;
- test (2 voices, 57 min): Carlo (it, male, IVR) and nl small (female, acted): one unseen voice
  per sex and per style. nl small shares a language with nl big in train, not the speaker.

Each file is mixed to mono, resampled to 16 kHz with soxr VHQ and written as 16-bit FLAC, if it is
at least MIN_DURATION_S long, has under MAX_CLIPPED_FRACTION of samples at |x| >= CLIP_LEVEL, and
its speech fraction (see `speech_fraction`) is at least MIN_SPEECH_FRACTION; this drops the digit
and letter prompts (< 1 s), silence prompts and clipped takes.

The build happens in a hidden folder beside the output and is renamed into place at the end: an
interrupted build leaves no corpus behind, and a later run removes its leftovers. Every folder a
build makes carries a mark (BUILD_MARK: its name, process and host), and only marked folders whose
process is gone are ever removed: never a folder someone else made, whatever its name. `build.json`
records what was built; a corpus whose stamp, manifest and file sizes agree is not built again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import lzma
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from sdm.audio import SAMPLE_RATE
from sdm.data import SPLITS, DataError

logger = logging.getLogger(__name__)

MIN_DURATION_S = 1.0
CLIP_LEVEL = 0.999  # of full scale
MAX_CLIPPED_FRACTION = 1e-3
MIN_SPEECH_FRACTION = 0.3
ACTIVITY_FRAME = 512  # 32 ms at 16 kHz
ACTIVITY_RANGE_DB = 35.0
ACTIVITY_FLOOR_DBFS = -50.0
WORKERS = 2
FORMAT = 1  # bump when the recipe changes in a way the tables below do not show
MANIFEST_COLUMNS = (
    "path split speaker duration_s source_package source_version path_in_package license sha256"
).split()
STAMP = "build.json"
BUILD_MARK = ".sdm-build-medium"  # in every folder a build makes: only those are ever removed

APT_MISSING = (
    "apt-get was not found: the medium corpus is built from 7 Debian packages. On a machine "
    "without apt, download these .deb files from a Debian mirror by hand: {debs}; put them in one "
    "folder and run `python recipes/medium.py build --debs FOLDER`"
)


class MediumError(DataError):
    """The medium corpus cannot be built; the message says what to do instead."""


@dataclass(frozen=True)
class Voice:
    """One speaker's files in a package: `pattern` (a regex) matches paths below `root`."""

    speaker: str
    split: str
    lang: str
    root: str
    pattern: str


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    license: str
    attribution: str
    notice: str | None  # the `Files:` stanza of a DEP-5 copyright file to quote; None: all of it
    voices: tuple[Voice, ...]


LICENSE_URLS = {
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "GPL-2": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
}
_ASTERISK = "usr/share/asterisk/sounds"
_FILLETS = "usr/share/games/fillets-ng/sound"
_ALLISON = (
    "recorded by Allison Smith (http://www.theivrvoice.com); financial contributions by Digium, "
    "Inc. (http://www.digium.com)"
)
_FILLETS_CREDIT = (
    "Fish Fillets NG game data, by Ivo Danihelka, Pavel Danihelka, ALTAR interactive and "
    "contributors (http://fillets.sourceforge.net)"
)


def _asterisk(
    lang: str, folder: str, speaker: str, split: str, license: str, notice: str, credit: str
) -> Package:
    voice = Voice(speaker, split, lang, f"{_ASTERISK}/{folder}", r".+\.g722")
    attribution = f"Asterisk core sound prompts ({folder}), {credit}"
    return Package(
        f"asterisk-core-sounds-{lang}-g722", "1.6.1-1", license, attribution, notice, (voice,)
    )


def _fillets(lang: str, language: str, big_split: str, small_split: str) -> Package:
    # the second dash field of a file name is the character: v = big fish, m = small fish
    voices = tuple(
        Voice(
            f"fillets_{lang}_{who}", split, lang, _FILLETS, rf"(.+/)?{lang}/[^-/]+-{c}-[^/]*\.ogg"
        )
        for who, c, split in (("big", "v", big_split), ("small", "m", small_split))
    )
    credit = f"{_FILLETS_CREDIT}; {language} voices of the big fish (male) and small fish (female)"
    return Package(f"fillets-ng-data-{lang}", "1.0.1-1.1", "GPL-2", credit, None, voices)


_JUNE = (
    "recorded by June Wallack (http://www.junewallack.com); translated into French by Clod "
    "Patry, Kristopher Lalletti and June Wallack; financial contributions by Digium, Inc., "
    "Unlimitel and BGM Informatique"
)
_CARLO = (
    "recorded by Carlo Flora (http://www.carloflora.com, http://www.segreterietelefoniche.it); "
    "translated by Silvia Petrin"
)
_IVRVOICE = "provided by Maxim Topal (http://www.ivrvoice.ru); the artist is not named"

# one row per package; the split of each speaker is decided here and nowhere else
PACKAGES = (
    _asterisk("en", "en_US_f_Allison", "asterisk_allison", "train", "CC-BY-SA-3.0", "*", _ALLISON),
    _asterisk("es", "es_MX_f_Allison", "asterisk_allison", "train", "CC-BY-SA-3.0", "*", _ALLISON),
    _asterisk("fr", "fr_CA_f_June", "asterisk_fr_june", "val", "CC-BY-SA-3.0", "fr-*", _JUNE),
    _asterisk("it", "it_IT_m_Carlo", "asterisk_it_carlo", "test", "CC-BY-3.0", "it-*", _CARLO),
    _asterisk(
        "ru", "ru_RU_f_IvrvoiceRU", "asterisk_ru_ivrvoice", "train", "CC-BY-3.0", "ru-*", _IVRVOICE
    ),
    _fillets("cs", "Czech", big_split="train", small_split="train"),
    _fillets("nl", "Dutch", big_split="train", small_split="test"),
)


def recipe() -> str:
    """sha256 of everything that decides the corpus' content: packages, voices, filters."""
    settings = {
        "format": FORMAT,
        "packages": [asdict(p) for p in PACKAGES],
        "filters": [MIN_DURATION_S, CLIP_LEVEL, MAX_CLIPPED_FRACTION, MIN_SPEECH_FRACTION],
        "activity": [ACTIVITY_FRAME, ACTIVITY_RANGE_DB, ACTIVITY_FLOOR_DBFS],
        "sample_rate": SAMPLE_RATE,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_built(out: Path) -> str | None:
    """None if `out` holds a complete build of the current recipe, else the reason it does not.

    Quick: compares the stamp with the recipe, the manifest's sha256 and the files' total size;
    `verify` re-reads every file.
    """
    try:
        stamp = json.loads((out / STAMP).read_text())
        manifest = (out / "manifest.csv").read_bytes()
    except (OSError, ValueError) as err:
        return f"no complete build stamp ({err})"
    if stamp.get("recipe") != recipe():
        return "built from another recipe (packages, voices or filters changed)"
    if stamp.get("manifest_sha256") != hashlib.sha256(manifest).hexdigest():
        return "manifest.csv changed since the build"
    rows = list(csv.DictReader(io.StringIO(manifest.decode())))
    paths = [out / r["path"] for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        return f"{len(missing)} files missing, e.g. {missing[0]}"
    if sum(p.stat().st_size for p in paths) != stamp.get("bytes"):
        return "file sizes differ from the build"
    return None


def verify(out: Path) -> list[str]:
    """Paths whose sha256 differs from the manifest (slow: reads every file)."""
    with open(out / "manifest.csv", newline="") as f:
        return [r["path"] for r in csv.DictReader(f) if _sha256(out / r["path"]) != r["sha256"]]


def _deb_version(deb: Path) -> str:
    return unquote(deb.name.split("_")[1])  # NAME_VERSION_ARCH.deb, epoch ':' quoted as %3a


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def download(packages: tuple[Package, ...], dest: Path) -> dict[str, Path]:
    """`apt-get download` each pinned package into dest; the newest version if the pin is gone."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise MediumError(APT_MISSING.format(debs=", ".join(_deb_name(p) for p in packages)))
    # apt drops privileges to _apt for downloads, which cannot write to a private temp folder
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    # one call for all pins is fast (apt reads its lists once); one call each only on failure
    pins = [f"{p.name}={p.version}" for p in packages]
    if _run([apt, *sandbox, "download", *pins], cwd=dest).returncode == 0:
        return {p.name: _pick_deb(p, dest) for p in packages}
    updated = False
    debs = {}
    for pkg in packages:
        for target in (f"{pkg.name}={pkg.version}", pkg.name):
            res = _run([apt, *sandbox, "download", target], cwd=dest)
            if res.returncode != 0 and not updated and os.geteuid() == 0:
                logger.info("apt-get download %s failed; running apt-get update once", target)
                _run([apt, "update"])
                updated = True
                res = _run([apt, *sandbox, "download", target], cwd=dest)
            if res.returncode == 0:
                break
            logger.info("apt-get download %s: %s", target, res.stderr.strip()[-300:])
        else:
            raise MediumError(
                f"apt-get download {pkg.name} failed: {res.stderr.strip()[-300:]}; run "
                "`apt-get update` (as root) and retry, or fetch the .deb files by hand and pass "
                "--debs FOLDER"
            )
        debs[pkg.name] = _pick_deb(pkg, dest)
    return debs


def _deb_name(pkg: Package) -> str:
    return f"{pkg.name}_{pkg.version}_all.deb"


def _pick_deb(pkg: Package, folder: Path) -> Path:
    """The package's .deb in folder: the pinned version, else the only one there (warning)."""
    found = sorted(folder.glob(f"{pkg.name}_*.deb"))
    pinned = [d for d in found if _deb_version(d) == pkg.version]
    if pinned:
        return pinned[0]
    if len(found) == 1:
        warnings.warn(
            f"{pkg.name}: pinned version {pkg.version} is not available; using "
            f"{_deb_version(found[0])} instead (the corpus may differ from the documented one)",
            stacklevel=2,
        )
        return found[0]
    names = ", ".join(d.name for d in found) or "none"
    raise MediumError(
        f"{folder}: expected {_deb_name(pkg)} (or one other version of {pkg.name}), found {names}"
    )


def extract(deb: Path, dest: Path) -> None:
    """Unpack a .deb's files into dest: dpkg-deb if present, else Python's own ar/tar reading."""
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg-deb"):
        res = _run(["dpkg-deb", "-x", str(deb), str(dest)])
        if res.returncode != 0:
            raise MediumError(f"{deb}: dpkg-deb -x failed: {res.stderr.strip()}")
        return
    _extract_ar(deb, dest)


def _extract_ar(deb: Path, dest: Path) -> None:
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise MediumError(f"{deb}: not a Debian package (no ar archive header)")
    again = "download it again (or delete it and let apt-get fetch it)"
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]  # name 16, dates/ids/mode 32, size 10, magic 2
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size_field = header[48:58].strip()
        if not size_field.isdigit() or header[58:] != b"`\n":
            raise MediumError(
                f"{deb}: malformed ar member header at byte {pos} (size {size_field!r}); "
                f"expected a Debian binary package: {again}"
            )
        size = int(size_field)
        if pos + 60 + size > len(data):
            raise MediumError(
                f"{deb}: truncated: member {name!r} needs {size} bytes, the file has "
                f"{len(data) - pos - 60} left; {again}"
            )
        body = data[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise MediumError(f"{deb}: {name} needs dpkg-deb (Python cannot read zstd)")
            try:
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                    tar.extractall(dest, filter="data")
            except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as err:
                raise MediumError(f"{deb}: {name} cannot be unpacked ({err}); {again}") from err
            return
        pos += 60 + size + size % 2  # members are 2-byte aligned
    raise MediumError(f"{deb}: no data.tar member; expected a Debian binary package")


def speech_fraction(x: np.ndarray) -> float:
    """Fraction of 32 ms frames that are active: energy within 35 dB of the loudest frame and
    above -50 dBFS. x: float (samples,) at 16 kHz in [-1, 1]. A simple energy detector is enough
    here: of the candidates >= 1 s, the 50 silence prompts score 0.00, all other files >= 0.39."""
    n = len(x) // ACTIVITY_FRAME
    if n == 0:
        return 0.0
    power = np.mean(np.square(x[: n * ACTIVITY_FRAME].reshape(n, ACTIVITY_FRAME)), axis=1)
    level = 10 * np.log10(power + 1e-12)
    threshold = max(level.max() - ACTIVITY_RANGE_DB, ACTIVITY_FLOOR_DBFS)
    return float(np.mean(level > threshold))


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """float64 (channels, samples) in [-1, 1] and the sample rate; G.722 needs PyAV (FFmpeg)."""
    if path.suffix == ".g722":
        import av

        with av.open(str(path), format="g722") as container:
            chunks = [f.to_ndarray() for f in container.decode(audio=0)]
            rate = container.streams.audio[0].rate
        x = np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.int16)
        return x.astype(np.float64) / 32768.0, rate
    import soundfile as sf

    x, rate = sf.read(path, dtype="float64", always_2d=True)
    return x.T, rate


def _convert(job: tuple[str, str]) -> tuple[str, float, str]:
    """Decode, filter and write one file: (reason dropped or "", duration in s, sha256)."""
    import soundfile as sf
    import soxr

    src, dst = Path(job[0]), Path(job[1])
    if src.stat().st_size == 0:
        return "empty file", 0.0, ""
    try:
        x, rate = _decode(src)
    except Exception as err:
        raise MediumError(f"{src}: cannot decode ({err})") from err
    if x.shape[1] < MIN_DURATION_S * rate:
        return f"shorter than {MIN_DURATION_S} s", 0.0, ""
    if np.mean(np.abs(x) >= CLIP_LEVEL) >= MAX_CLIPPED_FRACTION:
        return "clipped", 0.0, ""
    y = x.mean(axis=0)
    if rate != SAMPLE_RATE:
        y = soxr.resample(y, rate, SAMPLE_RATE, quality="VHQ")
    pcm = np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)
    if speech_fraction(pcm / 32768.0) < MIN_SPEECH_FRACTION:
        return "mostly silence", 0.0, ""
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return "", len(pcm) / SAMPLE_RATE, _sha256(dst)


def _utterance_name(voice: Voice, rel: str) -> str:
    parts = [voice.lang] + [p for p in rel.rsplit(".", 1)[0].split("/") if p != voice.lang]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join(parts))


def _jobs(package: Package, version: str, tree: Path, out: Path) -> list[tuple[tuple, dict]]:
    """(src, dst) conversion jobs with their manifest rows, for one extracted package."""
    jobs = []
    for voice in package.voices:
        root = tree / voice.root
        if not root.is_dir():
            raise MediumError(f"{package.name} {version}: no folder {voice.root}; layout changed?")
        regex = re.compile(voice.pattern)
        for src in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = src.relative_to(root).as_posix()
            if not regex.fullmatch(rel):
                continue
            path = f"{voice.split}/{voice.speaker}/{_utterance_name(voice, rel)}.flac"
            row = {
                "path": path,
                "split": voice.split,
                "speaker": voice.speaker,
                "source_package": f"deb:{package.name}",
                "source_version": version,
                "path_in_package": src.relative_to(tree).as_posix(),
                "license": package.license,
            }
            jobs.append(((str(src), str(out / path)), row))
    if not jobs:
        raise MediumError(f"{package.name} {version}: no files match the voice patterns")
    return jobs


def _notice(copyright_text: str, files: str | None) -> str:
    """The stanza of a DEP-5 copyright file whose `Files:` field is `files`; else the whole text."""
    for stanza in re.split(r"\n\s*\n", copyright_text):
        if files is not None and re.match(rf"Files:\s*{re.escape(files)}\s*$", stanza, re.M):
            return stanza.strip()
    return copyright_text.strip()


def _licenses_md(used: dict[str, str], copyrights: dict[str, str]) -> str:
    lines = [
        "# Licenses of the recordings in this corpus",
        "",
        "Built by `python recipes/medium.py build` from the Debian packages below",
        "(`manifest.csv` gives each file's package, version, path in the package and license).",
        "Every file was **modified**: decoded (G.722 or Vorbis), mixed to mono, resampled to",
        "16 kHz (soxr VHQ) and re-encoded as 16-bit FLAC; nothing was trimmed. Each file keeps",
        "its source's license: the collection as a whole is not under one license. CC BY-SA files",
        "(and changed versions of them) stay CC BY-SA; for the GPL-2 files, the source is the",
        "package named with its version plus the sdm code that converts it. The full copyright",
        "file of each package is in `copyright/`.",
    ]
    for pkg in PACKAGES:
        voices = ", ".join(f"{v.split}/{v.speaker}" for v in pkg.voices)
        notice = _notice(copyrights[pkg.name], pkg.notice).splitlines()
        lines += [
            "",
            f"## {pkg.name} {used[pkg.name]} ({voices}): {pkg.license}",
            "",
            f"Attribution: {pkg.attribution}.",
            f"License: {pkg.license}, {LICENSE_URLS[pkg.license]}",
            f"From the package's copyright file (`copyright/{pkg.name}`):",
            "",
        ]
        lines += [f"    {line}" if line.strip() else "" for line in notice]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    from sdm.results import write_text  # the project's one atomic writer

    write_text(path, text)


def _mark(folder: Path, name: str) -> None:
    """Say in `folder` that this process made it, under the name it has (or is about to have)."""
    mark = {"made_by": "python recipes/medium.py build", "folder": name, "pid": os.getpid()}
    (folder / BUILD_MARK).write_text(json.dumps({**mark, "host": socket.gethostname()}) + "\n")


def _ours(folder: Path) -> bool:
    """True for a staging or replaced folder that a build on this host made and whose process is
    gone: its name is .<out>.tmp-<pid> or .<out>.old-<pid>, and its mark says so."""
    try:
        mark = json.loads((folder / BUILD_MARK).read_text())
    except (OSError, ValueError):
        return False  # not marked: someone else's folder, whatever its name
    if not isinstance(mark, dict) or mark.get("folder") != folder.name:
        return False
    if mark.get("host") != socket.gethostname():
        return False  # its process may be running on the other host: leave it
    pid = mark.get("pid")
    return pid == os.getpid() or (isinstance(pid, int) and not Path(f"/proc/{pid}").exists())


def _remove_leftovers(out: Path) -> None:
    """Delete what earlier builds killed mid-way left beside `out`; nothing else."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(tmp|old)-\d+")
    for folder in out.parent.iterdir():
        if pattern.fullmatch(folder.name) and folder.is_dir() and _ours(folder):
            logger.info("removing %s, left by an interrupted build", folder)
            shutil.rmtree(folder, ignore_errors=True)


def _check_tools() -> None:
    missing = []
    for module in ("av", "soundfile", "soxr"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MediumError(
            f"the medium-corpus build needs the Python packages {', '.join(missing)} (av decodes "
            "G.722); install the pinned environment: pip install -r requirements.txt"
        )


def build_medium(
    out: str | Path | None = None,
    debs: str | Path | None = None,
    workers: int = WORKERS,
    force: bool = False,
) -> Path:
    """Build the medium corpus into `out` (default data/medium) unless it is already there.

    debs: a folder with the 7 .deb files, instead of downloading them with apt-get.
    Returns out. Raises MediumError with what to do when a step cannot be done.
    """
    from sdm import data

    out = Path(out) if out is not None else data.medium_dir()
    reason = check_built(out) if out.exists() else "not built"
    if reason is None and not force:
        logger.info("%s: already built (%s); nothing to do", out, STAMP)
        return out
    ours = (out / "manifest.csv").exists() or (out / STAMP).exists()
    if out.exists() and any(out.iterdir()) and not ours:
        raise MediumError(f"{out} exists and is not a medium corpus; remove it or choose --out")
    _check_tools()
    if out.exists():
        logger.info("%s: rebuilding (%s)", out, "--force" if reason is None else reason)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    t0 = time.monotonic()
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        staging.mkdir()
    except FileExistsError:
        raise MediumError(
            f"{staging} exists and was not made by an earlier build on this host; remove it"
        ) from None
    _mark(staging, staging.name)
    try:
        work = staging / "_work"
        work.mkdir()
        if debs is None:
            (work / "debs").mkdir()
            deb_files = download(PACKAGES, work / "debs")
        else:
            deb_files = {p.name: _pick_deb(p, Path(debs)) for p in PACKAGES}
        logger.info("%d packages ready after %.1f s", len(deb_files), time.monotonic() - t0)
        used, copyrights, jobs = {}, {}, []
        (staging / "copyright").mkdir()
        for pkg in PACKAGES:
            tree = work / "tree" / pkg.name
            extract(deb_files[pkg.name], tree)
            used[pkg.name] = _deb_version(deb_files[pkg.name])
            copyright_file = tree / "usr/share/doc" / pkg.name / "copyright"
            copyrights[pkg.name] = copyright_file.read_text(errors="replace")
            shutil.copyfile(copyright_file, staging / "copyright" / pkg.name)
            jobs += _jobs(pkg, used[pkg.name], tree, staging)
        logger.info("%d candidate files after %.1f s", len(jobs), time.monotonic() - t0)
        results = _convert_all([j for j, _ in jobs], workers)
        rows, dropped = [], {}
        for (_, row), (why, duration, sha) in zip(jobs, results):
            if why:
                dropped[why] = dropped.get(why, 0) + 1
            else:
                rows.append({**row, "duration_s": f"{duration:.3f}", "sha256": sha})
        _check_split(rows)
        rows.sort(key=lambda r: (SPLITS.index(r["split"]), r["path"]))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _write_text(staging / "manifest.csv", buf.getvalue())
        _write_text(staging / "LICENSES.md", _licenses_md(used, copyrights))
        shutil.rmtree(work)
        stamp = {
            "recipe": recipe(),
            "manifest_sha256": hashlib.sha256(buf.getvalue().encode()).hexdigest(),
            "files": len(rows),
            "bytes": sum((staging / r["path"]).stat().st_size for r in rows),
            "hours": round(sum(float(r["duration_s"]) for r in rows) / 3600, 3),
            "dropped": dropped,
            "packages": used,
            "build_s": round(time.monotonic() - t0, 1),
        }
        _write_text(staging / STAMP, json.dumps(stamp, indent=1) + "\n")
        if out.exists():
            _mark(out, old.name)  # marked first: if killed after the rename, a later build knows
            os.rename(out, old)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    logger.info("%s: built in %.1f s", out, time.monotonic() - t0)
    return out


def _convert_all(jobs: list[tuple[str, str]], workers: int) -> list[tuple[str, float, str]]:
    if workers <= 1:
        return [_convert(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_convert, jobs, chunksize=16))


def _check_split(rows: list[dict]) -> None:
    splits: dict[str, set[str]] = {}
    for r in rows:
        splits.setdefault(r["speaker"], set()).add(r["split"])
    shared = sorted(s for s, found in splits.items() if len(found) > 1)
    if shared:
        raise MediumError(f"speakers in more than one split: {shared}; fix PACKAGES")
    empty = [s for s in SPLITS if not any(r["split"] == s for r in rows)]
    if empty:
        raise MediumError(f"no files kept for split(s) {empty}; the packages' contents changed?")


def summary(out: str | Path | None = None) -> str:
    """Files, hours and minutes per split and speaker of a built corpus, as printable text."""
    from sdm import data

    out = Path(out) if out is not None else data.medium_dir()
    reason = check_built(out) if out.exists() else "not built"
    if reason is not None:
        return f"{out}: {reason}; build it with `make data-medium`"
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    stamp = json.loads((out / STAMP).read_text())
    minutes: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["split"], r["speaker"])
        minutes[key] = minutes.get(key, 0.0) + float(r["duration_s"]) / 60
    lines = [
        f"{out}: {len(rows)} files, {stamp['hours']:.2f} h, {stamp['bytes'] / 1e6:.0f} MB, "
        f"{len({r['speaker'] for r in rows})} speakers; dropped: {stamp['dropped']}"
    ]
    for split in SPLITS:
        mins = {s: m for (sp, s), m in sorted(minutes.items()) if sp == split}
        parts = ", ".join(f"{s} {m:.1f}" for s, m in mins.items())
        lines.append(f"  {split:<5} {sum(mins.values()):6.1f} min: {parts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`build` (or rebuild when damaged) and describe the corpus; `info` only describes it. A step
    that cannot be done ends with one line on standard error and exit status 2."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(
        prog="python recipes/medium.py", description=__doc__.split("\n")[0]
    )
    ap.add_argument("action", choices=("build", "info"))
    ap.add_argument("--out", default=None, help="corpus folder (default: data/medium)")
    ap.add_argument("--debs", default=None, help="a folder of the .deb files, instead of apt-get")
    ap.add_argument("--workers", type=int, default=WORKERS, help="conversion processes")
    ap.add_argument("--force", action="store_true", help="rebuild even when already built")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.action == "build":
            build_medium(args.out, args.debs, workers=args.workers, force=args.force)
        print(summary(args.out))
    except MediumError as err:
        print(f"{ap.prog} {args.action}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

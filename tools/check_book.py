"""Read every page of built books the way a reader's browser shows them, and fail on what a reader
would see wrong. Saves a full-height screenshot of every page.

Each page is opened in headless Chromium (Debian's), offline: in a network namespace without
interfaces where the system allows it, behind a dead proxy and with the DevTools network emulation
offline in any case. MathJax gets at least 15 s of virtual time, then the page is measured at
1280 px. A page fails on:

- a request to the network (the book must work from its files alone);
- raw TeX in the visible text, or a formula MathJax did not typeset;
- a Python warning, traceback or error in a cell output (admonitions the page writes are fine);
- an absolute path of the machine that built it;
- a missing or blank image, or an image shrunk so far that its text falls under ~10 px;
- a figure without a caption;
- a table wider than its column, or a page wider than the window, at 1280 px;
- a blank page.

Usage: python tools/check_book.py HTML_DIR [HTML_DIR ...] [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp import Browser, CDPError, find_chromium  # noqa: E402

WIDTH = 1280
HEIGHT = 900
MATH_VIRTUAL_MS = 15_000
MAX_SHOT_HEIGHT = 16_000  # Chromium's largest capture; a taller page is saved in parts
MIN_SCALE = 0.75  # figures are drawn with >= 9.5 pt text at 100 dpi: 13 px, so >= 10 px shown
MIN_TEXT = 200  # characters of text in the article: less is a blank page
SKIP = {"search.html", "genindex.html", "py-modindex.html"}

# What the page reports about itself, measured after MathJax ran (JSON-serialisable values only).
PROBE = r"""
(() => {
  const article = document.querySelector("article") || document.body;
  const skipTags = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "TEXTAREA", "MJX-CONTAINER",
                            "MJX-ASSISTIVE-MML", "NOSCRIPT"]);
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    let el = n.parentElement, skip = false;
    while (el && el !== article) {
      if (skipTags.has(el.tagName) || el.classList.contains("highlight")) { skip = true; break; }
      el = el.parentElement;
    }
    if (!skip && n.textContent.trim()) texts.push(n.textContent);
  }
  const maths = [...article.querySelectorAll(".math")];
  const untypeset = maths.filter(m => !m.querySelector("mjx-container"))
      .map(m => m.textContent.slice(0, 80));
  const outputs = [...article.querySelectorAll(".cell_output .output, .cell_output pre")]
      .map(o => ({cls: o.className, text: o.innerText.slice(0, 4000)}));
  const images = [...article.querySelectorAll("img")].map(img => {
    const fig = img.closest("figure");
    const cap = fig ? fig.querySelector("figcaption") : null;
    return {src: img.currentSrc || img.src, alt: img.alt, natural: img.naturalWidth,
            naturalHeight: img.naturalHeight, shown: img.getBoundingClientRect().width,
            complete: img.complete, caption: cap ? cap.innerText.trim() : ""};
  });
  const column = article.getBoundingClientRect();
  const tables = [...article.querySelectorAll("table")].map(t => {
    const box = t.parentElement;
    return {width: t.scrollWidth, room: Math.min(box.clientWidth, column.width),
            head: (t.rows[0] ? t.rows[0].innerText : "").slice(0, 60)};
  });
  return {
    title: document.title,
    text: texts.join(" "),
    articleText: article.innerText.length,
    untypeset, outputs, images, tables,
    pageWidth: document.documentElement.scrollWidth,
    windowWidth: window.innerWidth,
    height: document.documentElement.scrollHeight,
    mathjax: typeof window.MathJax !== "undefined",
    nMath: maths.length,
  };
})()
"""

RAW_TEX = re.compile(
    r"\\[()\[\]]|\$\$|\\(?:frac|mathbf|mathrm|mathcal|operatorname|left|right|begin|end|sum|log|"
    r"mu|sigma|gamma|alpha|lVert|rVert|boldsymbol|qquad|tfrac|dfrac|sqrt|cdot|tag)\b"
)
OUTPUT_PROBLEMS = [
    (re.compile(r"Traceback \(most recent call last\)"), "a Python traceback"),
    (re.compile(r"\b\w*Warning: "), "a Python warning"),
    (re.compile(r"\b[A-Z]\w*Error: "), "an error message"),
]
MACHINE_PATHS = re.compile(r"(?<![\w.~-])/(?:home|root|work|tmp|Users|mnt|scratch|builds?)/[\w.-]+")


@dataclass
class PageResult:
    book: str
    page: str
    problems: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)


def _is_redirect(path: Path) -> bool:
    head = path.read_text(encoding="utf-8", errors="replace")[:2000].lower()
    return 'http-equiv="refresh"' in head


def book_pages(html_dir: Path) -> list[Path]:
    """Every page a reader can reach: the documents of this build (its search index lists them;
    stale files of earlier builds are left out), less indices and redirects."""
    index = html_dir / "searchindex.js"
    if index.is_file() and (m := re.search(r'"docnames":\s*(\[[^\]]*\])', index.read_text())):
        candidates = [html_dir / f"{name}.html" for name in json.loads(m.group(1))]
    else:
        candidates = list(html_dir.rglob("*.html"))
    pages = []
    for path in sorted(candidates):
        rel = path.relative_to(html_dir)
        if rel.parts[0].startswith("_") or rel.name in SKIP or _is_redirect(path):
            continue
        pages.append(path)
    return pages


def _image_is_blank(src: str) -> bool | None:
    """True when an image has a single colour; None when it cannot be read."""
    from PIL import Image, ImageStat

    try:
        if src.startswith("data:"):
            data = base64.b64decode(src.split(",", 1)[1])
            image = Image.open(io.BytesIO(data))
        elif src.startswith("file://"):
            from urllib.parse import unquote, urlparse

            image = Image.open(unquote(urlparse(src).path))
        else:
            return None
        extrema = ImageStat.Stat(image.convert("RGB")).extrema
    except (OSError, ValueError):
        return None
    return all(lo == hi for lo, hi in extrema)


def judge(report: dict[str, Any], html: str, machine_paths: list[str]) -> list[str]:
    """Problems of one page, from the browser's report and the page's HTML source."""
    found = []
    if report["articleText"] < MIN_TEXT:
        found.append("blank page (almost no text in the article)")
    raw = sorted({m.group(0) for m in RAW_TEX.finditer(report["text"])})
    if raw:
        found.append(f"raw TeX in the text: {', '.join(raw[:6])}")
    if report["untypeset"]:
        found.append(
            f"{len(report['untypeset'])} formula(s) not typeset, e.g. {report['untypeset'][0]!r}"
        )
    for out in report["outputs"]:
        for pattern, what in OUTPUT_PROBLEMS:
            if m := pattern.search(out["text"]):
                line = out["text"][max(0, m.start() - 60) : m.end() + 80].replace("\n", " ")
                found.append(f"{what} in an output: …{line}…")
        if "stderr" in out["cls"] and out["text"].strip():
            found.append(f"output on stderr: {out['text'].strip()[:120]!r}")
    for needle in machine_paths:
        if needle and needle in html:
            found.append(f"the build machine's path {needle!r} appears in the page")
    shown = report["text"] + "\n" + "\n".join(out["text"] for out in report["outputs"])
    if m := MACHINE_PATHS.search(shown):
        found.append(f"an absolute path in the text: {m.group(0)!r}")
    for img in report["images"]:
        name = img["src"][:60] if not img["src"].startswith("data:") else "an embedded image"
        if not img["complete"] or img["natural"] == 0:
            found.append(f"image does not load: {name}")
            continue
        if img.get("blank"):
            found.append(f"blank image (one colour): {name}")
        if not img["caption"]:
            found.append(f"figure without a caption: {name}")
        if img["shown"] < MIN_SCALE * img["natural"] - 1:
            found.append(
                f"image shown at {img['shown'] / img['natural']:.0%} of its width "
                f"({img['natural']} px into {img['shown']:.0f}): its text is too small"
            )
    for table in report["tables"]:
        if table["width"] > table["room"] + 1:
            found.append(
                f"table wider than the page ({table['width']} px in {table['room']:.0f}): "
                f"{table['head']!r}"
            )
    if report["pageWidth"] > report["windowWidth"] + 1:
        found.append(f"page scrolls sideways ({report['pageWidth']} px at {WIDTH})")
    return found


def _screenshot(browser: Browser, session: str, height: int, out: Path) -> list[Path]:
    """Full-height PNG(s) of the page: one file, or parts of MAX_SHOT_HEIGHT px."""
    shots = []
    parts = max(1, -(-height // MAX_SHOT_HEIGHT))
    for i in range(parts):
        top = i * MAX_SHOT_HEIGHT
        clip = {
            "x": 0,
            "y": top,
            "width": WIDTH,
            "height": min(MAX_SHOT_HEIGHT, height - top),
            "scale": 1,
        }
        data = browser.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session,
        )["data"]
        path = out if parts == 1 else out.with_name(f"{out.stem}-part{i + 1}.png")
        path.write_bytes(base64.b64decode(data))
        shots.append(path)
    return shots


def check_page(
    browser: Browser, path: Path, label: str, rel: str, shots: Path, machine_paths: list[str]
) -> PageResult:
    result = PageResult(label, rel)
    session = browser.new_page(WIDTH, HEIGHT)
    try:
        browser.send("Page.navigate", {"url": path.resolve().as_uri()}, session)
        browser.wait_event(session, "Page.loadEventFired", timeout=120)
        # then at least 15 s of the page's own time (timers run at once: no real wait)
        browser.send(
            "Emulation.setVirtualTimePolicy",
            {"policy": "pauseIfNetworkFetchesPending", "budget": MATH_VIRTUAL_MS},
            session,
        )
        browser.wait_event(session, "Emulation.virtualTimeBudgetExpired", timeout=180)
        browser.send("Emulation.setVirtualTimePolicy", {"policy": "advance"}, session)
        # MathJax typesets asynchronously: wait (real time, bounded) for its promise as well
        browser.evaluate(
            session,
            "new Promise(r => { const d = Date.now() + 60000; (function w() {"
            " if (!window.MathJax || (MathJax.startup && MathJax.startup.promise) ||"
            " Date.now() > d) { Promise.resolve(window.MathJax && MathJax.startup &&"
            " MathJax.startup.promise).then(r, r); } else setTimeout(w, 100); })(); })",
            await_promise=True,
        )
        report = browser.evaluate(session, PROBE)
        for img in report["images"]:
            img["blank"] = _image_is_blank(img["src"])
        html = path.read_text(encoding="utf-8", errors="replace")
        result.problems = judge(report, html, machine_paths)
        for event in browser.events(session, "Network.requestWillBeSent"):
            url = event["params"]["request"]["url"]
            if not url.startswith(("file:", "data:", "blob:", "about:")):
                result.problems.append(f"requests the network: {url[:100]}")
        shot = shots / label / (rel.replace("/", "_").removesuffix(".html") + ".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        result.screenshots = _screenshot(browser, session, report["height"], shot)
        if rel.endswith("index.html"):  # the landing page: what a reader sees first, one screen
            first = shot.with_name(shot.stem + "-first-screen.png")
            data = browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
            first.write_bytes(base64.b64decode(data))
            result.screenshots.append(first)
    finally:
        browser.close_page(session)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path, nargs="+", help="built books' html folders")
    ap.add_argument("--screenshots", type=Path, default=Path(".build/screenshots"))
    args = ap.parse_args(argv)
    binary = find_chromium()
    if binary is None:
        print("error: no Chromium found; install Debian's 'chromium' (apt-get install chromium)")
        return 2
    repo = Path(__file__).resolve().parent.parent
    machine_paths = sorted({str(repo), str(Path.home())} - {"/", "/root"})
    results: list[PageResult] = []
    start = time.monotonic()
    with Browser(binary) as browser:
        where = "no network namespace" if not browser.offline_namespace else "unshare -n"
        print(f"checking in {binary} at {WIDTH} px, offline ({where}, dead proxy)")
        for html_dir in args.html:
            if not (html_dir / "index.html").is_file():
                print(f"FAIL {html_dir}: not a built book (no index.html)")
                results.append(PageResult(str(html_dir), "index.html", ["not built"]))
                continue
            label = _label(html_dir)
            for path in book_pages(html_dir):
                rel = path.relative_to(html_dir).as_posix()
                try:
                    res = check_page(browser, path, label, rel, args.screenshots, machine_paths)
                except CDPError as err:
                    res = PageResult(label, rel, [f"the browser failed: {err}"])
                results.append(res)
                status = "FAIL" if res.problems else "ok  "
                where = ", ".join(str(s) for s in res.screenshots)
                print(f"{status} {label}/{rel}" + (f" ({where})" if where else ""))
                for problem in res.problems:
                    print(f"       - {problem}")
    failed = sum(bool(r.problems) for r in results)
    summary = {f"{r.book}/{r.page}": r.problems for r in results}
    args.screenshots.mkdir(parents=True, exist_ok=True)
    (args.screenshots / "report.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(results) - failed} passed, {failed} failed ({time.monotonic() - start:.0f} s)")
    return 1 if failed else 0


def _label(html_dir: Path) -> str:
    """A short name for a build: 'committed' for book/, else the profile folder's name."""
    parts = html_dir.resolve().parts
    if "book" in parts and ".build" not in parts:
        return "committed"
    return parts[parts.index(".build") + 1] if ".build" in parts else html_dir.name


if __name__ == "__main__":
    sys.exit(main())

"""Open a built book in headless Chromium and fail if a page is blank, shows an error, or lacks
what it must show (the Table 1 table, the audio players). Saves a screenshot of each page.

Usage: python tools/check_book.py BUILD_HTML_DIR [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
]
# page -> (what must be in its rendered DOM, why)
PAGES = {
    "index.html": [(r"SDM-VAE|sparsity", "the introduction's text")],
    "generated/table1.html": [
        (r"<table", "Table 1"),
        (r"PESQ raw-nb", "the paper-comparable columns"),
    ],
    "generated/spectrograms.html": [(r"<audio", "audio players"), (r"<img", "spectrogram figures")],
    "generated/sparsity.html": [(r"<img", "the sparsity figures")],
    "generated/derive_gamma.html": [(r"<img", "the penalty figure")],
}
ERRORS = [
    (r"Traceback \(most recent call last\)", "a Python traceback"),
    (r'class="[^"]*\boutput\b[^"]*\berror\b', "an error output cell"),
    (r"\b(?:[A-Z][a-zA-Z]+Error|Exception): ", "an exception message"),
]
MIN_TEXT = 400  # characters of visible text: less is a blank page


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit(
        "error: no Chromium found; install Debian's 'chromium' package (apt-get install chromium)"
    )


def render(browser: str, page: Path, screenshot: Path) -> str:
    """The page's DOM after scripts ran, and a full-width screenshot."""
    with tempfile.TemporaryDirectory() as profile:
        common = [browser, *FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run(
            [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
        )
        subprocess.run(
            [*common, "--window-size=1280,1600", f"--screenshot={screenshot}", page.as_uri()],
            capture_output=True,
            timeout=120,
        )
    if dom.returncode != 0:
        raise RuntimeError(f"{page}: chromium exited {dom.returncode}: {dom.stderr[-500:]}")
    return dom.stdout


def problems(page: str, dom: str, screenshot: Path) -> list[str]:
    found = []
    text = re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", dom, flags=re.S)
    if len(" ".join(text.split())) < MIN_TEXT:
        found.append("blank page (almost no visible text)")
    for pattern, what in ERRORS:
        if re.search(pattern, dom):
            found.append(f"shows {what}")
    for pattern, what in PAGES[page]:
        if not re.search(pattern, dom):
            found.append(f"lacks {what}")
    if not screenshot.exists() or screenshot.stat().st_size < 5000:
        found.append("no usable screenshot")
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path, help="the built book's html folder")
    ap.add_argument("--screenshots", type=Path, default=Path(".build/screenshots"))
    args = ap.parse_args()
    browser = chromium()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    failures = 0
    for page in PAGES:
        path = args.html / page
        if not path.exists():
            print(f"FAIL {page}: not built ({path})")
            failures += 1
            continue
        shot = args.screenshots / (page.replace("/", "_").removesuffix(".html") + ".png")
        found = problems(page, render(browser, path.resolve(), shot), shot)
        print(
            ("FAIL " if found else "ok   ")
            + page
            + (": " + "; ".join(found) if found else f" ({shot})")
        )
        failures += bool(found)
    print(f"{len(PAGES) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""tools/check_book.py fails on what a reader would see wrong, and passes a clean page."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import check_book  # noqa: E402
from cdp import find_chromium  # noqa: E402


def _report(**kw) -> dict:
    base = {
        "text": "Plain prose with typeset maths.",
        "articleText": 1000,
        "untypeset": [],
        "outputs": [],
        "images": [],
        "tables": [],
        "pageWidth": 1280,
        "windowWidth": 1280,
    }
    return base | kw


def test_a_clean_page_passes() -> None:
    assert check_book.judge(_report(), "<html></html>", ["/work/wt/x"]) == []


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ({"text": r"the KL is \(\frac12 \log x\)"}, "raw TeX"),
        ({"untypeset": [r"\(x\)"]}, "not typeset"),
        (
            {"outputs": [{"cls": "output stream", "text": "x.py:3: UserWarning: careful"}]},
            "warning",
        ),
        (
            {"outputs": [{"cls": "output", "text": "Traceback (most recent call last):"}]},
            "traceback",
        ),
        ({"outputs": [{"cls": "output stderr", "text": "something"}]}, "stderr"),
        ({"outputs": [{"cls": "output", "text": "run in /home/me/results"}]}, "absolute path"),
        (
            {
                "images": [
                    {"src": "a.png", "natural": 0, "shown": 0, "complete": True, "caption": ""}
                ]
            },
            "does not load",
        ),
        (
            {
                "images": [
                    {"src": "a.png", "natural": 600, "shown": 600, "complete": True, "caption": ""}
                ]
            },
            "without a caption",
        ),
        (
            {
                "images": [
                    {
                        "src": "a.png",
                        "natural": 1500,
                        "shown": 680,
                        "complete": True,
                        "caption": "c",
                    }
                ]
            },
            "too small",
        ),
        ({"tables": [{"width": 900, "room": 688, "head": "model"}]}, "table wider"),
        ({"articleText": 10}, "blank page"),
    ],
)
def test_each_defect_fails_the_page(report: dict, expected: str) -> None:
    found = check_book.judge(_report(**report), "<html></html>", [])
    assert any(expected in p for p in found), found


def test_the_build_machines_path_in_the_html_fails() -> None:
    found = check_book.judge(_report(), '<a href="/work/wt/x/results">', ["/work/wt/x"])
    assert any("build machine's path" in p for p in found)


def test_a_single_colour_image_is_blank() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (20, 10), "white").save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert check_book._image_is_blank(uri) is True


@pytest.mark.skipif(find_chromium() is None, reason="needs Debian's chromium")
def test_the_browser_check_reads_a_real_page(tmp_path: Path) -> None:
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(
        "<html><body><article><p>" + "Some prose. " * 40 + r"</p><p>raw \(x^2\) here</p>"
        '<table><tr><td style="min-width:3000px">wide</td></tr></table>'
        "</article></body></html>"
    )
    assert check_book.main([str(html), "--screenshots", str(tmp_path / "shots")]) == 1
    report = (tmp_path / "shots" / "report.json").read_text()
    assert "raw TeX" in report and "table wider" in report
    assert list((tmp_path / "shots").rglob("*.png"))

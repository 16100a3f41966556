"""The report in a real browser (Debian's chromium through Playwright): it loads offline
with no console error and no failed request, every image decodes, every figure is drawn,
and a full-page screenshot comes out."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from seawatch.config import env_is_ci
from seawatch.dashboards.report import from_local_store, render
from tests.dashboards.test_report import build_store

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing; apt-get install chromium (Debian)"
        if env_is_ci():
            pytest.fail(message)
        pytest.skip(message)


def test_report_opens_in_chromium(tmp_path: Path) -> None:
    _require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    path, evidence, _records = build_store(tmp_path)
    report = tmp_path / "report.html"
    report.write_text(render(from_local_store(path, evidence)), encoding="utf-8")
    shot = tmp_path / "report.png"

    errors: list[str] = []
    failed: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url[:120]))
            page.goto(report.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])"
            )
            svgs = page.eval_on_selector_all(
                "figure svg",
                "els => els.map(e => { const r = e.getBoundingClientRect();"
                " return [e.querySelectorAll('path, use').length, r.width, r.height]; })",
            )
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert errors == []
    assert failed == []
    assert len(images) == 4  # two flagged otoliths: a thumbnail and a heat map each
    for complete, width, alt in images:
        assert complete and width > 0, alt
    assert len(svgs) >= 6  # counts, concentrations, stations, NBSS, scores, fish, latency
    for drawn, width, height in svgs:
        assert drawn > 10 and width > 100 and height > 50

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1200 and height > 2000  # the full page, not just the viewport
    assert len(data) > 50_000

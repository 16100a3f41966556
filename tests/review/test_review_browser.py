"""The review station in Debian's Chromium (Playwright) on a real server: log in, filter,
sort, validate a page by keyboard, reassign a taxon, confirm and reject otoliths, merge
fish, read the audit trail; no console error (the CSP would report inline scripts), every
image decodes, every control has a name."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.dashboards.test_report_browser import ARGS, CHROMIUM, _require_chromium
from tests.review.live_server import serving
from tests.review.station_data import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def browser_page(app):
    _require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with serving(app) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, base_url=base)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page, errors
        browser.close()


def _login(page, user):
    page.goto("/login")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/objects")


def _until(page, expression: str, timeout_s: float = 10.0) -> None:
    """Wait until ``expression`` is true in the page (polled from here: the page's CSP
    forbids the eval that ``wait_for_function`` needs)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if page.evaluate(expression):
                return
        except Exception as exc:  # the page is reloading: ask again
            if "context was destroyed" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {expression}")
        time.sleep(0.05)


def _unnamed_controls(page) -> list[str]:
    return page.eval_on_selector_all(
        "input:not([type=hidden]), select, button",
        """els => els.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !(e.textContent || '').trim()).map(e => e.outerHTML.slice(0, 80))""",
    )


def _broken_images(page) -> list[str]:
    _until(page, "Array.from(document.images).every(i => i.complete)")
    return page.eval_on_selector_all(
        "img", "els => els.filter(e => !e.complete || !e.naturalWidth || !e.alt).map(e => e.src)"
    )


def test_objects_filter_sort_validate_by_keyboard_and_reassign(browser_page, station_files):
    page, errors = browser_page
    _login(page, "anna")
    assert page.locator("#grid .cell").count() == 200
    assert page.get_by_role("complementary", name="keyboard shortcuts").is_visible()
    page.get_by_label("Cruise").select_option("PS-140")
    page.get_by_label("Order").select_option("confidence")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**cruise=PS-140**")
    cells = page.locator("#grid .cell")
    n = cells.count()
    assert n == 75  # every fourth of 300 objects is on PS-140
    confidences = [float(t) for t in page.locator("#grid .conf").all_inner_texts()]
    assert confidences == sorted(confidences)
    assert _broken_images(page) == [] and _unnamed_controls(page) == []
    cells.first.click()  # focus the grid (and select the first)
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+V")  # the whole page
    page.wait_for_selector("#messages .ok")
    db = sqlite3.connect(station_files.store)
    status = dict(
        db.execute("SELECT status, COUNT(*) FROM objects WHERE cruise = 'PS-140' GROUP BY 1")
    )
    assert status == {"validated": 75}
    # reassign the second object: click it, t, type, Enter
    page.locator("#grid .cell").nth(1).click()
    page.keyboard.press("t")
    page.get_by_label("Reassign the selection to").fill("marine_snow")
    page.keyboard.press("Enter")
    page.wait_for_selector("#grid .cell >> text=was ")
    assert db.execute("SELECT COUNT(*) FROM objects WHERE label = 'marine_snow'").fetchone()[0] == 1
    assert errors == []


def test_otoliths_fish_and_the_audit_trail(browser_page, station_files):
    page, errors = browser_page
    _login(page, "rolf")
    page.get_by_role("link", name="Otoliths").click()
    cards = page.locator("article.otolith")
    assert cards.count() == 4 and _broken_images(page) == []
    first = cards.first
    first.get_by_label("Anomaly type").select_option("broken")
    first.get_by_role("button", name="Confirm anomaly").click()
    page.wait_for_selector("#messages .ok")
    _until(page, "document.querySelectorAll('article.otolith').length === 3")
    page.locator("article.otolith").first.get_by_role("button", name="Reject: normal").click()
    _until(page, "document.querySelectorAll('article.otolith').length === 2")
    db = sqlite3.connect(station_files.store)
    decided = dict(db.execute("SELECT status, COUNT(*) FROM otolith GROUP BY 1"))
    assert decided == {"confirmed": 1, "rejected": 1, "predicted": 2}

    page.get_by_role("link", name="Fish").click()
    fish = page.locator("article.fish", has_text="fish-new-0002")
    fish.get_by_label("name for fish-new-0002").fill("zf-007")
    fish.get_by_role("button", name="Merge into").click()
    page.wait_for_selector("#messages .ok")
    _until(page, "!document.body.textContent.includes('fish-new-0002')")
    left = db.execute("SELECT COUNT(*) FROM fish WHERE individual = 'fish-new-0002'").fetchone()[0]
    assert left == 0

    page.get_by_role("link", name="Audit").click()
    rows = page.locator("table.trail tbody tr")
    assert rows.count() == 3
    text = page.locator("table.trail").inner_text()
    assert "merge" in text and "reject" in text and "confirm" in text and "rolf" in text
    assert _unnamed_controls(page) == []
    assert errors == []

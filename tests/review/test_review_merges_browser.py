"""The merges queue in Debian's Chromium (Playwright) on a real server: undo one automatic
merge, see a merge someone else reviewed meanwhile refused with who did it; no console error
under the CSP, every image decodes, every control has a name."""

from __future__ import annotations

import sqlite3

import pytest

from seawatch.review.merge_reviews import decide_merge, pending_merges
from seawatch.storage.fish_merges import TWIN, VIEWS, FishMerges, read_merges
from tests.review.test_review_browser import (
    _broken_images,
    _login,
    _unnamed_controls,
    _until,
    browser_page,  # noqa: F401 (the fixture)
)

pytestmark = pytest.mark.browser


def test_undo_a_merge_and_see_a_conflict(browser_page, station_files):  # noqa: F811
    page, errors = browser_page
    writer = FishMerges(station_files.store)
    writer.record("zf-007", "fish-new-0001", similarity=0.66, merged_by="w1/11", rule=VIEWS)
    writer.record("fish-new-0002", "fish-new-0001", similarity=0.71, merged_by="w2/22", rule=TWIN)
    writer.close()
    _login(page, "rolf")
    page.get_by_role("link", name="Merges").click()
    cards = page.locator("article.merge")
    assert cards.count() == 2 and _broken_images(page) == []
    assert page.locator("article.merge img").count() == 3 + 3 + 3 + 3  # each side's views
    page.get_by_label("merge of zf-007 into fish-new-0001").get_by_role(
        "button", name="Undo: two fish"
    ).click()
    page.wait_for_selector("#messages .ok")
    _until(page, "document.querySelectorAll('article.merge').length === 1")
    assert "zf-007" not in read_merges(station_files.store)

    # ada confirms the other merge while rolf's page still shows it
    db = sqlite3.connect(station_files.store, isolation_level=None)
    (seen,) = pending_merges(db)
    decide_merge(db, "ada", seen.individual, seen.merged_at_us, seen.version, "confirm")
    page.get_by_role("button", name="Confirm: one fish").click()
    page.wait_for_selector("#messages .conflict")
    assert "by ada" in page.locator("#messages").inner_text()
    _until(page, "document.querySelectorAll('article.merge').length === 0")
    assert read_merges(station_files.store) == {"fish-new-0002": "fish-new-0001"}
    assert _unnamed_controls(page) == []
    # the browser logs the refused POST itself (a 409 answer); nothing else went wrong
    assert [e for e in errors if "status of 409" not in e] == []

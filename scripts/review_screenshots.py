"""Make the review station's screenshots for the README from a real run: ``seawatch demo``
into a scratch store, a few decisions made through the app as a reviewer would, then the
objects grid, an object with its audit trail, the otolith queue and the fish ids in Debian's
chromium (Playwright).

    python scripts/review_screenshots.py [--frames 2000] [--out docs]

Writes docs/review-objects.png, review-object.png, review-otoliths.png, review-fish.png
(256-colour PNGs, small enough for the repository).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' live server helper

from scripts.report_screenshot import ARGS, CHROMIUM, run_demo, shrink  # noqa: E402

PASSWORD = "screenshots only"


def _station(store: Path, scratch: Path):
    from seawatch.config import load_settings
    from seawatch.review.accounts import Accounts, Role
    from seawatch.review.app import create_app, open_station

    settings = load_settings(None, storage__local__path=store)
    local = settings.storage.local
    accounts = scratch / "accounts.db"
    Accounts(accounts).add_user("marta", PASSWORD, Role.ADMIN)
    review = settings.review.model_copy(update={"publish_topic": None})
    station = open_station(review, store, local.crops_path, accounts, local.evidence_root)
    return station, create_app(station)


def _shoot(page, path: Path, url: str, *, full: bool = False) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=full)
    shrink(path)


def main() -> None:
    """Demo -> decisions -> screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from tests.review.live_server import serving

    with tempfile.TemporaryDirectory(prefix="seawatch-review-") as scratch:
        store = Path(scratch) / "demo.db"
        run_demo(store, args.frames)
        station, app = _station(store, Path(scratch))
        problems: list[str] = []
        with serving(app) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900}, base_url=base)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto("/login")
            page.get_by_label("User").fill("marta")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/objects")
            # a reviewer's first minutes: validate a row, mark one dubious, reassign one
            cells = page.locator("#grid .cell")
            for i in range(8):
                cells.nth(i).click()
            page.keyboard.press("v")
            page.wait_for_selector("#messages .ok")
            page.locator("#grid .cell").nth(9).click()
            page.keyboard.press("d")
            page.wait_for_selector("#messages .ok")
            args.out.mkdir(parents=True, exist_ok=True)
            _shoot(page, args.out / "review-objects.png", "/objects?order=wrong")
            db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
            uid, idx = db.execute(
                "SELECT frame_uid, idx FROM objects WHERE status != 'predicted' LIMIT 1"
            ).fetchone()
            _shoot(page, args.out / "review-object.png", f"/object?uid={uid}&idx={idx}")
            _shoot(page, args.out / "review-otoliths.png", "/otoliths")
            _shoot(page, args.out / "review-fish.png", "/fish")
            browser.close()
        station.close()
    if problems:
        raise SystemExit("the review station did not load cleanly: " + "; ".join(problems))
    for name in ("objects", "object", "otoliths", "fish"):
        path = args.out / f"review-{name}.png"
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

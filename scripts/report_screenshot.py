"""Make ``docs/report.png``: run ``seawatch demo`` into a scratch store, write the cruise
report from it, and take a full-page screenshot in Debian's chromium (Playwright).

    python scripts/report_screenshot.py [--frames 2000] [--out docs/report.png] [--html FILE]

The screenshot is reduced to a 256-colour PNG so that it stays small in the repository.
An otolith model under ``models/otolith`` is used when one is there (the demo then scores
otoliths and the report shows the flagged ones); otherwise that section says there are none.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"]


def run_demo(store: Path, frames: int) -> None:
    """``seawatch demo`` writing to ``store`` (and its evidence beside it)."""
    env = {**os.environ, "SEAWATCH_STORAGE__LOCAL__PATH": str(store)}
    command = [sys.executable, "-m", "seawatch", "demo", "--frames", str(frames)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"seawatch demo failed ({done.returncode}):\n{done.stderr[-4000:]}")


def screenshot(html: Path, png: Path, width: int = 1100) -> None:
    """A full-page screenshot of ``html``; fails on console errors or failed requests."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url[:100]}"))
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    if problems:
        raise SystemExit("the report did not load cleanly: " + "; ".join(problems))


def shrink(png: Path) -> None:
    """Rewrite ``png`` as an optimised 256-colour palette image."""
    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)


def main() -> None:
    """Demo -> report -> screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    parser.add_argument("--html", type=Path, default=None, help="also keep the report here")
    args = parser.parse_args()

    from seawatch.config import load_settings
    from seawatch.dashboards.report import from_local_store, render

    with tempfile.TemporaryDirectory(prefix="seawatch-report-") as scratch:
        store = Path(scratch) / "demo.db"
        run_demo(store, args.frames)
        local = load_settings(None, storage__local__path=store).storage.local
        data = from_local_store(store, local.evidence_root)
        html = args.html or Path(scratch) / "report.html"
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render(data, title="seawatch cruise report: demo cruise"), "utf-8")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(html, args.out)
    shrink(args.out)
    size = args.out.stat().st_size / 1024
    print(f"wrote {args.out} ({size:.0f} KiB) from {len(data.frames)} demo frames")


if __name__ == "__main__":
    main()

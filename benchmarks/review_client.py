"""What the review page benchmark measures with: a browser-like client (one connection for
pages, six for images), the pages to draw, and the machine's accounting (CPU per process,
the page cache of a file)."""

from __future__ import annotations

import http.client
import os
import re
import sqlite3
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from review_store import CRUISES, LABELS

PAGE = 200  # review.page_size's default
CONNECTIONS = 6  # what a browser opens per host
IMG = re.compile(r'<img src="(/(?:crops|thumbs)/[0-9a-f]{64}\.(?:png|jpg))"')


class Browser:
    """A client logged in through the form: one connection for pages, six threads with a
    keep-alive connection each for the thumbnails."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.port = port
        self.cookie = self._login(user, password)
        self._local = threading.local()
        self.pool = ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="thumb")

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port)
        return conn

    def get(self, path: str) -> tuple[int, bytes]:
        """GET on this thread's connection (opened again if the server closed it)."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("GET", path, headers={"Cookie": self.cookie})
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _login(self, user: str, password: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        conn.request("GET", "/login")
        page = conn.getresponse()
        token = re.search(r'name="login_token" value="([0-9a-f]+)"', page.read().decode())
        login_cookie = page.getheader("set-cookie").split(";")[0]
        form = urllib.parse.urlencode({"user": user, "password": password, "login_token": token[1]})
        headers = {"Cookie": login_cookie, "Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/login", form, headers)
        answer = conn.getresponse()
        answer.read()
        conn.close()
        if answer.status != 303:
            raise RuntimeError(f"login refused ({answer.status})")
        cookies = [v for k, v in answer.getheaders() if k.lower() == "set-cookie"]
        return next(c.split(";")[0] for c in cookies if c.startswith("seawatch_session="))

    def load(self, path: str) -> dict:
        """One page load: the HTML, then every thumbnail it names; times in ms."""
        started = time.perf_counter()
        status, body = self.get(path)
        html_done = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        thumbs = IMG.findall(body.decode())
        answers = list(self.pool.map(self.get, thumbs))
        done = time.perf_counter()
        bad = [s for s, _ in answers if s != 200]
        if bad:
            raise RuntimeError(f"{len(bad)} thumbnails of {path} failed: {bad[:5]}")
        return {
            "ms": (done - started) * 1e3,
            "html_ms": (html_done - started) * 1e3,
            "thumbs": len(thumbs),
            "bytes": len(body) + sum(len(b) for _, b in answers),
        }

    def close(self) -> None:
        self.pool.shutdown()


def full_pages(store: Path) -> list[tuple[str, str, int]]:
    """(cruise, taxon, page) of every page 0-4 that its combination fills (200 objects)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    counts = db.execute("SELECT cruise, label, COUNT(*) FROM objects GROUP BY 1, 2").fetchall()
    db.close()
    cruises, labels = {c for c, _ in CRUISES}, set(LABELS)
    return [
        (cruise, label, page)
        for cruise, label, n in counts
        if cruise in cruises and label in labels
        for page in range(min(5, n // PAGE))
    ]


def page_path(cruise: str, taxon: str, page: int) -> str:
    """The grid's URL: one cruise and taxon, by confidence."""
    query = {"cruise": cruise, "taxon": taxon, "order": "confidence", "page": page}
    return "/objects?" + urllib.parse.urlencode(query)


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds of a process (all its threads), or of the whole machine (``None``)."""
    if pid is None:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle, iowait
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def evict(path: Path) -> None:
    """Drop a file's pages from the OS page cache (POSIX_FADV_DONTNEED; clean pages only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


__all__ = ["PAGE", "Browser", "cpu_s", "evict", "full_pages", "page_path"]

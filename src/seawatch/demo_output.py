"""What `seawatch demo` shows on the terminal, and what it leaves for later.

Every log line goes to a file in the demo's data folder. The terminal gets the warnings a
user must see, through the demo's console (so they land above the progress bars, not over
them), each kind of warning a few times at most; the alerts and dead letters, which the
summary counts, only with ``--verbose``. The demo ends with the commands that open its
results, written so that they work exactly as printed.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console
from rich.text import Text

from seawatch.config import Settings

# (logger, event): the lines the summary counts instead (each is in the log file)
COUNTED_EVENTS = frozenset(
    {("seawatch.alerts.outputs", "alert"), ("seawatch.pipeline", "dead_letter")}
)
REPEATS_SHOWN = 3  # lines of one kind of warning on the terminal; the rest only in the file
# loggers whose warnings are the library's own timing notes (kafka-python's network loop: "Task
# ... ran for 0.354s ... blocking the event loop" on a busy machine): the file only, named
# in the held-back line
LIBRARY_NOTES = {"kafka.net.selector": "kafka-python event-loop notes"}
LOG_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def event_of(record: logging.LogRecord) -> str:
    """The event a logfmt line is about: its first word (``alert``, ``dead_letter``...)."""
    words = str(record.msg).split(maxsplit=1)
    return words[0] if words else ""


class TerminalHandler(logging.Handler):
    """Prints log lines through ``console``; unless ``verbose``, only warnings, without the
    counted events and the library notes, and at most :data:`REPEATS_SHOWN` of each event."""

    def __init__(self, console: Console, *, verbose: bool) -> None:
        super().__init__(logging.NOTSET if verbose else logging.WARNING)
        self.console, self.verbose = console, verbose
        self.shown: Counter[tuple[str, str]] = Counter()
        self.held_back: Counter[str] = Counter()  # event -> lines left to the file

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.name, event_of(record))
        if not self.verbose:
            if key in COUNTED_EVENTS:
                return
            if record.name in LIBRARY_NOTES and record.levelno < logging.ERROR:
                self.held_back[LIBRARY_NOTES[record.name]] += 1
                return
            if self.shown[key] >= REPEATS_SHOWN:
                self.held_back[key[1]] += 1
                return
        self.shown[key] += 1
        try:
            style = "red" if record.levelno >= logging.ERROR else "yellow"
            style = style if record.levelno >= logging.WARNING else "dim"
            self.console.print(Text(self.format(record), style=style), soft_wrap=True)
        except Exception:  # a log line must never stop the demo
            self.handleError(record)


@dataclass
class DemoLog:
    """The demo's log file and what its terminal handler held back."""

    path: Path
    terminal: TerminalHandler

    def held_back_line(self) -> str | None:
        """One line on the warnings left to the file, if any were."""
        if not self.terminal.held_back:
            return None
        kinds = ", ".join(f"{n} {event}" for event, n in self.terminal.held_back.most_common())
        return f"more warnings, only in {self.path}: {kinds}"


@contextlib.contextmanager
def demo_logging(path: Path, console: Console, *, verbose: bool) -> Iterator[DemoLog]:
    """While the demo runs, log to ``path`` (all lines) and to ``console`` (see
    :class:`TerminalHandler`) instead of the root logger's stream handlers."""
    root = logging.getLogger()
    streams = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    template = streams[0] if streams else None
    formatter = (template.formatter if template else None) or logging.Formatter(LOG_FORMAT)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path, mode="w", encoding="utf-8")
    terminal = TerminalHandler(console, verbose=verbose)
    for handler in (to_file, terminal):
        handler.setFormatter(formatter)
        for kept in template.filters if template else ():
            handler.addFilter(kept)
    for handler in streams:
        root.removeHandler(handler)
    root.addHandler(to_file)
    root.addHandler(terminal)
    try:
        yield DemoLog(path, terminal)
    finally:
        root.removeHandler(terminal)
        root.removeHandler(to_file)
        to_file.close()
        for handler in streams:
            root.addHandler(handler)


def demo_log_path(store: Path) -> Path:
    """The demo's log file: beside its store (``seawatch-data/demo.log``)."""
    return store.with_name(f"{store.stem}.log")


def demo_config(store: Path, user_config: Path | None) -> Path:
    """Write the settings file that points every command at the demo's store: the user's
    own settings (``--config``, if given) with ``storage.local.path`` set to ``store``.
    Its path is beside the store (``seawatch-data/demo.yaml``)."""
    data = (yaml.safe_load(user_config.read_text()) if user_config else None) or {}
    storage = data.setdefault("storage", {}) or {}
    data["storage"] = storage
    local = storage.setdefault("local", {}) or {}
    storage["local"] = local
    local["path"] = str(store)
    path = store.with_name(f"{store.stem}.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# written by `seawatch demo`: the demo's settings, pointing at its own store\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path


def program_name(argv0: str | None = None) -> str:
    """How to run seawatch again from here: ``seawatch`` when that is on the PATH and is
    this program, else the program as it was started (``.venv/bin/seawatch``)."""
    given = Path(argv0 if argv0 is not None else sys.argv[0])
    if given.name == "__main__.py":  # python -m seawatch
        return f"{shlex.quote(_short(Path(sys.executable)))} -m seawatch"
    found = shutil.which("seawatch")
    if found and given.exists() and Path(found).resolve() == given.resolve():
        return "seawatch"
    return shlex.quote(_short(given))


def _short(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (as typed if
    relative), else absolute."""
    if not path.is_absolute():
        return str(path)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def follow_up_lines(settings: Settings, program: str, config: Path | None) -> list[str]:
    """The lines that end the demo: what to run next, each command on a line of its own
    (no trailing comments: zsh does not take them at its prompt)."""
    run = f"{program} --config {shlex.quote(str(config))}" if config is not None else program
    review = settings.review
    about = f" ({config} points seawatch at the demo's store)" if config is not None else ""
    return [
        f"Open the results{about}:",
        "  the cruise report (one HTML file) and every plankton object (EcoTaxa TSV):",
        f"    {run} report --out cruise.html",
        f"    {run} export objects --out objects.tsv",
        "  the review station: add yourself once (it asks for a password), then serve it and "
        f"open http://{review.host}:{review.port}/",
        f"    {run} review user add you --role admin",
        f"    {run} review serve",
    ]


def follow_up_commands(lines: list[str]) -> list[str]:
    """The commands in the demo's output ``lines`` (or in :func:`follow_up_lines`): the
    lines indented by four spaces after "Open the results"."""
    start = next((i for i, line in enumerate(lines) if line.startswith("Open the results")), None)
    if start is None:
        return []
    return [line.strip() for line in lines[start:] if line.startswith("    ")]


__all__ = [
    "DemoLog",
    "TerminalHandler",
    "demo_config",
    "demo_log_path",
    "demo_logging",
    "follow_up_commands",
    "follow_up_lines",
    "program_name",
]

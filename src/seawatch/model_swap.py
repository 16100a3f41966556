"""Live model swap: a promoted model replaces the serving one at a batch boundary, after
checks, without stopping consumption.

For every task served from a model store (``tasks.<task>.model_store``), the loop asks
:meth:`ModelSwapper.poll` on each tick. When the store promotes another release, a background
thread loads the new head through the task's plug-in (the ONNX session is built and warmed
there, off the loop) and checks it against the serving head:

1. the card: same task, same input contract (size, channels, height, width);
2. outputs: both heads run the task's recorded live inputs (the last batch the router
   stacked, else the plug-in's sample inputs); the new one must give outputs of the same
   shapes, all finite;
3. the evaluation gate: where the plug-in can score a head on the task's validation set, the
   new score must not fall below the serving one by more than ``swap_max_drop``.

A refused model is logged with the reason and the serving one keeps serving (the release is
not tried again until the store promotes another). An accepted one is swapped in on the loop
thread (:meth:`TaskRouter.swap`): batches staged before keep the old head for inference and
records, so every record carries the release that scored it; the old head is closed once the
batches it staged are stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.config import Settings
from seawatch.contracts.task import TaskHead
from seawatch.inference.model_store import read_state, serving_dir
from seawatch.inference.router import TaskRouter
from seawatch.registry import plugin

log = logging.getLogger(__name__)


@dataclass
class _Watch:
    task: str
    store: Path
    serving: str | None
    tried: str | None = None  # the last release loaded (accepted or refused)


class SwapRefused(Exception):
    """A candidate model failed a check; the message says which and why."""


def check_candidate(
    candidate: TaskHead,
    serving: TaskHead,
    inputs: np.ndarray | None,
    *,
    score=None,
    max_drop: float,
) -> dict[str, Any]:
    """The checks of the module docstring; raise :class:`SwapRefused` naming the failed one."""
    new, old = candidate.card, serving.card
    if new.task != old.task:
        raise SwapRefused(f"card task {new.task!r} is not {old.task!r}")
    contract = ("size", "channels", "height", "width")
    if any(getattr(new.input, k) != getattr(old.input, k) for k in contract):
        theirs = {k: getattr(new.input, k) for k in contract}
        ours = {k: getattr(old.input, k) for k in contract}
        raise SwapRefused(f"input contract {theirs} differs from the serving {ours}")
    if inputs is None:
        raise SwapRefused("no recorded inputs and no sample inputs to check outputs on")
    try:
        got = _arrays(candidate.infer(inputs))
    except Exception as exc:
        raise SwapRefused(f"inference on recorded inputs failed: {exc}") from exc
    want = _arrays(serving.infer(inputs))
    if [a.shape for a in got] != [a.shape for a in want]:
        shapes = ([a.shape for a in got], [a.shape for a in want])
        raise SwapRefused(f"output shapes {shapes[0]} differ from the serving {shapes[1]}")
    if not all(np.isfinite(a).all() for a in got):
        raise SwapRefused("outputs on recorded inputs are not all finite (NaN or inf)")
    report: dict[str, Any] = {"inputs": len(inputs)}
    if score is not None:
        theirs, ours = score(candidate), score(serving)
        report |= {"validation_score": theirs, "serving_score": ours}
        if theirs is not None and ours is not None and theirs < ours - max_drop:
            raise SwapRefused(
                f"validation score {theirs:.4f} is below the serving {ours:.4f} by more than "
                f"{max_drop} (tasks.<task>.swap_max_drop)"
            )
    return report


def _arrays(outputs: Any) -> list[np.ndarray]:
    items = outputs if isinstance(outputs, tuple | list) else (outputs,)
    return [np.asarray(a, np.float32) for a in items]


class ModelSwapper:
    """Watches the model stores of the served tasks and swaps promoted models in."""

    def __init__(self, settings: Settings, router: TaskRouter, *, depth: int) -> None:
        self.settings = settings
        self.router = router
        self.depth = depth
        self.check_every_s = settings.inference.swap_check_s
        self._next_check = 0.0
        self.watches = [
            _Watch(name, Path(task.model_store), read_state(task.model_store).get("serving"))
            for name, task in settings.enabled_tasks().items()
            if task.model_store is not None
        ]
        self.swaps: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []
        self._ready: deque[tuple[_Watch, str, TaskHead | None, str | dict]] = deque()
        self._loading: set[str] = set()
        self._retired: list[tuple[int, TaskHead]] = []  # (stored batches to wait for, head)
        self._stored = 0
        self._lock = threading.Lock()

    def poll(self) -> None:
        """On the loop thread, between batches: start loading newly promoted releases and
        swap in the ones that passed their checks."""
        now = time.monotonic()
        due = now >= self._next_check
        if due:
            self._next_check = now + self.check_every_s
        for watch in self.watches if due else ():
            release = read_state(watch.store).get("serving")
            if (
                release
                and release not in (watch.serving, watch.tried)
                and watch.task not in self._loading
            ):
                watch.tried = release
                self._loading.add(watch.task)
                threading.Thread(
                    target=self._load, args=(watch, release), name=f"swap-{watch.task}", daemon=True
                ).start()
        while True:
            with self._lock:
                if not self._ready:
                    break
                watch, release, head, outcome = self._ready.popleft()
            self._loading.discard(watch.task)
            if head is None:
                self.refusals.append({"task": watch.task, "release": release, "reason": outcome})
                log.error(
                    "model_refused task=%s release=%s reason=%r effect='old model keeps serving'",
                    watch.task,
                    release,
                    outcome,
                )
                continue
            old = self.router.swap(head)
            if old is not None:
                self._retired.append((self._stored + self.depth + 1, old))
            watch.serving = release
            self.swaps.append({"task": watch.task, "release": release, "checks": outcome})
            log.info("model_swapped task=%s release=%s checks=%s", watch.task, release, outcome)

    def batch_stored(self) -> None:
        """After each stored batch: close the retired heads no batch in flight can hold."""
        self._stored += 1
        keep = []
        for due, head in self._retired:
            if self._stored >= due:
                head.close()
            else:
                keep.append((due, head))
        self._retired = keep

    def close(self) -> None:
        """Close the retired heads (the loop has stopped)."""
        for _, head in self._retired:
            head.close()
        self._retired = []

    def _load(self, watch: _Watch, release: str) -> None:
        head = None
        try:
            task = self.settings.tasks[watch.task]
            directory = serving_dir(watch.store)
            if directory.name != release:
                raise SwapRefused(f"the store moved on to {directory.name} while loading")
            found = plugin(watch.task, task.plugin)
            task_settings = self.settings.for_task(watch.task)
            head = found.load(task.model_copy(update={"model_dir": directory}), task_settings)
            serving = self.router.heads[watch.task]
            inputs = self.router.recorded(watch.task)
            if inputs is None and found.sample_inputs is not None:
                inputs = found.sample_inputs(serving.card, 8, 0)
            score = (lambda h: found.validate(h, task)) if found.validate is not None else None
            report = check_candidate(
                head, serving, inputs, score=score, max_drop=task.swap_max_drop
            )
            outcome: str | dict = report
        except Exception as exc:  # every refusal is reported; the serving model stays
            if head is not None:
                head.close()
            head, outcome = None, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._ready.append((watch, release, head, outcome))


__all__ = ["ModelSwapper", "SwapRefused", "check_candidate"]

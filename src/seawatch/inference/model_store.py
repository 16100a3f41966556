"""A task's model store: versions side by side, one of them promoted (served).

```
STORE/
  0.3.0+4c467b19/      an artifact (model.onnx, card.json, ...), named by its release
  0.3.1+9b20e7aa/
  promoted.json        {"serving": "0.3.1+9b20e7aa",
                        "history": [{"release", "action", "at", "by"}, ...]}
```

``seawatch models promote DIR --store STORE`` copies an artifact in (its card and graph hash
checked) and promotes it; ``seawatch models rollback --store STORE`` promotes the release
served before. ``promoted.json`` is replaced atomically, so a daemon watching the store
(``tasks.<task>.model_store``) never reads half a file; it loads, checks and swaps the new
model itself (:mod:`seawatch.model_swap`).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seawatch.contracts.card import ModelCard, load_card
from seawatch.contracts.errors import ConfigError

PROMOTED = "promoted.json"


def read_state(store: Path) -> dict[str, Any]:
    """The store's ``promoted.json`` (``{"serving": None, "history": []}`` when none)."""
    path = Path(store) / PROMOTED
    if not path.is_file():
        return {"serving": None, "history": []}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        msg = f"{path} is not readable JSON ({exc}); restore it or promote a model again"
        raise ConfigError(msg) from exc
    return state


def serving_dir(store: Path) -> Path:
    """The directory of the promoted release; ConfigError when nothing is promoted."""
    release = read_state(store).get("serving")
    if not release:
        msg = f"model store {store} has no promoted model; run seawatch models promote DIR"
        msg += f" --store {store}"
        raise ConfigError(msg)
    directory = Path(store) / release
    if not (directory / "card.json").is_file():
        msg = f"model store {store} promotes {release}, but {directory} holds no artifact"
        raise ConfigError(msg)
    return directory


def promote(
    store: Path, artifact: Path, *, task: str | None = None, by: str | None = None
) -> ModelCard:
    """Copy ``artifact`` into ``store`` (once per release) and serve it; return its card."""
    card = load_card(artifact)
    if task is not None and card.task != task:
        msg = f"{artifact} is a {card.task!r} model; the store {store} serves {task!r}"
        raise ConfigError(msg)
    store = Path(store)
    served = [load_card(store / r).task for r in _releases(store)]
    if served and card.task not in served:
        msg = f"{artifact} is a {card.task!r} model; the store {store} holds {served[0]!r} models"
        raise ConfigError(msg)
    target = store / card.release
    if not target.exists():
        temporary = store / f".{card.release}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.copytree(artifact, temporary)
        os.replace(temporary, target)
    _record(store, card.release, "promote", by)
    return card


def rollback(store: Path, *, by: str | None = None) -> str:
    """Serve the release that was served before the current one; return it."""
    state = read_state(store)
    current = state.get("serving")
    previous = [h["release"] for h in state["history"] if h["release"] != current]
    if not previous:
        msg = f"model store {store} has no earlier release to roll back to (serving {current})"
        raise ConfigError(msg)
    _record(Path(store), previous[-1], "rollback", by)
    return previous[-1]


def _releases(store: Path) -> list[str]:
    if not store.is_dir():
        return []
    return sorted(p.name for p in store.iterdir() if (p / "card.json").is_file())


def _record(store: Path, release: str, action: str, by: str | None) -> None:
    store.mkdir(parents=True, exist_ok=True)
    state = read_state(store)
    entry = {
        "release": release,
        "action": action,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": by or getpass.getuser(),
    }
    state = {"serving": release, "history": [*state["history"], entry]}
    temporary = store / f".{PROMOTED}.tmp"
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(temporary, store / PROMOTED)


__all__ = ["PROMOTED", "promote", "read_state", "rollback", "serving_dir"]

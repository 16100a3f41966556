"""Test-time views as a serving setting: which graph of an otolith artifact serves which views.

The trained detector averages its anomaly map over 8 views of each specimen (4 turns, each
also mirrored), baked into ``model.onnx``. On a CPU that is 8 times the compute of one view
for a few thousandths of AUROC, so ``seawatch train otolith-views`` re-exports the same
weights with fewer views, each as a complete artifact in a sub-directory::

    models/otolith/            model.onnx + card.json: the trained graph (8 views)
    models/otolith/views1/     model.onnx + card.json: 1 view, its own threshold
    models/otolith/views4/     model.onnx + card.json: 4 turns, its own threshold

Why directories and not extra graph files beside ``model.onnx``: every backend opens an
artifact *directory* (TensorRT builds and caches its engine there, the PyTorch CUDA backend
reads the card), so a complete artifact per view count runs on every backend with no change
to them, is checked by the same ``load_card`` (SHA-256 of its graph), and travels with the
parent through ``seawatch models promote`` (a directory copy). The trained graph is not
re-written: records scored with 8 views keep their release.

Each variant's card has its own threshold (the score is a mean over fewer maps, so its scale
and spread change), calibrated by the same procedure as the trained one, and its version says
the views (``0.6.0.views4``), so its release (``0.6.0.views4+1a2b3c4d``), carried by every
record, tells records scored with different views apart. The parent card's
``metrics.serving_views`` holds the table (AUROC, threshold, specimens/s per view count) and the
recommended views per backend class, which ``tasks.otolith.options.views: auto`` serves.

numpy-free, torch-free: the head imports this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import ConfigError

#: View counts a deployment may serve (2 is a training-time choice only: no cheaper than 4 by
#: enough to matter, and no better than 1).
SERVING_VIEWS: tuple[int, ...] = (1, 4, 8)
#: The card's ``metrics`` key of the per-views table.
SERVING_KEY = "serving_views"
#: Backends on the CPU; every other backend is a GPU one.
CPU_BACKENDS = frozenset({"onnxruntime"})
OPTION = "tasks.otolith.options.views"


def variant_dir(model_dir: Path, views: int) -> Path:
    """The sub-directory of the ``views`` variant (not the trained graph's own views)."""
    return Path(model_dir) / f"views{views}"


def variant_version(version: str, views: int) -> str:
    """The version of a variant's card: the parent's with ``.views<n>``."""
    return f"{version}.views{views}"


def trained_views(card: ModelCard) -> int:
    """The views baked into the artifact's own ``model.onnx`` (8 for cards before the plan
    recorded them: 0.6.0 introduced 8)."""
    recorded = card.metrics.get(SERVING_KEY, {}).get("trained")
    if recorded is not None:
        return int(recorded)
    plan = (card.training.model_extra or {}).get("plan") or {}
    return int(plan.get("views", 8))


def serving_table(card: ModelCard) -> dict[str, Any] | None:
    """The card's per-views table (``seawatch train otolith-views``), or None."""
    table = card.metrics.get(SERVING_KEY)
    return table if isinstance(table, dict) else None


def recommended_views(card: ModelCard, backend: str) -> tuple[int, str]:
    """(views, why) that ``auto`` serves on ``backend``: the card's measured recommendation
    for the backend's class (cpu/gpu), else the trained graph's own views."""
    table = serving_table(card)
    kind = "cpu" if backend in CPU_BACKENDS else "gpu"
    if table is None or kind not in table.get("recommended", {}):
        why = "the card has no serving views table (seawatch train otolith-views makes one)"
        return trained_views(card), why
    views = int(table["recommended"][kind])
    return views, f"the card's recommendation for {kind} backends ({table.get('rule', '')})"


def serving_dir(model_dir: Path, card: ModelCard, views: int) -> Path:
    """The artifact directory that serves ``views``; ConfigError naming the setting and the fix
    when the artifact has no such variant."""
    if views == trained_views(card):
        return Path(model_dir)
    directory = variant_dir(model_dir, views)
    if not (directory / "card.json").is_file():
        have = sorted({trained_views(card), *_variants(model_dir)})
        msg = (
            f"{OPTION} is {views}, but {model_dir} has no {views}-view graph (it has "
            f"{', '.join(map(str, have))}); make them with `seawatch train otolith-views "
            f"--model {model_dir}` or set {OPTION} to auto or one of {', '.join(map(str, have))}"
        )
        raise ConfigError(msg)
    return directory


def _variants(model_dir: Path) -> list[int]:
    return [n for n in SERVING_VIEWS if (variant_dir(model_dir, n) / "card.json").is_file()]


__all__ = [
    "CPU_BACKENDS",
    "OPTION",
    "SERVING_KEY",
    "SERVING_VIEWS",
    "recommended_views",
    "serving_dir",
    "serving_table",
    "trained_views",
    "variant_dir",
    "variant_version",
]

"""Test-time views: how many dihedral views of each crop the exported graph averages.

A crop of plankton has no up or down, so a classifier that averages its features over the
crop's right-angle turns (and their mirror images) is steadier than one view
(:func:`~seawatch.models.plankton.network.dihedral_views`). It costs ``views`` times the
classifier's compute on every object, so it is the user's choice: ``--views 8`` asks for it,
``--views auto`` keeps the view count with the best validation macro-F1 if it beats one view
by at least :data:`AUTO_MIN_GAIN` (else one view), and the card records the validation
macro-F1 of each count measured, whatever was chosen, so the trade is visible.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.datasets import LabelledSet
from seawatch.models.plankton.finetune import macro_f1, predict_logits
from seawatch.models.plankton.network import VIEW_COUNTS, PlanktonNet, check_views

ViewsChoice = Literal[1, 4, 8, "auto"]
VIEWS_CHOICES: tuple[str, ...] = (*(str(v) for v in VIEW_COUNTS), "auto")
AUTO_MIN_GAIN = 0.005  # macro-F1 more views must buy on validation under --views auto
CARD_FIELD = "test_time_views"  # in the card's ``training``: the views the graph averages


def parse_views(value: str) -> ViewsChoice:
    """``--views``'s value: one of :data:`VIEWS_CHOICES`."""
    if value == "auto":
        return "auto"
    if value not in VIEWS_CHOICES:
        msg = f"--views {value!r}: one of {', '.join(VIEWS_CHOICES)}"
        raise ConfigError(msg)
    return int(value)  # type: ignore[return-value]


def card_views(card: ModelCard) -> int:
    """The dihedral views an artifact's graph averages (1 for cards without the field)."""
    return check_views(int((card.training.model_extra or {}).get(CARD_FIELD, 1)))


def choose_views(
    model: PlanktonNet, held: LabelledSet, wanted: ViewsChoice, device: str
) -> tuple[int, dict[str, Any], np.ndarray]:
    """The views to export, the card's record (the validation macro-F1 of one view and of
    each count tried: ``wanted``; ``auto``: 4 and 8; and the rule) and the held set's logits
    with the chosen views (what calibration fits)."""
    tried = VIEW_COUNTS if wanted == "auto" else tuple(sorted({1, check_views(wanted)}))
    n = len(held.class_names)
    logits = {views: predict_logits(model, held.images, device, views=views) for views in tried}
    scores = {views: macro_f1(held.labels, z.argmax(1), n) for views, z in logits.items()}
    if wanted == "auto":
        best = max(tried, key=lambda v: (round(scores[v], 6), -v))  # a tie: fewer views
        chosen = best if scores[best] - scores[1] >= AUTO_MIN_GAIN else 1
        rule = (
            f"auto: the count with the best validation macro-F1 if it beats one view by "
            f">= {AUTO_MIN_GAIN}"
        )
    else:
        chosen, rule = wanted, "asked for (--views)"
    record = {
        "chosen": chosen,
        "rule": rule,
        "validation_macro_f1": {str(v): round(f1, 4) for v, f1 in scores.items()},
        "compute": f"{chosen}x the classifier's per object (views averaged inside the graph)",
        "validation_n": len(held.labels),
    }
    return chosen, record, logits[chosen]


__all__ = [
    "AUTO_MIN_GAIN",
    "CARD_FIELD",
    "VIEWS_CHOICES",
    "ViewsChoice",
    "card_views",
    "choose_views",
    "parse_views",
]

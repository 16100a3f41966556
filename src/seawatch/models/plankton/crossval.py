"""K-fold cross-validation for small labelled sets (a user's folder with few images a class).

With under :data:`SMALL_CLASS` images in some class and no validation folder, a held-out
split of 15 % leaves a handful of images per class, and its score is mostly noise. Instead
every image is held out once: the set is cut into K stratified folds, each mode of
:mod:`.finetune` is trained K times on K-1 folds and scored on the fold left out. The mode
with the best mean macro-F1 is kept, its K scores give the mean and spread reported on the
card (overall and per class), and its out-of-fold logits (every image scored by the model
that never saw it) fit the calibration temperature and the ``unknown`` threshold. The final
model is then trained on all the images (the caller does it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.evaluate import classification_metrics
from seawatch.models.plankton.finetune import MODES, Mode, Schedule, new_model, train_mode

SMALL_CLASS = 30  # fewer images than this in some class: cross-validate (no --val-dir)
DEFAULT_FOLDS = 5


def folds_for(counts: Sequence[int], asked: int | None, *, has_validation: bool) -> int:
    """How many folds: ``asked`` (0 or 1: none); None: :data:`DEFAULT_FOLDS` (at most the
    smallest class) when some class has under :data:`SMALL_CLASS` images, else 0. A
    validation folder means no folds."""
    smallest = int(min(counts)) if len(counts) else 0
    if asked is not None and asked >= 2:
        if has_validation:
            msg = "--folds cross-validates instead of a validation set; drop --val-dir or --folds"
            raise ConfigError(msg)
        if asked > smallest:
            msg = (
                f"--folds {asked}: the smallest class has {smallest} images and each fold "
                f"needs one of every class; give --folds {max(2, smallest)} or fewer"
            )
            raise ConfigError(msg)
        return asked
    if asked is not None or has_validation or smallest >= SMALL_CLASS or smallest < 2:
        return 0
    return min(DEFAULT_FOLDS, smallest)


def fold_ids(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each sample: every class dealt round-robin over the folds in a
    seeded random order, so each fold holds a near equal share of every class."""
    if k < 2:
        msg = f"cross-validation needs at least 2 folds, got {k}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    ids = np.empty(len(labels), np.int64)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        ids[members] = (np.arange(len(members)) + rng.integers(k)) % k
    return ids


@dataclass
class CrossValidation:
    """The kept mode, its per-fold scores and out-of-fold logits; each mode's mean."""

    folds: int
    mode: Mode
    fold_scores: list[dict[str, object]]
    mean_by_mode: dict[str, float]
    oof_logits: np.ndarray

    def summary(self, class_names: list[str]) -> dict[str, object]:
        """For the card: folds, mean and std of macro-F1 and of each class's F1."""
        f1 = np.array([s["macro_f1"] for s in self.fold_scores], float)
        per_class = {
            name: _mean_std([s["f1_per_class"][name] for s in self.fold_scores])
            for name in class_names
        }
        return {
            "folds": self.folds,
            "mode": self.mode,
            "macro_f1_mean": round(float(f1.mean()), 4),
            "macro_f1_std": round(float(f1.std(ddof=1)) if len(f1) > 1 else 0.0, 4),
            "f1_per_class": per_class,
            "macro_f1_mean_by_mode": self.mean_by_mode,
            "per_fold": self.fold_scores,
            "method": "stratified K-fold; the mode with the best mean macro-F1 is kept; "
            "std over folds (ddof=1); calibration on the out-of-fold logits; the final model "
            "trained on every image",
        }


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, float)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return {"mean": round(float(v.mean()), 4), "std": round(std, 4)}


def _logits(model, images: np.ndarray, device: str) -> np.ndarray:
    from seawatch.models.plankton.datasets import planes

    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(planes(images)).float().to(device)
        return model.logits(x).cpu().numpy()


def cross_validate(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    *,
    folds: int,
    start: Path | None,
    schedule: Schedule,
    modes: Sequence[Mode] = MODES,
    seed: int = 0,
    device: str = "cpu",
    advance: Callable[[str], object] | None = None,
) -> CrossValidation:
    """Train each mode ``folds`` times, each time scoring the fold left out; keep the mode
    with the best mean macro-F1 (ties: the simpler). ``advance(info)`` is called after each
    fold (a progress bar)."""
    modes = ("full",) if start is None else tuple(modes)
    ids = fold_ids(labels, folds, seed)
    n_classes = len(class_names)
    results: list[tuple[float, Mode, list[dict[str, object]], np.ndarray]] = []
    for mode in modes:
        scores: list[dict[str, object]] = []
        oof = np.zeros((len(labels), n_classes), np.float32)
        for fold in range(folds):
            train, held = ids != fold, ids == fold
            torch.manual_seed(seed + fold)
            model, _ = new_model(n_classes, images[train], start)
            train_mode(
                model,
                images[train],
                labels[train],
                mode,
                schedule,
                seed=seed + fold,
                device=device,
                pretrained=start is not None,
            )
            oof[held] = _logits(model, images[held], device)
            m = classification_metrics(labels[held], oof[held].argmax(1), class_names)
            scores.append(
                {
                    "fold": fold,
                    "n": int(held.sum()),
                    "macro_f1": m["macro_f1"],
                    "f1_per_class": {k: v["f1"] for k, v in m["per_class"].items()},
                }
            )
            if advance is not None:
                advance(f"{mode} fold {fold + 1}/{folds} macro-F1 {m['macro_f1']:.3f}")
        mean = float(np.mean([s["macro_f1"] for s in scores]))
        results.append((mean, mode, scores, oof))
    best = max(results, key=lambda r: r[0])  # the first (simplest) mode wins a tie
    return CrossValidation(
        folds=folds,
        mode=best[1],
        fold_scores=best[2],
        mean_by_mode={mode: round(mean, 4) for mean, mode, _, _ in results},
        oof_logits=best[3],
    )


__all__ = [
    "DEFAULT_FOLDS",
    "SMALL_CLASS",
    "CrossValidation",
    "cross_validate",
    "fold_ids",
    "folds_for",
]

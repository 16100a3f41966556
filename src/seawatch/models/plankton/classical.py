"""The classical baseline a plankton user could write in 20 lines: hand-made features and a
linear classifier, as EcoTaxa's random forest and the UVP6 on-board classifier use.

Features of one prepared crop (dark object on a light background, ``prepare_roi``'s
output): a histogram of oriented gradients (Dalal-Triggs HOG: 8 px cells, 2 x 2-cell blocks
with L2-Hys normalisation, 9 unsigned orientations) and morphometric and grey-level features
of the Otsu mask (area, perimeter, solidity, elongation, Hu moments, intensity statistics).
Classifier: standardised features, multinomial logistic regression with its regularisation
chosen on validation. Needs scikit-learn (the ``train`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

C_GRID = (0.01, 0.1, 1.0, 10.0)


CELL, BINS = 8, 9


def hog(images: np.ndarray) -> np.ndarray:
    """HOG of N square crops (uint8 N x S x S, S a multiple of 8): N x ((S/8 - 1)^2 * 36)."""
    x = images.astype(np.float32)
    gx, gy = np.zeros_like(x), np.zeros_like(x)
    gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gy[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
    magnitude = np.hypot(gx, gy)
    orientation = np.minimum((np.arctan2(gy, gx) % np.pi) / (np.pi / BINS), BINS - 1).astype(int)
    n, side = len(x), x.shape[1] // CELL
    cells = np.stack(
        [
            (magnitude * (orientation == b)).reshape(n, side, CELL, side, CELL).sum((2, 4))
            for b in range(BINS)
        ],
        axis=-1,
    )  # n x side x side x BINS
    blocks = np.concatenate(
        [cells[:, :-1, :-1], cells[:, 1:, :-1], cells[:, :-1, 1:], cells[:, 1:, 1:]], axis=-1
    ).reshape(n, (side - 1) ** 2, 4 * BINS)
    blocks = blocks / np.sqrt((blocks**2).sum(-1, keepdims=True) + 1e-6)
    blocks = np.minimum(blocks, 0.2)  # L2-Hys: clip, renormalise
    blocks = blocks / np.sqrt((blocks**2).sum(-1, keepdims=True) + 1e-6)
    return blocks.reshape(n, -1)


def _shape_features(crop: np.ndarray) -> np.ndarray:
    """Morphometric and grey-level features of the object in one prepared crop."""
    _, mask = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    total = float(crop.size)
    if not contours:
        return np.zeros(18, np.float32)
    big = max(contours, key=cv2.contourArea)
    area = max(cv2.contourArea(big), 1.0)
    hull = max(cv2.contourArea(cv2.convexHull(big)), 1.0)
    perimeter = cv2.arcLength(big, True)
    (_, _), (a, b), _ = cv2.minAreaRect(big)
    hu = cv2.HuMoments(cv2.moments(mask, binaryImage=True)).ravel()
    hu = -np.sign(hu) * np.log10(np.abs(hu) + 1e-30)
    inside = crop[mask > 0].astype(np.float32)
    outside = crop[mask == 0].astype(np.float32)
    return np.array(
        [
            area / total,
            float((mask > 0).sum()) / total,
            perimeter / np.sqrt(total),
            area / hull,  # solidity
            perimeter**2 / (4 * np.pi * area),  # roughness
            max(a, b) / max(min(a, b), 1.0),  # elongation
            len(contours),
            *hu,
            inside.mean() if inside.size else 0.0,
            inside.std() if inside.size else 0.0,
            (outside.mean() if outside.size else 255.0) - (inside.mean() if inside.size else 0.0),
            np.percentile(inside, 10) if inside.size else 0.0,
        ],
        np.float32,
    )


def features(images: np.ndarray) -> np.ndarray:
    """N x F features of N prepared crops (uint8 N x S x S)."""
    shapes = np.stack([_shape_features(crop) for crop in images])
    gradients = np.concatenate([hog(images[i : i + 256]) for i in range(0, len(images), 256)])
    return np.concatenate([gradients, shapes], axis=1).astype(np.float32)


@dataclass
class ClassicalClassifier:
    """Standardised features + logistic regression (the C chosen on validation)."""

    model: Any
    c: float

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class indices of prepared crops."""
        return self.model.predict(features(images))


def fit_classical(
    train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray] | None
) -> ClassicalClassifier:
    """Fit on ``train`` (images, labels); choose C by macro-F1 on ``validation`` (or take 1.0
    without one)."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        msg = f"the classical baseline needs scikit-learn: pip install -e '.[train]' ({exc})"
        raise ImportError(msg) from exc
    x, y = features(train[0]), train[1]

    def fitted(c: float):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        return model.fit(x, y)

    if validation is None:
        return ClassicalClassifier(fitted(1.0), 1.0)
    xv, yv = features(validation[0]), validation[1]
    scored = []
    for c in C_GRID:
        model = fitted(c)
        scored.append((f1_score(yv, model.predict(xv), average="macro"), c, model))
    _, c, model = max(scored, key=lambda item: item[0])
    return ClassicalClassifier(model, c)


__all__ = ["C_GRID", "ClassicalClassifier", "features", "fit_classical", "hog"]

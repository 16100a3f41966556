"""Calibrated confidence: temperature scaling, expected calibration error, reliability diagram.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar ``T`` fitted on the
validation set by minimising the negative log-likelihood; it changes no prediction, only how
sure the model says it is, so the ``unknown`` threshold means what it says. The fit works on
log-probabilities (softmax is shift-invariant, so ``log p`` are logits up to a constant), so
it runs on ONNX Runtime outputs too. numpy, plus matplotlib for the diagram.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

T_BOUNDS = (0.05, 20.0)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def logits_from_probs(probs: np.ndarray) -> np.ndarray:
    """Logits (up to a per-row constant) of softmax probabilities."""
    return np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))


def scale(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities of ``logits / temperature``."""
    return np.exp(_log_softmax(logits.astype(np.float64) / temperature))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    logp = _log_softmax(logits.astype(np.float64) / temperature)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising validation NLL (golden-section search on log T)."""
    if len(labels) == 0:
        return 1.0
    lo, hi = np.log(T_BOUNDS[0]), np.log(T_BOUNDS[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, np.exp(a)), nll(logits, labels, np.exp(b))
    for _ in range(60):  # the bracket shrinks by 0.618 a step: far below 1e-6 in log T
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, np.exp(b))
    return float(np.exp((lo + hi) / 2.0))


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: mean confidence, accuracy and sample count (equal-width bins)."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=n_bins)
    right = np.bincount(which, weights=correct.astype(float), minlength=n_bins)
    safe = np.maximum(count, 1)
    return conf_sum / safe, right / safe, count


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over confidence bins."""
    if len(labels) == 0:
        return 0.0
    confidence, accuracy, count = reliability_bins(probs, labels, n_bins)
    return float(np.sum(count * np.abs(accuracy - confidence)) / count.sum())


def draw_reliability(
    curves: dict[str, np.ndarray], labels: np.ndarray, path: Path, *, title: str, n_bins: int = 15
) -> Path:
    """A reliability diagram (accuracy vs confidence) for one or more sets of probabilities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
    centres = (np.arange(n_bins) + 0.5) / n_bins
    for (name, probs), colour in zip(
        curves.items(), ("tab:red", "tab:blue", "tab:green"), strict=False
    ):
        confidence, accuracy, count = reliability_bins(probs, labels, n_bins)
        used = count > 0
        ece = expected_calibration_error(probs, labels, n_bins)
        top.plot(
            confidence[used],
            accuracy[used],
            marker="o",
            color=colour,
            label=f"{name} (ECE {ece:.3f})",
        )
        bottom.bar(centres, count / max(1, count.sum()), width=1 / n_bins, alpha=0.45, color=colour)
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title, fontsize=9)
    bottom.set_xlabel("top-1 confidence")
    bottom.set_ylabel("share")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


__all__ = [
    "draw_reliability",
    "expected_calibration_error",
    "fit_temperature",
    "logits_from_probs",
    "nll",
    "reliability_bins",
    "scale",
]

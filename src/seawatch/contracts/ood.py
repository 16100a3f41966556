"""Out-of-distribution score: "unknown" for objects unlike anything the model was trained on.

A calibrated softmax threshold says how sure the model is *between its classes*; an
organism of a taxon it never learned is often mapped confidently onto one of them (issue
24: 80 % of 105 real micrographs of unlearned taxa came out as known classes). The score
here looks at the classifier's penultimate features instead (graph output ``features``).

**Method: k-nearest-neighbour distance on L2-normalised features** (Sun et al., 2022, "Out-
of-distribution detection with deep nearest neighbors", ICML): the score of an object is
``1 - cos`` to its k-th nearest training object (k = 1 for the committed model). Why this
one, measured on development draws (``benchmarks/ood.py``, seeds 7_1xx_xxx) at the same
budget of in-distribution objects flagged:

- it makes no assumption about the shape of a class in feature space. The Mahalanobis
  distance (Lee et al., 2018; class means, one shared shrunk covariance) assumes each class
  is one Gaussian; ours are not (dark- and bright-field, whole and segmented pieces of one
  taxon), and it caught about two thirds as many novel objects as kNN. The relative
  Mahalanobis distance, multi-layer Mahalanobis (every stage, mean and standard deviation
  pooled) and multi-layer kNN did no better or only marginally;
- energy and max-logit scores read the same head as the softmax and added almost nothing
  to the softmax threshold;
- it is numpy only (one matrix product against a stored bank) and needs no torch.

The bank (training-set features, L2-normalised, float16) and the threshold live beside the
model in ``ood.npz``; the card's ``ood`` field names the file, its SHA-256, the method, k,
the threshold and how it was calibrated. An object is ``unknown`` when its top-1
probability is under ``unknown_confidence`` **or** its score is over the threshold. The
threshold is set so that the two rules together flag a chosen share of the validation split
(in-distribution objects the model was not trained on), and the share of held-out
calibration taxa it flags is recorded. Fitted by ``seawatch train plankton-ood --method
knn_cosine``. The committed model carries the outlier-exposure scorer instead, which uses
this distance as one of its inputs (:mod:`.ood_scorer`); :func:`load_ood` loads either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.ood_knn import OodDetector, _sha256, normalise
from seawatch.contracts.ood_scorer import OodScorer

OOD_FILE = "ood.npz"
STAGE3 = "stage3"  # the graph output of the scorer's stage-3 inputs (:mod:`.ood_scorer`)
METHODS = ("knn_cosine", "outlier_exposure")  # the second: :mod:`.ood_scorer`
FIX = "refit it with `seawatch train plankton-ood --model {dir}` or remove the card's ood field"


def load_ood(directory: Path, spec: dict[str, Any] | None) -> OodDetector | OodScorer | None:
    """The detector a card's ``ood`` field describes, or None when the card has none.

    A named file that is missing, altered (SHA-256), unreadable or inconsistent with the
    card raises :class:`ConfigError` naming the file and the fix: a model must not be served
    with an OOD score other than the one its card describes.
    """
    if spec is None:
        return None
    directory = Path(directory)
    path = directory / str(spec.get("file", OOD_FILE))
    fix = FIX.format(dir=directory)
    if spec.get("method") not in METHODS:
        msg = f"card ood method {spec.get('method')!r} is not one of {METHODS}; {fix}"
        raise ConfigError(msg)
    if not path.is_file():
        raise ConfigError(f"the card names an OOD file {path} that is missing; {fix}")
    actual = _sha256(path)
    if actual != spec.get("sha256"):
        msg = (
            f"{path} does not match its card (sha256 {actual[:12]} != "
            f"{str(spec.get('sha256'))[:12]}); {fix}"
        )
        raise ConfigError(msg)
    if spec.get("method") == "outlier_exposure":
        return _load_scorer(path, spec, fix)
    try:
        with np.load(path, allow_pickle=False) as data:
            bank, k, threshold = data["bank"], int(data["k"]), float(data["threshold"])
        detector = OodDetector(bank.astype(np.float32), k=k, threshold=threshold)
    except Exception as exc:
        msg = f"{path} is not a readable OOD bank ({type(exc).__name__}: {exc}); {fix}"
        raise ConfigError(msg) from exc
    if k != spec.get("k") or not np.isclose(threshold, float(spec.get("threshold", np.nan))):
        msg = f"{path} (k={k}, threshold={threshold:.6g}) disagrees with its card; {fix}"
        raise ConfigError(msg)
    return detector


def stage3_output(outputs: list[str], ood: OodDetector | OodScorer | None) -> int | None:
    """The index of the graph output ``stage3`` a scorer with stage-3 inputs reads (None
    when it reads none); a graph without it raises :class:`ConfigError` naming the fix."""
    if not getattr(ood, "stage3_dim", 0):
        return None
    if STAGE3 not in outputs:
        msg = f"the card's OOD score reads the graph output {STAGE3!r} (outputs: {outputs}); "
        raise ConfigError(msg + "re-export and refit with `seawatch train plankton-ood`")
    return outputs.index(STAGE3)


def _load_scorer(path: Path, spec: dict[str, Any], fix: str) -> OodScorer:
    """The outlier-exposure scorer in ``path``, checked against its card's threshold."""
    try:
        with np.load(path, allow_pickle=False) as data:
            scorer = OodScorer({name: data[name] for name in data.files})
    except Exception as exc:
        msg = f"{path} is not a readable OOD scorer ({type(exc).__name__}: {exc}); {fix}"
        raise ConfigError(msg) from exc
    if not np.isclose(scorer.threshold, float(spec.get("threshold", np.nan))):
        msg = f"{path} (threshold={scorer.threshold:.6g}) disagrees with its card; {fix}"
        raise ConfigError(msg)
    return scorer


__all__ = [
    "METHODS",
    "OOD_FILE",
    "STAGE3",
    "OodDetector",
    "OodScorer",
    "load_ood",
    "normalise",
    "stage3_output",
]

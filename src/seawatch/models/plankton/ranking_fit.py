"""Fit a plankton model's "most likely wrong" score on a labelled validation cruise.

``seawatch train plankton-ranking`` runs the artifact (ONNX Runtime, the served graph) on
labelled objects, marks the model's errors (predicted taxon != true taxon; ``unknown`` is an
error) and fits :class:`~seawatch.contracts.ranking.RankingCalibration`, a logistic
regression on what the store keeps per object, by Newton steps (numpy; no scikit-learn, no
torch). The coefficients and how they were fitted go into the card's ``ranking`` field; the
graph is not touched, so the release stays the same.

The labelled objects are, by default, a synthetic cruise drawn the way the demo's stream
draws its frames (:func:`draw_cruise`: ROI frames from the flow imagers and, for
``full_share`` of the frames, full frames that the head's own ``prepare`` segments; each
segmented object gets the taxon of the ground-truth box it matches), or the user's labelled
crops: an ImageFolder tree or an EcoTaxa export (the review station's export of validated
objects is one). User crops do not say which kind of frame they came from unless the TSV
has an ``acq_frame_kind`` column or ``--frame-kind`` says so; without it the full-frame term
is left out (weight 0).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from seawatch.contracts.card import ONNX_FILE, ModelCard, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef
from seawatch.contracts.preprocess import batch_tensor
from seawatch.contracts.ranking import RankingCalibration, ranking_features
from seawatch.contracts.records import UNKNOWN
from seawatch.ingest.decode import decode_image
from seawatch.ingest.image_headers import DecodeLimits

if TYPE_CHECKING:
    from seawatch.models.plankton.head import PlanktonClassifier

VALIDATION_SEED = 7_100_013  # the validation cruise (benchmarks/review_queue.py)
VALIDATION_OBJECTS = 10_000
FULL_SHARE = 0.05  # share of full frames (the demo stream's default)
TOP_K = 3  # the daemon's default tasks.plankton.options.top_k
L2 = 1.0
MIN_ERRORS = 20
FRAME_KIND_COLUMN = "acq_frame_kind"


@dataclass
class Cruise:
    """Model inputs, truths and sources (roi / segmented) of a labelled set of objects."""

    crops: list[np.ndarray]
    truth: list[str]
    source: list[str]  # "roi", "segmented" or "file" (kind not known)


@dataclass
class Stored:
    """What the daemon stores per object, plus the full probabilities."""

    probs: np.ndarray  # N x C
    taxon: np.ndarray  # predicted, UNKNOWN under the card's threshold
    confidence: np.ndarray  # N
    top_k: np.ndarray  # N x k, as stored (rounded to 4 decimals)
    first: np.ndarray  # N, the top-1 taxon named in top_k (also for unknown objects)


def _payload(image: np.ndarray, encoding: str) -> tuple[bytes, str]:
    """The bytes an instrument sends (the demo stream's settings)."""
    png = encoding == "png"
    ext, params = (
        (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if png
        else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
    )
    ok, data = cv2.imencode(ext, image, params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as {encoding}")
    return data.tobytes(), "image/png" if png else "image/jpeg"


def draw_cruise(
    n: int,
    seed: int,
    head: PlanktonClassifier,
    full_share: float = FULL_SHARE,
    advance: Callable[[int], object] | None = None,
) -> Cruise:
    """``n`` labelled objects, frame by frame, through the daemon's decode and prepare."""
    from seawatch.models.plankton._segmented import match_objects
    from seawatch.models.plankton.synthetic import render_full_frame, render_roi, sample_taxa
    from seawatch.models.synthetic_stream import INSTRUMENTS

    rng = np.random.default_rng(seed)
    limits = DecodeLimits()
    rois = [i for i in INSTRUMENTS if i[1] is FrameKind.ROI]
    fulls = [i for i in INSTRUMENTS if i[1] is FrameKind.FULL]
    cruise = Cruise([], [], [])
    index = 0
    while len(cruise.truth) < n:
        full = rng.random() < full_share
        pool = fulls if full else rois
        name, kind, encoding, pixel_um, _ = pool[int(rng.integers(len(pool)))]
        dark = name.startswith("uvp") or rng.random() < 0.1
        if full:
            image, truth = render_full_frame(
                rng, n_objects=int(rng.integers(15, 45)), dark_field=dark
            )
        else:
            taxon = sample_taxa(rng, 1)[0]
            image, truth = render_roi(taxon, rng, dark_field=dark), [(taxon, (0, 0, 1, 1))]
        payload, content_type = _payload(image, encoding)
        meta = FrameMeta(name, "plankton", index, kind, content_type, pixel_size_um=pixel_um)
        frame = Frame(meta, SourceRef("bench", 0, index), payload, 0)
        decoded = decode_image(payload, content_type, limits)
        prepared = head.prepare(frame, decoded)
        index += 1
        if full:
            pairs, _ = match_objects(
                [obj.bbox for obj in prepared.objects],
                [box for _, box in truth],
                pad=head.segment.pad_px,
                shape=decoded.shape[:2],
            )
            found = [(prepared.inputs[i], truth[j][0]) for i, j in pairs]
        else:
            found = [(prepared.inputs[0], truth[0][0])]
        found = found[: n - len(cruise.truth)]
        for crop, taxon in found:
            cruise.crops.append(crop)
            cruise.truth.append(taxon)
            cruise.source.append("segmented" if full else "roi")
        if advance is not None:
            advance(len(found))
    return cruise


def stored_answers(head: PlanktonClassifier, crops: list[np.ndarray]) -> Stored:
    """The model's answers for prepared crops, as the daemon stores them."""
    outputs = head.infer(batch_tensor(crops))
    probs, predictions = outputs.probs, head.interpret(outputs)
    k = head.top_k
    return Stored(
        probs=probs,
        taxon=np.array([p.taxon for p in predictions]),
        confidence=np.array([p.confidence for p in predictions]),
        top_k=np.array([[prob for _, prob in p.top_k] for p in predictions]).reshape(-1, k),
        first=np.array([p.top_k[0][0] for p in predictions]),
    )


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (the bias not penalised) by Newton steps:
    (weights, bias)."""
    x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    penalty = np.full(x1.shape[1], float(l2))
    penalty[-1] = 0.0
    w = np.zeros(x1.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x1 @ w, -500.0, 500.0)))
        grad = x1.T @ (p - y) + penalty * w
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w[:-1], float(w[-1])


def ranking_taxa(class_names: list[str]) -> tuple[str, ...]:
    """The one-hot columns of a model's calibration: its classes, then ``unknown``."""
    return (*class_names, UNKNOWN)


def fit_calibration(
    answers: Stored,
    errors: np.ndarray,
    full_frame: np.ndarray,
    taxa: tuple[str, ...],
    *,
    l2: float = L2,
    use_full_frame: bool = True,
    fitted: dict[str, Any] | None = None,
) -> RankingCalibration:
    """The logistic calibration of ``errors`` (1 = the model was wrong) on the stored fields.

    ``use_full_frame=False`` (frame kinds not known) fits without that column: weight 0."""
    x = ranking_features(answers.confidence, answers.top_k, answers.taxon, full_frame, taxa)
    keep = np.ones(x.shape[1], bool)
    keep[3] = use_full_frame
    weights = np.zeros(x.shape[1])
    w, bias = fit_logistic(x[:, keep], errors.astype(np.float64), l2)
    weights[keep] = w
    return RankingCalibration(
        taxa=taxa,
        weights=tuple(round(float(v), 6) for v in weights),
        bias=round(bias, 6),
        top_k=answers.top_k.shape[1],
        fitted=fitted or {},
    )


def share_found(score: np.ndarray, errors: np.ndarray, share: float = 0.10) -> float:
    """Share of all errors among the first ``share`` of the objects, by decreasing score."""
    order = np.argsort(-score, kind="stable")
    n_first = int(np.ceil(share * len(score)))
    total = errors.sum()
    return float(errors[order][:n_first].sum() / total) if total else float("nan")


def _ecotaxa_frame_kinds(tsv: Path, validated_only: bool) -> list[str] | None:
    """The ``acq_frame_kind`` column of an EcoTaxa TSV, in the loader's row order; None
    when the TSV has no such column."""
    from seawatch.models.plankton.datasets import ECOTAXA_LABEL, ECOTAXA_STATUS

    with Path(tsv).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header = rows[0]
    if FRAME_KIND_COLUMN not in header:
        return None
    col = {name: i for i, name in enumerate(header)}
    kinds = []
    for row in rows[2:]:
        if not any(row):
            continue
        status = row[col[ECOTAXA_STATUS]].strip() if ECOTAXA_STATUS in col else "validated"
        if not row[col[ECOTAXA_LABEL]].strip() or (validated_only and status != "validated"):
            continue
        kinds.append(row[col[FRAME_KIND_COLUMN]].strip().lower())
    return kinds


def user_cruise(
    size: int,
    *,
    data_dir: Path | None,
    ecotaxa: Path | None,
    validated_only: bool,
    frame_kind: str | None,
) -> tuple[Cruise, dict[str, Any]]:
    """The user's labelled crops as a cruise (source: ``segmented``, ``roi`` or ``file``
    where the frame kind is not known) and a description for the card."""
    from seawatch.models.plankton.datasets import load_ecotaxa, load_image_folder

    kinds: list[str] | None = None
    if data_dir is not None:
        data, origin = load_image_folder(data_dir, size=size), f"ImageFolder {data_dir}"
    else:
        assert ecotaxa is not None
        data = load_ecotaxa(ecotaxa, size=size, validated_only=validated_only)
        origin = f"EcoTaxa {ecotaxa}" + (" (validated rows)" if validated_only else "")
        kinds = _ecotaxa_frame_kinds(ecotaxa, validated_only)
    truth = [data.class_names[i] for i in data.labels]
    if kinds is not None and (data.skipped or len(kinds) != len(truth)):
        msg = (
            f"--ecotaxa {ecotaxa}: {len(data.skipped)} unreadable images; the "
            f"{FRAME_KIND_COLUMN} column no longer lines up with the crops (fix or remove them)"
        )
        raise ConfigError(msg)
    if kinds is not None:
        bad = sorted(set(kinds) - {FrameKind.FULL.value, FrameKind.ROI.value})
        if bad:
            msg = f"--ecotaxa {ecotaxa}: {FRAME_KIND_COLUMN} must be 'full' or 'roi', got {bad}"
            raise ConfigError(msg)
        source = ["segmented" if k == FrameKind.FULL.value else "roi" for k in kinds]
        how = f"{FRAME_KIND_COLUMN} column"
    elif frame_kind is not None:
        source = ["segmented" if frame_kind == FrameKind.FULL.value else "roi"] * len(truth)
        how = f"--frame-kind {frame_kind}"
    else:
        source, how = ["file"] * len(truth), "not known (full-frame term left out)"
    crops = list(data.images)
    described = {
        "source": origin,
        "skipped_unreadable": len(data.skipped),
        "frame_kind": how,
    }
    return Cruise(crops, truth, source), described


def calibrate_ranking(
    model: Path,
    out: Path | None = None,
    *,
    data_dir: Path | None = None,
    ecotaxa: Path | None = None,
    validated_only: bool = False,
    frame_kind: str | None = None,
    seed: int = VALIDATION_SEED,
    objects: int = VALIDATION_OBJECTS,
    full_share: float = FULL_SHARE,
    command: str = "",
    progress: Callable[[int], object] | None = None,
) -> ModelCard:
    """Fit the ranking calibration of the artifact at ``model`` and write its card into
    ``out`` (default: in place; the graph is copied unchanged otherwise)."""
    import shutil

    from seawatch.inference.factory import open_backend
    from seawatch.models.plankton.head import PlanktonClassifier

    if data_dir is not None and ecotaxa is not None:
        raise ConfigError("give either --data-dir or --ecotaxa, not both")
    card = load_card(model)
    if card.task != "plankton":
        msg = f"{model} is a {card.task!r} model; the ranking calibration is for plankton"
        raise ConfigError(msg)
    classes = list(card.class_names)
    with open_backend("onnxruntime", Path(model) / ONNX_FILE, threads=0) as backend:
        head = PlanktonClassifier(backend, card, max_batch=64, top_k=TOP_K)
        if data_dir is None and ecotaxa is None:
            cruise = draw_cruise(objects, seed, head, full_share, progress)
            data: dict[str, Any] = {
                "source": "synthetic cruise (seawatch.models.plankton.ranking_fit.draw_cruise)",
                "seed": seed,
                "full_frame_share": full_share,
            }
        else:
            cruise, data = user_cruise(
                card.input.size,
                data_dir=data_dir,
                ecotaxa=ecotaxa,
                validated_only=validated_only,
                frame_kind=frame_kind,
            )
        answers = stored_answers(head, cruise.crops)
    truth = np.array(cruise.truth)
    errors = (answers.taxon != truth) | (answers.taxon == UNKNOWN)
    n_errors = int(errors.sum())
    if n_errors < MIN_ERRORS or len(truth) - n_errors < MIN_ERRORS:
        msg = (
            f"{len(truth)} labelled objects with {n_errors} model errors: fitting the ranking "
            f"needs at least {MIN_ERRORS} errors and {MIN_ERRORS} correct answers"
        )
        raise ConfigError(msg)
    source = np.array(cruise.source)
    full = source == "segmented"
    kinds_known = not (source == "file").any()
    use_full = kinds_known and 0 < full.sum() < len(full)
    if use_full:
        full_term = "fitted"
    else:
        why = "frame kinds not known" if not kinds_known else "one frame kind only"
        full_term = f"left out (weight 0): {why}"
    by_source = {
        s: {"objects": int((source == s).sum()), "errors": int(errors[source == s].sum())}
        for s in ("roi", "segmented", "file")
        if (source == s).any()
    }
    fitted: dict[str, Any] = {
        "method": f"logistic regression, L2 {L2:g} (bias not penalised), Newton steps (numpy)",
        "data": data,
        "objects": len(truth),
        "errors": n_errors,
        "error": "predicted taxon != true taxon; unknown counts as an error",
        "labels_outside_model": int((~np.isin(truth, classes)).sum()),
        "by_source": by_source,
        "full_frame_term": full_term,
        "top_k": TOP_K,
        "command": command,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    calibration = fit_calibration(
        answers, errors, full, ranking_taxa(classes), use_full_frame=use_full
    )
    score = calibration.scores(answers.confidence, answers.top_k, answers.taxon, full)
    fitted["in_sample_errors_in_first_10pct"] = {
        "fitted": round(share_found(score, errors), 4),
        "least_confidence": round(share_found(1.0 - answers.confidence, errors), 4),
    }
    calibration = dataclasses.replace(calibration, fitted=fitted)
    out = Path(out) if out is not None else Path(model)
    if out.resolve() != Path(model).resolve():
        shutil.copytree(model, out, dirs_exist_ok=True)
    updated = card.model_copy(update={"ranking": calibration.to_dict()})
    updated.write(out)
    return load_card(out)


__all__ = [
    "VALIDATION_OBJECTS",
    "VALIDATION_SEED",
    "Cruise",
    "Stored",
    "calibrate_ranking",
    "draw_cruise",
    "fit_calibration",
    "fit_logistic",
    "ranking_taxa",
    "share_found",
    "stored_answers",
    "user_cruise",
]

"""Crops that the segmentation *model* cuts from hard and easy full frames (issue 27).

With ``ingest.segmentation.method: model`` the classifier sees crops cut by the
segmentation network (``models/segmentation``) from frames like those of its own generator
(:func:`seawatch.models.segmentation.synthetic.render_hard_frame`: touching and overlapping
organisms, faint marine snow, uneven light, defocus, debris; and easy frames). Those crops
differ from ROI renders and from threshold cuts, so the classifier learns from them too.

Each frame (1280 x 960, 15-45 objects, taxa dealt uniformly, half of the frames hard) goes
through the daemon's own code: :func:`~seawatch.ingest.segment_model.model_input`, the
network through ONNX Runtime, :func:`~seawatch.models.segmentation.evaluate.model_labels`
and :func:`~seawatch.ingest.segment_model.objects_from_labels`. A cut object takes the taxon
of the true object covering at least ``MIN_SHARE`` of it (the rule of
``benchmarks/segmentation.py``); the others are dropped and counted. numpy, OpenCV and ONNX
Runtime only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.preprocess import prepare_roi
from seawatch.ingest.segment import SegmentParams
from seawatch.ingest.segment_model import model_input, objects_from_labels, split_levels
from seawatch.models.plankton._segmented import shuffled_crops
from seawatch.models.plankton.synthetic import TAXA
from seawatch.models.segmentation.data import STRIDE, jpeg
from seawatch.models.segmentation.evaluate import model_labels
from seawatch.models.segmentation.metrics import inter_matrix
from seawatch.models.segmentation.synthetic import EASY, render_hard_frame

MIN_SHARE = 0.5  # a cut object takes the taxon of the true object covering this much of it
HARD_SHARE = 0.5  # share of the frames drawn hard (the rest easy)
OBJECTS = (15, 45)  # objects per frame, [low, high)
COUNT_KEYS = ("frames", "hard_frames", "truth_objects", "cut", "kept", "on_no_true_object")


def taxa_of(pred: np.ndarray, truth: np.ndarray, taxa: list[str]) -> list[int | None]:
    """The index in :data:`TAXA` of the true object covering at least ``MIN_SHARE`` of each
    predicted object of the label map ``pred`` (None: mostly on no true object)."""
    inter = inter_matrix(pred, truth)
    areas = np.bincount(pred.ravel(), minlength=inter.shape[0] + 1)[1:]
    out: list[int | None] = []
    for k in range(inter.shape[0]):
        if not inter.shape[1]:
            out.append(None)
            continue
        j = int(inter[k].argmax())
        share = inter[k, j] / max(int(areas[k]), 1)
        out.append(TAXA.index(taxa[j]) if share >= MIN_SHARE else None)
    return out


def check_segmentation_model(model_dir: Path) -> str:
    """``name release`` of the segmentation artifact in ``model_dir``; a clear error when
    there is none."""
    if not (model_dir / ONNX_FILE).is_file():
        msg = (
            f"--segmentation-model {model_dir}: no {ONNX_FILE} there; train one with "
            f"`seawatch train segmentation --out {model_dir}` or point at models/segmentation"
        )
        raise ConfigError(msg)
    card = load_card(model_dir)
    return f"{card.name} {card.release}"


def model_segmented_dataset(
    n_frames: int,
    seed: int,
    model_dir: Path,
    *,
    size: int,
    hard_share: float = HARD_SHARE,
    counts: dict[str, int] | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Prepared crops (uint8 N x size x size, shuffled) and taxon indices of the objects the
    segmentation model in ``model_dir`` cuts from ``n_frames`` frames drawn from ``seed``.

    ``counts``, when given, is incremented (see :data:`COUNT_KEYS`); ``progress`` gets 1
    per frame.
    """
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

    if n_frames < 1 or size < 8 or not 0.0 <= hard_share <= 1.0:
        msg = f"need n_frames >= 1, size >= 8, 0 <= hard_share <= 1; got {n_frames}, {size}, "
        msg += f"{hard_share}"
        raise ValueError(msg)
    check_segmentation_model(model_dir)
    core, merge = split_levels(load_card(model_dir).thresholds)  # the daemon's split
    rng = np.random.default_rng(seed)
    params = SegmentParams()
    total = dict.fromkeys(COUNT_KEYS, 0)
    crops: list[np.ndarray] = []
    labels: list[int] = []
    session = OnnxRuntimeBackend(model_dir / ONNX_FILE, threads=1)
    try:
        for _ in range(n_frames):
            count = int(rng.integers(*OBJECTS))
            names = [TAXA[i] for i in rng.integers(0, len(TAXA), count)]
            hard = bool(rng.random() < hard_share)
            frame = render_hard_frame(
                rng,
                width=1280,
                height=960,
                taxa=names,
                dark_field=bool(rng.random() < 0.3),
                hardness=None if hard else EASY,
            )
            image = jpeg(frame.image) if rng.random() < 0.5 else frame.image
            signal = model_input(image, params, STRIDE).signal
            maps = session.run(signal[None, None].astype(np.float32))[0]
            cut = model_labels(maps, image.shape, core_level=core, merge_level=merge)
            objects, kept = objects_from_labels(image, cut, params, None)
            remap = np.zeros(int(cut.max(initial=0)) + 1, np.int32)
            remap[kept] = np.arange(1, len(kept) + 1)
            taxa = taxa_of(remap[cut], frame.labels, list(frame.taxa))
            for obj, taxon in zip(objects, taxa, strict=True):
                if taxon is not None:
                    crops.append(prepare_roi(obj.image, size))
                    labels.append(taxon)
            total["frames"] += 1
            total["hard_frames"] += int(hard)
            total["truth_objects"] += len(frame.taxa)
            total["cut"] += len(objects)
            total["on_no_true_object"] += sum(t is None for t in taxa)
            if progress is not None:
                progress(1)
    finally:
        session.close()
    total["kept"] = len(labels)
    return shuffled_crops(rng, crops, labels, size, total, counts)


__all__ = [
    "COUNT_KEYS",
    "HARD_SHARE",
    "MIN_SHARE",
    "check_segmentation_model",
    "model_segmented_dataset",
    "taxa_of",
]

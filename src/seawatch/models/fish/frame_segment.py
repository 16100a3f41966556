"""Whole tank frames -> fish, cut by the segmentation network (``detector: model``).

The classical detector (:mod:`.frame_detect`) finds one box around two touching fish: their
union is one blob. Here the segmentation machinery of issue 27 (the plankton U-Net,
:class:`~seawatch.models.segmentation.network.SegNet`, trained on tank scenes by
``seawatch train fish-segmentation``) cuts them:

1. **Input** (:func:`segment_input`): the classical detector's own background difference
   (:func:`~.frame_detect.difference`: each pixel's largest colour difference from the
   fitted smooth wall) on the frame at half size, 0..255 as uint8, zero-padded to the
   network's stride: fish bright, the wall near 0, the "signal" the network was built for.
2. **Maps**: foreground probability and centre-ness (a peak in each fish, a valley where
   two touch).
3. **Instances**: the plankton post-processing
   (:func:`~seawatch.ingest.segment_model.instances`: centre-ness cores by hysteresis, every
   foreground pixel joined to its nearest core).
4. **Fish**: each instance at least ``min_area`` / ``min_width`` (full-frame pixels) is a
   detection; orientation and the head-left crop as the classical detector makes them.

numpy + OpenCV; the network runs through ONNX Runtime (one thread).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from seawatch.ingest.segment_model import FOREGROUND, boxes, instances, split_levels
from seawatch.models.fish.frame_detect import (
    DetectorSettings,
    FishDetection,
    _as_bgr8,
    difference,
    head_left_crop,
)
from seawatch.models.fish.outline_gate import measure_outline

SCALE = 2  # the network sees the frame at half size
STRIDE = 32  # inputs padded to a multiple of this (every SegNet used here divides it)
TASK = "fish_segmentation"  # the artifact's card task
# centre-ness: a core's peak and the ridge that joins two cores. Higher than the plankton
# network's 0.5 / 0.3: a fish's centre-ness is a long ridge, and the valley between two
# touching fish stays over 0.3 in the maps of a student fitted for 150 steps (levels chosen
# on the validation scenes, seed 7,100,702: pairs both found 6 -> 11 of 28).
CORE_LEVEL, MERGE_LEVEL = 0.6, 0.5


def segment_input(image: np.ndarray, min_contrast: float = 18.0) -> np.ndarray:
    """The network's input of a whole frame (uint8 H/2 x W/2, padded to :data:`STRIDE`)."""
    bgr = _as_bgr8(image)
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (max(1, w // SCALE), max(1, h // SCALE)), interpolation=cv2.INTER_AREA)
    diff, _ = difference(small, min_contrast)
    signal = np.clip(diff + 0.5, 0, 255).astype(np.uint8)
    ph, pw = -signal.shape[0] % STRIDE, -signal.shape[1] % STRIDE
    if ph or pw:
        signal = cv2.copyMakeBorder(signal, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
    return signal


def detections_from_maps(
    image: np.ndarray,
    maps: np.ndarray,
    settings: DetectorSettings | None = None,
    *,
    core_level: float = CORE_LEVEL,
    merge_level: float = MERGE_LEVEL,
) -> list[FishDetection]:
    """The fish of a frame from the network's maps (2 x H' x W', padding included), left to
    right; instances cut at ``core_level`` / ``merge_level`` of centre-ness."""
    settings = settings or DetectorSettings()
    h, w = image.shape[:2]
    sh, sw = max(1, h // SCALE), max(1, w // SCALE)
    window = np.ascontiguousarray(maps[:, :sh, :sw])
    labels = instances(window, core_level=core_level, merge_level=merge_level)
    fg = maps[FOREGROUND, :sh, :sw] > 0.5
    found = []
    for label, (x, y, bw, bh) in boxes(labels).items():
        inside = (labels[y : y + bh, x : x + bw] == label) & fg[y : y + bh, x : x + bw]
        if int(inside.sum()) * SCALE * SCALE < settings.min_area or bw * SCALE < settings.min_width:
            continue
        measures = measure_outline(inside, SCALE)
        box = (x * SCALE, y * SCALE, min(bw * SCALE, w - x * SCALE), min(bh * SCALE, h - y * SCALE))
        crop = head_left_crop(image, box, measures.head_right)
        found.append(FishDetection(box, measures.head_right, crop, measures))
    return sorted(found, key=lambda d: d.box[0])


class FishSegmenter:
    """The fish segmentation artifact (``models/fish-segmentation``) as a whole-frame
    detector: ``segmenter(image)`` gives the frame's fish like
    :func:`~.frame_detect.detect_fish`."""

    def __init__(self, directory: Path, settings: DetectorSettings | None = None) -> None:
        from seawatch.contracts.card import ONNX_FILE, load_card
        from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

        card = load_card(directory)
        if card.task != TASK:
            msg = (
                f"{directory} holds a {card.task!r} model ({card.name}), not a fish segmentation "
                "network: train one with `seawatch train fish-segmentation`"
            )
            raise ValueError(msg)
        self.card = card
        self.settings = settings or DetectorSettings()
        self.core_level, self.merge_level = split_levels(card.thresholds, (CORE_LEVEL, MERGE_LEVEL))
        self.backend = OnnxRuntimeBackend(Path(directory) / ONNX_FILE, threads=1)

    def maps(self, image: np.ndarray) -> np.ndarray:
        """The network's maps (2 x H' x W') of one frame."""
        signal = segment_input(image, self.settings.min_contrast)
        return self.backend.run(signal[None, None].astype(np.float32))[0]

    def __call__(self, image: np.ndarray) -> list[FishDetection]:
        """Every fish in a whole frame, left to right ([] for a frame too small to hold one)."""
        if image.shape[0] < 16 or image.shape[1] < 16:
            return []
        maps = self.maps(image)
        return detections_from_maps(
            image, maps, self.settings, core_level=self.core_level, merge_level=self.merge_level
        )

    def close(self) -> None:
        """Release the ONNX Runtime session."""
        self.backend.close()


__all__ = [
    "CORE_LEVEL",
    "MERGE_LEVEL",
    "SCALE",
    "STRIDE",
    "TASK",
    "FishSegmenter",
    "detections_from_maps",
    "segment_input",
]

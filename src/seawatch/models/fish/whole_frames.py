"""A whole fish frame (a tank or trawl camera) -> one head-left model input per fish.

With ``tasks.fish.options.whole_frames`` the fish head's ``prepare`` cuts a frame into its
fish (:func:`~seawatch.models.fish.frame_detect.detect_fish`, or with
``tasks.fish.options.detector: model`` the segmentation network's
:class:`~seawatch.models.fish.frame_segment.FishSegmenter`: found, oriented, mirrored when
facing right) and gives one model input per fish, with the fish as a
:class:`~seawatch.contracts.objects.SegmentedObject` (its box, for tracklets and the record).
A frame without fish gives no input and no sighting.

Each fish's outline is judged by :class:`~seawatch.models.fish.outline_gate.OutlineGate`:
one too small, shaped like two touching fish found as one, with no clearly deeper head end,
or cut by the frame's border is marked ``poor`` (:func:`.sighting_inputs.place` then gives its view
quality 0: matched, never enrolled, never deciding a tracklet nor raising an alert alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from seawatch.contracts.crops import Crop, encode_crop
from seawatch.contracts.objects import Morphometrics, SegmentedObject
from seawatch.contracts.task import TaskInputs
from seawatch.models.fish.frame_detect import FishDetection, detect_fish
from seawatch.models.fish.outline_gate import OutlineGate

Detector = Callable[[np.ndarray], Sequence[FishDetection]]
ONE_FISH = OutlineGate()  # the default gate of every whole frame


def whole_frame_inputs(
    image: np.ndarray,
    input8: Callable[[np.ndarray], np.ndarray],
    *,
    keep_views: bool,
    detect: Detector = detect_fish,
    gate: OutlineGate | None = ONE_FISH,
) -> TaskInputs:
    """The frame's fish as model inputs and objects (left to right); their views (8-bit
    frames) when ``keep_views``. ``detect``: the classical detector, or the segmentation
    network's (:class:`~seawatch.models.fish.frame_segment.FishSegmenter`); ``gate`` marks
    the objects whose outline is not one whole fish ``poor`` (None: none is)."""
    found = detect(image)
    objects = [
        SegmentedObject(k, d.box, d.crop, _morph(d.box), _poor(d, gate, image.shape))
        for k, d in enumerate(found)
    ]
    keep = keep_views and image.dtype == np.uint8
    views: list[Crop] = [encode_crop(d.crop) for d in found] if keep else []
    return TaskInputs([input8(d.crop) for d in found], objects=objects, views=views)


def _poor(detection: FishDetection, gate: OutlineGate | None, shape: tuple[int, ...]) -> str:
    """Why the gate doubts a detection's view (``""``: it does not, or nothing to judge)."""
    if gate is None or detection.outline is None:
        return ""
    return gate.judge_in_frame(detection.outline, detection.box, shape)


def _morph(box: tuple[int, int, int, int]) -> Morphometrics:
    """The box's measures (a fish's length is its box's longer side)."""
    _, _, w, h = box
    return Morphometrics(float(w * h), float(max(w, h)), float(min(w, h)), float(np.hypot(w, h)))


__all__ = ["ONE_FISH", "Detector", "whole_frame_inputs"]

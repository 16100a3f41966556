"""The open-set fish stream as whole tank frames (issue 28's figures on what a camera sends).

:func:`~seawatch.models.fish.open_set_stream.open_set_stream` gives each sighting a camera,
a capture time and a box; the sightings of one camera at one time are one frame. Here each
such frame is rendered whole, as :mod:`seawatch.models.fish.tank_scene` draws tank frames
(a tank wall with uneven light, vignetting, debris, sensor noise, sometimes JPEG): each fish
drawn at its box's place and size with its own pose and light, facing its visit's way
(about half of the visits face right, so the head must mirror them), in capture order, so a
later fish may cover an earlier one. ``edge_share`` of the sightings are moved across the
frame's left or right edge (cut by it). A view the stream made poor stays poor: ``small``
is drawn at 0.14-0.25 of its size, ``blur`` is smeared along the body, ``occluded`` has a
large wall-coloured occluder over it.

Each fish's truth (:class:`FrameFish`) is its outline's box as drawn (cut by the edges), how
much of it shows and its visible pixels (:class:`~seawatch.models.fish.visible_truth.Shown`:
what no later fish nor occluder covers), for scoring a detector's boxes by outline
(:func:`~seawatch.models.fish.tank_scene.match_boxes`) or by what shows
(:func:`~seawatch.models.fish.visible_truth.match_visible`).

numpy + OpenCV only. Used by ``benchmarks/fish_open_set_frames.py``, ``benchmarks/pipeline_fish.py``
(its whole-frame workload) and the tests.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from seawatch.models.fish.open_set_stream import FRAME_H, FRAME_W, StreamSighting
from seawatch.models.fish.synthetic import Individual, _fish_layer, make_individual
from seawatch.models.fish.tank_scene import _finish, _paste, _wall
from seawatch.models.fish.visible_truth import Shown, shown_of


@dataclass(frozen=True, slots=True)
class FrameFish:
    """One fish as drawn in a whole frame, with its stream sighting's truth."""

    truth: str  # the fish's name
    known: bool  # the fish is in the gallery
    box: tuple[int, int, int, int]  # x, y, w, h of its outline (cut by the frame's edges)
    facing_right: bool
    visible: float  # share of its outline not covered later nor cut by the frame
    poor: str  # "" or how the stream made the view poor: small, blur, occluded
    edge: bool  # placed across the frame's edge
    shown: Shown | None = field(default=None, compare=False)  # its visible pixels


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """One camera's whole frame at one time (H x W x 3 uint8 BGR) and the fish drawn in it."""

    camera: str
    captured_at_ns: int
    image: np.ndarray
    fish: tuple[FrameFish, ...]


def group_frames(stream: Sequence[StreamSighting]) -> list[list[StreamSighting]]:
    """The stream's sightings grouped by (camera, capture time), in first-seen order."""
    frames: dict[tuple[str, int], list[StreamSighting]] = {}
    for s in stream:
        frames.setdefault((s.camera, s.captured_at_ns), []).append(s)
    return list(frames.values())


def open_set_frames(
    stream: Sequence[StreamSighting],
    seed: int,
    *,
    mirror_share: float = 0.5,
    edge_share: float = 0.08,
) -> list[StreamFrame]:
    """Every frame of ``stream`` rendered whole, in capture order (deterministic in ``seed``)."""
    if not 0.0 <= mirror_share <= 1.0 or not 0.0 <= edge_share <= 1.0:
        msg = f"mirror_share and edge_share must be in [0, 1], got {mirror_share}, {edge_share}"
        raise ValueError(msg)
    rng = np.random.default_rng([seed, 28, 2])
    facing: dict[int, bool] = {}
    out = []
    for group in group_frames(stream):
        for s in group:
            if s.visit not in facing:
                facing[s.visit] = bool(rng.random() < mirror_share)
        out.append(_render(group, facing, rng, edge_share))
    return out


def _render(
    group: list[StreamSighting], facing: dict[int, bool], rng: np.random.Generator, edge: float
) -> StreamFrame:
    """One frame: the wall, then each sighting's fish at its box, then the camera's finish."""
    image = _wall(rng, FRAME_H, FRAME_W)
    cover = np.zeros((FRAME_H, FRAME_W), np.int16)
    drawn: list[tuple[StreamSighting, tuple[int, int, int, int], int, bool, int]] = []
    for k, s in enumerate(group):
        x, y, w, h = s.box
        if s.poor == "small":
            side = float(rng.uniform(0.14, 0.25))
            x, y, w, h = x + w * (1 - side) / 2, y + h * (1 - side) / 2, w * side, h * side
        fw, fh = max(16, round(w)), max(16, round(h))
        premultiplied, alpha, _ = _fish_layer(_individual(s.truth), rng, fh, fw)
        if s.poor == "blur":
            premultiplied, alpha = _smear(premultiplied, alpha, int(rng.integers(9, 17)))
        if facing[s.visit]:
            premultiplied, alpha = premultiplied[:, ::-1], alpha[:, ::-1]
        x0, y0 = round(x), round(y)
        across = bool(rng.random() < edge)
        if across:  # across the nearer side edge, 20-50 % of it outside
            cut = float(rng.uniform(0.2, 0.5))
            x0 = -round(fw * cut) if x + w / 2 < FRAME_W / 2 else FRAME_W - round(fw * (1 - cut))
        full = int((alpha > 0.5).sum())
        box = _paste(image, cover, premultiplied, alpha, x0, y0, k + 1)
        if box is None:
            continue
        if s.poor == "occluded":
            _occlude(image, cover, box, rng)
        drawn.append((s, box, full, across, k + 1))
    shown = shown_of(cover, len(group))  # cover holds each pasted fish's k + 1
    fish = tuple(
        FrameFish(
            s.truth,
            s.known,
            box,
            facing[s.visit],
            shown[label - 1].pixels / max(full, 1),
            s.poor,
            across,
            shown[label - 1],
        )
        for s, box, full, across, label in drawn
    )
    first = group[0]
    return StreamFrame(first.camera, first.captured_at_ns, _finish(image, rng), fish)


def _smear(premultiplied: np.ndarray, alpha: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Motion blur along the body (a horizontal box kernel of ``k`` pixels)."""
    kernel = np.full((1, k), 1.0 / k, np.float32)
    return cv2.filter2D(premultiplied, -1, kernel), cv2.filter2D(alpha, -1, kernel)


def _occlude(
    image: np.ndarray, cover: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator
) -> None:
    """A large occluder (a dim ellipse, like a plant or a pipe in front) over half the fish."""
    x, y, w, h = box
    centre = (int(x + rng.uniform(0.3, 0.7) * w), int(y + rng.uniform(0.3, 0.7) * h))
    mask = np.zeros(cover.shape, np.uint8)
    cv2.ellipse(mask, centre, (max(1, int(w * 0.3)), max(1, int(h * 0.6))), 0, 0, 360, 1, -1)
    tint = np.float32(rng.uniform(0.1, 0.35))
    image[mask > 0] = tint
    cover[mask > 0] = 0


@functools.lru_cache(maxsize=512)
def _individual(name: str) -> Individual:
    """The generator's individual behind a stream fish's name (``zf-<seed>-<index>``)."""
    _, seed, index = name.split("-")
    return make_individual(int(index), int(seed))


__all__ = ["FrameFish", "StreamFrame", "group_frames", "open_set_frames"]

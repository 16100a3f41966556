"""A synthetic open-set fish stream: tank cameras that see known fish and strangers in visits.

A fish swims through a camera's field for a few frames (a *visit*: 1-8 frames 0.4 s apart,
moving across the frame); several visits overlap, so a frame holds 1-4 fish. Each fish in a
frame is one sighting: a tight head-left crop (:func:`~seawatch.models.fish.synthetic.
render_fish`, every view its own pose, light and background) with its box in the frame.
Some views are poor on purpose: a fish far away (a small crop, blown up by the model's
resize), motion blur, or a large occluder. Known fish are drawn from the committed model's
gallery (seed-0 individuals 0-143 and 192-215), strangers from seed-0 individuals 240 and
above (in no gallery, never trained on); which ones depends on the stream's seed.

numpy + OpenCV only. Used by ``benchmarks/fish_open_set.py`` (crops),
``benchmarks/fish_open_set_frames.py`` (rendered as whole frames by
:mod:`seawatch.models.fish.open_set_frames`) and the tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from seawatch.models.fish.synthetic import make_individual, render_fish

GALLERY_FISH = (*range(0, 144), *range(192, 216))  # in the committed model's gallery
STRANGER_POOL = range(240, 2240)  # in no gallery, never trained on
FRAME_W, FRAME_H = 640, 480
TICK_NS = 400_000_000  # frames of a camera 0.4 s apart
MAX_PER_FRAME = 4


@dataclass(frozen=True, slots=True)
class StreamSighting:
    """One fish in one frame of the stream, with the truth kept for scoring."""

    uid: str  # the sighting's source id (frame and object)
    camera: str
    captured_at_ns: int
    box: tuple[float, float, float, float]  # x, y, w, h in the frame, pixels
    truth: str  # the fish's name
    known: bool  # the fish is in the gallery
    visit: int  # index of the visit it belongs to
    poor: str  # "" or why the view is poor: small, blur, occluded
    image: np.ndarray  # the crop, H x W x 3 uint8 BGR, head left


@dataclass(frozen=True, slots=True)
class _Visit:
    fish: int  # index into the stream's fish list
    camera: int
    start: int  # first tick
    frames: int
    x0: float
    y0: float
    vx: float
    vy: float
    scale: float


def open_set_stream(
    seed: int,
    *,
    sightings: int = 3000,
    known: int = 60,
    new: int = 20,
    cameras: int = 4,
    poor_share: float = 0.12,
) -> list[StreamSighting]:
    """``sightings`` sightings of ``known`` gallery fish and ``new`` strangers, in capture
    order (ties: camera, then position in the frame)."""
    if sightings < 1 or known < 0 or new < 0 or known + new < 1 or cameras < 1:
        msg = f"need sightings >= 1, cameras >= 1 and some fish; got {sightings}, {known}+{new}"
        raise ValueError(msg)
    rng = np.random.default_rng([seed, 28])
    known_idx = rng.choice(GALLERY_FISH, known, replace=False).tolist()
    new_idx = rng.choice(STRANGER_POOL, new, replace=False).tolist()
    fish = [make_individual(int(i), 0) for i in (*known_idx, *new_idx)]
    visits = _visits(rng, len(fish), sightings, cameras)
    names = [f"tank-cam-{c + 1:02d}" for c in range(cameras)]
    out: list[tuple[int, int, float, StreamSighting]] = []
    count = 0
    for v, visit in enumerate(visits):
        for f in range(visit.frames):
            if count == sightings:
                break
            count += 1
            tick = visit.start + f
            box = _box(visit, f)
            image, poor = _view(fish[visit.fish], rng, visit.scale, poor_share)
            uid = hashlib.sha256(f"{seed}/{visit.camera}/{tick}/{v}".encode()).hexdigest()[:24]
            sighting = StreamSighting(
                uid,
                names[visit.camera],
                1_800_000_000_000_000_000 + tick * TICK_NS,
                box,
                fish[visit.fish].name,
                visit.fish < known,
                v,
                poor,
                image,
            )
            out.append((tick, visit.camera, box[0], sighting))
    out.sort(key=lambda item: item[:3])
    return [s for *_, s in out]


def _visits(rng: np.random.Generator, n_fish: int, sightings: int, cameras: int) -> list[_Visit]:
    """Visits until ``sightings`` frames are filled, at most MAX_PER_FRAME fish a frame."""
    ticks = max(50, sightings // (2 * cameras))  # about two fish a frame on average
    busy = np.zeros((cameras, ticks + 8), np.int32)
    visits: list[_Visit] = []
    total = 0
    while total < sightings:
        frames = int(min(8, rng.geometric(0.3)))
        camera, start = int(rng.integers(cameras)), int(rng.integers(ticks))
        if (busy[camera, start : start + frames] >= MAX_PER_FRAME).any():
            continue
        busy[camera, start : start + frames] += 1
        scale = float(rng.uniform(0.7, 1.4))
        w, h = 160 * scale, 64 * scale
        x0 = float(rng.uniform(0, FRAME_W - w))
        vx = float(rng.uniform(15, 45) * rng.choice([-1, 1]))
        visits.append(
            _Visit(
                int(rng.integers(n_fish)),
                camera,
                start,
                frames,
                x0,
                float(rng.uniform(0, FRAME_H - h)),
                vx,
                float(rng.normal(0, 6)),
                scale,
            )
        )
        total += frames
    return visits


def _box(visit: _Visit, frame: int) -> tuple[float, float, float, float]:
    w, h = 160 * visit.scale, 64 * visit.scale
    x = float(np.clip(visit.x0 + visit.vx * frame, 0, FRAME_W - w))
    y = float(np.clip(visit.y0 + visit.vy * frame, 0, FRAME_H - h))
    return (round(x, 1), round(y, 1), round(w, 1), round(h, 1))


def _view(individual, rng: np.random.Generator, scale: float, poor_share: float):
    """One crop of ``individual`` and, when it was made poor on purpose, how."""
    h, w = round(64 * scale), round(160 * scale)
    image = render_fish(individual, rng, height=max(16, h), width=max(16, w))
    if rng.random() >= poor_share:
        return image, ""
    kind = str(rng.choice(["small", "blur", "occluded"]))
    if kind == "small":  # far from the camera: a few pixels high
        side = float(rng.uniform(0.14, 0.25))
        small = cv2.resize(image, None, fx=side, fy=side, interpolation=cv2.INTER_AREA)
        return small, kind
    if kind == "blur":  # motion blur along the body
        k = int(rng.integers(9, 17))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        return cv2.filter2D(image, -1, kernel), kind
    mask = np.zeros(image.shape[:2], np.uint8)  # a large occluder over half the fish or more
    hh, ww = image.shape[:2]
    centre = (int(rng.uniform(0.3, 0.7) * ww), int(rng.uniform(0.3, 0.7) * hh))
    cv2.ellipse(mask, centre, (int(ww * 0.3), int(hh * 0.6)), 0, 0, 360, 1, -1)
    tint = np.full_like(image, int(rng.integers(20, 90)))
    return np.where(mask[..., None] > 0, tint, image), kind


__all__ = ["StreamSighting", "open_set_stream"]

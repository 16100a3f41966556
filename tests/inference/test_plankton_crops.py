"""Which crop the plankton head keeps for the review station: a whole ROI that came as PNG
or JPEG is kept byte for byte (the instrument's own vignette, no re-encoding); a full
frame's objects, a TIFF ROI or an ROI larger than a crop are encoded as PNG."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from seawatch.contracts.crops import MAX_CROP_SIDE, image_type
from seawatch.contracts.frames import Frame, SourceRef, parse_headers
from seawatch.ingest.segment import SegmentParams, measure_roi, segment_full
from seawatch.models.plankton.head import PlanktonClassifier

NOW = 1_790_000_000_000_000_000  # 2026-09-21, after the frames


def _frame(payload: bytes, content_type: str, kind: str) -> Frame:
    headers = [
        ("content-type", content_type.encode()),
        ("instrument", b"flowcam-01"),
        ("captured-at", b"2026-06-01T12:00:00Z"),
        ("frame-kind", kind.encode()),
    ]
    meta = parse_headers(headers, topic="frames.plankton", key=b"flowcam-01", now_ns=NOW)
    return Frame(meta, SourceRef("frames.plankton", 0, 0), payload, 0, headers)


def _roi(h: int, w: int) -> np.ndarray:
    image = np.full((h, w), 200, np.uint8)
    cv2.ellipse(image, (w // 2, h // 2), (w // 4, h // 4), 0, 0, 360, 60, -1)
    return image


def test_a_jpeg_roi_is_kept_as_it_came():
    image = _roi(150, 200)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    objects = [measure_roi(decoded, SegmentParams(), None)]
    (crop,) = PlanktonClassifier._views(_frame(jpeg, "image/jpeg", "roi"), decoded, objects)
    assert crop.png == jpeg and crop.digest == hashlib.sha256(jpeg).hexdigest()
    assert image_type(crop.png) == "image/jpeg" and image_type(crop.thumb) == "image/jpeg"


def test_full_frames_and_large_rois_are_encoded_as_png():
    field = np.full((400, 400), 200, np.uint8)
    for x in (100, 300):
        cv2.circle(field, (x, 200), 30, 50, -1)
    png = cv2.imencode(".png", field)[1].tobytes()
    objects = segment_full(field, SegmentParams(), None)
    assert len(objects) == 2
    crops = PlanktonClassifier._views(_frame(png, "image/png", "full"), field, objects)
    assert [image_type(c.png) for c in crops] == ["image/png", "image/png"]
    assert all(c.png != png for c in crops)
    big = _roi(MAX_CROP_SIDE + 40, 100)
    big_png = cv2.imencode(".png", big)[1].tobytes()
    roi = [measure_roi(big, SegmentParams(), None)]
    (crop,) = PlanktonClassifier._views(_frame(big_png, "image/png", "roi"), big, roi)
    assert crop.png != big_png  # shrunk to MAX_CROP_SIDE, so re-encoded
    shape = cv2.imdecode(np.frombuffer(crop.png, np.uint8), 0).shape
    assert max(shape) == MAX_CROP_SIDE


def test_a_16_bit_png_roi_is_kept_as_it_came_with_an_8_bit_thumbnail():
    image = (_roi(150, 200).astype(np.uint16) * 257).astype(np.uint16)
    png = cv2.imencode(".png", image)[1].tobytes()
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16
    gray8 = (decoded >> 8).astype(np.uint8)
    objects = [measure_roi(gray8, SegmentParams(), None)]
    (crop,) = PlanktonClassifier._views(_frame(png, "image/png", "roi"), decoded, objects)
    assert crop.png == png
    thumb = cv2.imdecode(np.frombuffer(crop.thumb, np.uint8), cv2.IMREAD_UNCHANGED)
    assert thumb.dtype == np.uint8 and max(thumb.shape[:2]) == 128


def test_a_fish_view_is_the_frame_as_the_camera_sent_it():
    from seawatch.models.fish.head import FishIdentifier

    side = np.full((64, 160, 3), 90, np.uint8)
    jpeg = cv2.imencode(".jpg", side)[1].tobytes()
    view = FishIdentifier._view(_frame(jpeg, "image/jpeg", "roi"), side)
    assert view.png == jpeg and view.digest == hashlib.sha256(jpeg).hexdigest()
    tiff = cv2.imencode(".tiff", side)[1].tobytes()
    encoded = FishIdentifier._view(_frame(tiff, "image/tiff", "roi"), side)
    assert image_type(encoded.png) == "image/png"


def test_a_jpeg_little_larger_than_a_thumbnail_is_its_own_thumbnail():
    from seawatch.contracts.crops import THUMB_SIDE, THUMB_SLACK, crop_as_sent

    side = np.full((64, 160, 3), 90, np.uint8)  # a fish side view: 1.25 x a thumbnail
    assert max(side.shape) <= THUMB_SIDE * THUMB_SLACK
    jpeg = cv2.imencode(".jpg", side)[1].tobytes()
    assert crop_as_sent(jpeg, side).thumb == b""  # the store serves the JPEG itself
    wider = np.full((64, 168, 3), 90, np.uint8)
    thumb = crop_as_sent(cv2.imencode(".jpg", wider)[1].tobytes(), wider).thumb
    assert max(cv2.imdecode(np.frombuffer(thumb, np.uint8), 1).shape) == THUMB_SIDE
    png = cv2.imencode(".png", side)[1].tobytes()  # a PNG (lossless, heavier): a thumbnail
    assert image_type(crop_as_sent(png, side).thumb) == "image/jpeg"

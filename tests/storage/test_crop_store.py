"""The crop store: content-addressed (a replay adds nothing), durable at put, retention by
age and by bytes that never drops a reviewed object's crop; the pipeline stores crops
before the records naming them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.contracts.crops import THUMB_SIDE, encode_crop, image_type, is_digest
from seawatch.storage.crop_store import CropStore

DAY_NS = 86_400 * 10**9


def _crops(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [encode_crop(rng.integers(0, 255, (24, 24), np.uint8)) for _ in range(n)]


def test_a_crop_is_named_by_its_bytes_and_stored_once(tmp_path):
    crops = _crops(3)
    assert all(is_digest(c.digest) for c in crops) and len({c.digest for c in crops}) == 3
    store = CropStore(tmp_path / "c.db")
    store.put(crops)
    store.put(crops[:2])  # a replay
    rows = store._db.execute("SELECT COUNT(*) FROM crops").fetchone()[0]
    assert rows == 3
    assert store.get(crops[1][0]) == crops[1][1]
    assert store.many([crops[0][0], "0" * 64]) == {crops[0][0]: crops[0][1]}
    store.close()
    reopened = CropStore(tmp_path / "c.db", readonly=True)
    assert reopened.get(crops[2][0]) == crops[2][1]  # committed at put


def test_retention_drops_old_crops_but_keeps_reviewed_ones(tmp_path):
    crops = _crops(4)
    kept = {crops[0][0]}
    store = CropStore(tmp_path / "c.db", max_age_s=30 * 86_400, keep=lambda: kept)
    now = 100 * DAY_NS
    store.put(crops[:2], now_ns=now - 40 * DAY_NS)  # older than 30 days
    store.put(crops[2:], now_ns=now - 1 * DAY_NS)
    pruned = store.prune(now_ns=now)
    assert pruned.removed == 1  # crops[1]; crops[0] is reviewed
    assert store.get(crops[0][0]) is not None and store.get(crops[1][0]) is None
    assert store.get(crops[2][0]) is not None and store.get(crops[3][0]) is not None


def test_retention_drops_the_oldest_until_the_bytes_fit(tmp_path):
    crops = _crops(10)
    size = len(crops[0][1])
    kept = {crops[0][0]}  # the oldest, but reviewed
    store = CropStore(tmp_path / "c.db", max_bytes=4 * size + 10, keep=lambda: kept)
    for i, crop in enumerate(crops):
        store.put([crop], now_ns=i * 10**9)
    pruned = store.prune(now_ns=11 * 10**9)
    assert pruned.kept_bytes <= 4 * size + 10
    left = {d for (d,) in store._db.execute("SELECT digest FROM crops")}
    assert left == {crops[0][0], *(c.digest for c in crops[-3:])}


def test_a_large_crop_has_a_jpeg_thumbnail_that_goes_with_it(tmp_path):
    rng = np.random.default_rng(3)
    big = encode_crop(rng.integers(0, 255, (300, 200), np.uint8))  # kept at 256 x 171
    small = encode_crop(rng.integers(0, 255, (40, 30), np.uint8))
    assert cv2.imdecode(np.frombuffer(big.png, np.uint8), 0).shape == (256, 171)
    assert cv2.imdecode(np.frombuffer(big.thumb, np.uint8), 0).shape == (THUMB_SIDE, 86)
    assert image_type(big.thumb) == "image/jpeg" and image_type(big.png) == "image/png"
    assert small.thumb == b""  # no larger than a thumbnail: the crop is its own
    store = CropStore(tmp_path / "c.db", max_age_s=86_400)
    store.put([big, small], now_ns=0)
    assert store.thumb(big.digest) == big.thumb and store.thumb(small.digest) == small.png
    store.prune(now_ns=2 * DAY_NS)
    assert store.thumb(big.digest) is None
    assert store._db.execute("SELECT COUNT(*) FROM thumbs").fetchone()[0] == 0


def test_a_digest_that_is_not_a_digest_is_not_a_crop_name():
    for name in ("../x", "A" * 64, "a" * 63, "a" * 64 + "/", ""):
        assert not is_digest(name)


def test_only_8_bit_images_are_kept():
    with pytest.raises(ValueError, match="8-bit"):
        encode_crop(np.zeros((4, 4), np.uint16))

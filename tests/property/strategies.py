"""Shared hypothesis settings and strategies for the property tests."""

from __future__ import annotations

import os

import cv2
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_SCALE = float(os.environ.get("SEAWATCH_PROPERTY_SCALE", "1"))

EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif"}


def props(max_examples: int) -> settings:
    """Settings for one property: no deadline (the machine is shared), scaled example count."""
    return settings(
        max_examples=max(1, int(max_examples * _SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def encode(image: np.ndarray, content_type: str, params: tuple[int, ...] = ()) -> bytes:
    ok, buf = cv2.imencode(EXT[content_type], image, list(params))
    assert ok, (image.shape, image.dtype, content_type)
    return buf.tobytes()


@st.composite
def images(draw: st.DrawFn, dtypes=(np.uint8, np.uint16), max_side: int = 24) -> np.ndarray:
    """Small gray (2-D) or BGR images, uint8 or uint16, from constant to pure noise."""
    dtype = draw(st.sampled_from(dtypes))
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    channels = draw(st.sampled_from([None, 3]))
    shape = (height, width) if channels is None else (height, width, channels)
    top = int(np.iinfo(dtype).max)
    style = draw(st.sampled_from(["noise", "constant", "extremes"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "constant":
        return np.full(shape, draw(st.integers(0, top)), dtype)
    if style == "extremes":
        return (rng.integers(0, 2, shape) * top).astype(dtype)
    return rng.integers(0, top + 1, shape, dtype=dtype)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A valid file with bytes overwritten, inserted or deleted (often in the header), cut."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        # Half the edits land in the first 64 bytes, where the size and the markers live.
        end = min(len(data), 64) if draw(st.booleans()) else len(data)
        at = draw(st.integers(0, end - 1))
        action = draw(st.sampled_from(["set", "set", "insert", "delete", "copy"]))
        if action == "set":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:  # duplicate a slice elsewhere: repeated chunks, markers and tags
            chunk = data[at : at + draw(st.integers(1, 32))]
            to = draw(st.integers(0, len(data)))
            data[to:to] = chunk
    return bytes(data[: draw(st.integers(0, len(data)))])

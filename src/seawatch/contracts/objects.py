"""Objects cut out of a frame, with their morphometrics (the segmentation's output type)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Morphometrics:
    """Shape measures of one object, in pixels; physical units when the pixel size is known.

    ESD is the diameter of the disc of the same area; biovolume is that of the ESD sphere
    (as EcoTaxa and the UVP/ZooScan pipelines report it).
    """

    area_px: float
    major_px: float
    minor_px: float
    feret_px: float
    pixel_size_um: float | None = None

    @property
    def esd_px(self) -> float:
        return 2.0 * math.sqrt(self.area_px / math.pi)

    def _um(self, px: float) -> float | None:
        return None if self.pixel_size_um is None else px * self.pixel_size_um

    @property
    def area_um2(self) -> float | None:
        return None if self.pixel_size_um is None else self.area_px * self.pixel_size_um**2

    @property
    def esd_um(self) -> float | None:
        return self._um(self.esd_px)

    @property
    def major_um(self) -> float | None:
        return self._um(self.major_px)

    @property
    def minor_um(self) -> float | None:
        return self._um(self.minor_px)

    @property
    def feret_um(self) -> float | None:
        return self._um(self.feret_px)

    @property
    def biovolume_um3(self) -> float | None:
        esd = self.esd_um
        return None if esd is None else math.pi / 6.0 * esd**3


@dataclass(frozen=True, slots=True)
class SegmentedObject:
    """One object: its index in the frame, bounding box (x, y, w, h), 8-bit crop, measures."""

    index: int
    bbox: tuple[int, int, int, int]
    image: np.ndarray
    morph: Morphometrics
    # why the detector doubts this object's view ("" when it does not): e.g. its outline is
    # too small, or shaped like touching objects it could not cut apart
    poor: str = ""


__all__ = ["Morphometrics", "SegmentedObject"]

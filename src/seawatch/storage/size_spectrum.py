"""Size classes for the normalised biomass size spectrum (NBSS).

Objects are binned by equivalent spherical diameter (ESD) into fixed classes whose edges grow
by 2^(1/3), so each class doubles in biovolume (the usual octave bins of NBSS work). The
``plankton_size`` point of a frame carries the frame's imaged volume and the biovolume of
each non-empty class; summing both over any set of frames and dividing gives the spectrum:

    NBSS(class) = sum(biovolume_mm3) / sum(volume_m3) / width_mm3(class)   [m^-3]

Frames with no object in a class simply leave that field out, which is what ``sum()``
needs: the volume still counts, the class adds zero. The classes are a fixed, bounded set,
so they are fields, never tags.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

#: ESD class edges in µm: 8 µm to 4.1 mm, each 2^(1/3) times the previous one.
EDGES_UM: tuple[float, ...] = tuple(8.0 * 2 ** (k / 3) for k in range(28))


@dataclass(frozen=True, slots=True)
class SizeClass:
    """One ESD class: its field name, edges (µm) and biovolume width (mm³)."""

    field: str
    lower_um: float
    upper_um: float

    @property
    def width_mm3(self) -> float:
        """Biovolume width of the class: π/6 (upper³ − lower³), in mm³."""
        return math.pi / 6 * (self.upper_um**3 - self.lower_um**3) * 1e-9

    @property
    def label(self) -> str:
        """A short human label, e.g. ``101-127 µm``."""
        return f"{self.lower_um:.0f}-{self.upper_um:.0f} µm"

    @property
    def centre_um(self) -> float:
        """Geometric centre of the class (µm)."""
        return math.sqrt(self.lower_um * self.upper_um)


SIZE_CLASSES: tuple[SizeClass, ...] = tuple(
    SizeClass(f"bv_{k:02d}", lo, hi) for k, (lo, hi) in enumerate(pairwise(EDGES_UM))
)


def class_of(esd_um: float) -> SizeClass | None:
    """The class an ESD falls in, None outside the covered range."""
    if not EDGES_UM[0] <= esd_um < EDGES_UM[-1]:
        return None
    k = math.floor(3 * math.log2(esd_um / EDGES_UM[0]) + 1e-9)
    k = min(max(k, 0), len(SIZE_CLASSES) - 1)
    # Guard the floating edge: step to the neighbour whose bounds hold the value.
    if esd_um < SIZE_CLASSES[k].lower_um:
        k -= 1
    elif esd_um >= SIZE_CLASSES[k].upper_um:
        k += 1
    return SIZE_CLASSES[k]


def biovolume_by_class(esds_um: Iterable[float]) -> dict[str, float]:
    """Biovolume (mm³, ESD spheres) per class field, only for non-empty classes."""
    totals: dict[str, float] = {}
    for esd in esds_um:
        size_class = class_of(esd)
        if size_class is not None:
            volume = math.pi / 6 * esd**3 * 1e-9
            totals[size_class.field] = totals.get(size_class.field, 0.0) + volume
    return dict(sorted(totals.items()))


__all__ = ["EDGES_UM", "SIZE_CLASSES", "SizeClass", "biovolume_by_class", "class_of"]

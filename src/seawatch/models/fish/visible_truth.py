"""Which drawn fish a found box shows: truth by the visible pixels (issue 28's scoring).

A crop's identity is the fish it shows. :func:`~seawatch.models.fish.tank_scene.match_boxes`
pairs a found box with a drawn fish's *outline* box, hidden part included, so a box over two
heavily overlapping fish goes to whichever outline box it happens to fit best, often the
fish behind, of which the crop shows only a rim. :func:`match_visible` scores by what shows
instead (the scene's paint order: a later fish hides an earlier one): each drawn fish is
its :class:`Shown` pixels (:func:`shown_of`), and a found box is a sighting of fish ``i``
when

- the box lies on what shows of ``i``: IoU with the box of its visible pixels >= ``min_iou``
  (0.5, the outline rule's threshold), and
- ``i`` is most of the fish the box shows: at least ``min_share`` (one half) of the fish
  pixels inside the box are ``i``'s.

Pairs are taken one to one, the largest share first; ties go to the larger IoU, then to the
fish drawn later (in front), then to the lower box index. A fish hidden behind another
never takes a box that mostly shows the other.

numpy only; used by ``benchmarks/fish_open_set_frames.py`` (``--truth visible``) and the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from seawatch.models.fish.tank_scene import iou, one_to_one

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Shown:
    """The visible pixels of one drawn fish: the box around them (x, y, w, h; zero size when
    none show) and the mask inside that box (h x w bool)."""

    box: Box
    mask: np.ndarray = field(compare=False, repr=False)

    @property
    def pixels(self) -> int:
        """How many of the fish's pixels show."""
        return int(self.mask.sum())

    def inside(self, box: Box) -> int:
        """How many of the fish's visible pixels lie inside ``box`` (x, y, w, h)."""
        x, y, w, h = self.box
        xa, ya = max(x, box[0]), max(y, box[1])
        xb, yb = min(x + w, box[0] + box[2]), min(y + h, box[1] + box[3])
        if xb <= xa or yb <= ya:
            return 0
        return int(self.mask[ya - y : yb - y, xa - x : xb - x].sum())


def shown_of(labels: np.ndarray, count: int) -> list[Shown]:
    """Each of ``count`` fish's visible pixels from a label image (H x W, ``i + 1`` where
    fish ``i`` shows, 0 elsewhere), as :attr:`~seawatch.models.fish.tank_scene.Scene.labels`."""
    if labels.ndim != 2:
        msg = f"labels must be a 2-D label image, got shape {labels.shape}"
        raise ValueError(msg)
    out = []
    for i in range(count):
        ys, xs = np.nonzero(labels == i + 1)
        if len(xs) == 0:
            out.append(Shown((0, 0, 0, 0), np.zeros((0, 0), bool)))
            continue
        x, y = int(xs.min()), int(ys.min())
        w, h = int(xs.max()) - x + 1, int(ys.max()) - y + 1
        out.append(Shown((x, y, w, h), labels[y : y + h, x : x + w] == i + 1))
    return out


def match_visible(
    shown: Sequence[Shown],
    found: Sequence[Box],
    min_iou: float = 0.5,
    min_share: float = 0.5,
) -> list[tuple[int, int]]:
    """One-to-one pairs (fish index, found index): each found box given to the drawn fish
    whose visible pixels it shows most (rules and ties in the module's docstring); a found
    box left out is a false detection, a fish left out a miss."""
    if not 0.0 < min_iou <= 1.0 or not 0.0 < min_share <= 1.0:
        msg = f"min_iou and min_share must be in (0, 1], got {min_iou}, {min_share}"
        raise ValueError(msg)
    candidates = []
    for j, box in enumerate(found):
        inside = [s.inside(box) for s in shown]
        total = sum(inside)  # the masks are disjoint: every fish pixel in the box once
        for i, s in enumerate(shown):
            if total == 0 or s.pixels == 0:
                continue
            share, overlap = inside[i] / total, iou(s.box, box)
            if share >= min_share and overlap >= min_iou:
                candidates.append((-share, -overlap, -i, j))
    return one_to_one((-neg_i, j) for _, _, neg_i, j in sorted(candidates))


__all__ = ["Shown", "match_visible", "shown_of"]

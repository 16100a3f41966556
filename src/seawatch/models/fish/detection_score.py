"""A whole-frame detector's figures against the drawn fish (numpy only): recall and
precision of boxes (IoU >= 0.5, one to one,
:func:`~seawatch.models.fish.tank_scene.match_boxes`), and the pairs of fish whose boxes
overlap that are both found, each its own box (what one box around two touching fish
loses), and the boxes that hold two fish (half or more of each one's box). Used by
``seawatch train fish-segmentation`` and ``benchmarks/fish_segmentation.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from seawatch.models.fish.tank_scene import Scene, iou, match_boxes


def overlapping_pairs(scene: Scene) -> list[tuple[int, int]]:
    """Pairs of drawn fish whose boxes overlap (what one blob around both would hide)."""
    boxes = [f.box for f in scene.fish]
    return [
        (i, j)
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if iou(boxes[i], boxes[j]) > 0
    ]


@dataclass
class DetectionScore:
    """A detector's figures on some scenes."""

    fish: int = 0
    found: int = 0
    matched: int = 0
    pairs: int = 0  # pairs of fish whose boxes overlap
    pairs_split: int = 0  # ... both found, each its own box
    two_fish_boxes: int = 0  # detections holding half or more of two drawn fish's boxes

    def add(self, scene: Scene, boxes: list[tuple[int, int, int, int]]) -> None:
        """Score one scene's boxes."""
        hit = {i for i, _ in match_boxes([f.box for f in scene.fish], boxes)}
        self.fish += len(scene.fish)
        self.found += len(boxes)
        self.matched += len(hit)
        pairs = overlapping_pairs(scene)
        self.pairs += len(pairs)
        self.pairs_split += sum(i in hit and j in hit for i, j in pairs)
        self.two_fish_boxes += sum(
            sum(_covered(f.box, box) >= 0.5 for f in scene.fish) >= 2 for box in boxes
        )

    def summary(self) -> dict[str, float | int]:
        """Recall, precision and the overlapping pairs split."""
        return {
            "fish": self.fish,
            "detections": self.found,
            "recall": round(self.matched / max(1, self.fish), 4),
            "precision": round(self.matched / max(1, self.found), 4),
            "overlapping_pairs": self.pairs,
            "overlapping_pairs_both_found": self.pairs_split,
            "two_fish_boxes": self.two_fish_boxes,
        }


def _covered(fish: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> float:
    """The share of ``fish``'s box inside ``box``."""
    ix = max(0, min(fish[0] + fish[2], box[0] + box[2]) - max(fish[0], box[0]))
    iy = max(0, min(fish[1] + fish[3], box[1] + box[3]) - max(fish[1], box[1]))
    return ix * iy / max(1, fish[2] * fish[3])


__all__ = ["DetectionScore", "overlapping_pairs"]

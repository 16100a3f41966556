"""Which synthetic fish are used for what, and the reproducible image sets (numpy + OpenCV).

Individuals ``0 .. N-1`` of :func:`make_individuals(N, seed)` are split by index into four
contiguous groups, so a demo that takes the first few individuals of the same seed meets
fish the committed gallery knows:

- ``seen``: the training identities (also enrolled in the gallery, from held-out renders),
- ``calibration``: never trained on, never enrolled; their sightings set the open-set
  threshold (unknown fish against the gallery),
- ``unseen_known``: never trained on, enrolled from a few images (known at deployment),
- ``unseen_unknown``: never trained on, never enrolled: the new fish of the evaluation.

Every image comes from its own stream ``default_rng([seed, purpose, index])`` (purpose:
train, enrol or query), so evaluation regenerates exactly the held-out images without
re-running training, and training images never coincide with held-out ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from seawatch.inference.fish import letterbox, prepare_fish
from seawatch.models.fish.synthetic import Individual, make_individuals, render_fish_with_mask

PURPOSES = {"train": 1, "enrol": 2, "query": 3}
GROUPS = ("seen", "calibration", "unseen_known", "unseen_unknown")
HELD_OUT_SHARE = 0.1  # of the individuals, for each of the three held-out groups


@dataclass(frozen=True, slots=True)
class FishData:
    """The synthetic data of one training run: individuals, splits, image counts."""

    seed: int = 0
    n_individuals: int = 200
    height: int = 64
    width: int = 160
    train_per_individual: int = 40
    enrol_per_individual: int = 3
    query_per_individual: int = 6
    calibration_per_individual: int = 20
    resize_share: float = 0.3  # share rendered at another size and letterboxed

    def __post_init__(self) -> None:
        if self.n_individuals < 8:
            msg = f"need at least 8 individuals (4 groups of >= 2), got {self.n_individuals}"
            raise ValueError(msg)

    def groups(self) -> dict[str, range]:
        """Index ranges of the four groups (see the module docstring)."""
        held = max(2, round(self.n_individuals * HELD_OUT_SHARE))
        seen = self.n_individuals - 3 * held
        starts = [0, seen, seen + held, seen + 2 * held, self.n_individuals]
        return {g: range(starts[i], starts[i + 1]) for i, g in enumerate(GROUPS)}

    def gallery_indices(self) -> list[int]:
        """Individuals enrolled in the committed gallery: seen and unseen-known."""
        groups = self.groups()
        return [*groups["seen"], *groups["unseen_known"]]

    def individuals(self) -> list[Individual]:
        """All ``n_individuals`` individuals of ``seed``."""
        return make_individuals(self.n_individuals, self.seed)

    def summary(self) -> dict[str, Any]:
        """A JSON-able description for the model card (enough to regenerate the data)."""
        groups = self.groups()
        return asdict(self) | {
            "generator": "seawatch.models.fish.synthetic (make_individuals, render_fish)",
            "groups": {g: [r.start, r.stop] for g, r in groups.items()},
            "group_sizes": {g: len(r) for g, r in groups.items()},
            "streams": "numpy default_rng([seed, purpose, index]), purposes "
            + ", ".join(f"{k}={v}" for k, v in PURPOSES.items()),
        }

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> FishData:
        """Rebuild the spec from :meth:`summary` (as stored in a card)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in summary.items() if k in fields})


def render_set(
    data: FishData,
    individuals: Sequence[Individual],
    indices: Sequence[int],
    per_individual: int,
    purpose: str,
    *,
    stream_seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prepared images (N x 3 x H x W uint8 RGB), individual indices and skin masks (N x H x W).

    Each image is rendered then passed through :func:`prepare_fish`, the daemon's own
    preprocessing; a ``resize_share`` of them are rendered at another size and aspect first.
    ``stream_seed`` (default: the data seed) picks the random streams.
    """
    h, w, code = data.height, data.width, PURPOSES[purpose]
    seed = data.seed if stream_seed is None else stream_seed
    n = len(indices) * per_individual
    images = np.empty((n, 3, h, w), np.uint8)
    skins = np.empty((n, h, w), bool)
    labels = np.repeat(np.asarray(indices, np.int64), per_individual)
    k = 0
    for index in indices:
        rng = np.random.default_rng([seed, code, index])
        for _ in range(per_individual):
            rh, rw = h, w
            if rng.random() < data.resize_share:
                rh, rw = round(h * rng.uniform(0.75, 1.6)), round(w * rng.uniform(0.75, 1.6))
            image, skin = render_fish_with_mask(individuals[index], rng, height=rh, width=rw)
            images[k] = prepare_fish(image, h, w)
            skins[k] = skin if (rh, rw) == (h, w) else letterbox(skin.view(np.uint8), h, w) > 0
            k += 1
        if progress is not None:
            progress(per_individual)
    return images, labels, skins


__all__ = ["GROUPS", "PURPOSES", "FishData", "render_set"]

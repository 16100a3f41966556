"""Which synthetic fish are used for what, and the reproducible image sets (numpy + OpenCV).

Individuals ``0 .. N-1`` of :func:`make_individuals(N, seed)` are split by index into four
contiguous groups, so a demo that takes the first few individuals of the same seed meets
fish the committed gallery knows:

- ``seen``: the training identities (also enrolled in the gallery, from held-out renders),
- ``calibration``: never trained on, never enrolled; their sightings set the open-set
  threshold (unknown fish against the gallery),
- ``unseen_known``: never trained on, enrolled from a few images (known at deployment),
- ``unseen_unknown``: never trained on, never enrolled: the new fish of the evaluation.

Every image comes from its own stream ``default_rng([seed, purpose, index, epoch])``
(purpose: train, enrol or query; epoch 0 for held-out sets), so evaluation regenerates
exactly the held-out images without re-running training, and training images never
coincide with held-out ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

import numpy as np

from seawatch.models.fish.head import fit_crop, prepare_fish
from seawatch.models.fish.synthetic import Individual, make_individuals, render_fish_with_mask

PURPOSES = {"train": 1, "enrol": 2, "query": 3}
GROUPS = ("seen", "calibration", "unseen_known", "unseen_unknown")
#: Share of the individuals in each held-out group (at least 2 each); the rest are seen.
#: Sightings of one fish are correlated, so the threshold needs many calibration fish.
HELD_OUT = {"calibration": 0.2, "unseen_known": 0.1, "unseen_unknown": 0.1}


@dataclass(frozen=True, slots=True)
class FishData:
    """The synthetic data of one training run: individuals, splits, image counts."""

    seed: int = 0
    n_individuals: int = 240
    height: int = 64
    width: int = 160
    train_per_individual: int = 16  # fresh renders per seen individual and epoch
    enrol_per_individual: int = 3
    query_per_individual: int = 6
    calibration_per_individual: int = 10
    unknown_per_individual: int = 20  # sightings of each unseen-unknown fish (the new ones)
    resize_share: float = 0.3  # share rendered at another size (x0.6-2, aspect +-15%)

    def __post_init__(self) -> None:
        if self.n_individuals < 8:
            msg = f"need at least 8 individuals (4 groups of >= 2), got {self.n_individuals}"
            raise ValueError(msg)
        if min(len(r) for r in self.groups().values()) < 2:
            msg = f"{self.n_individuals} individuals leave a group with fewer than 2"
            raise ValueError(msg)

    def groups(self) -> dict[str, range]:
        """Index ranges of the four groups (see the module docstring)."""
        sizes = [max(2, round(self.n_individuals * HELD_OUT[g])) for g in GROUPS[1:]]
        bounds = list(itertools.accumulate([self.n_individuals - sum(sizes), *sizes], initial=0))
        return {
            g: range(a, b) for g, (a, b) in zip(GROUPS, itertools.pairwise(bounds), strict=True)
        }

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
            "streams": "numpy default_rng([seed, purpose, index, epoch]), purposes "
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
    epoch: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prepared images (N x 3 x H x W uint8 RGB), individual indices and skin masks (N x H x W).

    Each image is rendered then passed through :func:`prepare_fish`, the daemon's own
    preprocessing; a ``resize_share`` of them are rendered at another size first.
    ``stream_seed`` (default: the data seed) picks the random streams; training renders a
    fresh set for every ``epoch``.
    """
    h, w, code = data.height, data.width, PURPOSES[purpose]
    seed = data.seed if stream_seed is None else stream_seed
    n = len(indices) * per_individual
    images = np.empty((n, 3, h, w), np.uint8)
    skins = np.empty((n, h, w), bool)
    labels = np.repeat(np.asarray(indices, np.int64), per_individual)
    k = 0
    for index in indices:
        rng = np.random.default_rng([seed, code, index, epoch])
        for _ in range(per_individual):
            rh, rw = h, w
            if rng.random() < data.resize_share:  # another camera distance or a looser box
                scale = rng.uniform(0.6, 2.0)
                aspect = rng.uniform(0.85, 1.15)
                rh, rw = round(h * scale * aspect), round(w * scale)
            image, skin = render_fish_with_mask(individuals[index], rng, height=rh, width=rw)
            images[k] = prepare_fish(image, h, w)
            skins[k] = fit_crop(skin.view(np.uint8), h, w) > 0
            k += 1
        if progress is not None:
            progress(per_individual)
    return images, labels, skins


class EpochRenderer:
    """Training sightings for epoch ``e``, rendered in a background thread ahead of time.

    Calling the renderer with epoch ``e`` returns that epoch's fresh set (waiting if it is
    not ready) and starts rendering ``e + 1``. OpenCV, numpy and torch release the GIL in
    their kernels, so with torch on one thread the renders use the second core. Every
    epoch has new renders, so the network cannot memorise a background or a lighting: only
    the skin pattern names the fish. Each epoch's images come from fixed streams, so the
    result does not depend on timing.
    """

    def __init__(
        self, data: FishData, individuals: Sequence[Individual], indices: Sequence[int], epochs: int
    ) -> None:
        self._args = (data, list(individuals), list(indices), data.train_per_individual, "train")
        self._epochs = epochs
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fish-render")
        self._futures: dict[int, Future[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def prefetch(self, epoch: int) -> None:
        """Start rendering ``epoch`` if it is in range and not under way."""
        if 1 <= epoch <= self._epochs and epoch not in self._futures:
            self._futures[epoch] = self._pool.submit(render_set, *self._args, epoch=epoch)

    def __call__(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.prefetch(epoch)
        result = self._futures.pop(epoch).result()
        self.prefetch(epoch + 1)
        return result

    def close(self) -> None:
        """Stop the thread (pending renders are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EpochRenderer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["GROUPS", "PURPOSES", "EpochRenderer", "FishData", "render_set"]

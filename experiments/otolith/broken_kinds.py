"""Which broken test specimens are chips and which lost a large piece: ``python broken_kinds.py``.

Re-renders the cached 128 px test set (``make_data.py``) with ``Defect.broken`` watched, checks
the images are the cached ones, and saves ``broken_kinds.npy`` (chip / cut per broken
specimen, in test order) next to the cache for ``teacher_heads.py`` and ``rescore.py``.
"""

import numpy as np
from common import LAB

import seawatch.models.otolith._defects as defects
from seawatch.models.otolith.head import prepare_otolith
from seawatch.models.otolith.synthetic import make_dataset
from seawatch.models.otolith.train import OFFSETS

kinds: list[str] = []
_broken = defects.Defect.broken


def watched(self: defects.Defect, alpha: np.ndarray) -> np.ndarray:
    state = self.rng.bit_generator.state
    kinds.append("chip" if self.rng.random() < 0.5 else "cut")  # the same draw broken makes
    self.rng.bit_generator.state = state
    return _broken(self, alpha)


defects.Defect.broken = watched
rng = np.random.default_rng(OFFSETS["test"])
test, _ = make_dataset(
    rng,
    n_normal=400,
    n_per_anomaly=100,
    transform=lambda im: prepare_otolith(im, 128).astype(np.uint8),
)
assert np.array_equal(test, np.load(f"{LAB}/data128.npz")["test"]), "not the cached test set"
np.save(f"{LAB}/broken_kinds.npy", np.array(kinds))
print(f"{kinds.count('chip')} chips, {kinds.count('cut')} large pieces lost")

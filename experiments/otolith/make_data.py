"""Cache the otolith data sets at one input size: ``python make_data.py SIZE N_TRAIN``.

The same seeds as ``seawatch.models.otolith.train`` (its ``OFFSETS``), rendered at 256 px and
prepared by the serving code; validation 100 normals + 20 per type, test 400 + 100 per type.
"""

import os
import sys
import time

import numpy as np
from common import LAB

from seawatch.models.otolith._textures import dead_leaves
from seawatch.models.otolith.head import prepare_otolith
from seawatch.models.otolith.synthetic import make_dataset
from seawatch.models.otolith.train import OFFSETS

size, n_train = int(sys.argv[1]), int(sys.argv[2])
seed = 0


def prepare(image: np.ndarray) -> np.ndarray:
    return prepare_otolith(image, size).astype(np.uint8)


def render(offset: int, n_normal: int, n_per_anomaly: int = 0):
    rng = np.random.default_rng(seed + offset)
    return make_dataset(rng, n_normal=n_normal, n_per_anomaly=n_per_anomaly, transform=prepare)


started = time.time()
train, _ = render(0, n_train)
rng = np.random.default_rng(seed + OFFSETS["textures"])
textures = np.stack([prepare(dead_leaves(rng, size)) for _ in range(n_train)])
val, val_labels = render(OFFSETS["validation"], 100, 20)
test, test_labels = render(OFFSETS["test"], 400, 100)
os.makedirs(LAB, exist_ok=True)
np.savez(
    f"{LAB}/data{size}.npz",
    train=train,
    tex=textures,
    val=val,
    val_labels=val_labels,
    test=test,
    test_labels=test_labels,
)
print(f"cached in {LAB}/data{size}.npz after {time.time() - started:.0f} s")

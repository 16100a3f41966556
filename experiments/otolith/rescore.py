"""Other image scores from saved stage maps (``mkd_lab.py --save``): ``python rescore.py MAPS``."""

import sys

import cv2
import numpy as np
from common import aurocs

maps = np.load(sys.argv[1])
labels = maps["test_labels"]
for k in range(3):
    m = maps[f"test{k}"]
    flat = m.reshape(len(m), -1)
    smooth = np.stack([cv2.GaussianBlur(x, (0, 0), 1.0) for x in m]).reshape(len(m), -1)
    median = np.median(flat, 1)
    for name, scores in (
        ("max", smooth.max(1)),
        ("mean", flat.mean(1)),
        ("max/mean", smooth.max(1) / flat.mean(1)),
        ("max/median", smooth.max(1) / median),
        ("p99.5/p50", np.quantile(smooth, 0.995, 1) / median),
    ):
        print(f"stage {k} {name:12s}", *aurocs(labels, scores))

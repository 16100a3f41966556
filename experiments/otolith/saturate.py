"""Scores with both feature sets saturated, c * tanh(x / c): ``python saturate.py STUDENT_PT``."""

import sys

import numpy as np
import torch
from common import aurocs
from features import features, max_score

from seawatch.models.otolith.network import STAGES

model, data, T, S = features(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
labels = data["test_labels"]
normal = labels == "normal"
for c in (1.0, 2.0, 3.0, 5.0, 1000.0):
    per_stage = []
    for k in range(STAGES):
        scores = max_score((c * torch.tanh(T[k] / c) - c * torch.tanh(S[k] / c)).pow(2).mean(1))
        per_stage.append(scores / np.mean(scores[normal]))
        print(c, k, *aurocs(labels, scores))
    print(c, "stages summed", aurocs(labels, sum(per_stage))[0])

"""Where normal specimens peak: ``python spike.py STUDENT_PT [TEACHER_PT]``.

Prints the AUROC per stage with the per-channel scale floor raised (0.01 to 1 x the median
channel std), then the teacher and student values at the highest normal peak of stage 0.
"""

import sys

import torch
from common import aurocs
from features import features, max_score

from seawatch.models.otolith.network import STAGES

model, data, T, S = features(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
labels = data["test_labels"]
normal = labels == "normal"
stds = [1 / getattr(model, f"feature_scale{k}").clone() for k in range(STAGES)]
for k, std in enumerate(stds):
    print(
        f"stage {k} channel std min/median/max",
        *(round(float(f(std)), 3) for f in (torch.min, torch.median, torch.max)),
    )
for floor in (0.01, 0.1, 0.3, 1.0):
    for k in range(STAGES):
        weight = stds[k] / torch.maximum(stds[k], floor * stds[k].median())  # new / old scale
        print(floor, k, *aurocs(labels, max_score(((T[k] - S[k]) * weight).pow(2).mean(1))))
diff = (T[0] - S[0]).pow(2).mean(1)
peaks = torch.where(torch.from_numpy(normal), diff.flatten(1).max(1).values, torch.tensor(0.0))
i = int(torch.argmax(peaks))
y, x = divmod(int(diff[i].flatten().argmax()), diff.shape[-1])
print(
    f"image {i} position {y},{x}: diff {float(diff[i, y, x]):.2f}, "
    f"median {float(diff[i].median()):.3f}"
)
t, s = T[0][i, :, y, x], S[0][i, :, y, x]
order = torch.argsort(-(t - s).abs())[:6]
print("teacher", t[order].numpy().round(1), "student", s[order].numpy().round(1))
print(
    "teacher max over normals:",
    T[0][torch.from_numpy(normal)].amax((0, 2, 3))[order].numpy().round(1),
)
print(
    "pixels (RGB) around:",
    data["test"][i][:, 2 * y - 2 : 2 * y + 3, 2 * x - 2 : 2 * x + 3].reshape(3, -1).T[:6],
)

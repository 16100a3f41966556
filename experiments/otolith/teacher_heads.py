"""How well the corruption teacher's own heads find the test defects (an upper-bound check).

``python teacher_heads.py TEACHER.pt [SIZE STRIDE DEPTH]``: per stage, the image score is the
max or the mean of the top 16 / 64 of the head's sigmoid map; with ``broken_kinds.npy``
(``broken_kinds.py``) the broken specimens are also split into chips and large lost pieces.
"""

import os
import sys

import numpy as np
import torch
from common import LAB, aurocs, load_data, rgb_stats
from torch import nn

from seawatch.models.otolith.evaluate import auroc
from seawatch.models.otolith.network import FeatureNet

torch.set_num_threads(2)
size, stride, depth = (int(v) for v in (sys.argv[2:5] if len(sys.argv) > 4 else (128, 1, 2)))
d = load_data(size)
mean, std = rgb_stats(d["train"])
m = torch.tensor(mean).view(1, 3, 1, 1)
s = torch.tensor(std).view(1, 3, 1, 1)
widths = (16, 32, 64, 96)
net = FeatureNet(3, widths, stride, depth)
net.load_state_dict(torch.load(sys.argv[1]))
heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in widths[1:])
heads.load_state_dict(torch.load(sys.argv[1] + ".heads"))
net.eval()
maps: list[list[np.ndarray]] = [[] for _ in range(3)]
with torch.no_grad():
    for i in range(0, len(d["test"]), 64):
        x = torch.from_numpy(d["test"][i : i + 64]).float()
        for k, (h, f) in enumerate(zip(heads, net((x / 255 - m) / s), strict=True)):
            maps[k].append(torch.sigmoid(h(f)).flatten(1).numpy())
labels = d["test_labels"]
normal = labels == "normal"
broken = np.where(labels == "broken")[0]
kinds_file = f"{LAB}/broken_kinds.npy"
kinds = np.load(kinds_file) if os.path.exists(kinds_file) else None
for k in range(3):
    p = np.concatenate(maps[k])
    for top in (1, 16, 64):
        sc = -np.sort(-p, 1)[:, : min(top, p.shape[1])].mean(1)
        total, per_type = aurocs(labels, sc)
        row = {t: round(v, 3) for t, v in per_type.items()}
        if kinds is not None:
            for kind in ("chip", "cut"):
                pick = broken[kinds == kind]
                truth = np.r_[np.zeros(normal.sum()), np.ones(len(pick))]
                row[f"broken {kind}"] = round(auroc(truth, np.r_[sc[normal], sc[pick]]), 3)
        print(f"stage {k + 1} top {top}: {total:.3f} {row}")

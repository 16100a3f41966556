"""How well the corruption teacher's own heads find the test defects (an upper-bound check).

``python teacher_heads.py TEACHER.pt``: score = max over stages of the mean-of-top-16 sigmoid.
"""

import sys

import numpy as np
import torch
from common import aurocs, load_data, rgb_stats
from torch import nn

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
scores = [[] for _ in range(3)]
with torch.no_grad():
    for i in range(0, len(d["test"]), 64):
        x = torch.from_numpy(d["test"][i : i + 64]).float()
        for k, (h, f) in enumerate(zip(heads, net((x / 255 - m) / s), strict=True)):
            p = torch.sigmoid(h(f)).flatten(1)
            scores[k].append(p.topk(min(16, p.shape[1]), 1).values.mean(1).numpy())
for k in range(3):
    print(k, aurocs(d["test_labels"], np.concatenate(scores[k])))

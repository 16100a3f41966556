"""Test-time rotations of a saved lab student: the map of each turned image, turned back.

``python rotations.py TEACHER.pt TDEPTH STUDENT.pt`` (a student saved by ``mkd_lab.py --save``):
test AUROC of the plain map and of the mean / median over the four 90-degree turns.
"""

import sys

import numpy as np
import torch
from common import aurocs, load_data, rgb_stats

from seawatch.models.otolith import distil as D
from seawatch.models.otolith.network import FeatureNet, OtolithMKD, Student
from seawatch.models.otolith.teacher import freeze

torch.set_num_threads(2)
d = load_data(128)
mean, std = rgb_stats(d["train"])
widths = (16, 32, 64, 96)
teacher = FeatureNet(3, widths, 1, int(sys.argv[2]))
teacher.load_state_dict(torch.load(sys.argv[1]))
student = Student(1, widths, 1)
student.load_state_dict(torch.load(sys.argv[3]))
model = OtolithMKD(freeze(teacher), student, student_input="gray", rgb_mean=mean, rgb_std=std)
D.set_feature_scales(model, d["train"][:256], "cpu")
D.calibrate_map(model, d["val"], d["val_labels"], "cpu")
turned = (np.ascontiguousarray(np.rot90(d["test"], k, (2, 3))) for k in range(4))
maps = [np.rot90(D.heatmaps(model, x, "cpu"), -k, (1, 2)) for k, x in enumerate(turned)]
for name, heat in (("plain", maps[0]), ("mean", np.mean(maps, 0)), ("median", np.median(maps, 0))):
    flat = heat.reshape(len(heat), -1)
    for k in (1, 16, 64, 256):
        total, per_type = aurocs(d["test_labels"], -np.sort(-flat, 1)[:, :k].mean(1))
        print(name, k, round(total, 4), {t: round(v, 3) for t, v in per_type.items()})

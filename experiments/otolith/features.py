"""Teacher and student features of the cached test set, for the post-hoc scripts.

``features(student_pt, teacher_pt)`` rebuilds the model the way ``mkd_lab.py`` trained it
(default widths, gray student) and returns it with every stage's features.
"""

import numpy as np
import torch
from common import LAB, load_data, rgb_stats

from seawatch.models.otolith import distil as D
from seawatch.models.otolith.network import STAGES, FeatureNet, OtolithMKD, Student
from seawatch.models.otolith.teacher import freeze


def features(student_pt: str, teacher_pt: str | None = None):
    """(model, data, teacher features, student features): features are per stage, N x C x h x w."""
    torch.set_num_threads(1)
    data = load_data(128)
    mean, std = rgb_stats(data["train"])
    teacher = FeatureNet(3)
    teacher.load_state_dict(torch.load(teacher_pt or f"{LAB}/t128.pt"))
    student = Student(1)
    student.load_state_dict(torch.load(student_pt))
    model = OtolithMKD(freeze(teacher), student, student_input="gray", rgb_mean=mean, rgb_std=std)
    D.set_feature_scales(model, data["train"][:256], "cpu")
    model.eval()
    t_parts, s_parts = [[] for _ in range(STAGES)], [[] for _ in range(STAGES)]
    with torch.no_grad():
        for i in range(0, len(data["test"]), 50):
            x = torch.from_numpy(data["test"][i : i + 50]).float()
            for k, (t, s) in enumerate(
                zip(model.teacher_features(x), model.student_features(x), strict=True)
            ):
                t_parts[k].append(t)
                s_parts[k].append(s)
    return model, data, [torch.cat(p) for p in t_parts], [torch.cat(p) for p in s_parts]


def max_score(diff: torch.Tensor) -> np.ndarray:
    """Image scores: the maximum of a 3 x 3 box-smoothed N x h x w discrepancy map."""
    pooled = torch.nn.functional.avg_pool2d(diff[:, None], 3, 1, 1)
    return pooled.flatten(1).max(1).values.numpy()

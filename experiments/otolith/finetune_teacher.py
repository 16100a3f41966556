"""Continue a corruption teacher's pretraining with the package's current corruptions and loss.

``python finetune_teacher.py IN.pt OUT.pt [--epochs 6] [--hard-share 0.01] [--random-cuts]
[--tray-fill]``; ``--hard-share 0`` drops the hard-negative term, ``--random-cuts`` the
object-aware cuts (the controls); ``--tray-fill`` fills a cut with the tray as it would look
without the object (normalised convolution of the off-object pixels) instead of the flat border
colour. Then ``teacher_heads.py OUT.pt 128 1 6`` and ``mkd_lab.py --teacher OUT.pt``.
"""

import argparse
import functools
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from common import load_data, one_cycle, rgb_stats
from torch import nn

import seawatch.models.otolith.corruptions as C
from seawatch.models.otolith.network import FeatureNet
from seawatch.models.otolith.teacher import augment

p = argparse.ArgumentParser()
p.add_argument("start")
p.add_argument("out")
p.add_argument("--epochs", type=int, default=6)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--depth", type=int, default=6)
p.add_argument("--hard-share", type=float, default=C.HARD_NEGATIVE_SHARE)
p.add_argument("--hard-weight", type=float, default=1.0)
p.add_argument("--random-cuts", action="store_true")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--tray-fill", action="store_true")
a = p.parse_args()
base = functools.partial(C.localisation_loss, hard_share=0.0)


def tray_plate(image: torch.Tensor) -> torch.Tensor:
    """The tray without the object: off-object pixels (dilated 2 px) smoothed by normalised
    convolution (sigma S/10); the border colour where no tray pixel is near."""
    tray = C.border_colour(image)
    fg = C.foreground_mask(image, tray).astype(np.uint8)
    off = 1.0 - cv2.dilate(fg, np.ones((5, 5), np.uint8)).astype(np.float32)
    sigma = image.shape[-1] / 10
    weight = cv2.GaussianBlur(off, (0, 0), sigma)[..., None]
    pixels = image.numpy().transpose(1, 2, 0) * off[..., None]
    plate = cv2.GaussianBlur(pixels.astype(np.float32), (0, 0), sigma) / np.maximum(weight, 1e-3)
    plate = np.where(weight > 0.02, plate, tray.numpy()[None, None])
    return torch.from_numpy(plate.transpose(2, 0, 1).copy()).to(image)


def corrupt_with_tray(image, kind, rng, textures, object_cuts=True):
    """``corruptions.corrupt_one``, a cut refilled with :func:`tray_plate`."""
    altered, region = flat_fill(image, kind, rng, textures, object_cuts)
    if kind == "cut":
        altered = image * (1.0 - region) + tray_plate(image) * region
    return altered.clamp(0, 255), region


flat_fill = C.corrupt_one
if a.tray_fill:
    C.corrupt_one = corrupt_with_tray


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    plain = base(logits, target)
    if a.hard_share <= 0:
        return plain
    hard = C.localisation_loss(logits, target, hard_share=a.hard_share) - plain
    return plain + a.hard_weight * hard


torch.manual_seed(0)
torch.set_num_threads(a.threads)
d = load_data(128)
train, tex = d["train"], d["tex"]
mean, std = rgb_stats(train)
m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
widths = (16, 32, 64, 96)
net = FeatureNet(3, widths, 1, a.depth)
heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in widths[1:])
net.load_state_dict(torch.load(a.start))
heads.load_state_dict(torch.load(a.start + ".heads"))
bs = 32
steps = len(train) // bs
opt, sched = one_cycle([*net.parameters(), *heads.parameters()], a.lr, a.epochs, steps)
g = torch.Generator().manual_seed(1)
rng = np.random.default_rng(1)
data, textures = torch.from_numpy(train), torch.from_numpy(tex)
t0 = time.time()
for ep in range(a.epochs):
    net.train()
    order = torch.randperm(len(data), generator=g)
    tot = 0.0
    for st in range(steps):
        x = augment(data[order[st * bs : (st + 1) * bs]].float(), g)
        x, lab = C.corrupt_batch(x, rng, textures, object_cuts=not a.random_cuts)
        loss = sum(
            loss_fn(head(f), F.avg_pool2d(lab, x.shape[-1] // f.shape[-1]))
            for head, f in zip(heads, net((x / 255.0 - m) / s), strict=True)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tot += float(loss.detach())
    print(f"epoch {ep} loss {tot / steps:.4f} t={time.time() - t0:.0f}s", flush=True)
torch.save(net.state_dict(), a.out)
torch.save(heads.state_dict(), a.out + ".heads")

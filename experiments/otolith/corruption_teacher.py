"""Pretrain a teacher to localise generic corruptions (seawatch.models.otolith.corruptions).

``python corruption_teacher.py OUT.pt [--epochs E] [--widths ...]``; then
``python mkd_lab.py --teacher OUT.pt`` distils and scores the student.
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from common import load_data, one_cycle, rgb_stats
from torch import nn

import seawatch.models.otolith.corruptions as C
from seawatch.models.otolith.corruptions import KINDS, corrupt_batch
from seawatch.models.otolith.network import FeatureNet
from seawatch.models.otolith.teacher import augment

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--size", type=int, default=128)
p.add_argument("--widths", default="16,32,64,96")
p.add_argument("--epochs", type=int, default=6)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--pos-weight", type=float, default=3.0)
p.add_argument("--stem-stride", type=int, default=1)
p.add_argument("--depth", type=int, default=2)  # convolutions per stage
p.add_argument("--kinds", default=",".join(KINDS))
p.add_argument("--balanced", action="store_true")
# the td4 / td6 / td8 teachers were made with neither (the package's second phase adds both)
p.add_argument("--hard-share", type=float, default=0.0)
p.add_argument("--object-cuts", action="store_true")
a = p.parse_args()
kinds = tuple(a.kinds.split(","))
torch.manual_seed(0)
torch.set_num_threads(2)
d = load_data(a.size)
train, tex = d["train"], d["tex"]
mean, std = rgb_stats(train)
m = torch.tensor(mean).view(1, 3, 1, 1)
s = torch.tensor(std).view(1, 3, 1, 1)
widths = tuple(int(w) for w in a.widths.split(","))
net = FeatureNet(3, widths, a.stem_stride, a.depth)
heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in widths[1:])
params = [*net.parameters(), *heads.parameters()]
bs = 32
steps = len(train) // bs
opt, sched = one_cycle(params, a.lr, a.epochs, steps)
g = torch.Generator().manual_seed(0)
rng = np.random.default_rng(0)
data = torch.from_numpy(train)
textures = torch.from_numpy(tex)
pw = torch.tensor(a.pos_weight)
t0 = time.time()
for ep in range(a.epochs):
    net.train()
    order = torch.randperm(len(data), generator=g)
    tot, hit = 0.0, []
    for st in range(steps):
        x = augment(data[order[st * bs : (st + 1) * bs]].float(), g)
        x, lab = corrupt_batch(x, rng, textures, kinds, object_cuts=a.object_cuts)
        feats = net((x / 255.0 - m) / s)
        loss = 0
        for head, f in zip(heads, feats, strict=True):
            factor = x.shape[-1] // f.shape[-1]
            target = F.avg_pool2d(lab, factor)
            loss = (
                loss + C.localisation_loss(head(f), target, hard_share=a.hard_share)
                if a.balanced
                else loss + F.binary_cross_entropy_with_logits(head(f), target, pos_weight=pw)
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tot += float(loss.detach())
    print(f"epoch {ep} loss {tot / steps:.4f} t={time.time() - t0:.0f}s", flush=True)
torch.save(net.state_dict(), a.out)
torch.save(heads.state_dict(), a.out + ".heads")

"""MKD variants on the cached data (``make_data.py``); prints per-type test AUROC as JSON.

Uses the package's teacher pretraining, networks, feature scaling and map calibration, with
switches for what the default plan does not do (see README.md).
"""

import argparse
import json
import time

import numpy as np
import torch
from common import aurocs, load_data, one_cycle, rgb_stats
from torch import nn

import seawatch.models.otolith.network as N
from seawatch.models.otolith import distil as D
from seawatch.models.otolith.corruptions import corrupt_batch
from seawatch.models.otolith.network import FeatureNet, OtolithMKD, Student, discrepancy_maps
from seawatch.models.otolith.teacher import augment, freeze, pretrain_teacher
from seawatch.models.training import training_progress

p = argparse.ArgumentParser()
p.add_argument("--size", type=int, default=128)
p.add_argument("--widths", default="16,32,64,96")
p.add_argument("--swidths", default="")
p.add_argument("--tepochs", type=int, default=3)
p.add_argument("--epochs", type=int, default=8)
p.add_argument("--penalty", type=float, default=0.0)
p.add_argument("--hard", type=float, default=0.0)  # quantile for hard feature loss
p.add_argument("--student-input", default="gray")
p.add_argument("--teacher", default="")
p.add_argument("--save-teacher", default="")
p.add_argument("--ntrain", type=int, default=1600)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--dw", type=float, default=1.0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--png", default="")
p.add_argument("--save", default="")
p.add_argument("--suffix", default="")
p.add_argument("--vw", type=float, default=1.0)
p.add_argument("--stem-stride", type=int, default=1)
p.add_argument("--tdepth", type=int, default=2)  # teacher convolutions per stage
p.add_argument("--sdepth", type=int, default=2)  # student convolutions per stage
p.add_argument("--denoise", action="store_true")  # student input corrupted, target clean
a = p.parse_args()
# --vw: discrepancy_maps looks value_map up in its module, so this scales the value term
_value_map = N.value_map
N.value_map = lambda t, s: a.vw * _value_map(t, s)


def make_student(ins, sw, tw):
    st = Student(ins, sw, a.stem_stride)
    st.body = FeatureNet(ins, sw, a.stem_stride, a.sdepth)
    st.heads = nn.ModuleList(nn.Conv2d(c, t, 1) for c, t in zip(sw[1:], tw[1:], strict=True))
    return st


torch.manual_seed(0)
torch.set_num_threads(a.threads)
d = load_data(a.size, a.suffix)
train, tex = d["train"][: a.ntrain], d["tex"]
mean, std = rgb_stats(train)
widths = tuple(int(w) for w in a.widths.split(","))
swidths = tuple(int(w) for w in a.swidths.split(",")) if a.swidths else widths
t0 = time.time()
with training_progress() as progress:
    if a.teacher:
        teacher = FeatureNet(3, widths, a.stem_stride, a.tdepth)
        teacher.load_state_dict(torch.load(a.teacher))
        freeze(teacher)
    else:
        teacher, _ = pretrain_teacher(
            np.concatenate([train, tex]),
            rgb_mean=mean,
            rgb_std=std,
            widths=widths,
            epochs=a.tepochs,
            batch_size=32,
            lr=2e-3,
            seed=0,
            device="cpu",
            progress=progress,
        )
        if a.save_teacher:
            torch.save(teacher.state_dict(), a.save_teacher)
    t1 = time.time()
    ins = 1 if a.student_input == "gray" else 3
    model = OtolithMKD(
        teacher,
        make_student(ins, swidths, widths),
        student_input=a.student_input,
        rgb_mean=mean,
        rgb_std=std,
        direction_weight=a.dw,
    )
    D.set_feature_scales(model, train[:256], "cpu")
    bs = min(32, len(train))
    steps = len(train) // bs
    opt, sched = one_cycle(model.student.parameters(), a.lr, a.epochs, steps)
    g = torch.Generator().manual_seed(0)
    crng = np.random.default_rng(1)
    data = torch.from_numpy(train)
    texd = torch.from_numpy(tex)
    for ep in range(a.epochs):
        model.student.train()
        order = torch.randperm(len(data), generator=g)
        tot = 0
        task = progress.add_task(f"ep {ep}", total=steps, info="")
        for s in range(steps):
            x = augment(data[order[s * bs : (s + 1) * bs]].float(), g)
            with torch.no_grad():
                tf = model.teacher_features(x)
            if a.denoise:
                x, _ = corrupt_batch(x, crng, texd)
            sf = model.student_features(x)
            maps = discrepancy_maps(tf, sf, model.direction_weight)
            if a.hard > 0:
                loss = sum(
                    m[m >= torch.quantile(m.detach().flatten(), a.hard)].mean() for m in maps
                )
            else:
                loss = sum(m.mean() for m in maps)
            if a.penalty > 0:
                idx = torch.randint(0, len(texd), (bs,), generator=g)
                xo = augment(texd[idx].float(), g)
                loss = loss + a.penalty * sum(f.pow(2).mean() for f in model.student_features(xo))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach())
            progress.advance(task)
        model.eval()
        _, r = D.calibrate_map(model, d["val"], d["val_labels"], "cpu", top_k_choices=(1,))
        print(f"epoch {ep} loss {tot / steps:.4f} val {r['1']}", flush=True)
    best, res = D.calibrate_map(model, d["val"], d["val_labels"], "cpu")
    hm = D.heatmaps(model, d["test"], "cpu").reshape(len(d["test"]), -1)
    out = {
        "args": vars(a),
        "val_topk": res,
        "top_k": best,
        "teacher_s": round(t1 - t0),
        "student_s": round(time.time() - t1),
    }
    for k in (1, 16, 64):
        sc = -np.sort(-hm, 1)[:, :k].mean(1)
        out[f"test_k{k}"], out[f"types_k{k}"] = aurocs(d["test_labels"], sc)
print(json.dumps(out))
if a.save:
    sm = D.stage_maps(model, d["test"], "cpu")
    vm = D.stage_maps(model, d["val"], "cpu")
    np.savez(
        a.save,
        **{f"test{k}": m for k, m in enumerate(sm)},
        **{f"val{k}": m for k, m in enumerate(vm)},
        test_labels=d["test_labels"],
        val_labels=d["val_labels"],
    )
    torch.save(model.student.state_dict(), a.save + ".student.pt")
if a.png:
    import cv2

    te = d["test"]
    idx = [0, 1, 2, 400, 401, 500, 501, 600, 601, 700, 701, 800, 801]
    hmm = D.heatmaps(model, te[idx], "cpu")
    lo, hi = 0.0, 2.0 * float(hmm[:3].max())  # twice the hottest normal shown
    rows = []
    for i, h in zip(idx, hmm, strict=True):
        im = cv2.cvtColor(te[i].transpose(1, 2, 0), cv2.COLOR_RGB2BGR)
        level = np.clip((h - lo) / (hi - lo), 0, 1)
        hh = cv2.applyColorMap((level * 255).astype("uint8"), cv2.COLORMAP_JET)
        hh = cv2.resize(hh, im.shape[:2][::-1])
        rows.append(np.hstack([im, hh]))
    cv2.imwrite(a.png, np.vstack([np.hstack(rows[i : i + 4]) for i in range(0, 12, 4)]))

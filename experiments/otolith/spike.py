import sys, numpy as np, torch, torch.nn.functional as F
import os
LAB = os.environ.get("OTOLITH_LAB", "/tmp/otolith-lab")  # cached data, teachers, maps
from seawatch.models.otolith.network import OtolithMKD, Student, FeatureNet
from seawatch.models.otolith.teacher import freeze
from seawatch.models.otolith import distil as D
from seawatch.models.otolith.evaluate import auroc
torch.set_num_threads(1)
d = np.load(f"{LAB}/data128.npz"); train = d["train"]
pix = train.transpose(1, 0, 2, 3).reshape(3, -1)
mean = tuple(float(m) / 255 for m in pix.mean(1)); std = tuple(float(v) / 255 for v in pix.std(1))
t = FeatureNet(3); t.load_state_dict(torch.load(sys.argv[2] if len(sys.argv) > 2 else f"{LAB}/t128.pt")); freeze(t)
st = Student(1); st.load_state_dict(torch.load(sys.argv[1]))
m = OtolithMKD(t, st, student_input="gray", rgb_mean=mean, rgb_std=std).eval()
D.set_feature_scales(m, train[:256], "cpu")
scales = [getattr(m, f"feature_scale{k}").clone() for k in range(3)]
for k, s in enumerate(scales):
    v = (1 / s).flatten(); print("stage", k, "std min/median/max", float(v.min()), float(v.median()), float(v.max()))
te = d["test"]; tl = d["test_labels"]; normal = tl == "normal"
with torch.no_grad():
    T, S = [[], [], []], [[], [], []]
    for i in range(0, len(te), 50):
        x = torch.from_numpy(te[i:i+50]).float()
        for k, (a, b) in enumerate(zip(m.teacher_features(x), m.student_features(x))):
            T[k].append(a); S[k].append(b)
    T = [torch.cat(x) for x in T]; S = [torch.cat(x) for x in S]
for floor in (0.01, 0.1, 0.3, 1.0):
    res = []
    for k in range(3):
        stdv = 1 / scales[k]; med = stdv.median()
        w = stdv / torch.maximum(stdv, floor * med)  # reweight: new_scale/old_scale
        diff = ((T[k] - S[k]) * w).pow(2).mean(1)
        sc = F.avg_pool2d(diff[:, None], 3, 1, 1).flatten(1).max(1).values.numpy()
        types = {ty: round(auroc(tl[(tl == ty) | normal] != "normal", sc[(tl == ty) | normal]), 3) for ty in sorted(set(tl) - {"normal"})}
        res.append((k, round(auroc(~normal, sc), 3), types))
    print(floor, res)
k = 0
diff = (T[k] - S[k]).pow(2).mean(1)
mx = diff.flatten(1).max(1).values
i = int(torch.argmax(torch.where(torch.from_numpy(normal), mx, torch.zeros_like(mx))))
pos = int(diff[i].flatten().argmax()); y, x = divmod(pos, diff.shape[-1])
print("image", i, "pos", y, x, "diff", float(diff[i, y, x]), "median diff", float(diff[i].median()))
tv = T[k][i, :, y, x]; sv = S[k][i, :, y, x]
order = torch.argsort(-(tv - sv).abs())[:6]
print("teacher", tv[order].numpy().round(1), "student", sv[order].numpy().round(1))
print("teacher max abs over normals per channel (top):", T[k][torch.from_numpy(normal)].amax((0, 2, 3))[order].numpy().round(1))
print("pixel values around:", te[i][:, 2*y-2:2*y+3, 2*x-2:2*x+3].transpose(1, 2, 0).reshape(-1, 3)[:6])

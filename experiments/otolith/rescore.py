import sys, numpy as np, cv2
from seawatch.models.otolith.evaluate import auroc
z = np.load(sys.argv[1]); tl = z["test_labels"]; normal = tl == "normal"
def rep(name, sc):
    types = {t: round(auroc(tl[(tl == t) | normal] != "normal", sc[(tl == t) | normal]), 3) for t in sorted(set(tl) - {"normal"})}
    print(f"{name:28s} {auroc(~normal, sc):.4f} {types}")
for k in range(3):
    m = z[f"test{k}"]; n = len(m); f = m.reshape(n, -1)
    sm = np.stack([cv2.GaussianBlur(x, (0, 0), 1.0) for x in m]).reshape(n, -1)
    rep(f"s{k} max", sm.max(1))
    rep(f"s{k} mean", f.mean(1))
    rep(f"s{k} max/mean", sm.max(1) / f.mean(1))
    rep(f"s{k} max/median", sm.max(1) / np.median(f, 1))
    rep(f"s{k} p99/p50", np.quantile(sm, 0.995, 1) / np.median(f, 1))

"""Cache otolith datasets at a given input size."""
import sys, time, numpy as np
import os
LAB = os.environ.get("OTOLITH_LAB", "/tmp/otolith-lab")  # cached data, teachers, maps
from seawatch.models.otolith.synthetic import make_dataset, ANOMALY_TYPES
from seawatch.models.otolith._textures import dead_leaves
from seawatch.inference.otolith import prepare_otolith
size = int(sys.argv[1]); n_train = int(sys.argv[2])
prep = lambda im: prepare_otolith(im, size).astype(np.uint8)
t = time.time()
tr, _ = make_dataset(np.random.default_rng(0), n_normal=n_train, size=256, transform=prep)
rng = np.random.default_rng(4_000_037)
tex = np.stack([prep(dead_leaves(rng, size)) for _ in range(n_train)])
va, vl = make_dataset(np.random.default_rng(2_000_029), n_normal=100, n_per_anomaly=20, size=256, transform=prep)
te, tl = make_dataset(np.random.default_rng(3_000_017), n_normal=400, n_per_anomaly=100, size=256, transform=prep)
os.makedirs(LAB, exist_ok=True)
np.savez(f"{LAB}/data{size}.npz", train=tr, tex=tex, val=va, val_labels=vl, test=te, test_labels=tl)
print("done", time.time() - t)

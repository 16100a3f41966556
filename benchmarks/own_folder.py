"""Training on a user's own folder that fits the data: does a colour model see what a gray one
cannot, and what does K-fold cross-validation report on a small set?

The folder (``tests/models/user_folders.py``): two classes of the same synthetic copepods
whose objects are tinted in opposite directions along a hue that changes neither OpenCV's
gray level nor the channel mean, so only colour tells them apart. 16 images a class to train,
8 to validate, 8 to test (seeds 1, 2, 3), crops of about 60 px (input size 64).

Runs (``seawatch.models.plankton.train.train_plankton``, CPU, ``--finetune full``, 15
epochs of batch 16):

- colour auto (detected: 3 channels) and ``--colour gray``, each from the committed gray
  backbone (its first convolution inflated for colour) and from scratch: test macro-F1;
- the training folder alone, ``--folds 5`` (what a user without a validation folder gets):
  the K-fold mean and std of macro-F1, colour and gray, from the committed backbone.

Writes benchmarks/results/own_folder.json. Holds ``/tmp/seawatch-bench.lock``.

    python benchmarks/own_folder.py
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.models.user_folders: the folder generator

from tests.models.user_folders import write_folder  # noqa: E402

from seawatch.models.plankton.backbone import resolve_pretrained  # noqa: E402
from seawatch.models.plankton.train import FitParams, PlanktonData, train_plankton  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "own_folder.json"
LOCK = Path("/tmp/seawatch-bench.lock")
HUES = {"reddish": ("copepod", -1.0), "bluish": ("copepod", 1.0)}
PARAMS = FitParams(epochs=15, batch_size=16, adaptive=False, finetune="full")


def _hold_lock() -> None:
    """Wait while another benchmark holds the lock, then take it."""
    while True:
        try:
            LOCK.open("x").close()
            return
        except FileExistsError:
            time.sleep(5)


def _train(out: Path, data: PlanktonData, start: Path | None) -> dict:
    began = time.perf_counter()
    card = train_plankton(out, data=data, params=PARAMS, pretrained=start, device="cpu")
    m = card.metrics
    row = {"channels": card.input.channels, "size": card.input.size}
    if "cross_validation" in m:
        cv = m["cross_validation"]
        row |= {k: cv[k] for k in ("folds", "macro_f1_mean", "macro_f1_std", "f1_per_class")}
    else:
        row |= {"test_macro_f1": m["macro_f1"], "test_n": m["n"]}
    return row | {"seconds": round(time.perf_counter() - began, 1)}


def main() -> None:
    _hold_lock()
    try:
        results = run()
    finally:
        LOCK.unlink(missing_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["runs"], indent=1))


def run() -> dict:
    backbone = resolve_pretrained("auto", user_data=True)
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kw = {"side": 60, "colour": True}
        train = write_folder(root / "train", HUES, 16, seed=1, **kw)
        val = write_folder(root / "val", HUES, 8, seed=2, **kw)
        test = write_folder(root / "test", HUES, 8, seed=3, **kw)
        for start_name, start in (("committed backbone", backbone), ("scratch", None)):
            for colour in ("auto", "gray"):
                data = PlanktonData(data_dir=train, val_dir=val, test_dir=test, colour=colour)
                key = f"split, colour {colour}, {start_name}"
                runs[key] = _train(root / key.replace(" ", "_"), data, start)
                print(key, runs[key], flush=True)
        for colour in ("auto", "gray"):
            data = PlanktonData(data_dir=train, colour=colour, folds=5)
            key = f"5-fold, colour {colour}, committed backbone"
            runs[key] = _train(root / key.replace(" ", "_"), data, backbone)
            print(key, runs[key], flush=True)
    return {
        "command": "python benchmarks/own_folder.py",
        "folder": "2 classes (copepods tinted +-, same gray), 16/8/8 a class, ~60 px crops",
        "params": "finetune full, 15 epochs, batch 16, lr 4e-3, seed 0, CPU",
        "machine": platform.processor() or platform.machine(),
        "runs": runs,
    }


if __name__ == "__main__":
    main()

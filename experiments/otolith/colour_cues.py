"""Does the asymmetric input (teacher colour, student gray) buy anything? Colour-only stains.

On the generator's five defects the same-input ablation (student on colour) scores as well as
the gray student (card: 0.9728 against 0.9726), because every one of them also changes
brightness or texture. The seed's reason for the asymmetry is colour cues a gray student
cannot copy. This lab adds the generator's ``stain`` (a tint at the same luminance, pixel by
pixel, growth pattern kept; :data:`~seawatch.models.otolith.synthetic.COLOUR_ONLY_TYPES`),
distils a gray and a colour student from the committed pretrained teacher under one lab
schedule (same data, seed, epochs), and scores both, through torch with the same top-k map
score, on a development draw with every defect plus stains. Nothing is trained on a stain.

    python experiments/otolith/colour_cues.py [--epochs 4] [--n-train 800]

Writes ``experiments/otolith/colour_cues.json``. Seeds: training 7_100_300 (+ plan offsets),
evaluation 7_100_310 (development draws; never the reserved 7,900,xxx range).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from seawatch.models.otolith import distil as D
from seawatch.models.otolith.evaluate import auroc
from seawatch.models.otolith.plan import Plan, prepared
from seawatch.models.otolith.synthetic import (
    ANOMALY_TYPES,
    COLOUR_ONLY_TYPES,
    NORMAL,
    make_dataset,
)
from seawatch.models.otolith.train import _generate, _loaded_teacher, _student
from seawatch.models.training import training_progress

TEACHER = Path("models/otolith-teacher/teacher.pt")
OUT = Path(__file__).with_name("colour_cues.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--n-train", type=int, default=800)
    parser.add_argument("--n-eval", type=int, default=200, help="normals; 50 per defect")
    args = parser.parse_args()
    plan = replace(
        Plan(),
        n_train=args.n_train,
        epochs=args.epochs,
        n_calibration=8,
        n_test_normal=8,
        n_test_per_anomaly=1,
        views=4,
    )
    start = time.perf_counter()
    teacher, _, norm = _loaded_teacher(TEACHER, plan)
    to_input = prepared(plan.input_size)
    with training_progress() as progress:
        data = _generate(plan, 7_100_300, progress)
        students = {
            kind: _student(teacher, kind, data, plan, norm, 7_100_300, "cpu", progress)[0]
            for kind in ("gray", "rgb")
        }
    types = ANOMALY_TYPES + COLOUR_ONLY_TYPES
    images, labels = make_dataset(
        np.random.default_rng(7_100_310),
        n_normal=args.n_eval,
        n_per_anomaly=args.n_eval // 4,
        size=plan.render_size,
        anomalies=types,
        transform=to_input,
    )
    normal = labels == NORMAL
    rows = {}
    for kind, model in students.items():
        flat = D.heatmaps(model, images, "cpu").reshape(len(images), -1)
        scores = -np.sort(-flat, axis=1)[:, : model.top_k].mean(1)
        per_type = {
            t: round(auroc(labels[normal | (labels == t)] == t, scores[normal | (labels == t)]), 4)
            for t in types
        }
        five = ~np.isin(labels, COLOUR_ONLY_TYPES)
        rows[kind] = {"auroc_five_defects": round(auroc(~normal[five], scores[five]), 4)} | {
            "auroc_per_type": per_type
        }
        print(kind, rows[kind])
    result = {
        "question": "does the gray student (asymmetric input) detect colour-only stains better?",
        "plan": {"n_train": plan.n_train, "epochs": plan.epochs, "views": plan.views},
        "seeds": {"train": 7_100_300, "evaluation": 7_100_310},
        "n_eval": {"normal": args.n_eval, "per_type": args.n_eval // 4},
        "students": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

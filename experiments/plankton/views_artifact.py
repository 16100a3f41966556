"""Experiment (issue 24, item 7): the committed plankton model served with dihedral views.

The same weights, re-exported so the graph averages each crop's 4 or 8 dihedral views
(:class:`seawatch.models.plankton.network.WithFeatures`); the temperature and the
``unknown`` threshold refitted on the model's own validation split (redrawn from its card,
as ``seawatch train plankton-oe`` does); the OOD score dropped (refit it with ``seawatch
train plankton-ood --model OUT``). Prints the validation and test macro-F1 with one view and
with ``--views``, so ``benchmarks/ood.py --model OUT`` can then say what the views do to the
out-of-distribution score.

    python experiments/plankton/views_artifact.py --out /tmp/pv8 --views 8
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card, sha256_file
from seawatch.models.plankton.calibration import fit_temperature, scale
from seawatch.models.plankton.evaluate import unknown_threshold
from seawatch.models.plankton.export import OUTPUT_NAMES, check_parity, export_onnx, exported
from seawatch.models.plankton.finetune import macro_f1
from seawatch.models.plankton.oe_artifact import SKIPPED
from seawatch.models.plankton.reexport import rebuild_network
from seawatch.models.plankton.synthetic_sets import synthetic_split
from seawatch.models.plankton.train import predict_logits
from seawatch.models.plankton.views_choice import CARD_FIELD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("models/plankton"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--views", type=int, default=8, choices=(4, 8))
    args = parser.parse_args()
    card, net = load_card(args.source), rebuild_network(args.source)
    data, size = card.training.data, card.input.size
    sets = {
        split: synthetic_split(
            split,
            int(data["eval_per_class"]),
            seed=card.training.seed,
            size=size,
            segmented_share=float(data.get("segmented_share", 0.4)),
        )[0]
        for split in ("validation", "test")
    }
    f1 = {}
    for split, labelled in sets.items():
        for views in (1, args.views):
            logits = predict_logits(net, labelled.images, "cpu", views=views)
            n = len(labelled.class_names)
            f1[f"{split}@{views}"] = round(macro_f1(labelled.labels, logits.argmax(1), n), 4)
    print(f"macro-F1 (own synthetic splits, redrawn): {f1}")
    val = sets["validation"]
    logits = predict_logits(net, val.images, "cpu", views=args.views)
    temperature = fit_temperature(logits, val.labels)
    net.set_temperature(temperature)
    threshold, _ = unknown_threshold(scale(logits, temperature), val.labels)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.source.iterdir():
        if path.is_file() and path.name not in SKIPPED:
            shutil.copyfile(path, args.out / path.name)
    onnx_path = export_onnx(net, args.out / ONNX_FILE, size=size, views=args.views)
    batch = val.images[:64, None].astype(np.float32)
    parity = check_parity(exported(net, args.views), onnx_path, batch)
    training = card.training.model_copy(update={CARD_FIELD: args.views})
    new = card.model_copy(
        update={
            "ood": None,
            "files": {k: v for k, v in card.files.items() if k != "ood"},
            "thresholds": dict(card.thresholds)
            | {"unknown_confidence": threshold, "temperature": round(temperature, 4)},
            "outputs": list(OUTPUT_NAMES),
            "training": training,
            "architecture": f"{card.architecture}; the graph averages {args.views} dihedral "
            "views of each crop",
            "metrics": {"views_experiment": {"macro_f1": f1, "onnx_parity": parity}},
            "onnx_sha256": sha256_file(onnx_path),
        }
    )
    new.write(args.out)
    load_card(args.out)
    print(f"wrote {args.out}: temperature {temperature:.4f}, unknown below {threshold:.4f}")


if __name__ == "__main__":
    main()

"""Segmentation of full plankton frames: the seed-001 ablation and the model against the
global threshold, on held-out synthetic frames (issue 27).

1. **Ablation** (held-out 512 px tiles): instance mIoU of the five rows whose graphs
   ``seawatch train segmentation`` wrote under ``MODEL/ablation`` (supervised on 1/3 of the
   masks, on all, self-training without the quality filter, with it, with distillation),
   and of the threshold.
2. **Quality network**: Spearman rho of its predicted IoU against the true IoU of the
   teacher's pseudo-masks (what it filters) and of the served student's masks (what the
   daemon stores per frame).
3. **Daemon frames** (1280 x 960, 15-45 objects, the daemon's cutting code on both sides;
   the model on its proposal windows, as served, and on the whole frame beside it):
   median relative ESD error, object-count error on frames with touching objects, and the
   plankton classifier's macro-F1 on the crops each method cuts (an object takes the taxon
   of the true object covering most of it; objects mostly on no true object are left out
   and counted), and the classifier on crops cut by the true masks (its ceiling on these
   frames, whatever the segmentation). Hard frames, and easy ones (separate, in focus, even
   light) beside them.

Seeds: development draws 7,100,2xx by default; ``--final`` scores the reserved draw
7,900,070 (tiles) / 7,900,071 (daemon frames), once, after every choice. Writes
``benchmarks/results/segmentation.json`` and ``segmentation.png`` with ``--final``
(``segmentation_dev.json`` otherwise).

    python benchmarks/segmentation.py [--model models/segmentation] [--final] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.preprocess import batch_tensor, prepare_roi
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.segment import SegmentParams, segment_full, threshold_labels
from seawatch.ingest.segment_model import (
    instances,
    model_input,
    objects_from_labels,
    quality_windows,
)
from seawatch.ingest.segment_windows import Window, network_maps, proposal_windows
from seawatch.models.plankton.evaluate import classification_metrics
from seawatch.models.plankton.model_segmented import taxa_of
from seawatch.models.plankton.synthetic import TAXA
from seawatch.models.segmentation.data import STRIDE, jpeg, make_tiles
from seawatch.models.segmentation.evaluate import (
    FrameScores,
    model_labels,
    score_frame,
    score_threshold,
)
from seawatch.models.segmentation.metrics import best_iou_per_pred, spearman
from seawatch.models.segmentation.plots import draw_ablation
from seawatch.models.segmentation.selftrain import ROWS
from seawatch.models.segmentation.synthetic import EASY, render_hard_frame

RESULTS = Path(__file__).parent / "results"
DEV = {"tiles": 7_100_210, "frames": 7_100_211}
FINAL = {"tiles": 7_900_070, "frames": 7_900_071}


def _maps(session: OnnxRuntimeBackend, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [session.run(inputs[i : i + 8, None].astype(np.float32)) for i in range(0, len(inputs), 8)]
    )


def ablation(model_dir: Path, tiles) -> tuple[dict, dict]:
    """Scores of every row and of the threshold on the tiles; and every row's maps."""
    from seawatch.models.segmentation.evaluate import score_model

    scores = {
        "threshold": score_threshold(tiles.images, tiles.full_labels, tiles.touching).summary()
    }
    maps = {}
    for key, _ in ROWS:
        if not (model_dir / "ablation" / f"{key}.onnx").exists():
            continue  # an artifact of the served rows only (train segmentation --rows served)
        session = OnnxRuntimeBackend(model_dir / "ablation" / f"{key}.onnx", threads=1)
        maps[key] = _maps(session, tiles.inputs)
        session.close()
        scores[key] = score_model(
            maps[key], tiles.images, tiles.full_labels, tiles.touching
        ).summary()
    return scores, maps


def quality(model_dir: Path, tiles, maps: dict) -> dict:
    """Spearman rho of the quality network's predicted IoU with the true IoU."""
    card = load_card(model_dir)
    session = OnnxRuntimeBackend(model_dir / card.files["quality"], threads=1)
    out = {}
    teacher = OnnxRuntimeBackend(model_dir / "ablation" / "teacher.onnx", threads=1)
    maps = maps | {"teacher": _maps(teacher, tiles.inputs)}
    teacher.close()
    for name, key in (("teacher", "teacher"), ("student", "self_training_quality_kd")):
        predicted, true = [], []
        for i, m in enumerate(maps[key]):
            labels = instances(m)
            ids = list(range(1, int(labels.max(initial=0)) + 1))
            if not ids:
                continue
            windows = quality_windows(tiles.inputs[i], m, labels, ids)
            predicted.append(session.run(windows).reshape(-1))
            true.append(best_iou_per_pred(labels, tiles.labels[i]))
        p, t = np.concatenate(predicted), np.concatenate(true)
        out[name] = {
            "spearman": round(spearman(p, t), 4),
            "instances": len(t),
            "mean_true_iou": round(float(t.mean()), 4),
        }
    session.close()
    return out


def daemon_frames(n: int, seed: int, hard: bool):
    """``n`` daemon-size frames (truth included), taxa dealt from a balanced deck."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        count = int(rng.integers(15, 45))
        taxa = [TAXA[i] for i in rng.integers(0, len(TAXA), count)]
        frame = render_hard_frame(
            rng,
            width=1280,
            height=960,
            taxa=taxa,
            dark_field=bool(rng.random() < 0.3),
            hardness=None if hard else EASY,
        )
        image = jpeg(frame.image) if rng.random() < 0.5 else frame.image
        frames.append((image, frame))
    return frames


def _taxa_of(pred: np.ndarray, frame) -> tuple[list[int | None], int]:
    """The true taxon index of each predicted object (None: mostly on no true object); the
    rule the classifier's model-cut training crops use too."""
    out = taxa_of(pred, frame.labels, list(frame.taxa))
    return out, sum(t is None for t in out)


def daemon_scores(model_dir: Path, classifier: Path, frames) -> dict:
    """ESD, count and classifier scores of both methods on daemon frames."""
    params = SegmentParams()
    seg = OnnxRuntimeBackend(model_dir / ONNX_FILE, threads=1)
    clf = OnnxRuntimeBackend(classifier / ONNX_FILE, threads=1)
    size = load_card(classifier).input.size
    card = load_card(model_dir)
    stride = int(card.thresholds.get("stride", STRIDE))
    split = {"core_level": card.thresholds["core"], "merge_level": card.thresholds["merge"]}
    out = {}
    for method in ("threshold", "model", "model_whole_frame", "true_masks"):
        scores = FrameScores([], [], 0, [], [])
        truth_ids, crops, unmatched, seconds = [], [], 0, 0.0
        for image, frame in frames:
            started = time.perf_counter()
            if method == "threshold":
                labels = threshold_labels(image, params, None)
                objects = segment_full(image, params, None)
            else:
                if method.startswith("model"):
                    made = model_input(image, params, stride)
                    h, w = made.signal.shape
                    whole = [Window(0, 0, w, h)]
                    # as the daemon runs it: on the proposal windows (or the whole frame)
                    windows = whole if method != "model" else proposal_windows(made, stride)
                    maps = network_maps(seg.run, made, windows)
                    labels = model_labels(maps, image.shape, **split)
                else:  # the classifier's ceiling: crops cut by the true masks
                    labels = frame.labels
                objects, kept = objects_from_labels(image, labels, params, None)
                # the daemon's objects, in the label map's numbering for matching
                remap = np.zeros(int(labels.max(initial=0)) + 1, np.int32)
                remap[kept] = np.arange(1, len(kept) + 1)
                labels = remap[labels]
            seconds += time.perf_counter() - started
            score_frame(labels, frame.labels, frame.touching, scores)
            taxa, dropped = _taxa_of(labels, frame)
            unmatched += dropped
            for obj, taxon in zip(objects, taxa, strict=True):
                if taxon is not None:
                    truth_ids.append(taxon)
                    crops.append(prepare_roi(obj.image, size))
        metrics = {"macro_f1": float("nan"), "accuracy": float("nan")}
        if crops:
            tensor = batch_tensor(crops)
            chunks = [clf.run(tensor[i : i + 64]) for i in range(0, len(tensor), 64)]
            predicted = np.concatenate(chunks).argmax(1)
            metrics = classification_metrics(np.array(truth_ids), predicted, list(TAXA))
        out[method] = scores.summary() | {
            "classifier_macro_f1": round(float(metrics["macro_f1"]), 4),
            "classifier_accuracy": round(float(metrics["accuracy"]), 4),
            "classified_objects": len(truth_ids),
            "objects_on_no_true_object": unmatched,
            "cut_ms_per_frame": round(1000 * seconds / len(frames), 1),
        }
    seg.close()
    clf.close()
    return out


def criteria(rows: dict, rho: dict, hard: dict) -> dict:
    """The issue's "done when", each with its numbers and whether it is met."""
    nan = {"miou": float("nan")}  # a row the artifact does not hold
    kd, third, every = (
        rows.get(k, nan)["miou"]
        for k in ("self_training_quality_kd", "supervised_third", "supervised_all")
    )
    t, m = hard["threshold"], hard["model"]
    return {
        "student_within_1_point_of_supervised_all": {
            "gap_points": round(100 * (every - kd), 2),
            "met": bool(kd >= every - 0.01),
        },
        "student_3_points_over_supervised_third": {
            "gain_points": round(100 * (kd - third), 2),
            "met": bool(kd >= third + 0.03),
        },
        "quality_spearman_at_least_0.7": {
            "rho": rho["teacher"]["spearman"],
            "met": rho["teacher"]["spearman"] >= 0.7,
        },
        "classifier_macro_f1_at_least_0.965": {
            "f1": m["classifier_macro_f1"],
            "met": m["classifier_macro_f1"] >= 0.965,
        },
        "median_esd_error_30_percent_lower": {
            "threshold": t["median_relative_esd_error"],
            "model": m["median_relative_esd_error"],
            "met": m["median_relative_esd_error"] <= 0.7 * t["median_relative_esd_error"],
        },
        "count_error_lower_on_touching_frames": {
            "threshold": t["mean_count_error_touching_frames"],
            "model": m["mean_count_error_touching_frames"],
            "met": m["mean_count_error_touching_frames"] < t["mean_count_error_touching_frames"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/segmentation"))
    parser.add_argument("--classifier", type=Path, default=Path("models/plankton"))
    parser.add_argument("--final", action="store_true", help="score the reserved draw (once)")
    parser.add_argument("--tiles", type=int, default=48)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    seeds = FINAL if args.final else DEV
    started = time.perf_counter()
    tiles = make_tiles(args.tiles, seeds["tiles"], keep_full=True)
    rows, maps = ablation(args.model, tiles)
    rho = quality(args.model, tiles, maps)
    hard = daemon_scores(
        args.model, args.classifier, daemon_frames(args.frames, seeds["frames"], True)
    )
    easy = daemon_scores(
        args.model, args.classifier, daemon_frames(args.frames, seeds["frames"] + 100, False)
    )
    card = load_card(args.model)
    result = {
        "split": "final (reserved draw)" if args.final else "development",
        "seeds": seeds | {"easy_frames": seeds["frames"] + 100},
        "tiles": args.tiles,
        "daemon_frames": args.frames,
        "model": f"{card.name} {card.release}",
        "model_dir": str(args.model),
        "network": card.training.data.get("segnet", {"widths": [12, 24, 48, 64], "fine": 8}),
        "split_levels": {k: card.thresholds[k] for k in ("core", "merge", "stride")},
        "ablation_miou": {
            key: rows[key]["miou"] for key in ["threshold", *dict(ROWS)] if key in rows
        },
        "rows": rows,
        "quality": rho,
        "daemon_hard_frames": hard,
        "daemon_easy_frames": easy,
        "criteria": criteria(rows, rho, hard),
        "seconds": round(time.perf_counter() - started, 1),
        "cpu": platform.processor() or platform.machine(),
        "date": datetime.now(UTC).date().isoformat(),
        "command": "python benchmarks/segmentation.py" + (" --final" if args.final else ""),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "segmentation" if args.final else "segmentation_dev"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    draw_ablation(
        [(label, rows[key]["miou"]) for key, label in ROWS if key in rows],
        rows["threshold"]["miou"],
        f"Segmentation ablation, {result['split']} tiles (seed {seeds['tiles']:,})",
        args.out / f"{name}.png",
    )
    print(
        json.dumps(
            {
                "ablation_miou": result["ablation_miou"],
                "quality": rho,
                "hard": hard,
                "easy": easy,
                "criteria": result["criteria"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

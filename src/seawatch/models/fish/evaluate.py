"""Evaluate a fish re-ID model on regenerated held-out synthetic fish (no torch).

The protocol (:func:`run_protocol`) takes any ``embed`` function, so training scores its
exported graph through ONNX Runtime with the very code :func:`evaluate_fish` runs later:

1. Gallery: ``enrol_per_individual`` renders of each *seen* and *unseen-known* individual
   (held-out streams, never training images), in a :class:`~seawatch.models.fish.gallery.Gallery`.
2. Calibration: sightings of the *calibration* individuals (not enrolled) give the impostor
   scores; the threshold lets at most the target false-match rate of them match.
3. Known: other renders of enrolled individuals; CMC (top-1, top-5) over individuals and
   image-level mAP, with the gallery restricted to seen, to unseen-known, and all of it.
4. Open set: AUROC of new-vs-known, sightings of enrolled individuals against those of the
   *unseen-unknown* ones, scored by their best gallery score; rates at the threshold.
5. Thresholds per gallery size: the calibration sightings' scores for each individual give
   the threshold of the same target rate on a gallery of N individuals
   (:mod:`~seawatch.models.fish.size_thresholds`), the card's ``thresholds_by_gallery_size``;
   and the same for query-expanded scores (:mod:`~seawatch.models.fish.rerank`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.models.fish import metrics as m
from seawatch.models.fish.data import FishData, render_set
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.plots import draw_cmc, draw_examples, draw_similarity
from seawatch.models.fish.rerank import QueryExpansion
from seawatch.models.fish.size_thresholds import thresholds_by_size

Embed = Callable[[np.ndarray], np.ndarray]  # N x 3 x H x W uint8 RGB -> N x D unit vectors


def run_protocol(
    embed: Embed,
    data: FishData,
    *,
    far: float = 0.01,
    threshold: float | None = None,
    stream_seed: int | None = None,
    out_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], Gallery]:
    """Score ``embed`` on the held-out sets of ``data``; return metrics and the gallery.

    ``threshold`` None calibrates one for false-match rate ``far``; a given threshold (a
    card's) is evaluated as is and the recalibrated value is reported beside it. With
    ``out_dir``, similarity.png, cmc.png and examples.png are drawn there.
    """
    individuals, groups = data.individuals(), data.groups()
    names = [ind.name for ind in individuals]
    sets = {}
    plan = {
        "enrol": (data.gallery_indices(), data.enrol_per_individual, "enrol"),
        "calibration": (groups["calibration"], data.calibration_per_individual, "query"),
        "seen": (groups["seen"], data.query_per_individual, "query"),
        "unseen_known": (groups["unseen_known"], data.query_per_individual, "query"),
        "unseen_unknown": (groups["unseen_unknown"], data.unknown_per_individual, "query"),
    }
    for key, (indices, per, purpose) in plan.items():
        images, labels, _ = render_set(
            data, individuals, list(indices), per, purpose, stream_seed=stream_seed
        )
        sets[key] = (images, labels, _embed_all(embed, images, progress))
    _, enrol_labels, enrol_emb = sets["enrol"]
    gallery = Gallery()
    for index in data.gallery_indices():
        gallery.enrol(names[index], enrol_emb[enrol_labels == index])
    column = {index: i for i, index in enumerate(data.gallery_indices())}

    impostor_rows = gallery.scores(sets["calibration"][2])  # each stranger x each individual
    impostor = impostor_rows.max(1)
    calibrated = m.threshold_for_false_match_rate(impostor, far)
    t = calibrated if threshold is None else threshold
    result: dict[str, Any] = {"embedding_dim": int(enrol_emb.shape[1])}
    known = {}
    for part, keys in (
        ("seen", ["seen"]),
        ("unseen", ["unseen_known"]),
        ("all", ["seen", "unseen_known"]),
    ):
        cols = sorted({column[i] for k in keys for i in plan[k][0]})
        known[part] = _closed_set(sets, keys, gallery, cols, column, enrol_emb, enrol_labels)
    result["known"] = known
    q_known = np.concatenate([sets[k][2] for k in ("seen", "unseen_known")])
    y_known = np.concatenate([sets[k][1] for k in ("seen", "unseen_known")])
    s_known = gallery.scores(q_known)
    truth = np.array([column[y] for y in y_known])
    best_known, genuine = s_known.max(1), s_known[np.arange(len(truth)), truth]
    n_unseen = len(sets["unseen_known"][1])
    best_new = gallery.scores(sets["unseen_unknown"][2]).max(1)
    correct = s_known.argmax(1) == truth
    accepted = best_known >= t
    result["open_set"] = {
        "new_vs_known_auroc": round(m.auroc(best_known, best_new), 4),
        "new_vs_known_auroc_unseen": round(m.auroc(best_known[-n_unseen:], best_new), 4),
        "queries_known": len(best_known),
        "queries_new": len(best_new),
        "individuals_new": len(groups["unseen_unknown"]),
    }
    result["threshold"] = {
        "match_similarity": t,
        "target_false_match_rate": far,
        "recalibrated_match_similarity": calibrated,
        "method": "lowest threshold that at most the target share of calibration sightings "
        "(individuals never trained on nor enrolled) reach with their best gallery score",
        "gallery_individuals": len(gallery),
        "calibration_sightings": len(impostor),
        "calibration_false_match_rate": round(float((impostor >= t).mean()), 4),
        "test_false_match_rate": round(float((best_new >= t).mean()), 4),
        "known_correct_match_rate": round(float((accepted & correct).mean()), 4),
        "known_wrong_match_rate": round(float((accepted & ~correct).mean()), 4),
        "known_new_rate": round(float((~accepted).mean()), 4),
        # the same target rate on a gallery of N individuals (size_thresholds.py)
        "by_gallery_size": [list(p) for p in thresholds_by_size(impostor_rows, far)],
    }
    # the threshold for query-expanded scores (rerank.py), and per gallery size
    gallery.expansion = QueryExpansion()
    expanded_rows = gallery.scores(sets["calibration"][2])
    gallery.expansion = None
    result["threshold"]["query_expansion"] = {
        "match_similarity": m.threshold_for_false_match_rate(expanded_rows.max(1), far),
        "by_gallery_size": [list(p) for p in thresholds_by_size(expanded_rows, far)],
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        draw_similarity(genuine, best_new, impostor, t, far, out_dir / "similarity.png")
        draw_cmc({p: np.array(k["cmc"]) for p, k in known.items()}, out_dir / "cmc.png")
        draw_examples(_example_rows(sets, gallery, names, data, t), out_dir / "examples.png")
    return result, gallery


def _closed_set(
    sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    keys: list[str],
    gallery: Gallery,
    cols: list[int],
    column: dict[int, int],
    enrol_emb: np.ndarray,
    enrol_labels: np.ndarray,
) -> dict[str, Any]:
    """Top-1/5, CMC and mAP for queries of ``keys`` against gallery columns ``cols``."""
    queries = np.concatenate([sets[k][2] for k in keys])
    labels = np.concatenate([sets[k][1] for k in keys])
    scores = gallery.scores(queries)[:, cols]
    position = {c: i for i, c in enumerate(cols)}
    truth = np.array([position[column[y]] for y in labels])
    in_part = np.isin([column[y] for y in enrol_labels], cols)
    image_sim = queries @ enrol_emb[in_part].T
    curve = m.cmc(scores, truth, max_rank=min(20, len(cols)))
    return {
        "individuals": len(cols),
        "queries": len(labels),
        "top1": round(m.top_k(scores, truth, 1), 4),
        "top5": round(m.top_k(scores, truth, 5), 4),
        "mAP": round(m.mean_average_precision(image_sim, labels, enrol_labels[in_part]), 4),
        "cmc": [round(float(v), 4) for v in curve],
    }


def _example_rows(
    sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    gallery: Gallery,
    names: list[str],
    data: FishData,
    t: float,
) -> list[tuple[np.ndarray, np.ndarray | None, str]]:
    """Query image, its best match's first enrolment image and a caption, for a few queries."""
    rows = []
    enrol_images, enrol_labels, _ = sets["enrol"]
    for key in ("seen", "unseen_known", "unseen_unknown"):
        images, labels, emb = sets[key]
        new = key == "unseen_unknown"
        step = data.unknown_per_individual if new else data.query_per_individual
        for i in range(0, min(len(labels), 2 * step), step):
            match = gallery.match(emb[i])[0]
            best = names.index(match.individual) if match.individual else -1
            shown = enrol_images[np.flatnonzero(enrol_labels == best)[0]] if best >= 0 else None
            matched = match.similarity >= t
            verdict = "match" if matched else "new fish"
            own = names[labels[i]] == match.individual
            right = not matched if key == "unseen_unknown" else matched and own
            rows.append(
                (
                    images[i],
                    shown,
                    f"{key}: {names[labels[i]]} -> {match.individual} "
                    f"{match.similarity:.2f} {verdict} ({'right' if right else 'WRONG'})",
                )
            )
    return rows


def _embed_all(
    embed: Embed, images: np.ndarray, progress: Callable[[int], None] | None, batch: int = 128
) -> np.ndarray:
    out = []
    for start in range(0, len(images), batch):
        out.append(embed(images[start : start + batch]))
        if progress is not None:
            progress(len(out[-1]))
    return np.concatenate(out).astype(np.float32)


def onnx_embedder(onnx_path: Path, *, threads: int = 1) -> Embed:
    """An :data:`Embed` function running ``onnx_path`` with ONNX Runtime (CPU)."""
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(onnx_path, threads=threads)
    return lambda images: backend.run(images.astype(np.float32))


def evaluate_fish(model_dir: Path, out_dir: Path, *, seed: int | None = None) -> dict[str, Any]:
    """Evaluate the artifact in ``model_dir`` on regenerated held-out data; write to ``out_dir``.

    The individuals and splits come from the card; ``seed`` (default: the card's data seed,
    reproducing the card's metrics) picks fresh enrolment and query renders of them.
    Writes evaluation.json, similarity.png, cmc.png and examples.png.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    card = load_card(model_dir)
    if card.task != "fish":
        msg = f"{model_dir} holds a {card.task!r} model, not a fish re-ID model"
        raise ValueError(msg)
    if card.training.data.get("source") == "folders":  # seawatch.models.fish.finetune
        msg = (
            f"{model_dir} was fine-tuned on {card.training.data.get('data_dir')}: its held-out "
            "individuals' metrics (before and after) are in its card.json metrics; the "
            "synthetic protocol does not apply to it"
        )
        raise ConfigError(msg)
    data = FishData.from_summary(card.training.data)
    result, _ = run_protocol(
        onnx_embedder(model_dir / ONNX_FILE),
        data,
        far=card.thresholds.get("target_false_match_rate", 0.01),
        threshold=card.thresholds["match_similarity"],
        stream_seed=seed,
        out_dir=out_dir,
    )
    result = {
        "model": f"{card.name} {card.version}",
        "stream_seed": data.seed if seed is None else seed,
    } | result
    (out_dir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


__all__ = ["Embed", "evaluate_fish", "onnx_embedder", "run_protocol"]

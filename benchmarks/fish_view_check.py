"""Single views of known fish without tracklets (``benchmarks/fish_open_set_frames.py
--view-check``): the share put on their own id at the threshold from the open-set stream's
crops and from the whole-frame detector's, and the share under the head's quality gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FISH_DIR = Path(__file__).resolve().parent.parent / "models" / "fish"
MIN_QUALITY = 80.0  # the head's quality gate (OpenSetDecider's min_quality)


def view_check(stream, frames) -> dict:
    """Single views of known fish, no tracklets: the share the committed model puts on their
    own id at the threshold from the stream's crop and from the detector's (and how many of
    the detector's were turned the right way); the share of views under the quality gate."""
    from seawatch.contracts.card import ONNX_FILE, load_card
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.frame_detect import detect_fish
    from seawatch.models.fish.gallery import Gallery
    from seawatch.models.fish.head import fish_input8
    from seawatch.models.fish.quality import view_quality
    from seawatch.models.fish.tank_scene import match_boxes

    card = load_card(FISH_DIR)
    gallery = Gallery.load(FISH_DIR / card.files["gallery"])
    threshold = float(card.thresholds["match_similarity"])
    crops = [(fish_input8(s.image, 64, 160), s.truth, True) for s in stream if s.known]
    cut = []
    for scene in frames:
        found = detect_fish(scene.image)
        for i, j in match_boxes([f.box for f in scene.fish], [d.box for d in found]):
            fish, det = scene.fish[i], found[j]
            if fish.known:
                cut.append(
                    (
                        fish_input8(det.crop, 64, 160),
                        fish.truth,
                        fish.facing_right == det.facing_right,
                    )
                )

    def right(views) -> float:
        tensor = np.stack([v for v, _, _ in views]).transpose(0, 3, 1, 2).astype(np.float32)
        with OnnxRuntimeBackend(FISH_DIR / ONNX_FILE, threads=1) as backend:
            out = np.concatenate(
                [backend.run(tensor[i : i + 64]) for i in range(0, len(tensor), 64)]
            )
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        hits = [
            m.individual == t and m.similarity >= threshold
            for m, (_, t, _) in zip(gallery.match(out), views, strict=True)
        ]
        return round(float(np.mean(hits)), 4)

    def under_gate(views) -> float:
        return round(float(np.mean([view_quality(v) < MIN_QUALITY for v, _, _ in views])), 4)

    return {
        "known_views_stream_crops": len(crops),
        "known_views_detector_crops": len(cut),
        "own_id_at_threshold_stream_crops": right(crops),
        "own_id_at_threshold_detector_crops": right(cut),
        "own_id_at_threshold_detector_crops_turned_right": right([c for c in cut if c[2]]),
        "detector_crops_turned_right": round(float(np.mean([c[2] for c in cut])), 4),
        "under_quality_gate_stream_crops": under_gate(crops),
        "under_quality_gate_detector_crops": under_gate(cut),
    }

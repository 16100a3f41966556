"""The fish head's whole-frame way in ``benchmarks/fish_open_set_frames.py``: each batch of
rendered frames through :class:`~seawatch.models.fish.head.FishIdentifier`'s ``prepare``
(find, orient, cut each fish), ``stack`` and ``infer`` on the committed model (ONNX Runtime,
one thread), with the process time each took; the decision is the benchmark's own.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FISH_DIR = HERE.parent / "models" / "fish"
SEG_DIR = HERE.parent / "models" / "fish-segmentation"  # for --detectors model
BATCH = 16  # frames a batch (up to 64 fish, the head's max_batch)


def _frame(camera: str, captured_at_ns: int, offset: int):
    """A whole fish frame's envelope, as the router hands it to the head (no payload kept)."""
    from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef

    meta = FrameMeta(camera, "fish", captured_at_ns, FrameKind.FULL, "image/png")
    return Frame(meta, SourceRef("bench", 0, offset), b"", 0)


def prepare_and_embed(
    frames, detector: str = "threshold", seg_dir: Path = SEG_DIR, gate: bool = True
) -> tuple[list, list, dict]:
    """Each batch's prepared frames and model outputs (the head's prepare, stack and infer),
    fish found by ``detector`` (``threshold``: the classical one; ``model``: the fish
    segmentation network, ``tasks.fish.options.detector``); ``gate`` False: the outline
    gate sees no outline (no detection is poor)."""
    from seawatch.contracts.card import ONNX_FILE, load_card
    from seawatch.contracts.task import PreparedFrame
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.frame_detect import detect_fish
    from seawatch.models.fish.gallery import Gallery
    from seawatch.models.fish.head import FishIdentifier

    card = load_card(FISH_DIR)
    gallery = Gallery.load(FISH_DIR / card.files["gallery"])
    batches, outputs = [], []
    prepare_s = infer_s = 0.0
    segmenter = None
    if detector == "model":
        from seawatch.models.fish.frame_segment import FishSegmenter

        segmenter = FishSegmenter(seg_dir)
    find = segmenter if segmenter is not None else detect_fish
    if not gate:
        find = functools.partial(_no_outlines, find)
    with OnnxRuntimeBackend(FISH_DIR / ONNX_FILE, threads=1) as backend:
        head = FishIdentifier(
            backend, card, gallery, max_batch=64, whole_frames=True, detector=find
        )
        for i in range(0, len(frames), BATCH):
            t0 = time.process_time()
            batch = []
            for k, scene in enumerate(frames[i : i + BATCH]):
                frame = _frame(scene.camera, scene.captured_at_ns, i + k)
                batch.append(PreparedFrame.of(frame, head.prepare(frame, scene.image), 0.0))
            tensor = head.stack(batch)
            t1 = time.process_time()
            outputs.append(head.infer(tensor) if tensor is not None else None)
            prepare_s, infer_s = prepare_s + t1 - t0, infer_s + time.process_time() - t1
            batches.append(batch)
    crops = sum(len(p.crops) for b in batches for p in b)
    cost = {
        "prepare_ms_per_frame": round(prepare_s / len(frames) * 1e3, 2),
        "infer_ms_per_sighting": round(infer_s / max(1, crops) * 1e3, 2),
    }
    return batches, outputs, cost


def _no_outlines(find, image):
    """``find``'s detections without their outline measures (the outline gate off)."""
    return [dataclasses.replace(d, outline=None) for d in find(image)]


__all__ = ["BATCH", "FISH_DIR", "SEG_DIR", "prepare_and_embed"]

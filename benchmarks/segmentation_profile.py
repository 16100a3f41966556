"""Where the CPU goes when the segmentation model cuts a full frame (issue 27).

The frames of the throughput benchmark (``benchmarks/segmentation_cost.py``: the synthetic
plankton stream's 1280 x 960 full frames), each step of the daemon's cut timed on its own in
this thread's CPU time (what other processes on a shared machine steal is not counted):
decode, the threshold's whole cut beside it, and the model's steps (network input, proposal
windows, the network on those windows and on the whole frame, instances, enlargement,
measures, crops, quality windows, quality network), one ONNX Runtime thread.

    python benchmarks/segmentation_profile.py [--frames 12] [--model models/segmentation]

Writes ``benchmarks/results/segmentation_profile.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline_tasks import task_messages
from seawatch.contracts.preprocess import prepare_roi, to_gray8
from seawatch.ingest.decode import DecodeLimits, decode_image
from seawatch.ingest.segment import SegmentParams, segment_full
from seawatch.ingest.segment_model import (
    enlarge,
    instances,
    model_input,
    objects_from_labels,
    quality_windows,
)
from seawatch.ingest.segment_windows import network_maps, proposal_windows
from seawatch.models.plankton.model_cut import open_cutter

RESULTS = Path(__file__).parent / "results" / "segmentation_profile.json"


def profile(frames: int, model: Path) -> dict:
    """Mean CPU ms per frame of every step, and the share of the frame the network saw."""
    cv2.setNumThreads(1)
    params = SegmentParams()
    cutter = open_cutter(
        model, params, threads=1, classifier_size=64, max_batch=64, review_below=0.6
    )
    limits = DecodeLimits(32 << 20, 50_000_000, 30_000, 256 << 20)
    spent: dict[str, float] = {}
    shares = []

    def timed(step: str, fn, *args):
        started = time.thread_time()
        out = fn(*args)
        spent[step] = spent.get(step, 0.0) + time.thread_time() - started
        return out

    def split_at_card_levels(seen: np.ndarray) -> np.ndarray:
        return instances(seen, core_level=cutter.core_level, merge_level=cutter.merge_level)

    try:
        for message in task_messages("plankton", frames, seed=0, full_share=1.0):
            image = timed("decode", decode_image, message.value, message.meta.content_type, limits)
            gray = to_gray8(image)
            timed("threshold_cut", segment_full, gray, params, None)
            made = timed("model_input", model_input, gray, params, cutter.stride)
            windows = timed("proposal_windows", proposal_windows, made, cutter.stride)
            shares.append(sum(w.area for w in windows) / made.signal.size)
            whole = made.signal[None, None].astype(np.float32)
            timed("network_whole_frame", cutter.segmenter.run, whole)
            maps = timed("network_on_windows", network_maps, cutter.segmenter.run, made, windows)
            seen = maps[:, : made.height, : made.width]
            small = timed("instances", split_at_card_levels, seen)
            big = timed("enlarge", enlarge, small, np.ascontiguousarray(seen[0]), gray.shape)
            objects, kept = timed("measure", objects_from_labels, gray, big, params, None)
            timed("crops", lambda cut: [prepare_roi(o.image, 64) for o in cut], objects)
            window = timed("quality_windows", quality_windows, made.signal, maps, small, kept)
            timed("quality_network", cutter.quality.run, window)
    finally:
        cutter.close()
    ms = {step: round(1000 * seconds / frames, 1) for step, seconds in spent.items()}
    model_steps = [s for s in ms if s not in ("decode", "threshold_cut", "network_whole_frame")]
    return {
        "cpu_ms_per_frame": ms,
        "model_cut_ms": round(sum(ms[s] for s in model_steps), 1),
        "model_cut_whole_frame_ms": round(
            sum(ms[s] for s in model_steps) - ms["network_on_windows"] + ms["network_whole_frame"],
            1,
        ),
        "threshold_cut_ms": ms["threshold_cut"],
        "window_share_of_frame": round(float(np.mean(shares)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--model", type=Path, default=Path("models/segmentation"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = profile(args.frames, args.model) | {
        "frames": args.frames,
        "command": f"python benchmarks/segmentation_profile.py --frames {args.frames}",
        "clock": "thread CPU time (time.thread_time), one ONNX Runtime and OpenCV thread",
        "machine": f"{platform.machine()} {platform.processor()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

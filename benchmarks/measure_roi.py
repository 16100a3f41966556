"""Loop-thread cost of ``measure_roi`` per ROI, old against new (issue 26).

The ROI frames of the pipeline benchmark's ``plankton-roi`` workload (``synthetic_stream``,
``full_share=0``), decoded once; each ROI is measured by the plain version kept in the tests
(``tests/ingest/measure_roi_plain.py``, the code before the cut) and by the live one,
interleaved ROI by ROI so that load on this shared VM hits both alike. Reports the median
per-ROI time of each round (us) and their spread, and checks the outputs agree.

    PYTHONPATH=src python benchmarks/measure_roi.py [--rois 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.ingest: the plain version

from tests.ingest.measure_roi_plain import plain_measure_roi

from seawatch.contracts.preprocess import to_gray8
from seawatch.ingest.segment import SegmentParams, measure_roi
from seawatch.models.synthetic_stream import synthetic_stream


def roi_frames(n: int, seed: int) -> list[tuple[np.ndarray, float | None]]:
    """``n`` decoded 8-bit ROI frames of the synthetic stream and their pixel sizes."""
    frames = []
    for message in synthetic_stream(n, seed=seed, full_share=0.0, start_ns=0):
        image = cv2.imdecode(np.frombuffer(message.value, np.uint8), cv2.IMREAD_UNCHANGED)
        frames.append((to_gray8(image), message.meta.pixel_size_um))
    return frames


def _timed(fn, gray, params, pixel) -> int:
    start = time.perf_counter_ns()
    fn(gray, params, pixel)
    return time.perf_counter_ns() - start


def _round(frames, params) -> tuple[float, float]:
    """Median time of one call of the plain and of the live version (us), ROI by ROI
    interleaved (which goes first alternates), so that load hits both alike."""
    old, new = [], []
    for i, (gray, pixel) in enumerate(frames):
        if i % 2:
            new.append(_timed(measure_roi, gray, params, pixel))
            old.append(_timed(plain_measure_roi, gray, params, pixel))
        else:
            old.append(_timed(plain_measure_roi, gray, params, pixel))
            new.append(_timed(measure_roi, gray, params, pixel))
    return statistics.median(old) / 1000.0, statistics.median(new) / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rois", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = SegmentParams()
    frames = roi_frames(args.rois, args.seed)
    differ, axes = 0, 0.0  # area or Feret not equal; the largest relative gap of the axes
    for gray, pixel in frames:
        ours, plain = (
            measure_roi(gray, params, pixel).morph,
            plain_measure_roi(gray, params, pixel).morph,
        )
        differ += (ours.area_px, ours.feret_px) != (plain.area_px, plain.feret_px)
        for a, b in ((ours.major_px, plain.major_px), (ours.minor_px, plain.minor_px)):
            axes = max(axes, abs(a - b) / max(abs(b), 1e-12))
    sides = [max(g.shape) for g, _ in frames]
    print(
        f"rois={len(frames)} median_side={statistics.median(sides)} "
        f"area_or_feret_differ={differ} axes_max_rel_diff={axes:.1e}"
    )
    old, new = [], []
    for _ in range(args.rounds):
        old_us, new_us = _round(frames, params)
        old.append(old_us)
        new.append(new_us)
    ratios = sorted(n / o for o, n in zip(old, new, strict=True))
    print(
        f"old_us median={statistics.median(old):.1f} range={min(old):.1f}-{max(old):.1f}\n"
        f"new_us median={statistics.median(new):.1f} range={min(new):.1f}-{max(new):.1f}\n"
        f"new/old per round median={statistics.median(ratios):.3f} "
        f"range={ratios[0]:.3f}-{ratios[-1]:.3f}"
    )


if __name__ == "__main__":
    main()

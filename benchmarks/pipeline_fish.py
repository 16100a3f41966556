"""The fish workload of the pipeline benchmark with tracklets off and on, and on whole frames
(issue 28: "fish throughput stays within 20 % of today's per sighting, or the cost is
stated and why").

The daemon (Kafka in -> decode -> prepare -> ONNX Runtime -> decide -> SQLite, durable,
offsets committed) on the fish frames of ``benchmarks/pipeline.py``'s fish workload (the
synthetic tank camera's JPEG side views, one sighting a frame), once per mode, the modes
interleaved in each repeat so that each ratio pairs runs taken side by side on this shared
machine (the median over repeats is reported):

``off``           ``tasks.fish.options.tracklets: false``: each sighting alone (before issue 28)
``on``            ``tracklets: true`` (the default)
``whole-frames``  ``whole_frames: true`` and tracklets on, on whole 640 x 480 tank frames
                  (:mod:`seawatch.models.fish.open_set_frames`, JPEG, 1-4 fish each): the
                  cost per sighting (a detected fish) of finding and cutting the fish

A fresh Tansu broker, a fresh database and gallery per run. Writes
``benchmarks/results/pipeline_fish.json``.

    python benchmarks/pipeline_fish.py [--frames 3000] [--whole-frames 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline import _publish, bench_pipeline
from pipeline_peers import cpus
from pipeline_tasks import FISH_DIR, task_messages
from seawatch.config import load_settings, resolve_model_dir
from seawatch.contracts.frames import FrameKind, FrameMeta
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.publish import FrameMessage

RESULTS = Path(__file__).parent / "results" / "pipeline_fish.json"
MODES = {  # mode: (tracklets, whole_frames)
    "off": (False, False),
    "on": (True, False),
    "whole-frames": (True, True),
}
FRAMES_SEED = 7100400  # a development seed of the open-set frames


def whole_frame_messages(n: int) -> tuple[list[FrameMessage], int]:
    """``n`` whole tank frames as JPEG messages, and how many fish the head will find in them."""
    from seawatch.models.fish.frame_detect import detect_fish
    from seawatch.models.fish.open_set_frames import open_set_frames
    from seawatch.models.fish.open_set_stream import open_set_stream

    frames = open_set_frames(open_set_stream(FRAMES_SEED, sightings=3 * n), FRAMES_SEED)[:n]
    messages, fish = [], 0
    start = time.time_ns() - n * 10**9
    for frame in frames:
        ok, data = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        fish += len(detect_fish(cv2.imdecode(data, cv2.IMREAD_COLOR)))
        meta = FrameMeta(
            frame.camera,
            "fish",
            start + frame.captured_at_ns % 10**12,
            FrameKind.FULL,
            "image/jpeg",
        )
        messages.append(FrameMessage(frame.camera.encode(), data.tobytes(), meta))
    return messages, fish


def _settings(args, broker: EmbeddedBroker, tmp: Path, name: str, mode: str):
    tracklets, whole = MODES[mode]
    return load_settings(
        kafka__bootstrap_servers=broker.bootstrap_servers,
        kafka__topics=[f"bench.{name}.frames.fish"],
        kafka__group_id=f"bench-{name}",
        kafka__max_poll_interval_ms=6000,
        kafka__session_timeout_ms=6000,
        kafka__heartbeat_interval_ms=500,
        inference__threads=args.threads,
        inference__max_batch=args.max_batch,
        tasks={
            "plankton": {"enabled": False},
            "otolith": {"enabled": False},
            "fish": {
                "model_dir": str(resolve_model_dir(FISH_DIR)),
                "options": {"tracklets": tracklets, "whole_frames": whole},
            },
        },
        storage__local__path=str(tmp / f"{name}.db"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="side-view frames a run")
    parser.add_argument("--whole-frames", type=int, default=600, help="whole frames a run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    crops = task_messages("fish", args.frames, seed=args.seed, full_share=0.0)
    whole, whole_fish = (
        whole_frame_messages(args.whole_frames) if "whole-frames" in args.modes else ([], 0)
    )
    load_before = os.getloadavg()
    seconds: dict[str, list[float]] = {m: [] for m in args.modes}
    stages: dict[str, list[dict]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for mode in args.modes:
                messages = whole if mode == "whole-frames" else crops
                with EmbeddedBroker() as broker:
                    settings = _settings(args, broker, Path(tmp), f"fish-{mode}{repeat}", mode)
                    _publish(settings, messages)
                    busy, stats = bench_pipeline(settings, len(messages))
                seconds[mode].append(busy)
                stages[mode].append(dict(stats.stage_seconds))
                sightings = whole_fish if mode == "whole-frames" else len(messages)
                print(
                    f"repeat {repeat + 1}: {mode}: {len(messages) / busy:.0f} frames/s, "
                    f"{busy / sightings * 1e3:.2f} ms per sighting",
                    file=sys.stderr,
                    flush=True,
                )
    blocks = {}
    for mode, runs in seconds.items():
        frames = len(whole if mode == "whole-frames" else crops)
        sightings = whole_fish if mode == "whole-frames" else frames
        middle = sorted(range(len(runs)), key=runs.__getitem__)[len(runs) // 2]
        blocks[mode] = {
            "frames": frames,
            "sightings": sightings,
            "seconds_all_repeats": [round(s, 2) for s in runs],
            "frames_per_s": round(frames / float(np.median(runs)), 1),
            "ms_per_sighting": round(float(np.median(runs)) / sightings * 1e3, 3),
            "ms_per_sighting_all_repeats": [round(s / sightings * 1e3, 3) for s in runs],
            "stage_ms_per_sighting": {  # the daemon's own stage clocks, the median run
                k: round(v / sightings * 1e3, 3) for k, v in stages[mode][middle].items()
            },
        }
    ratios = {}
    if "off" in seconds:
        for mode in seconds:
            if mode == "off":
                continue
            per = [
                (s / blocks[mode]["sightings"]) / (o / blocks["off"]["sightings"])
                for s, o in zip(seconds[mode], seconds["off"], strict=True)
            ]
            ratios[f"{mode}_over_off_per_sighting"] = round(float(np.median(per)), 3)
            ratios[f"{mode}_over_off_all_repeats"] = [round(r, 3) for r in per]
    result = {
        "benchmark": "pipeline_fish",
        "command": " ".join(["python", "benchmarks/pipeline_fish.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()} cpus={cpus()}",
        "load_average_1_5_15_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "threads": args.threads,
        "modes": blocks,
        **ratios,
        "note": args.note,
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""A million-object store for the review station's benchmark, written by the daemon's own
storage code (:class:`~seawatch.storage.local_store.LocalStore` and
:class:`~seawatch.storage.crop_store.CropStore`), cached in a folder so reruns skip it.

What it holds: five cruises one after another (sizes 30/25/20/15/10 %; the last is the
synthetic stream's ``demo-2026``, so the daemon of the benchmark adds to it), 12 stations
per cruise, three flow imagers sending ROI frames (one object each) and an in-situ camera
sending full frames (15-44 objects; a quarter of the objects), 12 labels with the skewed
frequencies of real samples (the model's classes, ``medusa`` and ``unknown``), confidences
spread per object (Beta-distributed, ``unknown`` under the threshold) with a top-3.

Every object has its own crop: a pool of crops drawn by the synthetic renderer
(:func:`~seawatch.models.plankton.synthetic.render_roi`, as the daemon's crops of the demo
stream) is turned, flipped and stamped with the object's number in four pixels, then
encoded by :func:`~seawatch.contracts.crops.encode_crop`: real PNGs of the daemon's sizes,
a distinct digest each. Two processes draw the batches (5,000 frames each); this one
stores them, crops first, then records, as the daemon does. A killed build resumes at the
last batch stored.

    python benchmarks/review_store.py [--objects 1000000] [--data /tmp/seawatch-review-bench]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from seawatch.contracts.crops import encode_crop
from seawatch.contracts.frames import FrameKind, FrameMeta, SourceRef
from seawatch.contracts.objects import Morphometrics
from seawatch.contracts.records import FrameRecord, ObjectRecord
from seawatch.models.plankton.synthetic import TAXA, TAXON_FREQUENCIES, render_roi
from seawatch.storage.crop_store import CropStore
from seawatch.storage.local_store import LocalStore

DEFAULT_DATA = Path("/tmp/seawatch-review-bench")
CRUISES = (("MSM-121", 0.30), ("PS-142", 0.25), ("SO-301", 0.20), ("AL-590", 0.15),
           ("demo-2026", 0.10))  # fmt: skip
STATIONS_PER_CRUISE = 12
ROI_INSTRUMENTS = (("flowcam-01", 2.0), ("ifcb-007", 0.35), ("zooscan-02", 10.6))
FULL_INSTRUMENT = ("uvp6-014", 73.0)
FULL_OBJECT_SHARE = 0.25  # share of the objects found in full frames
EXTRA_LABELS = {"unknown": 0.07, "medusa": 0.005}  # labels the renderer has no class for
LABELS = (*TAXA, *EXTRA_LABELS)
WEIGHTS = np.array(
    [TAXON_FREQUENCIES[t] * (1 - sum(EXTRA_LABELS.values())) for t in TAXA]
    + list(EXTRA_LABELS.values())
)
FRAMES_PER_BATCH = 5000
POOL_PER_TAXON = 150
T0 = 1_767_225_600_000_000_000  # 2026-01-01
FRAME_GAP_NS = 2_000_000_000


@dataclass(frozen=True)
class Plan:
    """Per frame: how many objects, which cruise and station (contiguous runs in time)."""

    counts: np.ndarray
    cruise: np.ndarray
    station: np.ndarray


def plan(objects: int, seed: int) -> Plan:
    """Frames until ``objects`` objects: ROI frames hold one, full frames 15-44."""
    rng = np.random.default_rng(seed)
    full_frame_share = FULL_OBJECT_SHARE / (29.5 * (1 - FULL_OBJECT_SHARE) + FULL_OBJECT_SHARE)
    full = rng.random(objects) < full_frame_share
    counts = np.where(full, rng.integers(15, 45, objects), 1)
    ends = np.cumsum(counts)
    n = int(np.searchsorted(ends, objects)) + 1
    counts = counts[:n].copy()
    counts[-1] -= int(ends[n - 1] - objects)
    position = (np.cumsum(counts) - counts) / objects  # where each frame starts, 0..1
    bounds = np.cumsum([share for _, share in CRUISES])
    cruise = np.minimum(np.searchsorted(bounds, position, side="right"), len(CRUISES) - 1)
    start = np.concatenate([[0.0], bounds[:-1]])[cruise]
    within = (position - start) / np.array([s for _, s in CRUISES])[cruise]
    station = np.minimum((within * STATIONS_PER_CRUISE).astype(int), STATIONS_PER_CRUISE - 1)
    return Plan(counts, cruise, station)


_POOL: dict[str, list[np.ndarray]] = {}


def _pool(seed: int) -> dict[str, list[np.ndarray]]:
    """The renderer's crops per taxon (drawn once per process, the same in each)."""
    if not _POOL:
        rng = np.random.default_rng([seed, 1])
        for taxon in TAXA:
            _POOL[taxon] = [
                render_roi(taxon, rng, dark_field=rng.random() < 0.1) for _ in range(POOL_PER_TAXON)
            ]
    return _POOL


def _crop(pool: dict, label: str, rng: np.random.Generator, number: int):
    taxon = label if label in pool else TAXA[int(rng.integers(len(TAXA)))]
    image = pool[taxon][int(rng.integers(POOL_PER_TAXON))]
    turn = int(rng.integers(8))
    image = np.rot90(image, turn % 4)
    image = (image[:, ::-1] if turn >= 4 else image).copy()
    image[0, :4] = np.frombuffer(number.to_bytes(4, "little"), np.uint8)  # distinct bytes
    return encode_crop(image)


def _objects(rng, pool, count: int, first: int, full: bool, pixel_um: float):
    """``count`` objects of one frame and their crops; ``first`` numbers the crops."""
    labels = rng.choice(len(LABELS), size=count, p=WEIGHTS / WEIGHTS.sum())
    out, crops = [], []
    for k, li in enumerate(labels):
        label = LABELS[li]
        if label == "unknown":  # under the model's threshold
            confidence = float(rng.uniform(0.2, 0.5))
            top = TAXA[int(rng.integers(len(TAXA)))]
        else:
            confidence = float(0.3 + 0.7 * rng.beta(5, 1.6))
            top = label
        others = [t for t in TAXA if t != top]
        second, third = (others[i] for i in rng.choice(len(others), 2, replace=False))
        rest = 1 - confidence
        p2 = rest * float(rng.uniform(0.5, 0.95))
        top_k = ((top, round(confidence, 4)), (second, round(p2, 4)), (third, round(rest - p2, 4)))
        crop = _crop(pool, label, rng, first + k)
        crops.append(crop)
        h, w = 40 + int(rng.integers(200)), 40 + int(rng.integers(200))
        x, y = (int(rng.integers(1200)), int(rng.integers(900))) if full else (0, 0)
        area = float(h * w * rng.uniform(0.2, 0.6))
        morph = Morphometrics(area, max(h, w) * 0.9, min(h, w) * 0.7, max(h, w) * 0.95, pixel_um)
        out.append(
            ObjectRecord(k, (x, y, w, h), label, round(confidence, 4), top_k, morph, crop[0])
        )
    return tuple(out), crops


def draw_batch(job: tuple[int, int, int, int, np.ndarray, np.ndarray, np.ndarray]):
    """Records and crops of frames ``start..start+len(counts)`` (runs in a pool process)."""
    seed, batch, start, first_object, counts, cruise, station = job
    rng = np.random.default_rng([seed, 2, batch])
    pool = _pool(seed)
    records, crops, number = [], [], first_object
    for k, n in enumerate(counts):
        index = start + k
        full = n > 1
        name, pixel_um = (
            FULL_INSTRUMENT if full else ROI_INSTRUMENTS[int(rng.integers(len(ROI_INSTRUMENTS)))]
        )
        cruise_name = CRUISES[int(cruise[k])][0]
        st = f"st-{int(station[k]) + 1:02d}"
        meta = FrameMeta(
            instrument=name,
            task="plankton",
            captured_at_ns=T0 + index * FRAME_GAP_NS,
            frame_kind=FrameKind.FULL if full else FrameKind.ROI,
            content_type="image/jpeg" if full else "image/png",
            cruise=cruise_name,
            station=st,
            sample_id=f"{cruise_name}-{st}",
            depth_m=round(float(rng.uniform(5, 200)), 1),
            volume_ml=1000.0 if full else 0.02,
            pixel_size_um=pixel_um,
        )
        objects, frame_crops = _objects(rng, pool, int(n), number, full, pixel_um)
        number += int(n)
        crops += frame_crops
        ref = SourceRef("bench.frames.plankton", 0, index)
        decode_ms, infer_ms = float(rng.uniform(1, 8)), float(rng.uniform(2, 20))
        records.append(
            FrameRecord(meta, ref, "plankton-cnn", "1", objects, decode_ms, infer_ms, 200.0)
        )
    return records, crops


def store_paths(data: Path) -> tuple[Path, Path]:
    """The store and its crops, named as ``storage.local`` names them by default."""
    return data / "seawatch.db", data / "seawatch-crops.db"


def build(data: Path, objects: int, seed: int = 25, processes: int = 2) -> dict:
    """Build (or finish building) the store under ``data``; its summary."""
    done_file, progress_file = data / "complete.json", data / "progress.json"
    if done_file.is_file():
        summary = json.loads(done_file.read_text())
        if summary["objects"] == objects and summary["seed"] == seed:
            return summary
        raise SystemExit(f"{data} holds a store of other parameters ({summary}); use --data")
    data.mkdir(parents=True, exist_ok=True)
    progress = json.loads(progress_file.read_text()) if progress_file.is_file() else {}
    if progress and (progress["objects"], progress["seed"]) != (objects, seed):
        raise SystemExit(f"{data} holds a partial build of other parameters; use --data")
    done = progress.get("batches", 0)
    spent = progress.get("seconds", 0.0)
    p = plan(objects, seed)
    firsts = np.cumsum(p.counts) - p.counts
    jobs = [
        (seed, b, s, int(firsts[s]), p.counts[s : s + FRAMES_PER_BATCH],
         p.cruise[s : s + FRAMES_PER_BATCH], p.station[s : s + FRAMES_PER_BATCH])
        for b, s in enumerate(range(0, len(p.counts), FRAMES_PER_BATCH))
    ]  # fmt: skip
    store_path, crops_path = store_paths(data)
    store, crops = LocalStore(store_path), CropStore(crops_path)
    started = time.monotonic()
    crops_mb = TextColumn("objects  {task.fields[mb]:,.0f} MB crops")
    columns = (TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(), crops_mb,
               TimeElapsedColumn())  # fmt: skip
    stored = int(firsts[done * FRAMES_PER_BATCH]) if done < len(jobs) else objects
    crop_bytes = progress.get("crop_bytes", 0)
    with (
        Progress(*columns) as bar,
        multiprocessing.get_context("fork").Pool(processes) as workers,
    ):
        task = bar.add_task("build", total=objects, completed=stored, mb=crop_bytes / 1e6)
        for b, (records, batch_crops) in enumerate(workers.imap(draw_batch, jobs[done:]), done):
            crops.put(batch_crops)  # crops before the records that name them (the daemon's order)
            store.add(records)
            store.flush()
            stored += sum(len(r.objects) for r in records)
            crop_bytes += sum(len(c.png) for c in batch_crops)
            elapsed = spent + time.monotonic() - started
            progress = {"objects": objects, "seed": seed, "batches": b + 1, "seconds": elapsed,
                        "crop_bytes": crop_bytes}  # fmt: skip
            progress_file.write_text(json.dumps(progress))
            bar.update(task, completed=stored, mb=crop_bytes / 1e6)
    store.close()
    crops.close()
    summary = {
        "objects": objects,
        "frames": len(p.counts),
        "seed": seed,
        "crop_bytes": crop_bytes,
        "store_bytes": store_path.stat().st_size,
        "crops_file_bytes": crops_path.stat().st_size,
        "build_seconds": round(spent + time.monotonic() - started, 1),
        "built": time.strftime("%Y-%m-%d %H:%M"),
    }
    done_file.write_text(json.dumps(summary, indent=2) + "\n")
    progress_file.unlink()
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()
    print(json.dumps(build(args.data, args.objects, args.seed), indent=2))


if __name__ == "__main__":
    main()

"""The Quix Streams peer: seawatch's per-frame work written as a Quix Streams application,
the way its documentation shows one (``Application`` -> ``app.dataframe(topic)`` ->
``sdf.apply(...)`` -> ``sdf.sink(BatchingSink)``), on confluent-kafka (librdkafka).

Same frames, same model file, same decode and prepare code as the daemon (seawatch's own
functions, so the work per frame is the same), ONNX Runtime called per message as a Quix
user would, a SQLite sink that inserts each checkpoint's batch in one transaction
(``synchronous=FULL``, as the daemon's store) before Quix commits the offsets.

For fish the peer does what a re-identification app must at the least: the nearest
individual of the model's gallery (``gallery.npz``, best cosine over each fish's views) is the
label when it reaches the card's ``match_similarity``, else ``new``. Until 2026-12-07 it
stored the network's first output and identified nothing, so its fish figure was the
embedding network's alone (the daemon also runs tracklets and the open-set rules, which
this peer does not).

Run by ``benchmarks/pipeline.py`` as a child process; prints one JSON line: frames, rows,
seconds from the first message processed to ``app.run`` returning (every row stored, the
offsets committed: what the daemon's figure measures).

    python benchmarks/peers/quix_app.py --broker HOST:PORT --topic T --task plankton \
        --model-dir models/plankton --db /tmp/quix.db --count 6000 [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBatch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ for pipeline_tasks

from pipeline_tasks import _plankton_inputs, _whole_frame
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.decode import DecodeLimits, decode_image
from seawatch.ingest.segment import SegmentParams


class SQLiteSink(BatchingSink):
    """Rows of one checkpoint in one durable transaction (Quix commits offsets after it)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS objects (frame TEXT, idx INT, label TEXT, p REAL)"
        )
        self.rows = 0

    def write(self, batch: SinkBatch) -> None:
        rows = [row for item in batch for row in item.value]
        with self.db:
            self.db.executemany("INSERT INTO objects VALUES (?,?,?,?)", rows)
        self.rows += len(rows)


def _nearest_fish(model_dir: Path, card):
    """embedding -> (individual or "new", best cosine), against the model's gallery."""
    gallery = np.load(model_dir / "gallery.npz")
    views = gallery["embeddings"] / np.linalg.norm(gallery["embeddings"], axis=1, keepdims=True)
    owner, ids = gallery["owner"], gallery["ids"]
    threshold = float(card.thresholds["match_similarity"])

    def nearest(embedding: np.ndarray) -> tuple[str, float]:
        sims = views @ (embedding / np.linalg.norm(embedding))
        k = int(sims.argmax())
        return (str(ids[owner[k]]) if sims[k] >= threshold else "new"), float(sims[k])

    return nearest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="quix-peer")
    parser.add_argument("--task", choices=["plankton", "otolith", "fish"], required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0, help="ONNX threads (0: its default)")
    args = parser.parse_args()

    card = load_card(args.model_dir)
    model = OnnxRuntimeBackend(args.model_dir / ONNX_FILE, threads=args.threads)
    whole = _whole_frame(args.task, card)
    nearest = _nearest_fish(args.model_dir, card) if args.task == "fish" else None
    params, limits = SegmentParams(), DecodeLimits()
    first: list[float] = []

    def classify(value: bytes, key, timestamp: int, headers) -> list[tuple]:
        """One frame -> its rows (frame id, object index, label, score)."""
        if not first:
            first.append(time.perf_counter())
        meta = {k: bytes(v) for k, v in headers or ()}
        image = decode_image(value, meta["content-type"].decode(), limits)
        if whole is not None:
            inputs = [(0, whole(image)[None])]
        else:
            inputs = _plankton_inputs(image, meta, params, card.input.size)
        frame = meta.get("frame-id", b"").decode() or f"{timestamp}"
        rows = []
        for index, tensor in inputs:
            out = model.run(tensor)
            if nearest is not None:
                rows.append((frame, index, *nearest(out[0].ravel())))
                continue
            k = int(out[0].argmax()) if card.class_names else 0
            label = card.class_names[k] if card.class_names else args.task
            rows.append((frame, index, label, float(out[0].ravel()[k])))
        return rows

    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        loglevel="WARNING",
        # Tansu answers a group join after the session timeout (librdkafka's default 45 s);
        # short timeouts make the join take seconds. Startup only: not in the timed part.
        consumer_extra_config={"session.timeout.ms": 6000, "max.poll.interval.ms": 60000},
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
    sdf = app.dataframe(topic)
    sdf = sdf.apply(classify, metadata=True)
    sink = SQLiteSink(args.db)
    sdf.sink(sink)
    app.run(count=args.count, collect=False)
    seconds = time.perf_counter() - first[0]
    print(json.dumps({"frames": args.count, "rows": sink.rows, "seconds": seconds}))


if __name__ == "__main__":
    main()

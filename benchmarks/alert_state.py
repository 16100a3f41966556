"""Alert state on Kafka (issue 23): what keeping it costs.

1. **Checkpoint.** :class:`~seawatch.alerts.partitioned.PartitionedAlerts` with the default
   rules over plankton records of four instruments on four partitions (records, not images:
   the rules only see records; 12 objects a frame, taxa drawn by the synthetic frequencies
   with a tenth unknown, one instrument sending full frames), ``--hours`` of capture time at
   ``--fps`` frames per second per instrument, in batches of 64, each followed by its
   checkpoint to a state topic on the real Tansu broker (which does not compact: every version
   stays). Per batch: evaluate and checkpoint milliseconds, bytes of the snapshots written.
2. **Restore.** A second worker takes the four partitions: the time to find their newest
   snapshots among all those written, and to read the alerts topic since.
3. **Pipeline.** The daemon on ``--frames`` synthetic frames with ``alerts.state_topic`` set
   and null, alternated ``--repeats`` times: frames/s over the whole run (start-up excluded).

Writes ``benchmarks/results/alert_state.json``.

    python benchmarks/alert_state.py [--hours 3] [--fps 2] [--frames 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter

from seawatch.alert_settings import DEFAULT_RULES, Rule
from seawatch.alerts.engine import AlertEngine
from seawatch.alerts.outputs import AlertOutputs
from seawatch.alerts.partitioned import PartitionedAlerts
from seawatch.config import KafkaSettings, load_settings, resolve_model_dir
from seawatch.contracts.frames import FrameKind, FrameMeta, SourceRef
from seawatch.contracts.objects import Morphometrics
from seawatch.contracts.partitions import Partition
from seawatch.contracts.quality import FrameQuality
from seawatch.contracts.records import FrameRecord, ObjectRecord
from seawatch.daemon import build_daemon
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.keyed_topics import KeyedTopics
from seawatch.ingest.publish import publish_messages
from seawatch.models.plankton.synthetic import TAXON_FREQUENCIES
from seawatch.models.synthetic_stream import synthetic_stream

RESULTS = Path(__file__).parent / "results"
INSTRUMENTS = ("flowcam-01", "ifcb-007", "zooscan-02", "uvp6-014")
BATCH = 64
NS = 10**9


def _records(hours: float, fps: float, seed: int = 0) -> list[FrameRecord]:
    """Every instrument's frames over ``hours`` of capture time, in capture order."""
    rng = np.random.default_rng(seed)
    taxa = list(TAXON_FREQUENCIES)
    p = np.array([TAXON_FREQUENCIES[t] for t in taxa])
    morph = Morphometrics(100.0, 12.0, 10.0, 13.0, 10.0)
    start = time.time_ns() - int(hours * 3600 * NS)
    records, offsets = [], dict.fromkeys(INSTRUMENTS, 0)
    for i in range(int(hours * 3600 * fps)):
        for k, instrument in enumerate(INSTRUMENTS):
            drawn = [str(t) for t in rng.choice(taxa, size=12, p=p)]
            names = ["unknown" if rng.random() < 0.1 else t for t in drawn]
            objects = tuple(
                ObjectRecord(j, (0, 0, 10, 10), t, 0.9, ((t, 0.9),), morph)
                for j, t in enumerate(names)
            )
            full = instrument.startswith("uvp")
            meta = FrameMeta(
                instrument=instrument,
                task="plankton",
                captured_at_ns=start + int(i * NS / fps),
                frame_kind=FrameKind.FULL if full else FrameKind.ROI,
                content_type="image/png",
                cruise="bench",
                volume_ml=1000.0 if full else 0.02,
            )
            records.append(
                FrameRecord(
                    meta=meta,
                    ref=SourceRef("bench.frames.plankton", k, offsets[instrument]),
                    model="plankton",
                    model_version="bench",
                    objects=objects,
                    decode_ms=0.0,
                    infer_ms=0.0,
                    latency_ms=0.0,
                    quality=FrameQuality(50.0, 0.0) if full else None,
                )
            )
            offsets[instrument] += 1
    return records


def _alerts(kafka: KafkaSettings, publisher: Publisher) -> tuple[PartitionedAlerts, AlertOutputs]:
    rules = [TypeAdapter(Rule).validate_python(r) for r in DEFAULT_RULES]
    outputs = AlertOutputs(publisher=publisher, topic="bench.alerts")
    alerts = PartitionedAlerts(
        AlertEngine(rules),
        group_id="bench",
        log_=KeyedTopics(kafka, publisher),
        state_topic="bench.alerts.state",
        alerts_topic="bench.alerts",
        sent_positions=outputs.sent_positions,
    )
    alerts.partitions_assigned([Partition("bench.frames.plankton", k) for k in range(4)])
    return alerts, outputs


def checkpoint_and_restore(broker: EmbeddedBroker, hours: float, fps: float) -> dict:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    ensure_topics(kafka, ["bench.alerts.state"], 1, {"cleanup.policy": "compact"})
    ensure_topics(kafka, ["bench.alerts"], 4)
    publisher = Publisher(kafka)
    alerts, outputs = _alerts(kafka, publisher)
    records = _records(hours, fps)
    written: list[int] = []
    put = alerts.log.put  # type: ignore[union-attr]

    def counting_put(topic: str, items: dict[str, bytes]) -> None:
        written.append(sum(len(v) for v in items.values()))
        put(topic, items)

    alerts.log.put = counting_put  # type: ignore[union-attr,method-assign]
    evaluate_ms, checkpoint_ms, sent = [], [], 0
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        t0 = time.perf_counter()
        fired = alerts.evaluate(batch)
        t1 = time.perf_counter()
        outputs.emit(fired)
        outputs.flush_kafka()
        t2 = time.perf_counter()
        assert alerts.checkpoint()
        t3 = time.perf_counter()
        evaluate_ms.append((t1 - t0) * 1000)
        checkpoint_ms.append((t3 - t2) * 1000)
        sent += len(fired)
    uvp_state = json.dumps(alerts.engine.export("uvp6-014"), separators=(",", ":"))
    second, _ = _alerts(kafka, publisher)
    t0 = time.perf_counter()
    second.owned  # noqa: B018 - applies the assignment: reads the snapshots and alerts back
    restore_s = time.perf_counter() - t0
    assert second.engine.instruments() == set(INSTRUMENTS)
    publisher.close()
    frames_bytes = _frame_bytes()
    return {
        "capture_hours": hours,
        "frames_per_s_per_instrument": fps,
        "records": len(records),
        "batches": len(evaluate_ms),
        "alerts": sent,
        "evaluate_ms_p50": round(statistics.median(evaluate_ms), 2),
        "checkpoint_ms_p50": round(statistics.median(checkpoint_ms), 2),
        "checkpoint_ms_p99": round(float(np.percentile(checkpoint_ms, 99)), 2),
        "snapshot_bytes_per_batch_p50": int(statistics.median(written)),
        "snapshot_bytes_per_batch_max": max(written),
        "state_topic_bytes": sum(written),
        "one_instrument_state_bytes": len(uvp_state),
        "synthetic_frame_bytes_mean": frames_bytes,
        "snapshot_share_of_batch_bytes": round(
            statistics.median(written) / (BATCH * frames_bytes), 4
        ),
        "restore_s_4_partitions": round(restore_s, 3),
        "versions_in_state_topic": len(written),
    }


def _frame_bytes() -> float:
    """The mean message size of the synthetic plankton stream (what a batch carries)."""
    messages = list(synthetic_stream(400, seed=1, start_ns=time.time_ns()))
    return statistics.fmean(len(m.value) for m in messages)


def _timed(target, names: tuple[str, ...]) -> list[float]:
    """Wrap ``target``'s methods ``names`` to add their wall seconds to the returned cell."""
    spent = [0.0]
    for name in names:
        method = getattr(target, name)

        def timed(*args, _method=method, **kwargs):
            started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        setattr(target, name, timed)
    return spent


def pipeline(broker: EmbeddedBroker, frames: int, repeats: int, tmp: Path) -> dict:
    topic = "bench.pipeline.frames.plankton"
    ensure_topics(broker.bootstrap_servers, [topic, "bench.pipeline.dlq"], 4)
    publisher = Publisher(broker.bootstrap_servers)
    publish_messages(publisher, topic, synthetic_stream(frames, seed=3, start_ns=time.time_ns()))
    publisher.close()
    rates: dict[str, list[float]] = {"state": [], "memory": []}
    shares: dict[str, list[float]] = {"state": [], "memory": []}  # of the run in the alerts
    for run in range(repeats * 2):
        mode = ("state", "memory")[run % 2]
        settings = load_settings(
            kafka__bootstrap_servers=broker.bootstrap_servers,
            kafka__topics=[topic],
            kafka__dlq_topic="bench.pipeline.dlq",
            kafka__group_id=f"bench-{run}",
            kafka__max_poll_interval_ms=6000,
            tasks__plankton__model_dir=str(resolve_model_dir(Path("models/plankton"))),
            storage__local__path=str(tmp / f"run{run}.db"),
            alerts__topic="bench.pipeline.alerts",
            alerts__state_topic="bench.pipeline.state" if mode == "state" else None,
        )
        daemon = build_daemon(settings)
        spent = _timed(daemon.pipeline.alerts, ("evaluate", "checkpoint"))
        try:
            first: list[float] = []

            def done(stats, first=first) -> bool:
                if stats.processed and not first:
                    first.append(time.perf_counter())
                return stats.processed >= frames

            started = time.perf_counter()
            daemon.run(done)
            ended = time.perf_counter()
            rates[mode].append(round(frames / (ended - first[0]), 1))
            shares[mode].append(round(spent[0] / (ended - started), 4))
        finally:
            daemon.close()
    return {
        "frames": frames,
        "frames_per_s": rates,
        "share_of_run_in_alert_evaluate_and_checkpoint": shares,
        "state_over_memory": round(
            statistics.median(rates["state"]) / statistics.median(rates["memory"]), 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "host": f"{platform.node()} ({platform.processor() or platform.machine()})",
            "command": "python benchmarks/alert_state.py "
            f"--hours {args.hours:g} --fps {args.fps:g} --frames {args.frames} "
            f"--repeats {args.repeats}",
            "checkpoint": checkpoint_and_restore(broker, args.hours, args.fps),
            "pipeline": pipeline(broker, args.frames, args.repeats, Path(tmp)),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "alert_state.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

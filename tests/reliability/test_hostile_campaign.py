"""The hostile input campaign: over a thousand bad messages of ~30 kinds mixed with valid
frames, sent to ``seawatch run`` as an operator starts it (a child process, settings in
``SEAWATCH_*`` variables). Every bad message must reach the DLQ once with a reason naming
its field, every valid frame must be stored once, and the daemon's memory must stay flat.

``pytest -s`` prints the summary; ``SEAWATCH_RECORD=1`` also writes it to
``benchmarks/results/hostile_campaign.json``.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from seawatch.contracts.frames import encode_headers
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.models.synthetic_stream import synthetic_stream
from tests.daemon_process import DaemonProcess, daemon_env, memory_kib, stored_count
from tests.integration.helpers import read_topic, settings_for, stored_uids
from tests.reliability.hostile import CAMPAIGN_HEADER, INSTRUMENT, hostile_messages

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RESULT = REPO / "benchmarks" / "results" / "hostile_campaign.json"
BAD, VALID = 1050, 300  # bad messages; valid synthetic frames (plus BAD // 10 odd valid ones)
MAX_BYTES = 256 * 1024
# Peak resident memory allowed. Measured on the 2-core CI machine until 2026-12-05: ~225 MB
# once the stream flows (Python, OpenCV, ONNX Runtime, the plankton and fish models), peak
# ~270-310 MB. Since the plankton model's out-of-distribution release (cca2b42) the daemon
# sits at ~490 MB with peaks of 510-520 MB here and 618 MB once in CI; the cause is not found
# yet (not the OOD scoring: served without it, 492 MB; an open item of issue 24). The largest
# legitimate transient is one frame inside the limits (the 6000 x 6000 RGB bomb may touch
# 108 MB before its stream runs out). 800 MB leaves room for both and is 1/12 of what one
# refused 100000 x 100000 declaration would take (10 GB at 8-bit gray, 30 GB in RGB).
PEAK_RSS_MB = 800
GROWTH = 0.15  # RSS at the end vs. the highest RSS sampled in the first half of the stream


def _read_dlq(bootstrap: str, topic: str, expected: int, timeout_s: float) -> list:
    """Every record of ``topic``: until ``expected`` have come, then one more quiet second
    so a duplicate would show."""
    return read_topic(bootstrap, topic, expected, timeout_s=timeout_s, settle_s=1.0)


def _warm_up_first(messages: list[tuple], rng: random.Random) -> list[tuple]:
    """Shuffled, but one message of every kind and a few full frames first: the first
    quarter then holds every one-time allocation (the largest inference batch, a frame
    near the limits), so RSS after it is the level the rest must keep."""
    rng.shuffle(messages)
    taken: Counter = Counter()
    front, rest = [], []
    for message in messages:
        kind = message[0]
        if taken[kind] < (6 if kind == "valid-full" else 1):
            taken[kind] += 1
            front.append(message)
        else:
            rest.append(message)
    return front + rest


def _publish(settings, messages: list[tuple]) -> None:
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        for _, key, value, headers in messages:
            publisher.send(kafka.topics[0], value, key, headers)
        publisher.flush()
    finally:
        publisher.close()


def _env(settings, claim_root: Path) -> dict[str, str]:
    return daemon_env(
        settings,
        SEAWATCH_INGEST__CLAIM_CHECK_ROOTS=json.dumps([str(claim_root)]),
        SEAWATCH_INGEST__MAX_BYTES=str(MAX_BYTES),
    )


def _early_rss(samples: list[tuple[int, int]], total: int) -> int:
    """The highest RSS sampled while the first half of the valid frames was stored (~700
    messages, every kind among the first 50): the level once every one-time allocation has
    happened (model arenas, the largest inference batch, the producer's buffer pool, the
    consumer's fetch buffers), which the end of the stream must not outgrow."""
    return max((rss for stored, rss in samples if stored < total // 2), default=0)


def _verdicts(dead: list, hostile: list) -> tuple[dict, Counter, list[str]]:
    """Per kind: sent, in the DLQ once with the right [stage:field]; and what went wrong."""
    by_id = {m.campaign_id: m for m in hostile}
    seen = Counter()
    table: dict[str, Counter] = defaultdict(Counter)
    problems: list[str] = []
    for message in hostile:
        table[message.kind]["sent"] += 1
    for record in dead:
        headers = dict(record.headers)
        campaign_id = headers.get(CAMPAIGN_HEADER, b"").decode()
        seen[campaign_id] += 1
        message = by_id.get(campaign_id)
        if message is None or not message.bad:
            kind = message.kind if message else campaign_id or "(no campaign id)"
            problems.append(f"{kind}: a valid frame in the DLQ: {headers.get('error')!r}")
            continue
        row = table[message.kind]
        row["dlq"] += 1
        stage = headers.get("error-stage", b"").decode()
        error = headers.get("error", b"").decode("utf-8", errors="replace")
        if stage == message.stage and error.startswith(f"[{message.stage}:{message.field}]"):
            row["right"] += 1
        else:
            row["wrong"] += 1
            want = f"[{message.stage}:{message.field}]"
            problems.append(f"{message.campaign_id}: want {want}, got {stage} {error[:160]}")
    for message in hostile:
        if message.bad and seen[message.campaign_id] != 1:
            times = seen[message.campaign_id]
            problems.append(f"{message.campaign_id}: in the DLQ {times} times, not once")
    return table, seen, problems


def _table(table: dict[str, Counter]) -> str:
    lines = [f"{'kind':34} {'sent':>5} {'dlq':>5} {'right':>6} {'wrong':>6}"]
    for kind in sorted(table):
        row = table[kind]
        lines.append(f"{kind:34} {row['sent']:5} {row['dlq']:5} {row['right']:6} {row['wrong']:6}")
    return "\n".join(lines)


def test_hostile_campaign(tmp_path, broker, unique, model_dir):
    settings = settings_for(tmp_path, broker, unique, model_dir)
    claim_root = tmp_path / "claims"
    hostile = hostile_messages(
        BAD, seed=7, claim_root=claim_root, outside=tmp_path / "outside", max_bytes=MAX_BYTES
    )
    bad = [m for m in hostile if m.bad]
    odd = [m for m in hostile if not m.bad]
    start_ns = time.time_ns() - VALID * 10**6
    frames = list(synthetic_stream(VALID, seed=7, start_ns=start_ns))
    outgoing = [(m.kind, m.key, m.value, m.headers) for m in hostile]
    outgoing += [
        (
            f"valid-{f.meta.frame_kind.value}",
            f.key,
            f.value,
            [*encode_headers(f.meta), (CAMPAIGN_HEADER, f"valid#{i}".encode())],
        )
        for i, f in enumerate(frames)
    ]
    outgoing = _warm_up_first(outgoing, random.Random(7))
    expected_uids = {f.meta.uid for f in frames} | {m.uid for m in odd}
    assert len(bad) >= 1000 and len(expected_uids) == VALID + len(odd)

    started = time.monotonic()
    _publish(settings, outgoing)
    published_s = time.monotonic() - started
    store = settings.storage.local.path
    samples: list[tuple[int, int]] = []  # (frames stored, VmRSS KiB) every 100 ms
    with DaemonProcess(_env(settings, claim_root), tmp_path / "daemon.log", cwd=REPO) as daemon:
        deadline = time.monotonic() + 75
        while (stored := stored_count(store)) < len(expected_uids) and time.monotonic() < deadline:
            assert daemon.alive(), daemon.log()[-3000:]
            samples.append((stored, memory_kib(daemon.pid)["VmRSS"]))
            time.sleep(0.1)
        kafka = settings.kafka
        dead = _read_dlq(kafka.bootstrap_servers, kafka.dlq_topic, len(bad), timeout_s=30)
        wall_s = time.monotonic() - started
        assert daemon.alive(), daemon.log()[-3000:]
        memory = memory_kib(daemon.pid)
        code, stop_s = daemon.terminate(timeout_s=10)
    log_text = daemon.log()
    uids = stored_uids(store)
    table, _, problems = _verdicts(dead, hostile)
    duplicates = [uid for uid, count in Counter(uids).items() if count > 1]
    total = len(expected_uids)
    baseline_kib = _early_rss(samples, total) or memory["VmRSS"]
    summary = {
        "bad_messages": len(bad),
        "bad_kinds": len({m.kind for m in bad}),
        "valid_synthetic": VALID,
        "valid_odd": len(odd),
        "valid_odd_kinds": len({m.kind for m in odd}),
        "dlq_records": len(dead),
        "dlq_right_field": sum(row["right"] for row in table.values()),
        "valid_stored": len(set(uids) & expected_uids),
        "valid_lost": len(expected_uids - set(uids)),
        "stored_not_valid": len(set(uids) - expected_uids),
        "duplicates_stored": len(duplicates),
        "rss_first_half_max_mb": round(baseline_kib / 1024, 1),
        "rss_end_mb": round(memory["VmRSS"] / 1024, 1),
        "rss_growth_pct": round(100 * (memory["VmRSS"] / baseline_kib - 1), 1),
        "peak_rss_mb": round(memory["VmHWM"] / 1024, 1),
        "rss_mb_by_tenth_stored": [
            next((round(rss / 1024) for n, rss in samples if n >= k * total // 10), None)
            for k in range(1, 10)
        ],
        "publish_s": round(published_s, 1),
        "wall_s": round(wall_s, 1),
        "sigterm_exit_s": round(stop_s, 2),
        "messages_per_kind": {kind: row["sent"] for kind, row in sorted(table.items())}
        | dict(
            sorted(Counter(f"valid-synthetic-{f.meta.frame_kind.value}" for f in frames).items())
        ),
        "max_bytes": MAX_BYTES,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    print("\n" + _table(table))
    print(json.dumps({k: v for k, v in summary.items() if k != "messages_per_kind"}, indent=1))
    if os.environ.get("SEAWATCH_RECORD") == "1":
        RESULT.write_text(json.dumps(summary, indent=2) + "\n")

    assert not problems, _table(table) + "\n" + "\n".join(problems[:40])
    assert len(dead) == len(bad)
    assert not duplicates and set(uids) == expected_uids, summary
    assert not any(uid.startswith(f"{INSTRUMENT}@") for uid in uids)
    assert "Traceback" not in log_text, log_text[-3000:]
    assert code == 0 and stop_s < 10, log_text[-3000:]
    assert memory["VmHWM"] < PEAK_RSS_MB * 1024, summary
    assert memory["VmRSS"] <= baseline_kib * (1 + GROWTH), summary


class _RawHeaderKey(str):
    """A header key that kafka-python writes as non-UTF-8 bytes, as any other client may."""

    def encode(self, *args, **kwargs) -> bytes:
        return b"\xff\xfe-" + super().encode()


def test_a_non_utf8_header_key_neither_stops_nor_loses_the_stream(
    tmp_path, broker, unique, model_dir
):
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=1)
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], 1)
    frames = list(synthetic_stream(20, seed=3, start_ns=time.time_ns() - 10**9))
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        for i, frame in enumerate(frames):
            headers = encode_headers(frame.meta)
            if i == 10:  # alone in its producer batch: only it is unreadable
                publisher.flush()
                headers = [*headers, (_RawHeaderKey("x-note"), b"1")]
            publisher.send(kafka.topics[0], frame.value, frame.key, headers)
            if i == 10:
                publisher.flush()
        publisher.flush()
    finally:
        publisher.close()
    store = settings.storage.local.path
    with DaemonProcess(_env(settings, tmp_path), tmp_path / "daemon.log", cwd=REPO) as daemon:
        daemon.wait_for(lambda: stored_count(store) >= 19, 30, "every readable frame")
        assert len(_read_dlq(kafka.bootstrap_servers, kafka.dlq_topic, 1, timeout_s=10)) == 1
        assert daemon.alive(), daemon.log()[-1500:]


def test_a_bad_message_near_the_kafka_size_limit_still_reaches_the_dlq(
    tmp_path, broker, unique, model_dir
):
    limit = 512 * 1024
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=1)
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], 1)
    frames = list(synthetic_stream(12, seed=5, start_ns=time.time_ns() - 10**9))
    publisher = Publisher(kafka.bootstrap_servers, max_message_bytes=limit)
    try:
        for i, frame in enumerate(frames):
            value = frame.value
            if i == 6:  # over ingest.max_bytes, and fills the Kafka message to the brim
                value = b"\x89PNG\r\n\x1a\n" + random.Random(5).randbytes(limit - 400)
            publisher.send(kafka.topics[0], value, frame.key, encode_headers(frame.meta))
        publisher.flush()
    finally:
        publisher.close()
    env = _env(settings, tmp_path) | {"SEAWATCH_KAFKA__MAX_MESSAGE_BYTES": str(limit)}
    with DaemonProcess(env, tmp_path / "daemon.log", cwd=REPO) as daemon:
        dead = _read_dlq(kafka.bootstrap_servers, kafka.dlq_topic, 1, timeout_s=12)
        assert daemon.alive(), daemon.log()[-1500:]
        assert len(dead) == 1, daemon.log()[-1500:]
        headers = dict(dead[0].headers)
        assert dead[0].value == b"" and b"message limit" in headers["value-omitted"]
        assert headers["error-stage"] == b"decode"
        assert stored_count(settings.storage.local.path) == 11

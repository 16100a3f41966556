"""The fish stream of the scale-out test and how its outcome is scored.

A tank watched by several cameras (keyed by camera, so over the frame topic's partitions):
known fish (in the committed model's gallery) and strangers (in no gallery, never trained
on), each sighted many times in a random order. Every frame's true fish is kept, so the ids
the daemon gave can be scored against the truth.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from seawatch.contracts.frames import FrameKind, FrameMeta
from seawatch.contracts.records import UNKNOWN
from seawatch.ingest.publish import FrameMessage
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.open_set_stream import open_set_stream
from seawatch.models.fish.synthetic import make_individual, render_fish

KNOWN = tuple(range(40))  # zf-0-0000 .. zf-0-0039: in the committed model's gallery
STRANGERS = tuple(range(250, 270))  # in no gallery, never trained on
CAMERAS = tuple(f"tank-cam-{c:02d}" for c in range(1, 7))  # over all 3 partitions (2 1 2 0 2 2)
BATCH = 64  # kafka.max_poll_records: the daemon's batch


def fish_stream(n: int, *, seed: int, start_ns: int) -> list[FrameMessage]:
    """``n`` side views, each individual sighted about as often, 1 ms apart, by a random
    camera; ``truth`` is the fish's name."""
    rng = np.random.default_rng(seed)
    fish = [make_individual(i, 0) for i in (*KNOWN, *STRANGERS)]
    order = rng.permutation(np.resize(np.arange(len(fish)), n))
    messages = []
    for k, index in enumerate(order):
        camera = CAMERAS[int(rng.integers(len(CAMERAS)))]
        meta = FrameMeta(
            instrument=camera,
            task="fish",
            captured_at_ns=start_ns + k * 1_000_000,
            frame_kind=FrameKind.ROI,
            content_type="image/jpeg",
            cruise="tank",
            station="tank-1",
        )
        image = render_fish(fish[index], rng)
        _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        messages.append(FrameMessage(camera.encode(), jpeg.tobytes(), meta, truth=fish[index].name))
    return messages


def camera_passes(
    n: int, *, seed: int, start_ns: int, cameras: int = len(CAMERAS)
) -> tuple[list[FrameMessage], frozenset[str]]:
    """``n`` sightings of 40 gallery fish and 20 strangers seen in passes in front of
    ``cameras`` cameras (:func:`~seawatch.models.fish.open_set_stream.open_set_stream`), as
    one ROI frame per sighting keyed by camera, and the strangers' names. The stream's clock
    starts at ``start_ns``; the fish of one frame are 1 ns apart (a frame's uid is camera and
    time, so each crop needs its own)."""
    stream = open_set_stream(seed, sightings=n, known=40, new=20, cameras=cameras)
    origin = min(s.captured_at_ns for s in stream)
    in_frame: Counter = Counter()
    messages = []
    for s in stream:
        k = in_frame[s.camera, s.captured_at_ns]
        in_frame[s.camera, s.captured_at_ns] += 1
        meta = FrameMeta(
            instrument=s.camera,
            task="fish",
            captured_at_ns=start_ns + s.captured_at_ns - origin + k,
            frame_kind=FrameKind.ROI,
            content_type="image/jpeg",
            cruise="tank",
            station="tank-1",
        )
        _, jpeg = cv2.imencode(".jpg", s.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        messages.append(FrameMessage(s.camera.encode(), jpeg.tobytes(), meta, truth=s.truth))
    return messages, frozenset(s.truth for s in stream if not s.known)


def consumer_order(messages: list[FrameMessage], batch: int, rng) -> list[list[int]]:
    """Indices of ``messages`` in batches as one consumer of the 3-partition topic may get
    them: ``batch`` at a time from one partition (each in its own order), partitions taken
    at random."""
    from kafka.partitioner.default import murmur2

    queues: list[list[int]] = [[], [], []]
    for k, m in enumerate(messages):
        queues[(murmur2(m.key) & 0x7FFFFFFF) % 3].append(k)
    batches = []
    while any(queues):
        q = queues[int(rng.choice([i for i, q in enumerate(queues) if q]))]
        batches.append(q[:batch])
        del q[:batch]
    return batches


@dataclass(frozen=True)
class Sighting:
    uid: str
    individual: str
    new_individual: bool
    stored_at_ns: int = 0  # when its row was written (0: a single process's answer)


def single_process(
    fish_model_dir, messages: list[FrameMessage], orders: int = 3, *, tracklets: bool = False
) -> list[tuple[list[Sighting], dict[str, str]]]:
    """The same stream decided by one process (the head's own decide, from the model's
    gallery), in ``orders`` orders a single consumer of the topic may see: batches of 64 from
    the partitions, each partition in order, interleaved at random. The answers move with the
    order (which provisional ids exist when a fish is seen), so the workers are compared with
    the worst of these. Each run comes with its merges (loser -> survivor). With
    ``tracklets`` the head links each camera's sightings as the daemon does (camera, capture
    time, the view's quality; a crop sent alone has no box)."""
    from seawatch.contracts.card import ONNX_FILE, load_card
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.gallery_records import SightingSource
    from seawatch.models.fish.head import FishIdentifier
    from seawatch.models.fish.quality import view_quality
    from seawatch.models.fish.tracklets import Place

    card = load_card(fish_model_dir)
    with OnnxRuntimeBackend(fish_model_dir / ONNX_FILE, threads=1) as backend:
        embed = FishIdentifier(backend, card, Gallery(), max_batch=BATCH)
        inputs8 = [embed.input8(_decoded(m.value)) for m in messages]
        tensor = np.stack(inputs8).transpose(0, 3, 1, 2).astype(np.float32)
        embeddings = embed.embed(tensor)
    places = [
        Place(m.meta.instrument, m.meta.captured_at_ns, None, view_quality(x))
        for m, x in zip(messages, inputs8, strict=True)
    ]
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(orders):
        gallery = Gallery.load(fish_model_dir / card.files["gallery"])
        identifier = FishIdentifier(
            None,  # type: ignore[arg-type]
            card,
            gallery,
            max_batch=BATCH,
            tracklets=tracklets,
        )
        sightings = []
        for batch in consumer_order(messages, BATCH, rng):
            sources = [
                SightingSource(messages[k].meta.uid, messages[k].meta.captured_at_ns) for k in batch
            ]
            decided = identifier.decide(
                embeddings[batch], sources=sources, places=[places[k] for k in batch]
            )
            sightings += [
                Sighting(src.uid, s.individual, s.new_individual)
                for src, s in zip(sources, decided, strict=True)
            ]
        merged = identifier.decider.merges if identifier.decider is not None else []
        runs.append((sightings, {m.loser: m.survivor for m in merged}))
    return runs


def _decoded(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def stored_sightings(stores: Iterable) -> list[Sighting]:
    """Every fish row of every store: raw writes (a frame replayed by a second worker after a
    rebalance is counted twice, once per store it landed in)."""
    rows = []
    for path in stores:
        with sqlite3.connect(path) as db:
            rows += [
                Sighting(uid, individual, bool(new), stored_at)
                for uid, individual, new, stored_at in db.execute(
                    "SELECT fish.frame_uid, fish.individual, fish.new_individual, "
                    "frames.stored_at_ns FROM fish JOIN frames ON frames.uid = fish.frame_uid"
                )
            ]
    return rows


def read_gallery_topic(
    bootstrap: str, topic: str, timeout_s: float = 30, first_at: dict | None = None
) -> list[tuple]:
    """Every record of the gallery topic, raw, in order: (key, value dict or None);
    ``first_at`` (if given) gets each key's first (partition, offset)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[tuple] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "the gallery topic did not read to its end"
            for batch in consumer.poll(timeout_ms=200).values():
                records += [
                    (r.key.decode(), None if r.value is None else json.loads(r.value))
                    for r in batch
                ]
                if first_at is not None:
                    for r in batch:
                        first_at.setdefault(r.key.decode(), (r.partition, r.offset))
        return records
    finally:
        consumer.close()


def resolve(merges: dict[str, str], individual: str) -> str:
    seen = {individual}
    while (nxt := merges.get(individual)) and nxt not in seen:
        individual = nxt
        seen.add(individual)
    return individual


@dataclass(frozen=True)
class Score:
    """How ids and true fish line up (after merges)."""

    sightings: int
    enrolments: int  # distinct ids minted (before merges)
    ids_per_stranger: float  # distinct ids a stranger's sightings ended under, mean
    split_ids: int  # ids beyond one per fish (a known fish's one is its name), in all
    missed_known: int  # sightings of a known fish not under its name
    wrong: int  # sightings under an id that is mostly (or named after) another fish
    mixed_ids: int  # ids holding sightings of two or more true fish
    unknown: int = 0  # sightings left undecided (``unknown``: no id, scored as none)

    def line(self) -> str:
        return (
            f"sightings={self.sightings} enrolments={self.enrolments} "
            f"ids_per_stranger={self.ids_per_stranger:.2f} split_ids={self.split_ids} "
            f"missed_known={self.missed_known} wrong={self.wrong} mixed_ids={self.mixed_ids} "
            f"unknown={self.unknown}"
        )


def score(
    sightings: list[Sighting],
    truth: dict[str, str],
    merges: dict[str, str],
    strangers: frozenset[str] | None = None,
) -> Score:
    """Score the ids given against the truth, each id read through the merges; the fish not
    in ``strangers`` are known (default: the names of KNOWN and STRANGERS). ``unknown``
    sightings are counted and otherwise left out; a stranger's ids are those it owns (the
    id is named after it or mostly holds it), averaged over the strangers that got one."""
    by_id: dict[str, Counter] = defaultdict(Counter)
    undecided = 0
    for s in sightings:
        if s.individual == UNKNOWN:
            undecided += 1
            continue
        by_id[resolve(merges, s.individual)][truth[s.uid]] += 1
    owner = {i: (i if i in counts else counts.most_common(1)[0][0]) for i, counts in by_id.items()}
    ids_of: dict[str, set] = defaultdict(set)
    for individual, fish in owner.items():
        ids_of[fish].add(individual)
    if strangers is None:
        strangers = frozenset(make_individual(i, 0).name for i in STRANGERS)
        known = {make_individual(i, 0).name for i in KNOWN}
    else:
        known = set(truth.values()) - strangers
    owned = [len(ids_of[f]) for f in strangers if f in ids_of]
    return Score(
        sightings=len(sightings),
        enrolments=len({s.individual for s in sightings if s.new_individual}),
        ids_per_stranger=float(np.mean(owned)) if owned else 0.0,
        split_ids=sum(len(ids) - 1 for ids in ids_of.values()),
        missed_known=sum(
            n for i, c in by_id.items() for f, n in c.items() if f in known and i != f
        ),
        wrong=sum(n for i, c in by_id.items() for f, n in c.items() if f != owner[i]),
        mixed_ids=sum(len(c) > 1 for c in by_id.values()),
        unknown=undecided,
    )


def collisions(sightings: list[Sighting], topic: list[tuple]) -> dict[str, set]:
    """Ids minted for two different enrolments: two frames each said to have enrolled it
    (stored rows), or two individual records of one id from different sightings (topic).
    A row and a record of one enrolment name the same frame (tracklets: the sighting that
    decided the tracklet new; its id derives from the first good view), so both are pooled:
    a replay announcing the fish at another frame is a collision too."""
    rows: dict[str, set] = defaultdict(set)
    for s in sightings:
        if s.new_individual:
            rows[s.individual].add(s.uid)
    for key, value in topic:
        if value is not None and value["kind"] == "individual" and value["source"]["uid"]:
            rows[key].add(value["source"]["uid"])
    return {i: uids for i, uids in rows.items() if len(uids) > 1}


def topic_merges(topic: list[tuple]) -> dict[str, str]:
    """``merged id -> survivor`` as the topic's latest record of each individual says."""
    latest = {key: value for key, value in topic if "/" not in key}
    return {k: v["merged_into"] for k, v in latest.items() if v and v.get("merged_into")}


def replays(sightings: list[Sighting], merges: dict[str, str]) -> tuple[int, int, int]:
    """Frames stored more than once (replayed after a rebalance or a kill); how many of those
    whose first answer enrolled a fish are named otherwise in a later row (a replay minting a
    second id: the replay must find the first answer's record); and how many replayed frames
    were answered with another id (after merges) the second time. A frame first answered
    without an enrolment (``unknown`` while its tracklet gathered views, or a match) may be
    answered otherwise when replayed: its replayer's tracklets hold other views."""
    rows: dict[str, list[Sighting]] = defaultdict(list)
    for s in sightings:
        rows[s.uid].append(s)
    again = {uid: sorted(r, key=lambda s: s.stored_at_ns) for uid, r in rows.items() if len(r) > 1}
    enrolling = [r for r in again.values() if r[0].new_individual]
    minted_twice = sum(any(s.individual != r[0].individual for s in r[1:]) for r in enrolling)
    otherwise = sum(len({resolve(merges, s.individual) for s in r}) > 1 for r in again.values())
    return len(again), minted_twice, otherwise


def twin_gaps(
    topic: list[tuple], merges: dict[str, str], first_at: dict[str, tuple[int, int]]
) -> list[tuple[float, bool]]:
    """For each merged pair, the seconds between the two enrolments (their first records'
    ``written_at``) and whether they were a *race*: the later one's writer had not yet read
    the earlier one's record (its ``read_to`` offset at or below it). A twin that is no race
    is the model's own split (its writer knew the other fish and still called the sighting
    new), which a single process makes too; only a race measures how long one worker went on
    not knowing the other's fish."""
    first: dict[str, dict] = {}
    for key, value in topic:
        if value is not None and value["kind"] == "individual" and key not in first:
            first[key] = value
    gaps = []
    for a, b in merges.items():
        earlier, later = sorted((a, b), key=lambda k: first_at[k])
        partition, offset = first_at[earlier]
        read_to = first[later].get("read_to", {}).get(str(partition), 0)
        written = [datetime.fromisoformat(first[k]["written_at"]) for k in (a, b)]
        gaps.append((abs((written[0] - written[1]).total_seconds()), read_to <= offset))
    return gaps


def final_galleries(stores: list[Path], logs: list[str]) -> list[Gallery]:
    """Each worker's exported gallery (``logs``: each store's last worker's log). A worker
    that never decided a fish batch (a restarted one that the stream had left nothing to, under
    load) never opened the shared gallery and exports none: it is skipped, the others not."""
    galleries = []
    for store, log in zip(stores, logs, strict=True):
        path = store.with_name("store-fish-gallery.npz")
        if "fish_gallery_shared" in log or path.exists():
            galleries.append(Gallery.load(path))
    assert len(galleries) >= len(stores) - 1, "more than one worker exported no gallery"
    return galleries


def tail_figures(log: str) -> tuple[int, float, float]:
    """(records read from other workers between batches, median and max lag) from the line a
    worker logs when it stops; none read for a worker that never decided a fish batch (it
    never opened the shared gallery, so it exports nothing and logs no such line)."""
    found = re.findall(r"tail_records=(\d+) tail_lag_p50_s=([\d.]+) tail_lag_max_s=([\d.]+)", log)
    if not found:
        assert "fish_gallery_shared" not in log, "the gallery was opened but not exported"
        return 0, 0.0, 0.0
    n, p50, most = found[-1]
    return int(n), float(p50), float(most)


def distinct_frames(stores) -> int:
    """Distinct frames stored over ``stores`` (a store not there yet, or busy, counts none)."""
    uids = set()
    for store in stores:
        if store.is_file():
            try:
                with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
                    uids |= {u for (u,) in db.execute("SELECT uid FROM frames")}
            except sqlite3.Error:
                pass
    return len(uids)

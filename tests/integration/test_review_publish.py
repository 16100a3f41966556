"""Decisions reach the `reviews` topic on the real broker, keyed by subject, each once; a
broker that cannot be reached leaves them unpublished (kept), and they go out later."""

from __future__ import annotations

import json
import sqlite3

import pytest

from seawatch.contracts.errors import BrokerError
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.review.decisions import decide_objects, decide_otolith
from seawatch.review.publish import publish_pending
from tests.integration.helpers import read_topic
from tests.review.station_data import build_station

pytestmark = pytest.mark.integration


class _Down:
    """A producer whose broker is gone: every flush fails."""

    def send(self, *args, **kwargs):
        return None

    def flush(self):
        raise BrokerError("broker unreachable")


def test_decisions_are_published_once_keyed_by_subject(tmp_path, broker, unique):
    files = build_station(tmp_path, plankton=20)
    db = sqlite3.connect(files.store, isolation_level=None)
    uids = [u for (u,) in db.execute("SELECT frame_uid FROM objects ORDER BY 1 LIMIT 3")]
    decide_objects(db, "anna", [(u, 0, 0) for u in uids], "validate")
    oto = db.execute("SELECT frame_uid FROM otolith LIMIT 1").fetchone()[0]
    decide_otolith(db, "anna", oto, 0, "confirm", "crack")
    topic = f"reviews-{unique}"
    with pytest.raises(BrokerError):
        publish_pending(db, _Down(), topic)
    assert db.execute("SELECT COUNT(*) FROM decisions WHERE published = 0").fetchone()[0] == 4
    ensure_topics(broker.bootstrap_servers, [topic], 1)
    publisher = Publisher(broker.bootstrap_servers)
    try:
        assert publish_pending(db, publisher, topic) == 4
        assert publish_pending(db, publisher, topic) == 0  # nothing twice
    finally:
        publisher.close()
    messages = read_topic(broker.bootstrap_servers, topic, 4, settle_s=1.0)
    assert len(messages) == 4
    got = {m.key.decode(): json.loads(m.value) for m in messages}
    assert set(got) == {*(f"object:{u}#0" for u in uids), f"otolith:{oto}"}
    assert got[f"otolith:{oto}"]["after"] == {
        "status": "confirmed", "anomaly_type": "crack", "version": 1
    }  # fmt: skip
    assert all(v["user"] == "anna" for v in got.values())

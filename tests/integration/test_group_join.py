"""A member that joins its group gets its partitions from the first idle poll."""

from __future__ import annotations

import time

import pytest

from seawatch.ingest.kafka_io import FrameSource, ensure_topics
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration


def test_the_first_idle_poll_waits_out_the_join_so_its_answer_is_not_lost(
    tmp_path, broker, unique, model_dir
):
    """kafka-python drops a join that completes while no poll awaits it (and sends another
    JoinGroup, held seconds again by Tansu); a 200-ms idle poll ended long before the join
    did, so the demo's daemons waited up to a minute for their partitions."""
    kafka = settings_for(tmp_path, broker, unique, model_dir).kafka
    ensure_topics(kafka.bootstrap_servers, kafka.topics, kafka.partitions)
    source = FrameSource(kafka)
    try:
        assert source.join_wait_ms() == kafka.max_poll_interval_ms
        started = time.monotonic()
        assert source.poll_batch(8, 50, idle_ms=200) == []
        assert source.assigned()  # in one poll: the join's answer was awaited
        assert time.monotonic() - started < kafka.max_poll_interval_ms / 1000 + 2
        started = time.monotonic()
        assert source.poll_batch(8, 50, idle_ms=200) == []  # joined: idle polls are short
        assert time.monotonic() - started < 2
        source._notify("rewound", [])  # a recreated topic read again: still a member
        started = time.monotonic()
        assert source.poll_batch(8, 50, idle_ms=200) == []
        assert time.monotonic() - started < 2
    finally:
        source.close()

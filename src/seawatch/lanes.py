"""Lanes: the served tasks in groups that never wait for each other.

One consumer polls one batch at a time, so a slow task's batch (an otolith specimen at eight
views) holds every frame polled after it, of every task. A lane is a group of tasks
(``tasks.<task>.lane``) with its own consumer: its own topics (each task's own), its own
consumer group (``<kafka.group_id>.<lane>``), batching and commits, and, under
``seawatch run``, its own worker processes. Everything keyed by partition (the alert state,
its snapshots) or shared through Kafka (the fish gallery) keeps the base ``kafka.group_id``
in its keys and names, so a lane owns the state of exactly the partitions it consumes.

A lane needs topics that carry one task each: when a consumed topic is no enabled task's
own (one topic for several tasks), lanes cannot split it and one consumer serves everything,
as with a single lane.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from seawatch.config import Settings
from seawatch.contracts.errors import ConfigError

log = logging.getLogger(__name__)
MAIN = "main"


@dataclass(frozen=True)
class Lane:
    """One lane: its tasks, the topics its consumer reads and its consumer group."""

    name: str
    tasks: tuple[str, ...]
    topics: tuple[str, ...]
    group_id: str


def plan_lanes(settings: Settings) -> list[Lane]:
    """The lanes of the enabled tasks, ``main`` first. One lane (all topics, the base group)
    when every task is in one lane or when a consumed topic is no single task's own."""
    kafka = settings.kafka
    topics = list(kafka.topics or [])
    owner = {t.topic_for(name): name for name, t in settings.enabled_tasks().items()}
    shared = [topic for topic in topics if topic not in owner]
    single = Lane(MAIN, tuple(settings.enabled_tasks()), tuple(topics), kafka.group_id)
    by_lane: dict[str, list[str]] = {}
    for topic in topics:
        if topic in owner:
            by_lane.setdefault(settings.tasks[owner[topic]].lane, []).append(topic)
    if len(by_lane) <= 1:
        return [single]
    if shared:
        log.warning(
            "lanes_off lanes=%s shared_topics=%s reason='a topic that is no single task's own "
            "cannot be split' effect='one consumer serves every task'",
            ",".join(sorted(by_lane)),
            ",".join(shared),
        )
        return [single]
    names = sorted(by_lane, key=lambda n: (n != MAIN, n))
    return [
        Lane(
            name,
            tuple(owner[topic] for topic in by_lane[name]),
            tuple(by_lane[name]),
            f"{kafka.group_id}.{name}",
        )
        for name in names
    ]


def find_lane(settings: Settings, name: str) -> Lane:
    """The lane called ``name`` in ``settings``' plan; a clear error for an unknown one."""
    lanes = plan_lanes(settings)
    for lane in lanes:
        if lane.name == name:
            return lane
    msg = (
        f"no lane {name!r}: the settings give the lanes {[lane.name for lane in lanes]}; "
        "set tasks.<task>.lane (each task on its own topic) or leave --lane out"
    )
    raise ConfigError(msg)


def lane_settings(settings: Settings, lane: Lane) -> Settings:
    """``settings`` as lane ``lane`` serves them: its topics only, the other lanes' tasks
    switched off (their models are not loaded here)."""
    kafka = settings.kafka.model_copy(update={"topics": list(lane.topics)})
    tasks = {
        name: task
        if name in lane.tasks or not task.enabled
        else task.model_copy(update={"enabled": False})
        for name, task in settings.tasks.items()
    }
    return settings.model_copy(update={"kafka": kafka, "tasks": tasks})


__all__ = ["MAIN", "Lane", "find_lane", "lane_settings", "plan_lanes"]

"""Lanes from the settings: which tasks share a consumer, on which topics, in which group."""

from __future__ import annotations

import pytest

from seawatch.config import load_settings
from seawatch.contracts.errors import ConfigError
from seawatch.lanes import find_lane, lane_settings, plan_lanes


def test_by_default_otolith_has_a_lane_of_its_own():
    lanes = plan_lanes(load_settings())
    assert [(lane.name, lane.tasks, lane.topics, lane.group_id) for lane in lanes] == [
        ("main", ("plankton", "fish"), ("frames.plankton", "frames.fish"), "seawatch.main"),
        ("otolith", ("otolith",), ("frames.otolith",), "seawatch.otolith"),
    ]


def test_one_lane_is_the_one_consumer_of_before_in_the_base_group():
    settings = load_settings(tasks={"otolith": {"lane": "main"}}, kafka__group_id="ship")
    (lane,) = plan_lanes(settings)
    assert lane.group_id == "ship"
    assert lane.topics == ("frames.plankton", "frames.otolith", "frames.fish")


def test_a_topic_shared_by_tasks_cannot_be_split_so_lanes_are_off():
    (lane,) = plan_lanes(load_settings(kafka__topics=["frames.all"]))
    assert lane.topics == ("frames.all",) and lane.group_id == "seawatch"


def test_a_switched_off_task_makes_no_lane():
    (lane,) = plan_lanes(load_settings(tasks={"otolith": {"enabled": False}}))
    assert lane.tasks == ("plankton", "fish")


def test_a_lane_serves_its_own_tasks_and_topics_only():
    settings = load_settings(tasks={"fish": {"lane": "fish"}})
    assert [lane.name for lane in plan_lanes(settings)] == ["main", "fish", "otolith"]
    fish = find_lane(settings, "fish")
    served = lane_settings(settings, fish)
    assert served.kafka.topics == ["frames.fish"]
    assert list(served.enabled_tasks()) == ["fish"]
    assert served.kafka.group_id == "seawatch"  # state keys and the gallery keep the base


def test_an_unknown_lane_names_the_lanes_there_are():
    with pytest.raises(ConfigError, match=r"no lane 'fast'.*\['main', 'otolith'\]"):
        find_lane(load_settings(), "fast")


def test_a_lane_name_must_fit_a_group_id():
    with pytest.raises(ConfigError, match=r"tasks.otolith.lane"):
        load_settings(tasks={"otolith": {"lane": "Slow Lane"}})

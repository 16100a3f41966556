"""A frame record's fish: a crop's one, a whole tank frame's every sighting, and the check
that ``fish`` is the first of them."""

from __future__ import annotations

import dataclasses

import pytest

from seawatch.contracts.records import FishRecord
from tests.storage.factories import make_task_record

A, B = FishRecord("zf-0-0003", 0.9, False, False), FishRecord("fish-new-a", 0.2, True, True)


def test_fish_sightings_of_a_crop_a_tank_frame_and_a_frame_without_fish():
    assert make_task_record("fish", fish=A).fish_sightings == (A,)
    tank = make_task_record("fish", sightings=(A, B))
    assert tank.fish_sightings == (A, B) and tank.fish == A
    assert make_task_record("fish").fish_sightings == ()


def test_a_fish_that_is_not_the_first_sighting_is_refused():
    tank = make_task_record("fish", sightings=(A, B))
    with pytest.raises(ValueError, match="fish must be the first of its sightings"):
        dataclasses.replace(tank, fish=B)
    with pytest.raises(ValueError, match="fish must be the first"):
        dataclasses.replace(tank, fish=None)

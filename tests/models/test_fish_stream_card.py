"""The fish card's open-set stream figures (issue 28): read from the whole-frame benchmark's
result files, one row per reserved stream, pooled, the goals checked, written onto the card
without touching the weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from seawatch.cli import cli
from seawatch.contracts.card import load_card
from seawatch.contracts.errors import ConfigError
from seawatch.models.fish.stream_card import stream_figures

ROOT = Path(__file__).resolve().parents[2]


def _run(
    seed: int, *, alerts: int, mixed: int, declared_new: float, truth="visible", mode="tracklets"
):
    return {
        "seed": seed, "mode": mode, "truth_rule": truth, "fish_drawn": 3000,
        "matched_known_sightings": 1000, "matched_known_declared_new": declared_new,
        "matched_known_wrong": 0.0, "matched_known_right": 0.7, "new_fish_in_frames": 20,
        "matched_ids_per_new_fish": 1.0, "matched_ids": 80, "matched_mixed_ids": mixed,
        "new_fish_alerts_all": alerts, "detection_recall": 0.8,
    }  # fmt: skip


def _write(path: Path, runs: list[dict]) -> Path:
    path.write_text(json.dumps({"benchmark": "fish_open_set_frames", "command": "c", "runs": runs}))
    return path


def test_streams_are_pooled_and_a_later_file_replaces_a_seed(tmp_path):
    first = _write(
        tmp_path / "a.json",
        [
            _run(7_900_001, alerts=23, mixed=0, declared_new=0.01),  # rescored below
            _run(7_900_002, alerts=20, mixed=2, declared_new=0.03),
            _run(7_900_002, alerts=99, mixed=9, declared_new=0.5, truth="outline"),
            _run(7_900_002, alerts=99, mixed=9, declared_new=0.5, mode="single"),
            _run(7_900_002, alerts=99, mixed=9, declared_new=0.5) | {"rerank": "qe"},
            _run(7_900_002, alerts=99, mixed=9, declared_new=0.5) | {"gate": "off"},
            _run(7_100_400, alerts=99, mixed=9, declared_new=0.5),  # development: not reserved
        ],
    )
    later = _write(tmp_path / "b.json", [_run(7_900_001, alerts=21, mixed=0, declared_new=0.01)])
    section = stream_figures([first, later])
    rows = {r["seed"]: r for r in section["per_stream"]}
    assert sorted(rows) == [7_900_001, 7_900_002]
    assert rows[7_900_001]["new_fish_alerts"] == 21 and rows[7_900_001]["goals_met"]
    # 2 of 80 ids mixed: 2.5 % > 1 %; 3 % declared new is at the bound, still met
    assert rows[7_900_002]["mixed_id_share"] == 0.025 and not rows[7_900_002]["goals_met"]
    pooled = section["pooled"]
    assert pooled["known_declared_new"] == pytest.approx(0.02)
    assert pooled["mixed_ids"] == 2 and pooled["ids"] == 160 and pooled["mixed_id_share"] == 0.0125
    assert pooled["new_fish_alerts"] == 41 and pooled["alerts_off_by"] == 0.025
    assert pooled["streams_meeting_every_goal"] == 1 and not pooled["goals_met"]
    assert [s["file"] for s in section["sources"]] == ["a.json", "b.json"]


def test_files_that_are_not_results_are_refused(tmp_path):
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"benchmark": "pipeline", "runs": []}))
    with pytest.raises(ConfigError, match="not fish_open_set_frames"):
        stream_figures([other])
    dev_only = _write(tmp_path / "d.json", [_run(7_100_400, alerts=20, mixed=0, declared_new=0)])
    with pytest.raises(ConfigError, match="no reserved stream"):
        stream_figures([dev_only])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not a fish_open_set_frames result"):
        stream_figures([tmp_path / "bad.json"])


def test_the_command_writes_the_card_and_keeps_the_release(tmp_path):
    model = tmp_path / "fish"
    shutil.copytree(ROOT / "models" / "fish", model)
    before = load_card(model)
    result = _write(tmp_path / "r.json", [_run(7_900_003, alerts=20, mixed=0, declared_new=0)])
    done = CliRunner().invoke(cli, ["evaluate", "fish-stream", "--model", str(model), str(result)])
    assert done.exit_code == 0, done.output
    assert "every goal on 1 of 1 streams" in done.output
    after = load_card(model)
    assert after.release == before.release and after.onnx_sha256 == before.onnx_sha256
    assert after.metrics["open_set_stream"]["per_stream"][0]["seed"] == 7_900_003
    assert after.metrics["known"] == before.metrics["known"]


def test_the_committed_card_says_what_its_result_files_say():
    card = load_card(ROOT / "models" / "fish")
    written = card.metrics["open_set_stream"]
    files = [ROOT / "benchmarks" / "results" / s["file"] for s in written["sources"]]
    again = stream_figures(files)
    assert written["per_stream"] == again["per_stream"] and written["pooled"] == again["pooled"]
    assert written["sources"] == again["sources"]  # the files are the ones hashed

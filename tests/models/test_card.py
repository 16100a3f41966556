"""The model artifact contract: card.json must validate and match its ONNX file."""

from __future__ import annotations

import shutil

import pytest

from seawatch.contracts.card import load_card
from seawatch.contracts.errors import ConfigError


def test_committed_card_validates_and_matches_its_graph(model_dir):
    card = load_card(model_dir)
    assert card.task == "plankton"
    assert len(card.class_names) >= 8
    assert 0.0 < card.thresholds["unknown_confidence"] < 1.0
    assert card.training.command
    assert card.metrics


def test_a_changed_graph_or_missing_file_is_refused(model_dir, tmp_path):
    copy = tmp_path / "artifact"
    shutil.copytree(model_dir, copy)
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ConfigError, match="does not match its card"):
        load_card(copy)
    (copy / "card.json").unlink()
    with pytest.raises(ConfigError, match="make models"):
        load_card(copy)

"""Model stores and live swaps on real (toy) ONNX models: promote, roll back, the checks that
refuse a broken model, and the swap itself at a batch boundary."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from seawatch.config import load_settings
from seawatch.contracts.errors import ConfigError
from seawatch.inference.model_store import PROMOTED, promote, read_state, rollback, serving_dir
from seawatch.inference.router import TaskRouter
from seawatch.model_swap import ModelSwapper
from seawatch.registry import load_heads
from tests.toy_task import make_toy_model


def _settings(tmp_path: Path, store: Path):
    return load_settings(
        tasks={
            "plankton": {"enabled": False},
            "otolith": {"enabled": False},
            "fish": {"enabled": False},
            "toy": {"plugin": "tests.toy_task:PLUGIN", "model_store": str(store)},
        },
        inference__swap_check_s=0.01,
        storage__local__path=str(tmp_path / "store.db"),
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    promote(store, _model(tmp_path, "0.1.0"))
    return store


def _model(tmp_path: Path, version: str, **kwargs) -> Path:
    directory = tmp_path / f"built-{version}-{len(kwargs)}"
    make_toy_model(directory, version=version, **kwargs)
    return directory


def _swap_until_settled(swapper: ModelSwapper, timeout_s: float = 10.0) -> None:
    """Poll (as the loop does) until the load started by the promotion has been decided."""
    deadline = time.monotonic() + timeout_s
    swapper.poll()
    while swapper._loading and time.monotonic() < deadline:
        time.sleep(0.02)
        swapper.poll()
    assert not swapper._loading, "the candidate never finished loading"


def test_promote_copies_the_artifact_once_and_rollback_serves_the_previous(tmp_path, store):
    first = read_state(store)["serving"]
    card = promote(store, _model(tmp_path, "0.2.0"), task="toy")
    assert read_state(store)["serving"] == card.release != first
    assert serving_dir(store).name == card.release and (store / first / "model.onnx").is_file()
    assert rollback(store) == first and serving_dir(store).name == first
    history = read_state(store)["history"]
    assert [h["action"] for h in history] == ["promote", "promote", "rollback"]
    assert not any(p.name.startswith(".") for p in store.iterdir())  # no temporary left
    with pytest.raises(ConfigError, match=r"'toy' model; the store .* serves 'fish'"):
        promote(store, _model(tmp_path, "0.3.0"), task="fish")
    with pytest.raises(ConfigError, match="no earlier release"):
        rollback(tmp_path / "empty")
    (store / PROMOTED).write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        read_state(store)


def test_a_promoted_model_is_checked_and_swapped_in_between_batches(tmp_path, store):
    settings = _settings(tmp_path, store)
    router = TaskRouter(load_heads(settings))
    old = router.heads["toy"]
    swapper = ModelSwapper(settings, router, depth=1)
    card = promote(store, _model(tmp_path, "0.2.0"))
    _swap_until_settled(swapper)
    new = router.heads["toy"]
    assert new is not old and new.card.release == card.release
    assert swapper.swaps[-1]["checks"]["validation_score"] == pytest.approx(1.0, abs=1e-4)
    swapper.batch_stored()
    swapper.batch_stored()  # depth 1: two stored batches later no batch holds the old head
    assert old.backend._session is None  # closed once no batch in flight can hold it
    swapper.close()
    router.close()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"side": 16}, "input contract"),
        ({"broken": True}, "non-finite|not all finite"),
        ({"scale": 0.5}, "validation score .* below the serving"),
    ],
)
def test_a_broken_model_is_refused_and_the_serving_one_keeps_serving(
    tmp_path, store, kwargs, reason
):
    settings = _settings(tmp_path, store)
    router = TaskRouter(load_heads(settings))
    serving = router.heads["toy"]
    swapper = ModelSwapper(settings, router, depth=0)
    promote(store, _model(tmp_path, "0.9.0", **kwargs))
    _swap_until_settled(swapper)
    assert router.heads["toy"] is serving and swapper.swaps == []
    [refusal] = swapper.refusals
    assert refusal["release"].startswith("0.9.0+")
    assert re.search(reason, refusal["reason"]), refusal["reason"]
    swapper.poll()  # the refused release is not tried again
    assert len(swapper.refusals) == 1 and not swapper._loading
    out = serving.infer(np.full((2, 1, 8, 8), 50, np.float32))
    np.testing.assert_allclose(out, [50, 50], rtol=1e-5)
    swapper.close()
    router.close()


def test_a_task_served_from_a_store_without_a_promotion_fails_at_start(tmp_path):
    settings = _settings(tmp_path, tmp_path / "empty-store")
    with pytest.raises(ConfigError, match="no promoted model; run seawatch models promote"):
        load_heads(settings)


def test_the_models_commands_promote_list_and_roll_back(tmp_path, store):
    from click.testing import CliRunner

    from seawatch.cli import cli

    runner = CliRunner()
    built = _model(tmp_path, "0.2.0")
    done = runner.invoke(cli, ["models", "promote", str(built), "--store", str(store)])
    assert done.exit_code == 0 and "promoted toy toy-brightness 0.2.0+" in done.output
    listed = runner.invoke(cli, ["models", "list", "toy", "--store", str(store)])
    assert listed.exit_code == 0 and "serving: 0.2.0+" in listed.output
    back = runner.invoke(cli, ["models", "rollback", "toy", "--store", str(store)])
    assert back.exit_code == 0 and "rolled back toy to 0.1.0+" in back.output
    assert json.loads((store / PROMOTED).read_text())["serving"].startswith("0.1.0+")
    missing = runner.invoke(cli, ["models", "rollback", "fish"])
    assert missing.exit_code != 0 and "tasks.fish.model_store is not set" in missing.output


class _Head:
    """A stand-in head whose model returns ``out`` for any batch."""

    def __init__(self, card, out) -> None:
        self.name, self.card, self.out = card.task, card, out

    def infer(self, tensor):
        return self.out(len(tensor))


def test_the_output_check_refuses_nan_and_changed_shapes(tmp_path):
    from seawatch.contracts.card import load_card
    from seawatch.model_swap import SwapRefused, check_candidate

    card = load_card(_model(tmp_path, "0.1.0"))
    serving = _Head(card, lambda n: np.zeros((n, 3), np.float32))
    inputs = np.zeros((4, 1, 8, 8), np.float32)
    good = _Head(card, lambda n: np.ones((n, 3), np.float32))
    assert check_candidate(good, serving, inputs, max_drop=0.0) == {"inputs": 4}
    nan = _Head(card, lambda n: np.full((n, 3), np.nan, np.float32))
    with pytest.raises(SwapRefused, match="not all finite"):
        check_candidate(nan, serving, inputs, max_drop=0.0)
    wider = _Head(card, lambda n: np.zeros((n, 4), np.float32))
    with pytest.raises(SwapRefused, match="output shapes"):
        check_candidate(wider, serving, inputs, max_drop=0.0)
    with pytest.raises(SwapRefused, match="no recorded inputs"):
        check_candidate(good, serving, None, max_drop=0.0)

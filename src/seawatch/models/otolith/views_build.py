"""``seawatch train otolith-views``: serve an otolith artifact with 1, 4 or 8 test-time views.

For the artifact at ``--model``: rebuild its detector from the committed graph and prove it is
the same (:mod:`.reexport`); export the other view counts as complete artifacts in
``views<n>/`` (:mod:`.serving_views`); calibrate, evaluate and time every view count
(:mod:`.views_eval`); write each variant's card and the table with the recommended views into
the parent card's ``metrics.serving_views``. The parent's ``model.onnx`` is not touched: its
release stays. Re-running replaces the variants.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, ModelCard, load_card, sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.models.otolith import views_eval as E
from seawatch.models.otolith.head import THRESHOLD_KEY, prepare_otolith
from seawatch.models.otolith.serving_views import (
    SERVING_KEY,
    SERVING_VIEWS,
    trained_views,
    variant_dir,
    variant_version,
)


def build_serving_views(
    model_dir: Path,
    *,
    command: str,
    progress: Any = None,
    scale: float = 1.0,
    min_s: float = 3.0,
    threads: tuple[int, ...] | None = None,
    rounds: int = 3,
    min_calls: int = 5,
) -> dict[str, Any]:
    """Write the view variants of ``model_dir`` and the table into its card; return the table.

    ``scale`` shrinks the data sets, and ``min_s``, ``rounds`` and ``min_calls`` the timing
    runs (tests); ``threads`` are the thread counts timed (default 1 and every core).
    """
    import torch

    from seawatch.models.otolith.network import describe
    from seawatch.models.otolith.reexport import check_rebuilt, export_views, rebuild_detector
    from seawatch.models.training import training_progress

    torch.set_num_threads(1)
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    if card.task != "otolith":
        msg = f"{model_dir} holds a {card.task!r} model; otolith-views is for otolith detectors"
        raise ConfigError(msg)
    trained = trained_views(card)
    if trained not in SERVING_VIEWS:
        msg = f"{model_dir} was trained with {trained} views; serving views are {SERVING_VIEWS}"
        raise ConfigError(msg)
    far = float(card.thresholds.get(f"{THRESHOLD_KEY}_target_far", 0.01))
    threads = threads or tuple(sorted({1, os.cpu_count() or 1}))
    owned = progress is None
    progress = progress or training_progress()
    bars: dict[str, Any] = {}

    def advance(name: str, n: int, total: int) -> None:
        if name not in bars:
            bars[name] = progress.add_task(name, total=total, info="")
        progress.advance(bars[name], n)

    if owned:
        progress.start()
    try:
        draws = E.draw_sets(card, advance, scale=scale)
        size = card.input.size
        check = np.stack([prepare_otolith(im, size) for im in _mixed(draws, 8)])
        noise = np.random.default_rng(7_300_001).uniform(0, 255, (4, 3, size, size))
        batch = np.concatenate([check, noise.astype(np.float32)])
        model = rebuild_detector(model_dir, card)
        advance("re-export", 0, len(SERVING_VIEWS) + 1)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Constant folding")
            rebuilt_diff = check_rebuilt(
                model, model_dir / ONNX_FILE, Path(tmp) / ONNX_FILE, batch, size=size
            )
            advance("re-export", 1, 0)
            parity = {trained: {"rebuilt_vs_committed_max_abs_diff": rebuilt_diff}}
            for views in SERVING_VIEWS:
                if views != trained:
                    staged = Path(tmp) / f"views{views}" / ONNX_FILE
                    parity[views] = export_views(model, views, staged, batch, size=size)
                    target = variant_dir(model_dir, views)
                    shutil.rmtree(target, ignore_errors=True)
                    target.mkdir(parents=True)
                    shutil.copyfile(staged, target / ONNX_FILE)
                advance("re-export", 1, 0)
        architectures = {}
        for views in SERVING_VIEWS:
            model.views = views
            architectures[views] = describe(model)
        model.views = trained
        choices: dict[int, dict[str, Any]] = {}
        for views in SERVING_VIEWS:
            directory = model_dir if views == trained else variant_dir(model_dir, views)
            result = E.score_variant(
                directory, card, draws, far, lambda k, n, t, v=views: advance(f"{k} ({v})", n, t)
            )
            result["parity"] = parity[views]
            choices[views] = result
        host = E.machine()  # before the timing runs: the load they started under
        timed = E.time_variants(
            _graphs(model_dir, trained),
            card,
            threads,
            advance,
            rounds=rounds,
            min_s=min_s,
            min_calls=min_calls,
        )
        for views, result in choices.items():
            result["throughput"] = timed[views]
    finally:
        if owned:
            progress.stop()
    timing = {"threads": list(threads), "machine": host}
    return _write_cards(model_dir, card, choices, architectures, draws, far, timing, command)


def _graphs(model_dir: Path, trained: int) -> dict[int, Path]:
    """The graph of every serving view count."""
    return {
        v: (model_dir if v == trained else variant_dir(model_dir, v)) / ONNX_FILE
        for v in SERVING_VIEWS
    }


def retime_serving_views(
    model_dir: Path, *, command: str, min_s: float = 3.0, threads: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """Time the existing variants again (a quiet machine, another CPU) and update the card's
    table: specimens/s only; thresholds, AUROC and the recommendation stay."""
    from seawatch.models.training import training_progress

    model_dir = Path(model_dir)
    card = load_card(model_dir)
    table = card.metrics.get(SERVING_KEY)
    if not isinstance(table, dict):
        msg = f"{model_dir} has no serving views table; run seawatch train otolith-views first"
        raise ConfigError(msg)
    threads = threads or tuple(sorted({1, os.cpu_count() or 1}))
    bars: dict[str, Any] = {}
    with training_progress() as progress:

        def advance(name: str, n: int, total: int) -> None:
            if name not in bars:
                bars[name] = progress.add_task(name, total=total, info="")
            progress.advance(bars[name], n)

        host = E.machine()
        timed = E.time_variants(
            _graphs(model_dir, trained_views(card)), card, threads, advance, min_s=min_s
        )
    for views, per in timed.items():
        table["choices"][str(views)]["specimens_per_s"] = {
            t: r["specimens_per_s"] for t, r in per.items()
        }
        table["details"][str(views)]["throughput"] = per
        if views != trained_views(card):
            variant = load_card(variant_dir(model_dir, views))
            metrics = {**variant.metrics, "throughput": per}
            variant.model_copy(update={"metrics": metrics}).write(variant_dir(model_dir, views))
    table["throughput"] |= {"threads": list(threads), "machine": host}
    table["retimed"] = {"command": command, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    card.model_copy(update={"metrics": {**card.metrics, SERVING_KEY: table}}).write(model_dir)
    return table


def _mixed(draws: E.Draws, n: int) -> np.ndarray:
    """``n`` test renders, normal and defective alternately, for checks and timing."""
    picks = np.linspace(0, len(draws.test) - 1, n).round().astype(int)
    return draws.test[picks]


def _write_cards(
    model_dir: Path,
    card: ModelCard,
    choices: dict[int, dict[str, Any]],
    architectures: dict[int, str],
    draws: E.Draws,
    far: float,
    timing: dict[str, Any],
    command: str,
) -> dict[str, Any]:
    """Each variant's card, then the parent card's table (its graph and release unchanged)."""
    trained = trained_views(card)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    table: dict[str, Any] = {"trained": trained, "choices": {}}
    for views, result in choices.items():
        entry = {
            "directory": "." if views == trained else variant_dir(Path(), views).as_posix(),
            "threshold": result["threshold"],
            "auroc": result["test"]["auroc"],
            "false_alarm_rate": result["test"]["false_alarm_rate"],
            "detection_rate": result["test"]["detection_rate"],
            "selection_auroc": result["selection"]["auroc"],
            "specimens_per_s": {t: r["specimens_per_s"] for t, r in result["throughput"].items()},
        }
        if views == trained:
            entry["release"] = card.release
            entry["reproduces_card"] = bool(
                abs(result["threshold"] - card.thresholds[THRESHOLD_KEY]) < 1e-5
                and result["test"]["auroc"] == card.metrics.get("auroc")
            )
        else:
            variant = _variant_card(model_dir, card, views, result, architectures[views], far)
            variant.write(variant_dir(model_dir, views))
            entry["release"] = load_card(variant_dir(model_dir, views)).release
        table["choices"][str(views)] = entry
    recommended = E.recommend(choices)
    table |= {
        "recommended": recommended,
        "rule": E.RULE,
        "auroc_tolerance": E.AUROC_TOLERANCE,
        "data": draws.seeds,
        "throughput": {
            "what": f"OtolithDetector.infer on batches of {E.BATCH} specimens (the task's "
            "default max_batch), ONNX Runtime CPU: per round the median of >= 5 timed calls "
            "after 2 warm-up calls, the best of 3 interleaved rounds",
            **timing,
        },
        "details": {str(v): r for v, r in choices.items()},
        "command": command,
        "at": now,
    }
    updated = card.model_copy(update={"metrics": {**card.metrics, SERVING_KEY: table}})
    updated.write(model_dir)
    load_card(model_dir)  # the parent still matches its graph
    return table


def _variant_card(
    model_dir: Path,
    card: ModelCard,
    views: int,
    result: dict[str, Any],
    architecture: str,
    far: float,
) -> ModelCard:
    onnx_path = variant_dir(model_dir, views) / ONNX_FILE
    metrics = result["test"] | {
        "seed": card.metrics.get("seed"),
        "split": card.metrics.get("split", "test"),
        "views": views,
        "calibration": {
            "n": result["calibration_n"],
            "target_false_alarm_rate": far,
            "false_alarm_rate": result["calibration_false_alarm_rate"],
        },
        "selection": result["selection"],
        "throughput": result["throughput"],
        "parity": result["parity"],
        "derived_from": {
            "release": card.release,
            "how": f"the parent's graph weights re-exported with {views} view(s) "
            "(seawatch.models.otolith.reexport); threshold calibrated as the parent's",
        },
    }
    return ModelCard(
        task=card.task,
        name=card.name,
        version=variant_version(card.version, views),
        architecture=architecture,
        input=card.input,
        output=card.output,
        outputs=list(card.outputs),
        files={},
        thresholds={THRESHOLD_KEY: result["threshold"], f"{THRESHOLD_KEY}_target_far": far},
        training=card.training,
        metrics=metrics,
        onnx_sha256=sha256_file(onnx_path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


__all__ = ["build_serving_views", "retime_serving_views"]

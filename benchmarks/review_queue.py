"""The review station's "most likely wrong" queue: how many of the model's errors come first?

A synthetic cruise of ``--objects`` plankton objects is drawn the way the demo's stream
(:mod:`seawatch.models.synthetic_stream`) draws its frames: ROI frames from three flow
imagers (PNG and JPEG, one in ten dark-field) and, for ``--full-share`` of the frames, dark
full frames from the in-situ camera (JPEG, 15-44 objects each); taxa follow the skewed
natural frequencies (:data:`~seawatch.models.plankton.synthetic.TAXON_FREQUENCIES`). Each
frame is encoded, decoded and prepared by the daemon's own code (``decode_image`` and the
plankton head's ``prepare``: 8-bit gray, segmentation of full frames, square crops); the
segmented objects get the taxon of the ground-truth box they match (the training sets' rule,
:mod:`seawatch.models.plankton._segmented`; unmatched pieces, which have no truth, are left
out). The committed ONNX model runs through ONNX Runtime and the head's ``interpret``, so an
error is the model's own: predicted taxon != true taxon, ``unknown`` counting as an error.

Every candidate score is computed from what the store keeps per object (``confidence``, the
rounded ``top_k``, the taxon and whether the frame was a full one) and the objects are
reviewed in decreasing score; the benchmark prints the share of all errors found in the first
5, 10 and 20 % reviewed. The **chosen** score is the fitted ranking calibration in the
model's card (:class:`seawatch.contracts.ranking.RankingCalibration`, written by ``seawatch
train plankton-ranking`` on the validation cruise 7_100_013, 10,000 objects: not a cruise
scored here). For comparison: least confidence (the fallback rule without a calibration),
margin, entropy over the top-k, temperature-recalibrated top-1 probability, the same
logistic calibration with linear ``1 - p1`` and ``p1 - p2`` terms (the form the logs were
preferred to on the development cruise), and the earlier class-aware reference (log terms
and the top-1 taxon, no frame kind; fitted on the first 4,000 validation objects).

Seeds: every fitted constant comes from the validation cruise (7_100_013); the choices
(feature form, L2, validation size) were made on the development cruise 7_100_011; the
headline ``--seed`` 7_900_026 is a fresh cruise in the range reserved for final numbers,
drawn once after every choice; ``--other-seeds`` are scored too and reported beside it
(7_900_025, already seen when the calibration was proposed, and the development cruise).
The benchmark refits the calibration on its own validation draw and says whether the
card's coefficients are reproduced. Writes ``review_queue.json`` and ``review_queue.png``
(the headline cruise) under ``--out``.

    python benchmarks/review_queue.py [--objects 10000] [--seed 7900026]
        [--other-seeds 7900025 7100011] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from review_queue_scores import (
    CHOSEN,
    Fits,
    candidates,
    fit_power,
    fit_reference,
    linear_features,
    reference_features,
)
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.ranking import RULE, wrongness
from seawatch.contracts.records import UNKNOWN
from seawatch.inference.factory import open_backend
from seawatch.models.plankton.head import PlanktonClassifier
from seawatch.models.plankton.ranking_fit import (
    Cruise,
    draw_cruise,
    fit_calibration,
    fit_logistic,
    ranking_taxa,
    stored_answers,
)
from seawatch.models.plankton.ranking_fit import Stored as Answers

RESULTS = Path(__file__).parent / "results"
MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "plankton"
DEV_SEED, VALIDATION_SEED = 7_100_011, 7_100_013
RESERVED_SEED, SEEN_RESERVED_SEED = 7_900_026, 7_900_025
VALIDATION_OBJECTS = 10_000  # the card's calibration: seawatch train plankton-ranking
REFERENCE_OBJECTS = 4000  # the earlier reference and temperature fits (first 4,000 of them)
BUDGET = 0.10  # the share reviewed that the target is about
TARGET = 0.80  # share of the errors the first BUDGET must hold
TOP_K = 3  # the daemon's default tasks.plankton.options.top_k


def answer(head: PlanktonClassifier, cruise: Cruise) -> Answers:
    """The committed model's answers, as the daemon stores them."""
    return stored_answers(head, cruise.crops)


def queue_curve(score: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Errors found after reviewing the first 0..N objects (decreasing score, stable)."""
    order = np.argsort(-score, kind="stable")
    return np.concatenate([[0], np.cumsum(errors[order])])


def found_within(curve: np.ndarray, share: float) -> float:
    """Share of all errors among the first ``share`` of the objects reviewed."""
    n, total = len(curve) - 1, curve[-1]
    return float(curve[math.ceil(share * n)] / total) if total else float("nan")


def score_cruise(seed: int, cruise: Cruise, ans: Answers, fits: Fits, classes: list[str]):
    """Scores, errors and the shares found within 5 / 10 / 20 % for one cruise."""
    truth = np.array(cruise.truth)
    errors = (ans.taxon != truth) | (ans.taxon == UNKNOWN)
    full = np.array(cruise.source) == "segmented"
    scores = candidates(ans, full, fits, classes)
    if not np.array_equal(wrongness(ans.confidence, ans.top_k[:, 1]), scores[RULE]):
        raise SystemExit(f"seawatch.contracts.ranking.wrongness is not the {RULE} candidate")
    one_by_one = [  # the head's path, one object at a time, must agree
        fits.card.score(
            float(ans.confidence[i]),
            [("", float(p)) for p in ans.top_k[i]],
            str(ans.taxon[i]),
            bool(full[i]),
        )
        for i in range(min(500, len(truth)))
    ]
    if not np.allclose(one_by_one, scores[CHOSEN][: len(one_by_one)], rtol=0, atol=1e-12):
        raise SystemExit("RankingCalibration.score (one object) != .scores (many)")
    curves = {name: queue_curve(s, errors) for name, s in scores.items()}
    curves["oracle (errors first)"] = queue_curve(errors.astype(float), errors)
    summary = {
        name: {f"{q:.2f}": round(found_within(c, q), 4) for q in (0.05, 0.1, 0.2)}
        for name, c in curves.items()
    }
    source = np.array(cruise.source)
    record = {
        "seed": seed,
        "objects": len(truth),
        "errors": int(errors.sum()),
        "unknown": int((ans.taxon == UNKNOWN).sum()),
        "by_source": {
            src: {"objects": int((source == src).sum()), "errors": int(errors[source == src].sum())}
            for src in ("roi", "segmented")
        },
        "share_of_errors_found_within": summary,
    }
    return record, curves


def print_table(console: Console, role: str, record: dict) -> None:
    n, n_errors, seed = record["objects"], record["errors"], record["seed"]
    table = Table(title=f"{role}: seed {seed}, {n} objects, {n_errors} errors ({n_errors / n:.1%})")
    table.add_column("score")
    for share in (0.05, BUDGET, 0.20):
        table.add_column(f"errors in first {share:.0%}", justify="right")
    for name, row in record["share_of_errors_found_within"].items():
        label = f"{name} (chosen)" if name == CHOSEN else name
        table.add_row(label, *(f"{v:.1%}" for v in row.values()))
    console.print(table)
    if n_errors < 100:
        console.print(f"[yellow]only {n_errors} errors: the shares are coarse[/yellow]")


def _role(seed: int) -> str:
    if seed == RESERVED_SEED:
        return "fresh reserved cruise (headline)"
    if seed == SEEN_RESERVED_SEED:
        return "reserved cruise, already seen"
    if seed == DEV_SEED:
        return "development cruise (choices made here)"
    if seed == VALIDATION_SEED:
        return "validation cruise (fitted here: in-sample)"
    return "other cruise"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=RESERVED_SEED)
    parser.add_argument(
        "--other-seeds", type=int, nargs="*", default=[SEEN_RESERVED_SEED, DEV_SEED]
    )
    parser.add_argument("--validation-seed", type=int, default=VALIDATION_SEED)
    parser.add_argument("--full-share", type=float, default=0.05, help="share of full frames")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()
    started = time.perf_counter()
    card = load_card(MODEL_DIR)
    calibration = card.ranking_calibration()
    if calibration is None:
        raise SystemExit(
            f"{MODEL_DIR}/card.json has no ranking calibration: run "
            f"seawatch train plankton-ranking --model {MODEL_DIR} --seed {VALIDATION_SEED}"
        )
    backend = open_backend("onnxruntime", MODEL_DIR / ONNX_FILE, threads=1)
    head = PlanktonClassifier(backend, card, max_batch=64, top_k=TOP_K)
    classes = list(card.class_names)

    draws = {"validation": (args.validation_seed, VALIDATION_OBJECTS)}
    for seed in [args.seed, *args.other_seeds]:
        draws[str(seed)] = (seed, args.objects)
    drawn: dict[str, tuple[Cruise, Answers]] = {}
    with Progress(console=console) as progress:
        for label, (seed, n) in draws.items():
            task = progress.add_task(f"{label} draw (seed {seed}): frames -> objects", total=n)
            step = lambda k, t=task: progress.advance(t, k)  # noqa: E731
            cruise = draw_cruise(n, seed, head, args.full_share, step)
            progress.update(task, description=f"{label}: ONNX Runtime on {n} objects")
            drawn[label] = (cruise, answer(head, cruise))
            progress.update(task, description=f"{label} draw (seed {seed}): done")
    backend.close()

    val_cruise, val = drawn["validation"]
    val_truth = np.array(val_cruise.truth)
    val_errors = (val.taxon != val_truth) | (val.taxon == UNKNOWN)
    val_full = np.array(val_cruise.source) == "segmented"
    first = slice(0, REFERENCE_OBJECTS)  # the earlier fits' 4,000-object validation draw
    val_labels = np.array([classes.index(t) for t in val_cruise.truth])
    power = fit_power(val.probs[first], val_labels[first])
    head_of = Answers(*(getattr(val, f)[first] for f in Answers.__dataclass_fields__))
    reference = fit_reference(reference_features(head_of, classes), val_errors[first].astype(float))
    taxa = ranking_taxa(classes)
    refit = fit_calibration(val, val_errors, val_full, taxa)
    reproduced = bool(
        refit.taxa == calibration.taxa
        and np.allclose(refit.weights, calibration.weights, atol=1e-4)
        and abs(refit.bias - calibration.bias) < 1e-4
    )
    if not reproduced:
        console.print(
            "[yellow]the card's calibration is not the one fitted on this validation draw "
            f"(seed {args.validation_seed}, {VALIDATION_OBJECTS} objects)[/yellow]"
        )
    linear = fit_logistic(linear_features(val, val_full, taxa), val_errors.astype(float))
    fits = Fits(power, reference, calibration, linear, taxa)

    cruises, curves_of = {}, {}
    for label in draws:
        if label == "validation":
            continue
        cruise, ans = drawn[label]
        seed = draws[label][0]
        record, curves = score_cruise(seed, cruise, ans, fits, classes)
        record["role"] = _role(seed)
        cruises[str(seed)], curves_of[seed] = record, curves
        print_table(console, record["role"], record)
    headline = cruises[str(args.seed)]
    summary = headline["share_of_errors_found_within"]
    reached = summary[CHOSEN]["0.10"]
    verdict = "meets" if reached >= TARGET else "MISSES"
    console.print(
        f"chosen score ({CHOSEN}): {reached:.1%} of the errors in the first {BUDGET:.0%} "
        f"reviewed on seed {args.seed} ({verdict} the {TARGET:.0%} target); least confidence "
        f"{summary[RULE]['0.10']:.1%}"
    )

    others = " ".join(str(s) for s in args.other_seeds)
    record = {
        "command": (
            f"python benchmarks/review_queue.py --objects {args.objects} --seed {args.seed}"
            + (f" --other-seeds {others}" if others else "")
        ),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, ONNX Runtime 1 thread",
        "seconds": round(time.perf_counter() - started, 1),
        "model": f"{card.name} {card.version} ({card.release})",
        "seeds": {
            "cruise (headline)": args.seed,
            "validation (every fit)": args.validation_seed,
            "development (choices)": DEV_SEED,
            "reserved range": "7_900_000-7_999_999 (final numbers, never used for a choice)",
            "reserved, already seen": SEEN_RESERVED_SEED,
        },
        "objects": headline["objects"],
        "errors": headline["errors"],
        "unknown": headline["unknown"],
        "by_source": headline["by_source"],
        "chosen": CHOSEN,
        "fallback": RULE,
        "card_calibration": {
            "fitted": calibration.fitted,
            "weights": dict(
                zip(
                    [*calibration.feature_names(), "bias"],
                    [*calibration.weights, calibration.bias],
                    strict=True,
                )
            ),
            "reproduced_on_this_validation_draw": reproduced,
        },
        "fitted_on_validation": {
            "temperature_power (new p ∝ p^a)": round(power, 4),
            "class_aware_reference_weights": dict(
                zip(
                    ["log(1-p1)", "log(p1-p2)", *(f"log p{j}" for j in range(2, TOP_K + 1))]
                    + [f"top-1 is {c}" for c in classes]
                    + ["bias"],
                    [round(float(w), 4) for w in reference],
                    strict=True,
                )
            ),
        },
        "budget": BUDGET,
        "target": TARGET,
        "chosen_reaches": reached,
        "share_of_errors_found_within": summary,
        "cruises": cruises,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "review_queue.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(curves_of[args.seed], headline["errors"], args.seed, args.out / "review_queue.png")
    console.print(f"wrote {args.out / 'review_queue.json'} and review_queue.png")


def plot(curves: dict[str, np.ndarray], n_errors: int, seed: int, path: Path) -> None:
    """Cumulative share of the errors found against the share of objects reviewed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for name, curve in curves.items():
        x = np.linspace(0, 100, len(curve))
        style = {"color": "black", "linestyle": ":"} if name.startswith("oracle") else {}
        if name == CHOSEN:
            name, style = f"{name} (chosen)", {"linewidth": 2.4, "zorder": 5}
        ax.plot(x, 100 * curve / max(1, curve[-1]), label=name, **style)
    ax.plot([0, 100], [0, 100], color="grey", linestyle="--", label="random order")
    ax.axvline(100 * BUDGET, color="grey", linewidth=0.8)
    ax.axhline(100 * TARGET, color="grey", linewidth=0.8)
    ax.set_xlim(0, 40)
    ax.set_ylim(0, 101)
    ax.set_xlabel("objects reviewed (% of the cruise, most likely wrong first)")
    ax.set_ylabel("model errors found (%)")
    ax.set_title(f"'Most likely wrong' queue: {n_errors} errors, seed {seed}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()

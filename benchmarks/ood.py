"""Unknown means unknown: how many objects unlike anything in training are reported unknown?

Runs the daemon's plankton head (ONNX Runtime, the card's softmax threshold and its
out-of-distribution score, :mod:`seawatch.contracts.ood` or the outlier-exposure scorer of
:mod:`seawatch.contracts.ood_scorer`) on four sets, none seen in training (nor drawn by the
scorer's fit):

- in_distribution  the ten training taxa, a fresh draw as the model serves them: ROIs and
                   objects segmented from full frames (60/40, as in training)
- held_out_taxa    :data:`seawatch.models.plankton.novel.TEST_TAXA` (dinoflagellate, ciliate,
                   centric diatom, medusa, polychaete larva), the training instrument's optics;
                   never used for a choice or a fit
- shifted          the shifted instrument (:mod:`seawatch.models.plankton.shifted`): other
                   optics and styles of the ten taxa plus its two new taxa (all 12)
- calibration_taxa :data:`~seawatch.models.plankton.novel.CALIBRATION_TAXA`, a fresh draw of
                   the taxa the fit was checked on (a reference row, not a test)

For each: the share reported unknown with the softmax threshold alone and with the OOD
score added (same run, same outputs), and the score's AUROC against the in-distribution set;
and the serving cost (ms per 64 objects, one thread: the graph, the OOD score on its outputs).
Seeds: development draws 7_1xx_xxx (the fits'); the final numbers use a seed in
7_900_000-7_999_999, reserved and never used for a choice (default 7_900_041; 7_900_040
was the kNN score's). Writes benchmarks/results/ood.json and ood.png (score histograms
per set) for the default seed, ood_<seed>.json/.png for another reserved one.

    python benchmarks/ood.py [--model models/plankton] [--seed 7900041] [--per-taxon 100]
        [--tag NAME]   # ood_<seed>_<NAME>.json: a new results file beside the earlier ones
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from seawatch.config import resolve_model_dir
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.ood import load_ood
from seawatch.contracts.preprocess import batch_tensor
from seawatch.contracts.records import UNKNOWN
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.plankton.head import PlanktonClassifier
from seawatch.models.plankton.novel import CALIBRATION_TAXA, TEST_TAXA, novel_set
from seawatch.models.plankton.shifted import NEW_TAXA, SHIFTED_TAXA, shifted_set
from seawatch.models.plankton.synthetic_sets import synthetic_split

RESULTS = Path(__file__).parent / "results"
FINAL_SEED = 7_900_041  # 7_900_040: the kNN score's final seed, rerun for comparison
TARGET_UNKNOWN, TARGET_KNOWN = 0.90, 0.05


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an outside object > score of an inside one), ties counted half."""
    both = np.concatenate([inside, outside])
    ranks = np.argsort(np.argsort(both, kind="stable"), kind="stable") + 1.0
    for value in np.unique(both):  # average ranks of ties
        tied = both == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    r_out = ranks[len(inside) :].sum()
    n_in, n_out = len(inside), len(outside)
    return float((r_out - n_out * (n_out + 1) / 2) / (n_in * n_out))


def draw_sets(seed: int, per_taxon: int, size: int) -> dict[str, tuple[np.ndarray, list[str]]]:
    """The four sets of the module docstring: prepared crops and their taxon names."""
    ind, _ = synthetic_split("test", per_taxon, seed=seed, size=size)
    held, held_y = novel_set(per_taxon, seed + 1, taxa=TEST_TAXA, size=size)
    shift, shift_y = shifted_set(max(1, per_taxon // 2), seed + 2, size=size)
    calib, calib_y = novel_set(per_taxon // 2, seed + 3, taxa=CALIBRATION_TAXA, size=size)
    return {
        "in_distribution": (ind.images, [ind.class_names[i] for i in ind.labels]),
        "held_out_taxa": (held, [TEST_TAXA[i] for i in held_y]),
        "shifted": (shift, [SHIFTED_TAXA[i] for i in shift_y]),
        "calibration_taxa": (calib, [CALIBRATION_TAXA[i] for i in calib_y]),
    }


def measure(head: PlanktonClassifier, images: np.ndarray, names: list[str]) -> dict:
    """Unknown shares (softmax alone, with OOD), per taxon, and the raw scores."""
    outputs = head.infer(batch_tensor(list(images)))
    with_ood = np.array([p.taxon == UNKNOWN for p in head.interpret(outputs)])
    softmax = outputs.probs.max(1) < head.threshold
    per_taxon = {
        taxon: round(float(with_ood[np.array(names) == taxon].mean()), 4)
        for taxon in sorted(set(names))
    }
    return {
        "n": len(names),
        "unknown_softmax_alone": round(float(softmax.mean()), 4),
        "unknown_with_ood": round(float(with_ood.mean()), 4),
        "unknown_by_taxon": per_taxon,
        "scores": outputs.ood,
    }


def plot(results: dict, threshold: float, path: Path, title: str, xlabel: str) -> None:
    """Histograms of the OOD score per set, with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    low = min(float(np.quantile(r["scores"], 0.005)) for r in results.values())
    top = max(float(np.quantile(r["scores"], 0.995)) for r in results.values())
    bins = np.linspace(min(low, threshold), max(top, threshold), 60)
    colours = ("tab:blue", "tab:red", "tab:orange", "tab:gray")
    for (name, r), colour in zip(results.items(), colours, strict=False):
        ax.hist(r["scores"], bins=bins, density=True, histtype="step", linewidth=1.6,
                color=colour, label=f"{name} ({r['unknown_with_ood']:.0%} unknown)")  # fmt: skip
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def serving_ms(head: PlanktonClassifier, images: np.ndarray, repeats: int = 20) -> dict:
    """Milliseconds per 64 objects: the graph alone, and the OOD score on its outputs, with
    one BLAS thread as the daemon runs it (``inference.blas_threads``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _serving_ms(head, images, repeats)


def _serving_ms(head: PlanktonClassifier, images: np.ndarray, repeats: int) -> dict:
    x = batch_tensor(list(images[:64]))
    outputs = head.backend.run_outputs(x)
    features, probs = np.asarray(outputs[1], np.float32), outputs[0]
    stage3 = [] if head._stage3_at is None else [outputs[head._stage3_at]]

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return round(float(np.median(times)) * 1000, 2)

    return {
        "graph": best(lambda: head.backend.run_outputs(x)),
        "ood_score": best(lambda: head.ood.scores(features, probs, x, *stage3)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/plankton"))
    parser.add_argument("--seed", type=int, default=FINAL_SEED)
    parser.add_argument("--per-taxon", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="", help="appended to the result files' names")
    args = parser.parse_args()
    console = Console()
    start = time.perf_counter()
    model = resolve_model_dir(args.model)
    card = load_card(model)
    detector = load_ood(model, card.ood)
    if detector is None:
        raise SystemExit(f"{model} has no OOD score; run `seawatch train plankton-ood` first")
    backend = OnnxRuntimeBackend(model / ONNX_FILE, threads=1)
    head = PlanktonClassifier(backend, card, max_batch=256, top_k=3, ood=detector)
    sets = draw_sets(args.seed, args.per_taxon, card.input.size)
    results = {name: measure(head, *data) for name, data in sets.items()}
    cost = serving_ms(head, sets["in_distribution"][0])
    inside = results["in_distribution"]["scores"]
    for r in results.values():
        r["auroc_vs_in_distribution"] = round(auroc(inside, r["scores"]), 4)
    shifted_new = {t: results["shifted"]["unknown_by_taxon"][t] for t in NEW_TAXA}
    table = Table(title=f"Unknown means unknown ({card.release}, seed {args.seed})")
    for column in ("set", "n", "softmax alone", "+ OOD score", "AUROC (score)"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, r in results.items():
        shares = (r["unknown_softmax_alone"], r["unknown_with_ood"])
        auc = r["auroc_vs_in_distribution"]
        table.add_row(name, str(r["n"]), *(f"{v:.1%}" for v in shares), f"{auc:.3f}")
    console.print(table)
    met = (
        results["held_out_taxa"]["unknown_with_ood"] >= TARGET_UNKNOWN
        and results["shifted"]["unknown_with_ood"] >= TARGET_UNKNOWN
        and results["in_distribution"]["unknown_with_ood"] <= TARGET_KNOWN
    )
    console.print(
        f"target: >= {TARGET_UNKNOWN:.0%} of held-out taxa and shifted images unknown, <= "
        f"{TARGET_KNOWN:.0%} of in-distribution: {'met' if met else 'NOT met'}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    final = 7_900_000 <= args.seed <= 7_999_999
    report = {
        "model": card.release,
        "ood": {k: card.ood[k] for k in ("method", "k", "threshold")}
        | {"inputs": sorted(card.ood.get("inputs", {}))}
        if card.ood
        else None,
        "seed": args.seed,
        "seed_kind": "reserved (final numbers)" if final else "development",
        "per_taxon": args.per_taxon,
        "sets": {n: {k: v for k, v in r.items() if k != "scores"} for n, r in results.items()},
        "shifted_new_taxa_unknown": shifted_new,
        "target": {"unknown_at_least": TARGET_UNKNOWN, "known_flagged_at_most": TARGET_KNOWN},
        "target_met": met,
        "serving_ms_per_64_objects": cost
        | {"threads": "1 ONNX, 1 BLAS", "statistic": "median of 20"},
        "seconds": round(time.perf_counter() - start, 1),
        "machine": platform.platform(),
    }
    if final:
        name = "ood" if args.seed == FINAL_SEED and not args.tag else f"ood_{args.seed}"
    else:
        name = f"ood_dev_{args.seed}"
    name += f"_{args.tag}" if args.tag else ""
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    method = card.ood["method"] if card.ood else "?"
    title = f"{card.release}, seed {args.seed}: OOD score per set ({method})"
    xlabel = (
        "OOD score: logit of 'outlier' (features, softmax, image statistics"
        + (", stage 3)" if "stage3" in card.ood.get("inputs", {}) else ")")
        if method == "outlier_exposure"
        else "OOD score: 1 - cosine to the nearest training object (penultimate features)"
    )
    plot(results, detector.threshold, args.out / f"{name}.png", title, xlabel)
    console.print(
        f"serving, ms per 64 objects (1 ONNX and 1 BLAS thread): graph {cost['graph']}, OOD score "
        f"{cost['ood_score']}"
    )
    console.print(f"wrote {args.out / name}.json and .png ({report['seconds']} s)")


if __name__ == "__main__":
    main()

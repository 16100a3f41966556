"""False-match rate against gallery size, one threshold vs the card's per-size table (issue
28, eighth round), on the committed model's held-out evaluation split (no stream draw).

The table is calibrated on the calibration individuals' sightings (480, 48 fish) against
the card's gallery (168), as ``seawatch evaluate fish --calibrate-sizes`` does. It is tested
on other strangers, the *unseen-unknown* individuals' sightings (480, 24 fish, never used for
it), against galleries of N individuals drawn from the card's 168 and the 48 calibration
fish enrolled from 3 held-out renders each (216 in all): the exact mean over all galleries
of N (:func:`~seawatch.models.fish.size_thresholds.false_match_rate`). Writes a JSON and a
PNG.

    python experiments/fish/gallery_size_fmr.py --out benchmarks/results/fish_gallery_size_fmr
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.models.fish.data import FishData, render_set
from seawatch.models.fish.evaluate import onnx_embedder
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.size_thresholds import (
    SizeThresholds,
    false_match_rate,
    thresholds_by_size,
)

MODEL = Path(__file__).resolve().parents[2] / "models" / "fish"
TEST_SIZES = (1, 2, 5, 10, 20, 50, 100, 168, 216)


def embedded_sets(model: Path, cache: Path | None) -> dict[str, np.ndarray]:
    """The evaluation split's embeddings (and labels), rendered as ``run_protocol`` does,
    plus enrolment renders of the calibration fish; kept in ``cache`` (an .npz) if given."""
    if cache is not None and cache.exists():
        return dict(np.load(cache))
    card = load_card(model)
    data = FishData.from_summary(card.training.data)
    individuals, groups = data.individuals(), data.groups()
    embed = onnx_embedder(model / ONNX_FILE)
    plan = {
        "enrol": (data.gallery_indices(), data.enrol_per_individual, "enrol"),
        "calibration_enrol": (groups["calibration"], data.enrol_per_individual, "enrol"),
        "calibration": (groups["calibration"], data.calibration_per_individual, "query"),
        "seen": (groups["seen"], data.query_per_individual, "query"),
        "unseen_known": (groups["unseen_known"], data.query_per_individual, "query"),
        "unseen_unknown": (groups["unseen_unknown"], data.unknown_per_individual, "query"),
    }
    out = {}
    for key, (indices, per, purpose) in plan.items():
        images, labels, _ = render_set(data, individuals, list(indices), per, purpose)
        emb = np.concatenate([embed(images[i : i + 128]) for i in range(0, len(images), 128)])
        out[key], out[f"{key}_labels"] = emb.astype(np.float32), labels
    out["gallery_indices"] = np.array(data.gallery_indices())
    if cache is not None:
        np.savez(cache, **out)
    return out


def gallery_of(sets: dict[str, np.ndarray], parts: tuple[str, ...]) -> Gallery:
    """A gallery of the individuals of ``parts`` (enrolment renders)."""
    gallery = Gallery()
    for part in parts:
        emb, labels = sets[part], sets[f"{part}_labels"]
        for label in dict.fromkeys(labels.tolist()):
            gallery.enrol(f"fish-{label}", emb[labels == label])
    return gallery


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True, help="path without suffix")
    args = parser.parse_args()
    card = load_card(args.model)
    far = card.thresholds.get("target_false_match_rate", 0.01)
    single = float(card.thresholds["match_similarity"])
    sets = embedded_sets(args.model, args.cache)
    calib = gallery_of(sets, ("enrol",)).scores(sets["calibration"])
    table = thresholds_by_size(calib, far)
    by_size = SizeThresholds(table)
    test = gallery_of(sets, ("enrol", "calibration_enrol")).scores(sets["unseen_unknown"])
    rows = []
    for n in TEST_SIZES:
        t = by_size.at(n)
        rows.append(
            {
                "gallery_size": n,
                "single_threshold": single,
                "fmr_single": round(false_match_rate(test, single, n), 4),
                "size_threshold": t,
                "fmr_size": round(false_match_rate(test, t, n), 4),
                "calibration_fmr_single": round(false_match_rate(calib, single, min(n, 168)), 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "experiment": "gallery_size_fmr",
        "command": "python experiments/fish/gallery_size_fmr.py --out " + str(args.out),
        "target_false_match_rate": far,
        "table": table,
        "test": "480 sightings of the 24 unseen-unknown fish against galleries of N of 216",
        "rows": rows,
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(rows, far, args.out.with_suffix(".png"))


def _plot(rows: list[dict], far: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["gallery_size"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(n, [r["fmr_single"] for r in rows], "o-", label="one threshold (0.7113)")
    ax.plot(n, [r["fmr_size"] for r in rows], "s-", label="threshold per gallery size")
    ax.axhline(far, color="grey", ls="--", label=f"target {far:g}")
    ax.set_xscale("log")
    ax.set_xlabel("gallery size N (individuals)")
    ax.set_ylabel("false-match rate (new fish matched)")
    ax.set_title("Unseen-unknown fish vs galleries of N (exact mean)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

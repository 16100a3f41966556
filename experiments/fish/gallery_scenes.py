"""The committed gallery against the same gallery with detector-style views added (issue 28,
``seawatch gallery enrol-scenes``), on development whole-frame draws and on the model's
held-out strangers.

Streams: each seed's cached prepare + embed of ``benchmarks/fish_open_set_frames.py --cache``
(threshold detector, gate on, 3,000 sightings), decided in the daemon's default mode
(tracklets, the card's threshold, no re-ranking) against each gallery in turn; the open-set
figures per seed and summed as counts (known declared new, known on their own fish, known
to another known fish, mixed ids, strangers' sightings named as a known fish, alerts, ids
per new fish).

Strangers: the false-match rate at the card's threshold of the evaluation split's
calibration sightings (480, 48 fish never enrolled; what the threshold was calibrated on)
and unseen-unknown sightings (480, 24 fish), each gallery's best score per sighting, as
``evaluate.py`` measures it; and the evaluation split's known queries' top-1 at the
threshold. Embeddings from ``experiments/fish/gallery_size_fmr.py``'s ``embedded_sets``.

    python experiments/fish/gallery_scenes.py --cache CACHE --eval-cache EMB.npz \\
        --galleries committed=models/fish/gallery.npz k2=G2.npz k4=G4.npz \\
        --seeds 7100400 ... --out benchmarks/results/fish_gallery_scenes_dev.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(Path(__file__).resolve().parent)]

from gallery_size_fmr import MODEL, embedded_sets  # noqa: E402

from fish_open_set_frames import cached, run_mode, with_shown  # noqa: E402
from seawatch.contracts.card import load_card  # noqa: E402
from seawatch.models.fish.gallery import Gallery  # noqa: E402

SUMMED = ("declared_new", "own", "other_known", "unknown")


def stream_figures(run: dict) -> dict:
    """A run's figures as counts of known sightings (and its id and alert figures)."""
    known = run["matched_known_sightings"]
    count = {
        "declared_new": run["matched_known_declared_new"],
        "own": run["matched_known_right"],
        "other_known": run["matched_known_wrong"],
        "unknown": run["matched_known_unknown"],
    }
    out = {"known_sightings": known} | {k: round(v * known) for k, v in count.items()}
    out |= {k: run[f"matched_{k}"] for k in ("ids", "mixed_ids", "new_fish", "ids_per_new_fish")}
    new = run["matched_new_sightings"]
    out["new_sightings"] = new  # strangers' sightings, and those named as a known fish
    out["new_as_known"] = round(run["matched_new_matched_known"] * new)
    out["alerts_all"] = run["new_fish_alerts_all"]
    out["new_fish_in_frames"] = run["new_fish_in_frames"]
    return out


def stranger_figures(gallery: Gallery, sets: dict[str, np.ndarray], threshold: float) -> dict:
    """False-match rates of never-enrolled fish and known queries' top-1 at ``threshold``."""
    out: dict[str, float | int] = {"views": sum(e.n_embeddings for e in gallery.list())}
    for part in ("calibration", "unseen_unknown"):
        best = gallery.scores(sets[part]).max(1)
        out[f"{part}_false_match_rate"] = round(float((best >= threshold).mean()), 4)
    ids = np.array([int(i.split("-")[-1]) for i in gallery.ids])
    for part in ("seen", "unseen_known"):
        scores = gallery.scores(sets[part])
        top = ids[scores.argmax(1)]
        right = (top == sets[f"{part}_labels"]) & (scores.max(1) >= threshold)
        out[f"{part}_top1_at_threshold"] = round(float(right.mean()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--galleries", nargs="+", required=True, help="label=path.npz")
    parser.add_argument("--cache", type=Path, required=True, help="fish_open_set_frames cache")
    parser.add_argument("--eval-cache", type=Path, default=None, help="embedded_sets .npz")
    parser.add_argument("--sightings", type=int, default=3000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for seed in args.seeds:
        if not 7_100_000 <= seed < 7_200_000:
            parser.error(f"development seeds only (7,1xx,xxx), got {seed}")
    galleries = dict(g.split("=", 1) for g in args.galleries)
    threshold = float(load_card(MODEL).thresholds["match_similarity"])
    sets = embedded_sets(MODEL, args.eval_cache)
    strangers = {
        label: stranger_figures(Gallery.load(Path(path)), sets, threshold)
        for label, path in galleries.items()
    }
    print(json.dumps(strangers), file=sys.stderr, flush=True)
    per_seed: list[dict] = []
    for seed in args.seeds:
        key = f"{seed}-threshold-on-{args.sightings}"
        frames, batches, outputs, _, _ = cached(args.cache, key, _missing(key))
        frames = with_shown(args.cache, seed, args.sightings, frames)
        for label, path in galleries.items():
            run = run_mode("tracklets", frames, batches, outputs, gallery_file=Path(path))
            row = {"seed": seed, "gallery": label, **stream_figures(run)}
            per_seed.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    totals = {label: _total([r for r in per_seed if r["gallery"] == label]) for label in galleries}
    result = {
        "experiment": "fish_gallery_scenes",
        "command": " ".join(["python", "experiments/fish/gallery_scenes.py", *sys.argv[1:]]),
        "threshold": threshold,
        "galleries": galleries,
        "seeds": args.seeds,
        "strangers": strangers,
        "totals": totals,
        "per_seed": per_seed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"strangers": strangers, "totals": totals}, indent=2))


def _missing(key: str):
    def make():
        raise SystemExit(f"{key} is not cached: run benchmarks/fish_open_set_frames.py --cache")

    return make


def _total(rows: list[dict]) -> dict:
    """Counts summed over seeds; ids per new fish pooled over the seeds' new fish."""
    summed = {k: sum(r[k] for r in rows) for k in ("known_sightings", *SUMMED)}
    counted = ("ids", "mixed_ids", "alerts_all", "new_sightings", "new_as_known")
    summed |= {k: sum(r[k] for r in rows) for k in counted}
    new = sum(r["new_fish"] for r in rows)
    summed["new_fish"] = new
    summed["ids_per_new_fish"] = round(
        sum(r["ids_per_new_fish"] * r["new_fish"] for r in rows) / max(1, new), 4
    )
    summed["alerts_per_new_fish"] = round(
        summed["alerts_all"] / max(1, sum(r["new_fish_in_frames"] for r in rows)), 4
    )
    summed["seeds"] = len(rows)
    return summed


if __name__ == "__main__":
    main()

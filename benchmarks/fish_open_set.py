"""Fish re-identification in the open set (issue 28), through the daemon's own head.

A synthetic tank stream (:mod:`seawatch.models.fish.open_set_stream`: 3,000 sightings of 60
known and 20 new fish, seen in visits of 1-8 frames by 4 cameras, 1-4 fish a frame, some
views poor on purpose) is embedded once with the committed model (ONNX Runtime), then decided
batch by batch, in capture order, by :class:`~seawatch.models.fish.head.FishIdentifier`
against a fresh copy of the committed gallery, once per mode:

``single``     the head as it was before issue 28: every sighting alone (no tracklets)
``tracklets``  sightings linked into tracklets, decided as a group, quality gated (the default)

Figures (:mod:`seawatch.models.fish.open_set_score`): known sightings declared new / given
another known fish / left undecided, ids per new fish, ids mixing two fish, "new fish"
alerts against new fish, and the head's decide time per sighting (CPU).

Development seeds are 7,100,400-7,100,499; 7,900,080, 7,900,082, 7,900,084 and 7,900,085 are
reserved for the final figures (each scored once per round of choices, never used for one).

    python benchmarks/fish_open_set.py [--seeds 7100400 7100401] [--modes single tracklets]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FISH_DIR = HERE.parent / "models" / "fish"
RESULTS = HERE / "results" / "fish_open_set.json"
BATCH = 32


def embed(stream, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The committed model's raw embeddings (cached by seed) and the views' quality scores
    (always scored again: the score's rule may have changed since the cache was made)."""
    from seawatch.contracts.card import ONNX_FILE
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.head import fish_input8
    from seawatch.models.fish.quality import view_quality

    inputs8 = [fish_input8(s.image, 64, 160) for s in stream]
    quality = np.array([view_quality(x) for x in inputs8], np.float32)
    if cache is not None and cache.exists():
        return np.load(cache)["embeddings"], quality
    tensor = np.stack(inputs8).transpose(0, 3, 1, 2).astype(np.float32)
    with OnnxRuntimeBackend(FISH_DIR / ONNX_FILE, threads=1) as backend:
        out = np.concatenate([backend.run(tensor[i : i + 64]) for i in range(0, len(tensor), 64)])
    if cache is not None:
        np.savez(cache, embeddings=out, quality=quality)
    return out, quality


def run_mode(
    mode: str,
    stream,
    embeddings: np.ndarray,
    quality: np.ndarray,
    *,
    by_size: bool = False,
    known_only: bool = False,
    expand: bool = False,
) -> dict:
    """Decide the stream with the head in ``mode``; its score and decide time. ``by_size``:
    the card's threshold for the gallery's size (``tasks.fish.options.
    threshold_by_gallery_size``); ``expand``: scores re-ranked by query expansion
    (``query_expansion``); ``known_only``: a gallery of the stream's known fish alone (60)
    instead of the committed one (168)."""
    from threadpoolctl import threadpool_limits

    from seawatch.contracts.card import load_card
    from seawatch.models.fish.gallery import Gallery
    from seawatch.models.fish.gallery_records import SightingSource
    from seawatch.models.fish.head import FishIdentifier
    from seawatch.models.fish.open_set_score import Answer, score_open_set
    from seawatch.models.fish.tracklets import Place

    threadpool_limits(1, user_api="blas")  # as the daemon sets it
    card = load_card(FISH_DIR)
    gallery = Gallery.load(FISH_DIR / card.files["gallery"])
    if known_only:
        gallery = gallery.only({s.truth for s in stream if s.known})
    head = FishIdentifier(
        None,  # type: ignore[arg-type]
        card,
        gallery,
        max_batch=64,
        tracklets=mode == "tracklets",
        by_gallery_size=by_size,
        query_expansion=expand,
    )
    answers: list[Answer] = []
    started = time.process_time()
    for i in range(0, len(stream), BATCH):
        batch = stream[i : i + BATCH]
        sources = [
            SightingSource(s.uid, s.captured_at_ns, f"bench/0/{i + k}") for k, s in enumerate(batch)
        ]
        places = [
            Place(s.camera, s.captured_at_ns, s.box, float(q))
            for s, q in zip(batch, quality[i : i + BATCH], strict=True)
        ]
        decided = head.decide(
            head.normalise(embeddings[i : i + BATCH]), sources=sources, places=places
        )
        answers += [Answer(d.individual, d.new_individual) for d in decided]
    decide_s = time.process_time() - started
    decided_end = head.decider.merges if head.decider is not None else []
    score = score_open_set([(s.truth, s.known) for s in stream], answers, gallery.resolve)
    return {
        "mode": mode,
        **score.as_dict(),
        "merges": len(decided_end),
        "decide_us_per_sighting": round(decide_s / len(stream) * 1e6, 1),
        "gallery_ids": len(gallery),
    }


def main() -> None:
    from fish_variants import add_variant_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7100400, 7100401, 7100402])
    parser.add_argument("--modes", nargs="+", default=["single", "tracklets"])
    parser.add_argument("--sightings", type=int, default=3000)
    parser.add_argument("--cache", type=Path, default=None, help="folder for the embeddings")
    parser.add_argument("--out", type=Path, default=RESULTS)
    add_variant_args(parser)
    args = parser.parse_args()
    from seawatch.models.fish.open_set_stream import open_set_stream

    runs = []
    for seed in args.seeds:
        started = time.monotonic()
        stream = open_set_stream(seed, sightings=args.sightings)
        cache = args.cache / f"fish_open_set_{seed}_{args.sightings}.npz" if args.cache else None
        embeddings, quality = embed(stream, cache)
        prepared_s = time.monotonic() - started
        variants = itertools.product(args.modes, args.size_thresholds, args.gallery, args.rerank)
        for mode, sizes, kind, rerank in variants:
            on, known, qe = sizes == "on", kind == "known", rerank == "qe"
            scored = run_mode(
                mode, stream, embeddings, quality, by_size=on, known_only=known, expand=qe
            )
            run = {"seed": seed, "size_thresholds": sizes, "gallery": kind, "rerank": rerank}
            run |= scored
            run["stream_seconds"] = round(prepared_s, 1)
            runs.append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
    result = {
        "benchmark": "fish_open_set",
        "command": " ".join(["python", "benchmarks/fish_open_set.py", *sys.argv[1:]]),
        "machine": platform.platform(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Fish re-identification in the open set on whole tank frames (issue 28), through the head.

The open-set stream of ``benchmarks/fish_open_set.py`` (3,000 sightings of 60 known and 20
new fish, 1-4 fish a frame) rendered as whole tank frames
(:mod:`seawatch.models.fish.open_set_frames`: both directions, some fish across the edge,
some covered by another or by an occluder). Each frame goes the daemon's whole-frame way
through :class:`~seawatch.models.fish.head.FishIdentifier` (``whole_frames``): ``prepare``
(find, orient, cut each fish) -> ``stack`` -> the committed model (ONNX Runtime, one
thread) -> ``finish`` (decide, against a fresh copy of the committed gallery, in batches of
16 frames in capture order), once per mode (``single``: each sighting alone; ``tracklets``:
the default). Prepare and embed run once per seed; each mode decides the same outputs.

Each record's box is matched to a drawn fish, one to one (``--truth``): ``visible`` (the
default) by what the crop shows, the fish most of whose visible pixels the box holds
(:func:`~seawatch.models.fish.visible_truth.match_visible`); ``outline`` by the drawn
outline box, hidden part included (IoU >= 0.5,
:func:`~seawatch.models.fish.tank_scene.match_boxes`; the rule of rounds one to six; both
runs in turn when both are named). Figures: detection recall and
precision (missed fish, false detections), then the open-set figures
(:mod:`seawatch.models.fish.open_set_score`) over the matched sightings, and the "new fish"
alerts of all detections (false ones included) against the new fish.

Development seeds are 7,100,400-7,100,499; 7,900,083 and 7,900,086-096 are reserved for the
final figures (each scored once per round of choices, never used for one).

``--per-sighting FILE`` appends one JSON line per detection (its record, its view's quality,
the drawn fish it was matched to and why that one may be hard, the fish it overlaps): the
material to see which sightings mix ids.

``--view-check`` adds, per seed, single views of known fish without tracklets
(``benchmarks/fish_view_check.py``; ``--modes`` with no mode: that check alone).

``--cache DIR`` keeps each seed's frames (without their pixels), prepared batches and model
outputs in ``DIR`` and reuses them on the next run: the decision alone is then rerun (what
makes trying a decision rule on several development seeds cheap).

``--detectors threshold model`` runs the same frames through both whole-frame detectors
(``tasks.fish.options.detector``) in one run; ``--gates on off`` with and without the
outline gate (:mod:`seawatch.models.fish.outline_gate`; off: no detection is marked poor).

    python benchmarks/fish_open_set_frames.py [--seeds 7100400] [--modes single tracklets]
        [--detectors threshold model] [--gates on off] [--truth visible outline]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np

# fish_frames_embed beside this file, also when imported as benchmarks.fish_open_set_frames
sys.path.append(str(Path(__file__).resolve().parent))
from fish_frames_embed import BATCH, FISH_DIR, SEG_DIR, prepare_and_embed

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "fish_open_set_frames.json"
PARTLY = 0.25  # a missed fish with a false detection this close was found in part


def cached(cache: Path | None, key: str, make):
    """``make()``'s value, kept in ``cache/key.pkl`` (None: no cache, always made). Only
    this benchmark's own files are read back (pickle)."""
    if cache is None:
        return make()
    path = cache / f"{key}.pkl"
    if path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    value = make()
    cache.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
    return value


def _light(frames, batches):
    """Frames without their pixels and batches without the detections' full-size crops
    (the decision and the scoring use neither), for the cache."""
    frames = [dataclasses.replace(f, image=np.zeros((1, 1, 3), np.uint8)) for f in frames]
    for batch in batches:
        for p in batch:
            p.objects = [dataclasses.replace(o, image=o.image[:1, :1]) for o in p.objects]
    return frames, batches


def render(seed: int, sightings: int = 3000) -> tuple[list, list]:
    """A seed's open-set stream and its whole frames."""
    from seawatch.models.fish.open_set_frames import open_set_frames
    from seawatch.models.fish.open_set_stream import open_set_stream

    stream = open_set_stream(seed, sightings=sightings)
    return stream, open_set_frames(stream, seed)


def with_shown(cache: Path | None, seed: int, sightings: int, frames) -> list:
    """``frames`` with each fish's visible pixels (``FrameFish.shown``): as they are, or,
    from a cache written before those were kept, the same frames rendered again (kept in
    ``cache`` beside it; the drawn fish must be the same)."""
    if all(getattr(f, "shown", None) is not None for s in frames for f in s.fish):
        return frames

    def again():
        return _light(render(seed, sightings)[1], [])[0]

    fresh = cached(cache, f"{seed}-shown-{sightings}", again)
    if [s.fish for s in fresh] != [s.fish for s in frames]:
        raise ValueError(f"seed {seed}: the cached frames differ from a fresh render")
    return fresh


def _miss_kind(fish, i: int) -> str:
    """Why a drawn fish may have been missed: its poor view, the edge, another fish's box
    overlapping its own (found as one), covered, or none of these (``clear``)."""
    from seawatch.models.fish.tank_scene import iou

    f = fish[i]
    if f.poor or f.edge:
        return f.poor or "edge"
    if any(iou(f.box, g.box) > 0 for k, g in enumerate(fish) if k != i):
        return "touching"
    return "covered" if f.visible < 0.8 else "clear"


def _row(b: int, scene, prepared, record, k: int, fish) -> dict:
    """One sighting's line of the per-sighting output: the record, its view's quality, and
    the drawn fish it was matched to (None: a false detection; ``over`` the drawn fish it
    overlaps most, and by how much)."""
    from seawatch.models.fish.quality import view_quality
    from seawatch.models.fish.tank_scene import iou

    overlaps = sorted(((iou(f.box, record.bbox), f.truth) for f in scene.fish), reverse=True)
    row = {
        "batch": b,
        "camera": scene.camera,
        "captured_at_ns": scene.captured_at_ns,
        "box": list(record.bbox),
        "individual": record.individual,
        "similarity": record.similarity,
        "new_individual": record.new_individual,
        "quality": round(view_quality(prepared.crops[k]), 1),
        "over": [[round(v, 3), t] for v, t in overlaps[:2] if v > 0],
        "truth": None,
    }
    if fish is not None:
        i = scene.fish.index(fish)
        row |= {"truth": fish.truth, "known": fish.known, "kind": _miss_kind(scene.fish, i)}
        row["facing_right"] = fish.facing_right
    return row


def match_truth(truth: str, fish, boxes) -> list[tuple[int, int]]:
    """(drawn fish, found box) pairs under ``truth``: ``visible`` (what each crop shows,
    :func:`~seawatch.models.fish.visible_truth.match_visible`) or ``outline`` (the drawn
    outline boxes, :func:`~seawatch.models.fish.tank_scene.match_boxes`)."""
    from seawatch.models.fish.tank_scene import match_boxes
    from seawatch.models.fish.visible_truth import match_visible

    if truth == "outline":
        return match_boxes([f.box for f in fish], boxes)
    if truth != "visible":
        raise ValueError(f"truth must be visible or outline, got {truth!r}")
    if any(getattr(f, "shown", None) is None for f in fish):
        raise ValueError("--truth visible needs the frames' visible pixels (a re-render)")
    return match_visible([f.shown for f in fish], boxes)


def run_mode(
    mode: str,
    frames,
    batches,
    outputs,
    rows: list | None = None,
    decider=None,
    truth="visible",
    *,
    by_size: bool = False,
    known_only: bool = False,
    expand: bool = False,
    gallery_file: Path | None = None,
) -> dict:
    """Decide every batch with a fresh head in ``mode``; detection and open-set figures (and
    one row per detection into ``rows`` when given). ``decider``: a function of the gallery
    and the threshold giving the ``tracklets`` mode's decider (a variant of a rule), else
    the head's own. ``truth``: which drawn fish a box is (:func:`match_truth`). ``by_size``:
    the card's threshold for the gallery's size (``threshold_by_gallery_size``);
    ``expand``: scores re-ranked by query expansion (``query_expansion``);
    ``known_only``: a gallery of the stream's known fish alone instead of the committed one;
    ``gallery_file``: another gallery than the card's (``seawatch gallery enrol-scenes``)."""
    from threadpoolctl import threadpool_limits

    from seawatch.contracts.card import load_card
    from seawatch.models.fish.gallery import Gallery
    from seawatch.models.fish.head import FishIdentifier
    from seawatch.models.fish.open_set_score import Answer, score_open_set
    from seawatch.models.fish.tank_scene import iou

    threadpool_limits(1, user_api="blas")  # as the daemon sets it
    card = load_card(FISH_DIR)
    gallery = Gallery.load(gallery_file or FISH_DIR / card.files["gallery"])
    if known_only:
        gallery = gallery.only({f.truth for s in frames for f in s.fish if f.known})
    head = FishIdentifier(
        None,  # type: ignore[arg-type]
        card,
        gallery,
        max_batch=64,
        tracklets=mode == "tracklets",
        whole_frames=True,
        by_gallery_size=by_size,
        query_expansion=expand,
    )
    if decider is not None and head.decider is not None:
        head.decider = decider(gallery, head.threshold)
    labels: list[tuple[str, bool]] = []
    answers: list[Answer] = []
    drawn = found = false_alerts = partly = 0
    missed: dict[str, int] = {}
    decide_s = 0.0
    for b, (batch, out) in enumerate(zip(batches, outputs, strict=True)):
        t0 = time.process_time()
        results = head.finish(batch, out, 0.0)
        decide_s += time.process_time() - t0
        for k, result in enumerate(results):
            scene = frames[b * BATCH + k]
            records = result.sightings
            pairs = match_truth(truth, scene.fish, [r.bbox for r in records])
            drawn, found = drawn + len(scene.fish), found + len(records)
            hit, matched = {i for i, _ in pairs}, {j for _, j in pairs}
            spare = [r for j, r in enumerate(records) if j not in matched]
            for i in set(range(len(scene.fish))) - hit:
                why = _miss_kind(scene.fish, i)
                missed[why] = missed.get(why, 0) + 1
                partly += any(iou(scene.fish[i].box, r.bbox) >= PARTLY for r in spare)
            for i, j in pairs:
                labels.append((scene.fish[i].truth, scene.fish[i].known))
                answers.append(Answer(records[j].individual, records[j].new_individual))
            false_alerts += sum(r.new_individual for r in spare)
            if rows is not None:
                fish_of = {j: scene.fish[i] for i, j in pairs}
                rows += [
                    _row(b, scene, batch[k], r, j, fish_of.get(j)) for j, r in enumerate(records)
                ]
    score = score_open_set(labels, answers, gallery.resolve).as_dict()
    strangers = {f.truth for s in frames for f in s.fish if not f.known}
    alerts = score["new_fish_alerts"] + false_alerts
    return {
        "mode": mode,
        "frames": len(frames),
        "fish_drawn": drawn,
        "detections": found,
        "detection_recall": round(len(labels) / max(1, drawn), 4),
        "detection_precision": round(len(labels) / max(1, found), 4),
        "missed": drawn - len(labels),
        "missed_by_kind": dict(sorted(missed.items())),
        "false_detections": found - len(labels),
        "missed_partly_found": partly,  # a false detection on it, IoU 0.25-0.5 (fins lost)
        "false_detection_new_fish_alerts": false_alerts,
        "new_fish_in_frames": len(strangers),
        "new_fish_alerts_all": alerts,
        "alerts_all_per_new_fish": round(alerts / max(1, len(strangers)), 4),
        **{f"matched_{k}": v for k, v in score.items()},
        "merges": len(head.decider.merges) if head.decider is not None else 0,
        # detections the occlusion rule called two fish under one box (occlusion.py)
        "merge_detections": head.decider.merged if head.decider is not None else 0,
        "decide_us_per_sighting": round(decide_s / max(1, found) * 1e6, 1),
    }


def main() -> None:
    from fish_variants import add_variant_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7100400])
    parser.add_argument("--modes", nargs="*", default=["single", "tracklets"])
    parser.add_argument(
        "--view-check", action="store_true", help="also score single views (view_check)"
    )
    parser.add_argument(
        "--detectors",
        nargs="+",
        choices=["threshold", "model"],
        default=["threshold"],
        help="whole-frame detectors to compare (tasks.fish.options.detector), each in turn",
    )
    parser.add_argument(
        "--gates",
        nargs="+",
        choices=["on", "off"],
        default=["on"],
        help="with and/or without the outline gate (outline_gate.py), each in turn",
    )
    parser.add_argument(
        "--truth",
        nargs="+",
        choices=["visible", "outline"],
        default=["visible"],
        help="which drawn fish a found box is: what it shows, or the outline box (match_truth)",
    )
    add_variant_args(parser)
    parser.add_argument("--seg-model", type=Path, default=SEG_DIR, help="for --detectors model")
    parser.add_argument("--sightings", type=int, default=3000)
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep prepare + embed per seed here, reuse it"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--per-sighting", type=Path, default=None, help="JSON lines, one per detection"
    )
    args = parser.parse_args()
    from fish_view_check import view_check

    runs = []
    for seed in args.seeds:
        if args.view_check:
            stream, frames = render(seed, args.sightings)
            check = {"seed": seed, "mode": "view-check", **view_check(stream, frames)}
            runs.append(check)
            print(json.dumps(check), file=sys.stderr, flush=True)
        if not args.modes:
            continue
        for detector, gate in itertools.product(args.detectors, args.gates):
            on = gate == "on"

            def make(seed: int = seed, detector: str = detector, on: bool = on):
                t0 = time.monotonic()
                frames = render(seed, args.sightings)[1]
                rendered_s = time.monotonic() - t0
                batches, outputs, cost = prepare_and_embed(frames, detector, args.seg_model, on)
                return (*_light(frames, batches), outputs, cost, rendered_s)

            key = f"{seed}-{detector}-{gate}-{args.sightings}"
            frames, batches, outputs, cost, rendered_s = cached(args.cache, key, make)
            if "visible" in args.truth:
                frames = with_shown(args.cache, seed, args.sightings, frames)
            variants = itertools.product(
                args.modes, args.truth, args.size_thresholds, args.gallery, args.rerank
            )
            for mode, truth, sizes, kind, rerank in variants:
                rows: list[dict] | None = [] if args.per_sighting else None
                on, known, qe = sizes == "on", kind == "known", rerank == "qe"
                scored = run_mode(
                    mode,
                    frames,
                    batches,
                    outputs,
                    rows,
                    truth=truth,
                    by_size=on,
                    known_only=known,
                    expand=qe,
                )
                tag = {"seed": seed, "mode": mode, "detector": detector, "gate": gate}
                tag["truth_rule"] = truth  # "truth" in a row is its drawn fish
                tag |= {"size_thresholds": sizes, "gallery": kind, "rerank": rerank}
                run = {**tag, **scored, **cost}
                if args.per_sighting and rows is not None:
                    with args.per_sighting.open("a") as out:
                        out.writelines(json.dumps(tag | r) + "\n" for r in rows)
                run["render_seconds"] = round(rendered_s, 1)
                runs.append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    result = {
        "benchmark": "fish_open_set_frames",
        "command": " ".join(["python", "benchmarks/fish_open_set_frames.py", *sys.argv[1:]]),
        "machine": platform.platform(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

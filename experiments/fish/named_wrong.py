"""Which sightings put an id on a fish it is not (issue 28's ids mixing two fish), read from
``benchmarks/fish_open_set_frames.py --per-sighting`` rows: per seed, each id's fish (a known
id: its own name; a new one: the fish most of its sightings are), and every sighting named
as an id whose fish it is not, with what may explain it (the second drawn fish its box lies
over, its view's quality, its similarity, whether it raised the alert).

    python experiments/fish/named_wrong.py ROWS.jsonl [ROWS.jsonl ...]
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path


def named_wrong(rows: list[dict]) -> tuple[int, int, list[dict]]:
    """(ids, ids mixing two fish, the sightings named as another fish's id) over one seed's
    matched rows (false detections are left out, as the scoring does)."""
    by_id: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if r["truth"] is not None and r["individual"] != "unknown":
            by_id[r["individual"]][r["truth"]] += 1
    owner = {
        i: (i if i in c else c.most_common(1)[0][0])
        if i.startswith("zf-")
        else c.most_common(1)[0][0]
        for i, c in by_id.items()
    }
    wrong = [
        r
        for r in rows
        if r["truth"] is not None
        and r["individual"] != "unknown"
        and r["truth"] != owner[r["individual"]]
    ]
    mixed = sum(len(c) > 1 for c in by_id.values())
    return len(by_id), mixed, wrong


def main() -> None:
    rows: dict[tuple, list[dict]] = defaultdict(list)
    for path in sys.argv[1:]:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            rows[(r["seed"], r.get("variant", ""))].append(r)
    for key, seed_rows in sorted(rows.items()):
        ids, mixed, wrong = named_wrong(seed_rows)
        print(f"{key}: {ids} ids, {mixed} mixed, {len(wrong)} sightings named wrong")
        for r in wrong:
            second = r["over"][1][0] if len(r["over"]) > 1 else 0.0
            print(
                f"   {r['camera']} t={r['captured_at_ns'] % 10**12 // 10**6} {r['truth']} as "
                f"{r['individual']} sim={r['similarity']:.3f} q={r['quality']} "
                f"over={r['over']} second={second:.2f} new={r['new_individual']} kind={r['kind']}"
            )


if __name__ == "__main__":
    main()

"""The otolith detector's final number, on a test draw that nothing had scored before.

The card's own test draw (seed 3,000,017) scored every model version and the lab scripts
during development, so it is a development figure now (issue 23). This script scores the
committed artifact, and its 1- and 4-view serving re-exports, on a fresh draw from the range
reserved for final numbers (7,900,000-7,999,999; this one: 7,900,050, used once, on the
committed 0.6.0 detector) with the card's sizes (400 normal specimens, 100 per defect), each at
its own calibrated threshold, through the daemon's head (ONNX Runtime). Development and lab
scripts use validation draws only.

Writes ``benchmarks/results/otolith_final.json`` and the trained graph's ``roc.png`` /
``heatmaps.png`` (under ``otolith_final/``); ``--record`` also writes each result into its card as
``metrics.reserved_test`` (the command, seed and date with it).

    python benchmarks/otolith_final.py [--seed 7900050] [--record]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from seawatch.contracts.card import CARD_FILE
from seawatch.models.otolith.evaluate import evaluate_otolith

RESERVED_SEED = 7_900_050
VARIANTS = {"8 views (trained graph)": "", "4 views (CPU auto)": "views4", "1 view": "views1"}
RESULTS = Path(__file__).parent / "results"


def _record(model_dir: Path, result: dict, command: str) -> None:
    """Write ``result`` into the card's ``metrics.reserved_test`` (other keys untouched)."""
    path = model_dir / CARD_FILE
    card = json.loads(path.read_text())
    card["metrics"]["reserved_test"] = result | {"command": command}
    path.write_text(json.dumps(card, indent=2) + "\n")


def main() -> None:
    """Score each variant on the reserved draw; print the table; write the JSON (and cards)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/otolith"))
    parser.add_argument("--seed", type=int, default=RESERVED_SEED)
    parser.add_argument("--record", action="store_true", help="write the results into the cards")
    args = parser.parse_args()
    if not 7_900_000 <= args.seed <= 7_999_999:
        parser.error(f"--seed {args.seed}: final numbers use the reserved range 7900000-7999999")
    command = f"python benchmarks/otolith_final.py --seed {args.seed}"
    rows, scratch = {}, Path(tempfile.mkdtemp(prefix="otolith-final-"))
    for name, sub in VARIANTS.items():
        model_dir = args.model / sub if sub else args.model
        figures = scratch / sub if sub else RESULTS / "otolith_final"
        start = time.perf_counter()
        m = evaluate_otolith(model_dir, figures, seed=args.seed)
        m |= {"seconds": round(time.perf_counter() - start, 1), "model": str(model_dir)}
        m |= {"date": datetime.now(UTC).date().isoformat()}
        rows[name] = m
        if args.record:
            _record(model_dir, m, command)
    table = Table(title=f"otolith on the reserved draw (seed {args.seed}, 400 + 5 x 100)")
    for column in ("variant", "AUROC", "false alarms", "detection", "broken", "crack"):
        table.add_column(column)
    for name, m in rows.items():
        per_type = m["auroc_per_type"]
        table.add_row(
            name,
            f"{m['auroc']:.4f}",
            f"{m['false_alarm_rate']:.1%}",
            f"{m['detection_rate']:.1%}",
            f"{per_type['broken']:.3f}",
            f"{per_type['crack']:.3f}",
        )
    Console().print(table)
    out = {"seed": args.seed, "command": command, "machine": platform.node(), "results": rows}
    (RESULTS / "otolith_final.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

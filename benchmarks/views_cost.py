"""What test-time dihedral views cost the plankton classifier (issue 24, ``--views``).

The committed plankton network (same weights) is exported three times, averaging 1, 4 and
8 dihedral views of each crop inside the graph (``seawatch train plankton --views``), and
each graph is timed per batch of 64 prepared crops (development draw, seed 7_100_901) with
one ONNX Runtime thread, as the daemon's inference thread runs it: thread CPU time, the
minimum and median of ``--repeats`` calls, the three graphs interleaved round by round so
the VM's load hits them alike. Prints the cost of each as a ratio to one view, and writes
``benchmarks/results/views_cost.json``.

    python benchmarks/views_cost.py [--model models/plankton] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from seawatch.config import resolve_model_dir
from seawatch.contracts.card import load_card
from seawatch.contracts.preprocess import batch_tensor
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.plankton.export import export_onnx
from seawatch.models.plankton.network import VIEW_COUNTS
from seawatch.models.plankton.reexport import rebuild_network
from seawatch.models.plankton.synthetic_sets import synthetic_split

SEED, BATCH = 7_100_901, 64
RESULT = Path(__file__).parent / "results" / "views_cost.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/plankton"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    model = resolve_model_dir(args.model)
    card, net = load_card(model), rebuild_network(model)
    split, _ = synthetic_split("test", 10, seed=SEED, size=card.input.size)
    x = batch_tensor(list(split.images[:BATCH]))
    with tempfile.TemporaryDirectory() as tmp:
        backends = {
            views: OnnxRuntimeBackend(
                export_onnx(net, Path(tmp) / f"v{views}.onnx", size=card.input.size, views=views),
                threads=1,
            )
            for views in VIEW_COUNTS
        }
        times: dict[int, list[float]] = {views: [] for views in VIEW_COUNTS}
        for backend in backends.values():
            backend.run_outputs(x)  # warm-up
        for _ in range(args.repeats):
            for views, backend in backends.items():
                start = time.thread_time()
                backend.run_outputs(x)
                times[views].append(time.thread_time() - start)
    ms = {
        str(v): {"min": round(min(t) * 1000, 2), "median": round(float(np.median(t)) * 1000, 2)}
        for v, t in times.items()
    }
    ratio = {v: round(ms[v]["min"] / ms["1"]["min"], 2) for v in ms}
    for v in ms:
        print(
            f"{v} view(s): {ms[v]['min']:.1f} ms min, {ms[v]['median']:.1f} ms median per "
            f"{BATCH} crops; {ratio[v]:.2f}x one view"
        )
    record = {
        "command": f"python benchmarks/views_cost.py --model {args.model} --repeats {args.repeats}",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, one ONNX Runtime thread, thread CPU time",
        "model": card.release,
        "batch": BATCH,
        "ms_per_batch": ms,
        "ratio_to_one_view": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""What ``benchmarks/pipeline.py`` holds the daemon against: the machine's all-core limit
(ONNX Runtime alone, best of thread counts and batch sizes) and the Quix Streams peer
(``benchmarks/peers/quix_app.py``, a child process on the same broker, topic and model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

QUIX_APP = Path(__file__).parent / "peers" / "quix_app.py"
LIMIT_BATCHES = (16, 64, 256)
LIMIT_SAMPLE = 2048  # model inputs per configuration of the sweep


def cpus() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0))


def sweep_limit(onnx: Path, tensor: np.ndarray) -> dict:
    """Objects/s of ONNX Runtime alone for every (threads, batch) on a sample of the model
    inputs; the best is the machine's limit for this model."""
    sample = tensor[:LIMIT_SAMPLE]
    rows = []
    for threads in sorted({1, cpus()}):
        backend = OnnxRuntimeBackend(onnx, threads=threads)
        try:
            for batch in LIMIT_BATCHES:
                backend.run(sample[:batch])  # warm-up at this shape
                seconds = min(run_all(backend, sample, batch) for _ in range(2))
                per_s = round(len(sample) / seconds, 1)
                rows.append({"threads": threads, "batch": batch, "objects_per_s": per_s})
        finally:
            backend.close()
    best = max(rows, key=lambda r: r["objects_per_s"])
    return {"threads": best["threads"], "batch": best["batch"], "sweep": rows}


def run_all(backend: OnnxRuntimeBackend, tensor: np.ndarray, batch: int) -> float:
    """Seconds for ONNX Runtime to run every model input once, in batches of ``batch``."""
    started = time.perf_counter()
    for start in range(0, len(tensor), batch):
        backend.run(tensor[start : start + batch])
    return time.perf_counter() - started


def bench_quix(
    servers: str, topic: str, task: str, model_dir: Path, db: Path, count: int, threads: int
) -> dict:
    """Run the Quix Streams peer over ``count`` frames of ``topic`` (a group of its own);
    its JSON line: frames, rows stored, seconds (first message -> stored and committed)."""
    command = [
        sys.executable, str(QUIX_APP), "--broker", servers, "--topic", topic,
        "--group", f"quix-{topic}", "--task", task, "--model-dir", str(model_dir),
        "--db", str(db), "--count", str(count), "--threads", str(threads),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the Quix peer failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


__all__ = ["bench_quix", "cpus", "run_all", "sweep_limit"]

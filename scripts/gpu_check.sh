#!/usr/bin/env bash
# The GPU paths on a machine with an NVIDIA GPU, in one command (under 8 minutes):
#   scripts/gpu_check.sh [--json PATH] [--budget-s 420] [--frames 600] [--no-pipeline]
# Builds and parity-checks every committed model on ONNX Runtime's CUDA and TensorRT
# execution providers, TensorRT itself (where importable) and torch CUDA, then runs the
# daemon's pipeline on the GPU against the CPU; writes benchmarks/results/gpu.json (or
# --json PATH). A backend the machine lacks is recorded as "not available", not a failure.
# Needs no pip: the repository's .venv python if there is one, else python3, with src/ on
# the path (that python needs seawatch's dependencies; torch, onnxruntime-gpu, TensorRT
# are each optional).
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
if [ -x .venv/bin/python ] && .venv/bin/python -c "import seawatch" 2>/dev/null; then
    python=.venv/bin/python
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# The script stops starting steps at --budget-s; this stops it for good before 8 minutes.
exec timeout --kill-after=10 470 "$python" benchmarks/gpu_check.py "$@"

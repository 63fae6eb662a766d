#!/usr/bin/env bash
# GPU check for a lent GPU machine: time 20 NB201 models with the agent's TensorFlow and PyTorch GPU
# backends (3 repeats each), print the latencies and the repeat CV, and write
# benchmarks/results/gpu_check.json. Stays under 5 minutes (hard limit below; the script itself stops
# starting new models after 270 s).
#
#   benchmarks/gpu_check.sh                  # on the GPU
#   benchmarks/gpu_check.sh --cpu            # same code path on the CPU with tiny runs (a smoke test)
#   benchmarks/gpu_check.sh --frameworks torch --models 10
#
# Needs: the project installed with the `torch` extra (a CUDA build of torch on a GPU host) and, for the
# TensorFlow half, a TensorFlow that sees GPUs (`pip install 'tensorflow[and-cuda]==2.21.0'`; the
# `models` extra installs tensorflow-cpu). PYTHON overrides the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

cpu=0
for arg in "$@"; do [ "$arg" = "--cpu" ] && cpu=1; done
if [ "$cpu" = 0 ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L; then
    echo "gpu_check: no NVIDIA GPU visible (nvidia-smi); use --cpu for the CPU smoke test" >&2
    exit 2
  fi
fi

export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export PYTHONUNBUFFERED=1
exec timeout --signal=INT --kill-after=15 295 "$PY" benchmarks/gpu_check.py "$@"

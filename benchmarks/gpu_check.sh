#!/usr/bin/env bash
# GPU checks in one go: the tests marked `gpu` and the GPU benchmarks.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (results land in OUT_DIR, default $OUT or ./gpu_out)
# The interpreter is $PYTHON, else .venv/bin/python, else python3; the checkout is put on
# PYTHONPATH so that a machine with torch but without our install runs it as is (the
# GPU benchmarks need numpy, torch, tqdm, scipy and networkx: bab_throughput.py compiles
# its case with gridverify.grid; the GPU tests need those and pytest and hypothesis; onnx
# is not needed).  Output: one log, gpu_check.log, and one JSON per benchmark (six files
# in all).  Without CUDA the GPU-only benchmarks print `cuda: skipped (no CUDA)`, exit 0
# and write no JSON, and the run goes on.
# Others append their GPU benchmarks at the end of this file.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_out}}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
: >"$LOG"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
step() { echo "=== $* ($(date -u +%T))" | tee -a "$LOG"; }

step versions
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>&1 | tee -a "$LOG"

# 1. tests marked gpu (cuda-parametrized cases), only the files that hold such tests
step "pytest -m gpu"
set -o pipefail
"$PY" -m pytest -q -m gpu -p no:cacheprovider $(grep -rlE "mark\.gpu" tests) 2>&1 | tee -a "$LOG" || status=1

# 2. bound engine benchmark (CROWN / alpha-CROWN vs IBP, 3 sizes, 1 and 256 domains)
step "benchmarks/bounds.py cuda"
timeout "${BOUNDS_TIMEOUT:-150}" "$PY" benchmarks/bounds.py --device cuda \
    --json "$OUT_DIR/bounds_cuda_float64.json" 2>&1 | tee -a "$LOG" || status=1

# 3. branch-and-bound throughput: domains/s on CPU and GPU for case57_relu (p_balance)
step "bab_throughput case57_relu"
timeout "${BAB_TIMEOUT:-110}" "$PY" benchmarks/bab_throughput.py --devices cpu,cuda --seconds 30 \
    --json "$OUT_DIR/bab_throughput.json" 2>&1 | tee -a "$LOG" || status=1

# 4. the same on the verification-friendly case57 proxy (input splitting, focused rows)
step "bab_throughput case57 stable"
timeout "${BAB_TIMEOUT:-110}" "$PY" benchmarks/bab_throughput.py --devices cpu,cuda --seconds 20 \
    --case case57s --json "$OUT_DIR/bab_throughput_stable.json" 2>&1 | tee -a "$LOG" || status=1

# 5. domains/s on CPU and GPU for case118_relu (split multipliers on, default options)
step "bab_throughput case118_relu"
timeout "${BAB_TIMEOUT:-110}" "$PY" benchmarks/bab_throughput.py --devices cpu,cuda --seconds 20 \
    --case case118 --json "$OUT_DIR/bab_throughput_118.json" 2>&1 | tee -a "$LOG" || status=1

# 6. least-area slope search on the GPU: batched grid against plain bisection
step "slope_search cuda"
timeout 60 "$PY" benchmarks/slope_search.py --device cuda --sizes 512,8192,65536 \
    --json "$OUT_DIR/slope_search_cuda.json" 2>&1 | tee -a "$LOG" || status=1

step "done, status $status"
exit $status

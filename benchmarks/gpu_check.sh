#!/usr/bin/env bash
# GPU checks in one go: the tests marked `gpu` and the GPU benchmarks.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (results land in OUT_DIR, default $OUT or ./gpu_out)
# Others append their GPU benchmarks at the end of this file.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_out}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
status=0

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

# 1. tests marked gpu (cuda-parametrized cases)
"$PY" -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tee "$OUT_DIR/pytest_gpu.txt" || status=1

# 2. bound engine benchmark (CROWN / alpha-CROWN vs IBP, 3 sizes, 1 and 256 domains)
timeout "${BOUNDS_TIMEOUT:-420}" "$PY" benchmarks/bounds.py --device cuda \
    --json "$OUT_DIR/bounds_cuda_float64.json" 2>&1 | tee "$OUT_DIR/bounds_cuda_float64.txt" || status=1

# 3. branch-and-bound throughput: domains/s on CPU and GPU for case57_relu (p_balance)
timeout "${BAB_TIMEOUT:-240}" "$PY" benchmarks/bab_throughput.py --devices cpu,cuda --seconds 30 \
    --json "$OUT_DIR/bab_throughput.json" 2>&1 | tee "$OUT_DIR/bab_throughput.txt" || status=1

# 4. the same on the verification-friendly case57 proxy (input splitting, focused rows)
timeout "${BAB_TIMEOUT:-240}" "$PY" benchmarks/bab_throughput.py --devices cpu,cuda --seconds 20 \
    --case case57s --json "$OUT_DIR/bab_throughput_stable.json" 2>&1 \
    | tee "$OUT_DIR/bab_throughput_stable.txt" || status=1

# 5. domains/s on CPU and GPU for case118_relu (split multipliers on, default options)
timeout "${BAB_TIMEOUT:-240}" "$PY" benchmarks/bab_throughput.py --devices cpu,cuda --seconds 20 \
    --case case118 --json "$OUT_DIR/bab_throughput_118.json" 2>&1 \
    | tee "$OUT_DIR/bab_throughput_118.txt" || status=1

exit $status

#!/bin/bash
# VNN-COMP tool interface: run one instance.
# Arguments: "v1", benchmark category, .onnx path, .vnnlib path, results path, timeout (s).
# Writes the results file: unsat, sat with a counterexample ((X_0 v) ... (Y_0 v) ...),
# unknown, timeout, or error (when gridverify could not read the instance).

START=$(date +%s.%N)
VERSION_STRING=v1
if [ "${1:-}" != "$VERSION_STRING" ]; then
    echo "Expected first argument (version string) '$VERSION_STRING', got '${1:-}'"
    exit 1
fi
if [ "$#" -ne 6 ]; then
    echo "Usage: $0 v1 CATEGORY ONNX_FILE VNNLIB_FILE RESULTS_FILE TIMEOUT"
    exit 1
fi

CATEGORY=$2
ONNX_FILE=$3
VNNLIB_FILE=$4
RESULTS_FILE=$5
TIMEOUT=$6

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL_DIR="$(dirname "$SCRIPT_DIR")"
if [ -x "$TOOL_DIR/.venv/bin/python" ]; then
    PY="$TOOL_DIR/.venv/bin/python"
else
    PY=python3
fi

echo "Running gridverify on category '$CATEGORY': onnx '$ONNX_FILE', vnnlib '$VNNLIB_FILE', results '$RESULTS_FILE', timeout $TIMEOUT"
rm -f "$RESULTS_FILE"

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
"$PY" -m gridverify.cli.vnncomp run "$ONNX_FILE" "$VNNLIB_FILE" \
    --timeout "$TIMEOUT" --out "$RESULTS_FILE" --device auto --started-at "$START"
STATUS=$?
echo "gridverify exit status $STATUS"

if [ ! -s "$RESULTS_FILE" ]; then
    echo "error" > "$RESULTS_FILE"
fi
exit 0

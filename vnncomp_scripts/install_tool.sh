#!/bin/bash
# VNN-COMP tool interface: install gridverify.  One argument, the version string "v1".
# Creates a virtual environment next to the repository (.venv, reused when it exists)
# and installs the package with its dependencies (CPU torch unless a GPU is present).
set -euo pipefail

VERSION_STRING=v1
if [ "${1:-}" != "$VERSION_STRING" ]; then
    echo "Expected first argument (version string) '$VERSION_STRING', got '${1:-}'"
    exit 1
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL_DIR="$(dirname "$SCRIPT_DIR")"
VENV="$TOOL_DIR/.venv"
PYTHON_BIN="${PYTHON:-python3}"

echo "Installing gridverify into $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON_BIN" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    # a CUDA build of torch (the default wheel on Linux), then the package
    "$VENV/bin/python" -m pip install torch
    "$VENV/bin/python" -m pip install -e "$TOOL_DIR"
else
    "$VENV/bin/python" -m pip install -e "$TOOL_DIR[cpu]"
fi

# smoke test: the command runs and imports its ONNX path
"$VENV/bin/python" -m gridverify --version
"$VENV/bin/python" -c "import gridverify.vnncomp.runner, onnxruntime, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
echo "gridverify installed"

#!/bin/bash
# VNN-COMP tool interface: prepare one instance.
# Arguments: "v1", benchmark category, path to the .onnx file, path to the .vnnlib file.
# No analysis happens here: it checks the arguments and that the files are readable.
# A non-zero exit tells the organisers to skip the instance.

VERSION_STRING=v1
if [ "${1:-}" != "$VERSION_STRING" ]; then
    echo "Expected first argument (version string) '$VERSION_STRING', got '${1:-}'"
    exit 1
fi
if [ "$#" -ne 4 ]; then
    echo "Usage: $0 v1 CATEGORY ONNX_FILE VNNLIB_FILE"
    exit 1
fi

CATEGORY=$2
ONNX_FILE=$3
VNNLIB_FILE=$4
echo "Preparing gridverify for category '$CATEGORY' with onnx file '$ONNX_FILE' and vnnlib file '$VNNLIB_FILE'"

for f in "$ONNX_FILE" "$VNNLIB_FILE"; do
    if [ ! -r "$f" ] && [ ! -r "$f.gz" ]; then
        echo "cannot read '$f'"
        exit 1
    fi
done
exit 0

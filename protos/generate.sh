#!/usr/bin/env bash
# Regenerates the Python code for protos/faceedit/v1 into OUT (default services).
# Usage: protos/generate.sh [OUT]   (run from the repo root with the project venv's python on PATH)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/services}
py=${PYTHON:-$root/.venv/bin/python}
mkdir -p "$out/faceedit/v1"
rm -f "$out"/faceedit/v1/*_pb2*.py "$out"/faceedit/v1/*_pb2*.pyi
"$py" -m grpc_tools.protoc -I"$root/protos" \
  --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-mypy="$(dirname "$py")/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$(dirname "$py")/protoc-gen-mypy_grpc" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  "$root"/protos/faceedit/v1/*.proto
touch "$out/faceedit/v1/__init__.py"

#!/usr/bin/env bash
# `make gpu-wheels`: download the wheels the GPU machine's image lacks (deploy/gpu/requirements.txt at the versions
# of constraints.txt), for its Python 3.12 on manylinux x86_64, binary only, into $GPU_WHEELS (build/gpu-wheels, git-
# ignored), and check that they and the working tree fit what a device `run` carries (64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
WHEELS=${GPU_WHEELS:-build/gpu-wheels}
LIMIT_MIB=${GPU_CARRY_LIMIT_MIB:-64}
# pip matches a manylinux tag's glibc version exactly: offer every one a wheel of these packages is built for.
PLATFORMS=()
for tag in manylinux_2_{17..39}_x86_64 manylinux2014_x86_64 manylinux1_x86_64 linux_x86_64; do
  PLATFORMS+=(--platform "$tag")
done
rm -rf "$WHEELS" && mkdir -p "$WHEELS"
mapfile -t PINS < <("$PY" deploy/gpu/wheels.py pins)
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" --dest "$WHEELS" "${PINS[@]}"
count=$(find "$WHEELS" -name '*.whl' | wc -l)
if [ "$count" -ne "${#PINS[@]}" ]; then
  echo "gpu-wheels: expected ${#PINS[@]} wheels, got $count in $WHEELS" >&2
  exit 1
fi
wheels_bytes=$(du -cb "$WHEELS"/*.whl | tail -1 | cut -f1)
# What travels besides: tracked and untracked-not-ignored files (the device tool's rule).
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
total=$((wheels_bytes + tree_bytes))
limit=$((LIMIT_MIB * 1024 * 1024))
ls -l "$WHEELS"
awk -v n="$count" -v w="$wheels_bytes" -v t="$tree_bytes" -v l="$LIMIT_MIB" 'BEGIN {
  printf "gpu-wheels: %d wheels, %.1f MiB + working tree %.1f MiB = %.1f MiB of the %d MiB a run carries\n",
    n, w / 1048576, t / 1048576, (w + t) / 1048576, l }'
if [ "$total" -gt "$limit" ]; then
  echo "gpu-wheels: over the carry limit; drop a wheel or shrink the working tree" >&2
  exit 1
fi

#!/usr/bin/env bash
# `make gpu-check` on the GPU machine (no network): install the carried wheels the image lacks, then run
# `faceedit gpu-check` under one overall timeout, so the whole run, installs included, ends within
# GPU_CHECK_SECONDS (450: under the 8 minutes that leave a second try in the session's 15). Writes gpu-check.json,
# gpu-check.md, gpu-check.log and the stack's logs to $OUT (the device tool brings that folder back).
#
#   device run: command "bash deploy/gpu/run.sh", carry ["build/gpu-wheels"], timeout_s 540
set -uo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS
OUT=${OUT:-out/gpu-check}
WHEELS=${GPU_WHEELS:-build/gpu-wheels}
TOTAL=${GPU_CHECK_SECONDS:-450}
PY=${GPU_PYTHON:-python3}
SITE=/tmp/faceedit-gpu-site
SRC=/tmp/faceedit-gpu-src
WORK=/tmp/faceedit-gpu-work
mkdir -p "$OUT"
log() { echo "[run.sh $((SECONDS - started))s] $*" | tee -a "$OUT/gpu-check.log"; }

# The project as an import tree: faceedit from services/, faceedit.export from export/ (pyproject's mapping),
# without building it (its requires-python stops at 3.11; the image is 3.12).
rm -rf "$SRC" "$SITE" && mkdir -p "$SRC" "$SITE"
cp -r services/faceedit "$SRC/faceedit" && cp -r export "$SRC/faceedit/export"
mapfile -t NEED < <("$PY" deploy/gpu/wheels.py needed "$WHEELS") || { log "wheel check failed"; exit 1; }
log "installing ${#NEED[@]} carried wheels: ${NEED[*]##*/}"
if [ "${#NEED[@]}" -gt 0 ]; then
  "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "${NEED[@]}" \
    2>&1 | tee -a "$OUT/gpu-check.log" || { log "wheel install failed"; exit 1; }
fi
export PYTHONPATH="$SRC:$SITE" PYTHONUNBUFFERED=1
"$PY" -m pip list 2>/dev/null | grep -iE '^(torch|diffusers|transformers|onnxruntime|grpcio|protobuf|tritonclient) ' \
  | tee -a "$OUT/gpu-check.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$OUT/gpu-check.log"

left=$((TOTAL - (SECONDS - started)))
# No case starts in the last 60 s: one would not finish, and its half-measured figures would be cut anyway.
log "gpu-check: ${left}s left, new cases until $((left - 60))s"
timeout -k 15 "$left" "$PY" -m faceedit.cli.main gpu-check --device cuda --out "$OUT" --workdir "$WORK" \
  --budget "$((left - 60))" "$@" 2>&1 | tee -a "$OUT/gpu-check.log"
status=${PIPESTATUS[0]}
log "gpu-check exited with $status (124: the overall timeout; the JSON holds every case that finished)"
for name in inpainter orchestrator parser; do
  [ -f "$WORK/stack/$name.log" ] && tail -n 200 "$WORK/stack/$name.log" > "$OUT/stack-$name.log"
done
exit "$status"

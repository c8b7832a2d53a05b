#!/bin/sh
# Fills the model cache for production: the face parser exported to ONNX (parity-checked against PyTorch; a
# mismatch fails the Job) into Triton's model repository, and the inpainter's pipeline and VAE into HF_HOME.
# Env: MODELS_DIR, TRITON_CONFIG, PARSER_MODEL, INPAINT_MODEL, INPAINT_VAE (optional), INPAINT_REVISION and
# INPAINT_VARIANT (optional), HF_HOME.
set -eu
: "${MODELS_DIR:?}" "${TRITON_CONFIG:?}" "${PARSER_MODEL:?}" "${INPAINT_MODEL:?}" "${HF_HOME:?}"

repo="$MODELS_DIR/triton/face_parser"
staging="$MODELS_DIR/tmp"
mkdir -p "$repo/1" "$staging"

python -m faceedit.export.onnx_export --model "$PARSER_MODEL" --out "$staging/model.onnx"
mv "$staging/model.onnx" "$repo/1/model.onnx"
cp "$TRITON_CONFIG" "$staging/config.pbtxt"
mv "$staging/config.pbtxt" "$repo/config.pbtxt"

python "$(dirname "$0")/fetch_pipeline.py"
rm -rf "$staging"
echo "model cache filled: $repo, $HF_HOME"

#!/bin/sh
# Fills the model cache for the cpu-tiny overlay, offline: a tiny random SegFormer exported to ONNX (parity-checked)
# into Triton's model repository, and a tiny random SDXL inpainting pipeline. Random weights are seeded, so every
# run writes the same models.
# Env: MODELS_DIR, TRITON_CONFIG, PARSER_MODEL (checkpoint dir to build), INPAINT_MODEL (pipeline dir to build).
set -eu
: "${MODELS_DIR:?}" "${TRITON_CONFIG:?}" "${PARSER_MODEL:?}" "${INPAINT_MODEL:?}"

repo="$MODELS_DIR/triton/face_parser"
staging="$MODELS_DIR/tmp"
mkdir -p "$repo/1" "$staging"
rm -rf "$staging/parser-tiny" "$staging/inpaint-tiny"

python -m faceedit.export.segformer --size tiny --out "$staging/parser-tiny"
python -m faceedit.export.onnx_export --model "$staging/parser-tiny" --out "$staging/model.onnx"
python -m faceedit.export.tiny_sdxl --out "$staging/inpaint-tiny"

rm -rf "$PARSER_MODEL" "$INPAINT_MODEL"
mv "$staging/parser-tiny" "$PARSER_MODEL"
mv "$staging/inpaint-tiny" "$INPAINT_MODEL"
mv "$staging/model.onnx" "$repo/1/model.onnx"
cp "$TRITON_CONFIG" "$staging/config.pbtxt"
mv "$staging/config.pbtxt" "$repo/config.pbtxt"
rm -rf "$staging"
echo "model cache filled: $repo, $PARSER_MODEL, $INPAINT_MODEL"

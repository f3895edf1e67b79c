#!/usr/bin/env bash
# The ONNX export check, for CI: pinned onnx, onnxruntime, numpy and safetensors from PyPI (no
# torch) in the check venv, every fixture model exported by the built idlevit (dense, and IdleViT
# at r = 0.5 / 0.7 / 0.9, or the ratios its reference has, with the selections as outputs), then Fixtures/check_onnx_export.py:
# full onnx.checker, the graph contract, and ONNX Runtime at batch 1 and 2 against the committed
# PyTorch references (logits within 1e-4, selected sets identical).
#
#   Fixtures/check_onnx_export_ci.sh [path/to/idlevit]     (default: .build/debug/idlevit, then release)
#
# Exits non-zero when an export or a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

IDLEVIT=${1:-}
if [ -z "$IDLEVIT" ]; then
    for candidate in .build/debug/idlevit .build/release/idlevit; do
        [ -x "$candidate" ] && IDLEVIT=$candidate && break
    done
fi
[ -n "$IDLEVIT" ] && [ -x "$IDLEVIT" ] || { echo "check_onnx_export_ci: no idlevit binary (build first or pass its path)" >&2; exit 2; }

# The venv check_bundle_ci.sh makes (same variable), with the ONNX packages added.
VENV=${CHECK_BUNDLE_VENV:-.build/check-bundle-venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check numpy==2.4.6 safetensors==0.8.0 onnx==1.23.2 onnxruntime==1.31.1

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

CASES=()
failed=0
# name | model | reference | convert options [| input, default: the model's folder's]
export_case() {
    local name=$1 model=$2 reference=$3 options=$4 input=${5:-$(dirname "$2")/input.safetensors}
    local onnx="$OUT/$name.onnx"
    # shellcheck disable=SC2086
    if ! "$IDLEVIT" convert "$model" --to onnx -o "$onnx" $options >/dev/null; then
        echo "check_onnx_export_ci: idlevit convert failed for $name" >&2
        failed=1
        return
    fi
    CASES+=(--case "$onnx" "$input" "$reference")
}
for fixture in micro micro-distilled tiny12; do
    model=Fixtures/$fixture/model.safetensors
    export_case "$fixture-dense" "$model" "Fixtures/$fixture/reference.safetensors" ""
    for r in 0.5 0.7 0.9; do
        export_case "$fixture-r$r" "$model" "Fixtures/$fixture/idle-$r.safetensors" "--keep-ratio $r --selection-outputs"
    done
done
# DeiT-III (LayerScale, position embedding on the patches only), a ViT without qkv bias and an
# LV-ViT (convolutional stem with BatchNorm, skip_lam, token-labelling head), all dim 32 with 2
# heads (not DeiT's head size 64: --heads says so).
for fixture in deit3-micro vit-micro lvvit-micro; do
    model=Fixtures/$fixture/model.safetensors
    export_case "$fixture-dense" "$model" "Fixtures/$fixture/reference.safetensors" "--heads 2"
    for r in 0.5 0.7; do
        export_case "$fixture-r$r" "$model" "Fixtures/$fixture/idle-$r.safetensors" "--heads 2 --keep-ratio $r --selection-outputs"
    done
done
# Other paths through the writer and the translation: external data, the Gelu op (opset 20+),
# another input format, keep ratio 1 (the dense graph), a bundle.
export_case micro-r0.7-external Fixtures/micro/model.safetensors Fixtures/micro/idle-0.7.safetensors "--keep-ratio 0.7 --selection-outputs --external-data"
export_case micro-distilled-r0.5-opset21 Fixtures/micro-distilled/model-opset17.onnx Fixtures/micro-distilled/idle-0.5.safetensors "--keep-ratio 0.5 --selection-outputs --opset 21"
# A bundle exports with its stored schedule.
if "$IDLEVIT" convert Fixtures/micro/model.safetensors --keep-ratio 0.7 -o "$OUT/micro-r0.7.idlevit.safetensors" >/dev/null; then
    export_case micro-bundle-r0.7 "$OUT/micro-r0.7.idlevit.safetensors" Fixtures/micro/idle-0.7.safetensors "--selection-outputs" \
        Fixtures/micro/input.safetensors
else
    echo "check_onnx_export_ci: idlevit convert failed for the micro bundle" >&2
    failed=1
fi
export_case tiny12-r1 Fixtures/tiny12/model.safetensors Fixtures/tiny12/reference.safetensors "--keep-ratio 1 --selection-outputs"

if ! "$VENV/bin/python" Fixtures/check_onnx_export.py "${CASES[@]}"; then
    failed=1
fi
if [ "$failed" != 0 ]; then
    echo "check_onnx_export_ci: FAILED" >&2
    exit 1
fi
echo "check_onnx_export_ci: all exports passed"

#!/usr/bin/env bash
# ONNX Runtime on idlevit's IdleViT exports vs ORT dense, with idlevit's engine alongside
# (issue 14). See Benchmarks/README.md, "IdleViT in ONNX Runtime".
#
#   VENV=/work/venv Benchmarks/ort_idle.sh                    # DeiT-S and DeiT-B, batch 1 and 8, T = 2
#   Benchmarks/ort_idle.sh --models s --batches 1 --rounds 5  # flags go to ort_idle.py
set -euo pipefail
source "$(dirname "$0")/setup.sh"

"$PYTHON" "$HERE/ort_idle.py" --idlevit "$IDLEVIT" "$@"

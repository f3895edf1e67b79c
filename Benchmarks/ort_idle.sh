#!/usr/bin/env bash
# ONNX Runtime on idlevit's IdleViT exports vs ORT dense, with idlevit's engine alongside
# (issue 14). See Benchmarks/README.md, "IdleViT in ONNX Runtime".
#
#   VENV=/work/venv Benchmarks/ort_idle.sh                    # DeiT-S and DeiT-B, batch 1 and 8, T = 2
#   Benchmarks/ort_idle.sh --models s --batches 1 --rounds 5  # flags go to ort_idle.py
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SCRATCH="${SCRATCH:-$ROOT/.build}"

echo "== building idlevit (release)" >&2
(cd "$ROOT" && swift build -c release --product idlevit --scratch-path "$SCRATCH" >&2)

if [ -n "${VENV:-}" ] && [ -x "$VENV/bin/python" ]; then
    PYTHON="$VENV/bin/python"
else
    VENV="$HERE/work/venv"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "== creating $VENV (pip install -r Benchmarks/requirements.txt, several GB for torch)" >&2
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
        "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
    fi
    PYTHON="$VENV/bin/python"
fi
"$PYTHON" "$HERE/ort_idle.py" --idlevit "$SCRATCH/release/idlevit" "$@"

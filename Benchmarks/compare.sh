#!/usr/bin/env bash
# idlevit against ONNX Runtime and PyTorch on DeiT-Ti/S/B (issue 7). See Benchmarks/README.md.
#
#   Benchmarks/compare.sh                      # everything: T = 2, batch 1 and 8, r = 0.7 and 0.5
#   VENV=/work/venv Benchmarks/compare.sh      # reuse a venv that has requirements.txt installed
#   Benchmarks/compare.sh --models s --batches 1 --rounds 5   # extra flags go to compare.py run
#
# Builds idlevit in release, exports random-weight timm models (pretrained=False) to
# safetensors, ONNX (TorchScript exporter, opset 17) and HDF5 under Benchmarks/work/ (gitignored),
# runs the contenders alternately, prints medians and ratios and writes Benchmarks/results/DATE.json.
#
# OPENBLAS_CORETYPE: the machines this project is developed on export OPENBLAS_CORETYPE=Haswell,
# which makes OpenBLAS use its AVX2 kernels (about half the speed on an AVX-512 CPU). A user's
# machine does not set it, so compare.py removes it from the environment of every contender it
# starts and records what the launching environment had (--keep-coretype leaves it set).
# HASWELL_TOO=1 also reruns idlevit with the variable as the environment had it, for comparison.
set -euo pipefail
source "$(dirname "$0")/setup.sh"

echo "== environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}; benchmarking with it unset" >&2
# Not `env -u` here: compare.py needs to see the variable to record it and to honour --keep-coretype.
"$PYTHON" "$HERE/compare.py" run --idlevit "$IDLEVIT" "$@"

if [ "${HASWELL_TOO:-0}" = 1 ] && [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    echo "== idlevit again with OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE (as this environment sets it)" >&2
    for m in deit_small_patch16_224; do
        for b in 1 8; do
            "$IDLEVIT" bench "$HERE/work/compare/$m.safetensors" --batch "$b" --threads 2 --runs 10
        done
    done
fi

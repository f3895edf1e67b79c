#!/usr/bin/env bash
# The light Python check of IdleViT bundles, for CI: a venv with pinned numpy, safetensors and
# jsonschema from PyPI (no torch), bundles converted from the committed fixtures by the built
# idlevit, and Fixtures/check_bundle.py on each (metadata against Schemas/bundle.schema.json,
# every tensor against its source checkpoint, header layout).
#
#   Fixtures/check_bundle_ci.sh [path/to/idlevit]     (default: .build/debug/idlevit, then release)
#
# Exits non-zero when a conversion or a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

IDLEVIT=${1:-}
if [ -z "$IDLEVIT" ]; then
    for candidate in .build/debug/idlevit .build/release/idlevit; do
        [ -x "$candidate" ] && IDLEVIT=$candidate && break
    done
fi
[ -n "$IDLEVIT" ] && [ -x "$IDLEVIT" ] || { echo "check_bundle_ci: no idlevit binary (build first or pass its path)" >&2; exit 2; }

VENV=${CHECK_BUNDLE_VENV:-.build/check-bundle-venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check numpy==2.4.6 safetensors==0.8.0 jsonschema==4.26.0

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# name | checkpoint converted (and compared with) | convert options
CASES=(
    "micro-r07|Fixtures/micro/model.safetensors|--keep-ratio 0.7"
    "micro-dense-bf16|Fixtures/micro/model.safetensors|--dtype bf16"
    "micro-f16-r05|Fixtures/micro/model-f16.safetensors|--keep-ratio 0.5 --dtype f16"
    "distilled-r09|Fixtures/micro-distilled/model.safetensors|--keep-ratio 0.9"
    "hf-names-r07|Fixtures/micro-hf/model.safetensors|--keep-ratio 0.7"
    "tiny12-r07-f16|Fixtures/tiny12/model.safetensors|--keep-ratio 0.7 --dtype f16"
    "deit3-r05|Fixtures/deit3-micro/model.safetensors|--heads 2 --keep-ratio 0.5"
    "deit3-facebook-r07|Fixtures/deit3-micro/model-facebook.safetensors|--heads 2 --keep-ratio 0.7"
    "vit-nobias-r07-bf16|Fixtures/vit-micro/model.safetensors|--heads 2 --keep-ratio 0.7 --dtype bf16"
    "lvvit-r07|Fixtures/lvvit-micro/model.safetensors|--heads 2 --keep-ratio 0.7"
)
failed=0
for case in "${CASES[@]}"; do
    IFS='|' read -r name model options <<<"$case"
    # A missing fixture is a failure, not a skip: every case must be checked.
    bundle="$OUT/$name.idlevit.safetensors"
    # shellcheck disable=SC2086
    if ! "$IDLEVIT" convert "$model" -o "$bundle" $options >/dev/null; then
        echo "check_bundle_ci: idlevit convert failed for $name" >&2
        failed=1
        continue
    fi
    if ! "$VENV/bin/python" Fixtures/check_bundle.py "$bundle" --source "$model"; then
        failed=1
    fi
done
if [ "$failed" != 0 ]; then
    echo "check_bundle_ci: FAILED" >&2
    exit 1
fi
echo "check_bundle_ci: all bundles passed"

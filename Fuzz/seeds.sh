#!/usr/bin/env bash
# Fills Fuzz/seeds/TARGET/ with a seed corpus taken from Fixtures/ (small files only: libFuzzer
# mutates faster on small inputs). Usage: Fuzz/seeds.sh TARGET
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1
out=Fuzz/seeds/$target
rm -rf "$out"
mkdir -p "$out"
copy() { for f in "$@"; do [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 1048576 ] && cp "$f" "$out/$(echo "$f" | tr / _)" || true; done; return 0; }
case $target in
safetensors)
    copy Fixtures/hostile/safetensors/* Fixtures/hostile/bundle/* Fixtures/*/idle-*.safetensors \
         Fixtures/*/reference-*.safetensors Fixtures/micro-distilled/model-f16.safetensors Fixtures/micro/input.safetensors ;;
bundle)
    # The __metadata__ object of each bundle fixture (what the bundle target splices into a file).
    for f in Fixtures/hostile/bundle/*.safetensors; do
        python3 - "$f" "$out/$(basename "$f" .safetensors).json" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
meta = json.loads(data[8:8 + n]).get("__metadata__", {})
open(sys.argv[2], "w").write(json.dumps(meta, separators=(",", ":")))
PY
    done ;;
onnx)
    copy Fixtures/hostile/onnx/* Fixtures/micro-distilled/model-opset13.onnx Fixtures/micro-distilled/model-opset17.onnx \
         Fixtures/micro-distilled/model-dynamo.onnx Fixtures/micro/external/model.onnx ;;
hdf5)
    copy Fixtures/hostile/*.h5 Fixtures/hostile/hdf5/* Fixtures/micro-distilled/weights-flat.h5 Fixtures/micro-distilled/weights-nested.h5 ;;
jpeg)
    copy Fixtures/images/*.jpg Fixtures/images/variants/*.jpg Fixtures/hostile/images/*.jpg ;;
png)
    copy Fixtures/images/*.png Fixtures/images/variants/*.png Fixtures/hostile/images/*.png Fixtures/hostile/images/*.head ;;
pth)
    # The unit files (every tensor kind, both layouts, protocols 1/4/5, zip64), the hostile ones,
    # and two small models so the recogniser is reached.
    copy Fixtures/pth/unit/*.pth Fixtures/hostile/pth-*.pth Fixtures/deit3-micro/model.pth Fixtures/vit-micro/model.pth ;;
*)
    echo "unknown fuzz target '$target'" >&2; exit 2 ;;
esac
echo "$target: $(ls "$out" | wc -l) seeds"

#!/usr/bin/env bash
# ONNX acceptance (issue 3).
#
# DeiT-Ti, DeiT-S, DeiT-B and distilled DeiT-S (timm, pretrained=False) are exported by
# torch.onnx.export with the exporter's default settings (TorchScript exporter, constant
# folding, fixed input shape) at opsets 13 and 17. Opset 13 cannot export timm's fused
# attention (scaled_dot_product_attention needs opset 14), so its models run timm's explicit
# attention; opset 17 keeps the fused one, whose export scales q and k separately. Two weight
# variants: `fresh` (timm's own initialisation: zero biases, unit LayerNorms, so the exporter
# merges equal tensors behind Identity nodes) and `perturbed` (Fixtures/generate.py's
# perturbation, every tensor distinct and activations O(1)).
#
# For each file: `idlevit verify` against timm's activations must exit 0 with logits max abs
# error <= 1e-4; `idlevit convert --to safetensors` must give a file that timm loads with
# strict=True and that reproduces the logits. The import time of each file is reported.
# Then a corruption corpus: truncations, bit flips, overwritten and inserted bytes of the ONNX
# fixtures, each through `idlevit inspect` under a time limit; allowed outcomes are exit 0
# (the damage hit weight bytes only) or exit 2 with one line on stderr.
#
#   Benchmarks/onnx_acceptance.sh [IDLEVIT]     (default .build/release/idlevit)
#   MODELS="deit_tiny_patch16_224" VARIANTS=fresh OPSETS=17 CORPUS=100 Benchmarks/onnx_acceptance.sh
#
# Files go to Benchmarks/work/onnx (gitignored). Exits 1 on any failure.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
IDLEVIT="${1:-$HERE/../.build/release/idlevit}"
PYTHON="${PYTHON:-/work/venv/bin/python}"
WORK="$HERE/work/onnx"
mkdir -p "$WORK"
[ -x "$IDLEVIT" ] || { echo "no idlevit at $IDLEVIT (swift build -c release)" >&2; exit 2; }

export IDLEVIT WORK HERE
export MODELS="${MODELS:-deit_tiny_patch16_224 deit_small_patch16_224 deit_base_patch16_224 deit_small_distilled_patch16_224}"
export VARIANTS="${VARIANTS:-fresh perturbed}"
export OPSETS="${OPSETS:-13 17}"
export CORPUS="${CORPUS:-400}"

"$PYTHON" - <<'PY'
import json, os, subprocess, sys, time, warnings
from collections import OrderedDict

sys.path.insert(0, os.path.join(os.environ["HERE"], "..", "Fixtures"))
import timm  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
import generate  # noqa: E402  (perturb, capture_reference)

torch.set_num_threads(1)
IDLEVIT, WORK = os.environ["IDLEVIT"], os.environ["WORK"]
failures = 0
rows = []


def run(args, timeout=1800):
    start = time.perf_counter()
    out = subprocess.run([IDLEVIT] + args, capture_output=True, text=True, timeout=timeout)
    return out, time.perf_counter() - start


def set_fused(model, fused):
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = fused


for name in os.environ["MODELS"].split():
    for variant in os.environ["VARIANTS"].split():
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        if variant == "perturbed":
            generate.perturb(model, 1234)
        x = torch.randn((2, 3, 224, 224), generator=torch.Generator().manual_seed(5), dtype=torch.float32)
        base = os.path.join(WORK, f"{name}-{variant}")
        save_file({"pixel_values": x.contiguous()}, base + "-input.safetensors")
        for opset in [int(o) for o in os.environ["OPSETS"].split()]:
            set_fused(model, opset >= 14)
            reference = generate.capture_reference(model, x)
            save_file(OrderedDict((k, v.contiguous()) for k, v in reference.items()), base + f"-{opset}-reference.safetensors")
            path = base + f"-opset{opset}.onnx"
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x[:1],), path, opset_version=opset, dynamo=False)
            _, import_seconds = run(["inspect", path])
            out, verify_seconds = run(["verify", path, "--input", base + "-input.safetensors",
                                       "--reference", base + f"-{opset}-reference.safetensors", "--json"])
            error, ok = float("nan"), False
            try:
                doc = json.loads(out.stdout)
                error = next(a["max_abs_error"] for a in doc["activations"] if a["name"] == "logits")
                ok = out.returncode == 0 and doc["passed"] and error <= 1e-4
            except (ValueError, StopIteration, KeyError):
                pass
            # convert -> safetensors -> timm strict load -> same logits
            converted = base + f"-opset{opset}-converted.safetensors"
            conv, _ = run(["convert", path, "-o", converted, "--to", "safetensors"])
            strict, logits_error = "no", float("nan")
            if conv.returncode == 0:
                fresh = timm.create_model(name, pretrained=False).eval()
                set_fused(fresh, opset >= 14)
                try:
                    fresh.load_state_dict(load_file(converted), strict=True)
                    strict = "yes"
                    with torch.no_grad():
                        logits_error = float((fresh(x) - reference["logits"]).abs().max())
                except RuntimeError as e:
                    strict = "no: " + str(e).splitlines()[0][:120]
            ok = ok and strict == "yes" and logits_error <= 1e-5
            failures += not ok
            size = os.path.getsize(path) / 1e6
            print(f"{name:34s} {variant:9s} opset {opset}  {size:6.1f} MB  import {import_seconds:5.2f} s  "
                  f"verify exit {out.returncode} logits max abs err {error:.3e}  "
                  f"convert->timm strict {strict} (logits err {logits_error:.1e})  {'PASS' if ok else 'FAIL'}", flush=True)
            if not ok and out.returncode != 0:
                print("   " + (out.stderr.strip() or out.stdout.strip()[-400:]), flush=True)
            for p in (path, converted):
                if os.path.exists(p):
                    os.remove(p)

# Corruption corpus.
import random  # noqa: E402
from collections import Counter  # noqa: E402
fixtures = os.path.join(os.environ["HERE"], "..", "Fixtures")
sources = [os.path.join(fixtures, p) for p in ("micro/model-opset13.onnx", "micro/external/model.onnx",
           "micro-distilled/model-opset17.onnx", "micro-distilled/model-dynamo.onnx")]
rng = random.Random(7)
outcomes = Counter()
target = os.path.join(WORK, "corrupt.onnx")
for i in range(int(os.environ["CORPUS"])):
    data = bytearray(open(rng.choice(sources), "rb").read())
    kind = rng.choice(["flip", "flip", "bytes", "truncate", "insert"])
    head = min(len(data), 120_000)  # torch writes the nodes first: corrupt the structure mostly
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            p = rng.randrange(head)
            data[p] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        p = rng.randrange(head)
        data[p:p + 16] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "truncate":
        data = data[:rng.randrange(len(data))]
    else:
        p = rng.randrange(head)
        data[p:p] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    open(target, "wb").write(data)
    try:
        out = subprocess.run([IDLEVIT, "inspect", target], capture_output=True, text=True, timeout=60)
        lines = out.stderr.strip().splitlines()
        if out.returncode == 0 or (out.returncode == 2 and len(lines) == 1):
            outcomes[f"exit {out.returncode}"] += 1
        else:
            outcomes[f"BAD exit {out.returncode}"] += 1
            failures += 1
            kept = os.path.join(WORK, f"corrupt-bad-{i}.onnx")
            os.replace(target, kept)
            print(f"   {kind}: exit {out.returncode}, {len(lines)} stderr lines; kept as {kept}", flush=True)
    except subprocess.TimeoutExpired:
        outcomes["TIMEOUT"] += 1
        failures += 1
print("corruption corpus:", ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
print(f"{'FAILED' if failures else 'PASSED'}: {failures} failure(s)")
sys.exit(1 if failures else 0)
PY

"""Acceptance on real ViT-family geometries (issues 2, 5 and 15): DeiT-Ti/S/B, distilled DeiT-S,
DeiT-III-S, ViT-S (augreg) and ViT-Ti at 384 px with random, perturbed weights (LayerScale
included), saved by timm as safetensors F32/F16/BF16 and (--onnx) exported with torch.onnx at
opset 17, verified dense against timm's activations and as IdleViT at r = 0.5/0.7/0.9 against
Fixtures/idlevit_reference.py (selections in every idle layer and image, logits <= 1e-4).

    python Benchmarks/acceptance.py [--idlevit .build/release/idlevit] [--models deit3_small_patch16_224 ...] [--onnx]

Writes models under Benchmarks/work/ (gitignored) and prints a summary; exits 1 on any failure.
"""
import argparse
import json
import os
import subprocess
import sys
from collections import OrderedDict

os.environ["TIMM_FUSED_ATTN"] = "0"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Fixtures"))

import torch  # noqa: E402
import timm  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import generate  # noqa: E402  (perturb, capture_reference, rounded_model)
import idlevit_reference as ref  # noqa: E402

MODELS = ["deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224",
          "deit_small_distilled_patch16_224", "deit3_small_patch16_224", "vit_small_patch16_224.augreg_in21k_ft_in1k",
          "vit_tiny_patch16_384.augreg_in21k_ft_in1k"]


def save(path, tensors, metadata=None):
    save_file(OrderedDict((k, v.detach().contiguous()) for k, v in tensors.items()), path, metadata=metadata)


def verify(idlevit, model, inp, reference, extra=()):
    out = subprocess.run([idlevit, "verify", model, "--input", inp, "--reference", reference, "--json", *extra],
                         capture_output=True, text=True)
    if out.returncode not in (0, 1):
        return {"status": out.returncode, "error": out.stderr.strip()}
    doc = json.loads(out.stdout)
    logits = next(a for a in doc["activations"] if a["name"] == "logits")
    selections = doc.get("selection", [])
    return {"status": out.returncode, "logits_max_abs": logits["max_abs_error"],
            "worst_activation": max((a["max_abs_error"] or 0) for a in doc["activations"]),
            "selection_agreement": min((s["agreement"] for s in selections), default=None),
            "idle_layers": len(selections)}


@torch.no_grad()
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idlevit", default=os.path.join(HERE, "..", ".build", "release", "idlevit"))
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--ratios", nargs="*", type=float, default=[0.5, 0.7, 0.9])
    parser.add_argument("--onnx", action="store_true", help="also export each model to ONNX (opset 17) and verify that")
    args = parser.parse_args()
    work = os.path.join(HERE, "work", "acceptance")
    os.makedirs(work, exist_ok=True)
    failures = 0
    summary = []
    for seed, name in enumerate(args.models):
        torch.manual_seed(seed)
        model = timm.create_model(name, pretrained=False).eval()
        generate.perturb(model, 1000 + seed)
        size = model.patch_embed.img_size[0]
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
        base = os.path.join(work, name)
        save(base + "-input.safetensors", {"pixel_values": x})
        sd = model.state_dict()
        save(base + ".safetensors", sd)
        save(base + "-reference.safetensors", generate.capture_reference(model, x))
        rows = []
        rows.append(("dense f32", verify(args.idlevit, base + ".safetensors", base + "-input.safetensors", base + "-reference.safetensors")))
        for dtype, torch_dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
            save(f"{base}-{dtype}.safetensors", OrderedDict((k, v.to(torch_dtype)) for k, v in sd.items()))
            rounded = generate.rounded_model(model, torch_dtype)
            save(f"{base}-{dtype}-reference.safetensors", {"logits": rounded(x)})
            rows.append((f"dense {dtype}", verify(args.idlevit, f"{base}-{dtype}.safetensors", base + "-input.safetensors",
                                                  f"{base}-{dtype}-reference.safetensors")))
        if args.onnx:
            generate.export_onnx(model, x, __import__("pathlib").Path(base + ".onnx"), 17)
            rows.append(("dense onnx", verify(args.idlevit, base + ".onnx", base + "-input.safetensors", base + "-reference.safetensors")))
        depth = len(model.blocks)
        for r in args.ratios:
            kept = ref.schedule(depth, model.patch_embed.num_patches, r)
            result = ref.idle_forward(model, x, kept, with_cut_loss=False)
            tensors = OrderedDict([("logits", result.logits)])
            for i, sel in result.selected.items():
                tensors[f"blocks.{i}.selected"] = torch.sort(sel, dim=1).values.to(torch.int64)
            margins = [m for ms in result.margins.values() for m in ms if m is not None]
            save(f"{base}-idle-{r}.safetensors", tensors)
            row = verify(args.idlevit, base + ".safetensors", base + "-input.safetensors", f"{base}-idle-{r}.safetensors",
                         ("--keep-ratio", str(r)))
            row["smallest_margin"] = min(margins) if margins else None
            rows.append((f"idle r={r}", row))
            if args.onnx:
                row = verify(args.idlevit, base + ".onnx", base + "-input.safetensors", f"{base}-idle-{r}.safetensors",
                             ("--keep-ratio", str(r)))
                rows.append((f"onnx r={r}", row))
        for label, row in rows:
            ok = row.get("status") == 0 and row.get("logits_max_abs", 1) <= 1e-4 and row.get("selection_agreement") in (None, 1.0)
            failures += 0 if ok else 1
            summary.append({"model": name, "check": label, "passed": ok, **row})
            print(f"{name:36s} {label:12s} {'pass' if ok else 'FAIL'}  logits max abs {row.get('logits_max_abs')}"
                  f"  selections {row.get('selection_agreement')}  margin {row.get('smallest_margin')}  {row.get('error', '')}")
        sys.stdout.flush()
    with open(os.path.join(work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"{len(summary) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

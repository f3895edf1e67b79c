"""Held-out check of `idlevit convert --to onnx` on full-size timm DeiTs (needs torch + timm:
run by hand with Fixtures/requirements.txt, not in CI; nothing it writes is committed).

For each model (timm's own DeiT-Ti / DeiT-S / distilled DeiT-Ti definitions, random weights from
seeds the fixtures do not use, either as timm initialises them or perturbed like the fixtures:
weights at std 1/sqrt(fan_in), biases, LayerNorm and tokens perturbed) and each keep ratio
(dense, 0.7, 0.5): save the weights as safetensors, compute the IdleViT reference with
Fixtures/idlevit_reference.py, export with idlevit (`--selection-outputs`), run the file in ONNX
Runtime at batch 1, 2 and IMAGES (one file), and compare logits (<= 1e-4) and every idle
layer's selected set per image. Prints the smallest relative selection margin of the reference
(score gap between the K-th and (K+1)-th token / max |score|), so a differing selection can be
told apart as a tie or a bug.

--analyse-scoring also runs five ways of computing the selection score in ONNX Runtime on the
reference's own LN1 rows (so only the formulation differs) and compares each with the reference
(float32 keys from PyTorch, float64 dot product): the export's (class query folded into the key
projection, float64), the same with a float32 class query, the reference's recipe with ONNX
Runtime's float32 keys, all float32, and folded in float32. The export's is the closest (README of Fixtures, "ONNX export").

  /work/venv/bin/python Fixtures/check_onnx_heldout.py --idlevit .build/release/idlevit [--images 8] [--analyse-scoring]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np
import onnxruntime as ort
import torch
import timm
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idlevit_reference as ref  # noqa: E402

# name, timm model, model seed, perturbed
MODELS = [
    ("deit-tiny-perturbed", "deit_tiny_patch16_224", 7101, True),
    ("deit-small-perturbed", "deit_small_patch16_224", 7102, True),
    ("deit-tiny-distilled-perturbed", "deit_tiny_distilled_patch16_224", 7103, True),
    ("deit-small-timm-init", "deit_small_patch16_224", 7104, False),
]
RATIOS = [None, 0.7, 0.5]


@torch.no_grad()
def perturb(model, seed):
    """As Fixtures/generate.py perturbs its models (another seed)."""
    g = torch.Generator().manual_seed(seed)
    norms = {n + s for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm) for s in (".weight", ".bias")}
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=g)
        if name in ("cls_token", "dist_token"):
            p.add_(noise)
        elif name == "pos_embed":
            p.add_(0.5 * noise)
        elif name in norms or name.endswith(".bias"):
            p.add_(0.1 * noise)
        elif p.ndim >= 2:
            p.mul_((1.0 / math.sqrt(p[0].numel())) / float(p.std()))


def build(timm_name, seed, perturbed):
    torch.manual_seed(seed)
    model = timm.create_model(timm_name, pretrained=False).eval()
    if perturbed:
        perturb(model, seed + 7)
    return model


def run_ort(path, pixels, batches):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return {b: dict(zip(names, session.run(None, {"pixel_values": pixels[:b]}))) for b in batches}


def scoring_session(form, channels, tokens):
    """An ONNX Runtime session computing the selection score of every token from LN1 rows
    h [B, N, C] and the qkv weight / bias, in one of five formulations:
    folded64: q = W_q h_0 + b_q, u = W_k^T q, score = u . h_j + q . b_k, all in float64 (the export);
    query32-folded64: the same with q computed in float32;
    keys32-dot64: float32 q and keys k = W_k h + b_k, dot product in float64 (the reference's recipe);
    keys32-dot32: the same in float32 throughout; folded32: folded, in float32."""
    from onnx import TensorProto as T, helper, numpy_helper
    c = channels
    nodes, constants = [], []

    def node(op, inputs, output, **attributes):
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def const(name, values):
        constants.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    rows = {part: (const(part + ".start", [i * c]), const(part + ".end", [(i + 1) * c])) for i, part in enumerate("qk")}
    axis0, axis2 = const("axis0", [0]), const("axis2", [2])
    w = {p: node("Slice", ["W", *rows[p], axis0], "W" + p) for p in "qk"}
    b = {p: node("Slice", ["b", *rows[p], axis0], "b" + p) for p in "qk"}
    h0 = node("Gather", ["h", const("zero", 0)], "h0", axis=1)
    wide = T.DOUBLE if form in ("folded64", "keys32-dot64", "query32-folded64") else T.FLOAT
    if form == "query32-folded64":
        q = node("Add", [node("MatMul", [h0, node("Transpose", [w["q"]], "WqT", perm=[1, 0])], "qh"), b["q"]], "q32")
        q = node("Cast", [q], "q", to=wide)
        u = node("MatMul", [q, node("Cast", [w["k"]], "Wk.wide", to=wide)], "u")
        dots = node("MatMul", [node("Cast", ["h"], "h.wide", to=wide), node("Unsqueeze", [u, axis2], "u.column")], "dots")
        offset = node("ReduceSum", [node("Mul", [q, node("Cast", [b["k"]], "bk.wide", to=wide)], "qbk"), const("axis1", [1])],
                      "offset", keepdims=1)
        score = node("Add", [node("Squeeze", [dots, axis2], "dots.flat"), offset], "score")
    elif form.startswith("folded"):
        cast = (lambda v: node("Cast", [v], v + ".wide", to=wide)) if wide == T.DOUBLE else (lambda v: v)
        q = node("Add", [node("MatMul", [cast(h0), cast(node("Transpose", [w["q"]], "WqT", perm=[1, 0]))], "qh"), cast(b["q"])], "q")
        u = node("MatMul", [q, cast(w["k"])], "u")
        dots = node("MatMul", [cast("h"), node("Unsqueeze", [u, axis2], "u.column")], "dots")
        offset = node("ReduceSum", [node("Mul", [q, cast(b["k"])], "qbk"), const("axis1", [1])], "offset", keepdims=1)
        score = node("Add", [node("Squeeze", [dots, axis2], "dots.flat"), offset], "score")
    else:
        q = node("Add", [node("MatMul", [h0, node("Transpose", [w["q"]], "WqT", perm=[1, 0])], "qh"), b["q"]], "q")
        k = node("Add", [node("MatMul", ["h", node("Transpose", [w["k"]], "WkT", perm=[1, 0])], "kh"), b["k"]], "k")
        if wide == T.DOUBLE:
            q, k = node("Cast", [q], "q.wide", to=wide), node("Cast", [k], "k.wide", to=wide)
        score = node("Squeeze", [node("MatMul", [k, node("Unsqueeze", [q, axis2], "q.column")], "dots"), axis2], "score")
    inputs = [helper.make_tensor_value_info("h", T.FLOAT, ["B", tokens, c]),
              helper.make_tensor_value_info("W", T.FLOAT, [3 * c, c]), helper.make_tensor_value_info("b", T.FLOAT, [3 * c])]
    graph = helper.make_graph(nodes, form, inputs, [helper.make_tensor_value_info(score, wide, ["B", tokens])], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


FORMS = ["folded64", "query32-folded64", "keys32-dot64", "keys32-dot32", "folded32"]


@torch.no_grad()
def scoring_errors(model, pixels, kept):
    """Every formulation in ONNX Runtime on the reference's own LN1 rows of each idle layer, so
    only the formulation differs: per formulation the largest and median |score - reference|
    / max |score| over images and layers, and how many selections it changes."""
    prefix = ref.num_prefix_tokens(model)
    errors = {f: [] for f in FORMS}
    flips = {f: 0 for f in FORMS}
    cases = 0
    _, x = ref.embed(model, pixels)
    for i, blk in enumerate(model.blocks):
        k = kept[i]
        if k is None:
            x = ref.dense_block(blk, x)
            continue
        heads, _ = ref._heads(blk)
        h = ref._layer_norm(blk.norm1, x).numpy()
        feeds = {"h": h, "W": blk.attn.qkv.weight.numpy(), "b": blk.attn.qkv.bias.numpy()}
        reference = np.stack([ref.token_scores(blk, x[b], prefix).numpy() for b in range(x.shape[0])])
        for form in FORMS:
            scores = scoring_session(form, h.shape[2], h.shape[1]).run(None, feeds)[0].astype(np.float64)[:, prefix:] / heads
            for b in range(x.shape[0]):
                errors[form].append(float(np.abs(scores[b] - reference[b]).max() / np.abs(reference[b]).max()))
                picked = set(ref.top_k(torch.from_numpy(scores[b]), k).tolist())
                flips[form] += picked != set(ref.top_k(torch.from_numpy(reference[b]), k).tolist())
        cases += x.shape[0]
        x = torch.stack([ref.idle_block_one(blk, x[b], k, prefix)[0] for b in range(x.shape[0])])
    return cases, flips, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idlevit", default=".build/release/idlevit")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--analyse-scoring", action="store_true")
    parser.add_argument("--only", nargs="*", help="model names to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        for name, timm_name, seed, perturbed in MODELS:
            if args.only and name not in args.only:
                continue
            model = build(timm_name, seed, perturbed)
            weights = os.path.join(work, name + ".safetensors")
            save_file(OrderedDict((k, v.contiguous()) for k, v in model.state_dict().items()), weights)
            pixels = torch.randn(args.images, 3, 224, 224, generator=torch.Generator().manual_seed(seed + 1))
            depth, patches = len(model.blocks), model.patch_embed.num_patches
            for r in RATIOS:
                kept = ref.schedule(depth, patches, r) if r is not None else [None] * depth
                if r is None:
                    logits = ref.dense_forward(model, pixels)["logits"].numpy()
                    selected, margins = {}, []
                else:
                    result = ref.idle_forward(model, pixels, kept, with_cut_loss=False)
                    logits = result.logits.numpy()
                    selected = {f"blocks.{i}.selected": s.numpy() for i, s in result.selected.items()}
                    margins = [m for layer in result.margins.values() for m in layer if m is not None]
                onnx_path = os.path.join(work, f"{name}-{r or 'dense'}.onnx")
                flags = ["--keep-ratio", str(r), "--selection-outputs"] if r is not None else []
                subprocess.run([args.idlevit, "convert", weights, "--to", "onnx", "-o", onnx_path] + flags,
                               check=True, stdout=subprocess.DEVNULL)
                batches = sorted({1, 2, args.images})
                runs = run_ort(onnx_path, pixels.numpy(), batches)
                worst, differing, compared = 0.0, 0, 0
                for b, out in runs.items():
                    worst = max(worst, float(np.abs(out["logits"] - logits[:b]).max()))
                    for key, sel in selected.items():
                        for image in range(b):
                            compared += 1
                            differing += set(out[key][image].tolist()) != set(sel[image].tolist())
                ok = worst <= 1e-4 and differing == 0
                failures += not ok
                smallest = f", smallest reference margin {min(margins):.2e}" if margins else ""
                print(f"{name} {'dense' if r is None else f'r={r}'}: max |logits - PyTorch| {worst:.2e} "
                      f"(batch {', '.join(map(str, batches))}); selections differing {differing} of {compared}"
                      f"{smallest}: {'pass' if ok else 'FAIL'}", flush=True)
                if args.analyse_scoring and r is not None:
                    cases, flips, errors = scoring_errors(model, pixels, kept)
                    for form in FORMS:
                        print(f"    score as {form}: |score - reference| / max|score| max {max(errors[form]):.2e}, "
                              f"median {float(np.median(errors[form])):.2e}; changes {flips[form]} of {cases} selections", flush=True)
                os.remove(onnx_path)
    print("check_onnx_heldout: " + ("all passed" if failures == 0 else f"{failures} FAILED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

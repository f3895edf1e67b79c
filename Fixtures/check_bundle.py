#!/usr/bin/env python3
"""Checks an IdleViT bundle written by idlevit from the Python side (issue 6, DESIGN.md section 5).

    check_bundle.py BUNDLE --source CHECKPOINT [--input IN --reference REF] [--idle-reference IDLE]

Always (numpy + safetensors; the metadata rules live in bundle_metadata.py):
  * the file opens with safetensors' own reader, __metadata__ comes first in the header, the data
    section starts on a 64-byte boundary;
  * the metadata is valid: against Schemas/bundle.schema.json (and each JSON-valued entry against
    its contentSchema) when jsonschema is importable, and by the same rules written out by hand
    otherwise; plus the cross-checks no schema can state (tensors vs architecture, graph vs
    tensors, schedule vs depth and vs the graph's token_select nodes);
  * every tensor equals the source checkpoint's: bit for bit in f32, and equal to the source
    rounded the way idlevit rounds (nearest even) in f16 / bf16. The source may be safetensors or
    HDF5 (h5py), with timm, module./model. prefixed or Hugging Face names.
When torch and timm are importable:
  * safetensors.torch.load_file(BUNDLE) loads into the timm model the architecture describes
    (timm.create_model for the published DeiT configs) with load_state_dict(strict=True);
  * with --input and --reference, the dense logits match the reference logits;
  * with --idle-reference and Fixtures/idlevit_reference.py, the IdleViT forward under the
    bundle's schedule matches the reference logits and selected tokens.
Exit status 0 when every check passes, 1 when one fails, 2 on unusable arguments or files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bundle_metadata import Failure, check_metadata  # noqa: E402

NP_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
             "I64": np.int64, "I32": np.int32}


# ------------------------------------------------------------------------------------------
# raw safetensors reading (numpy has no bfloat16, so BF16 is kept as its uint16 bits)

def read_safetensors(path):
    """(header text, header dict, data offset, {name: numpy array}); BF16 arrays hold the raw uint16 bits."""
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header_text = blob[8:8 + length].decode("utf-8")
    header = json.loads(header_text)
    start = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = NP_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise Failure(f"{os.path.basename(path)}: tensor '{name}' has unsupported dtype {entry['dtype']}")
        tensors[name] = np.frombuffer(blob, dtype=dtype, count=(end - begin) // np.dtype(dtype).itemsize,
                                      offset=start + begin).reshape(entry["shape"])
    return header_text, header, start, tensors


def widen(array, dtype_name):
    """Stored values as float32 (bf16 bits shifted into the high half of a float32)."""
    if dtype_name == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32)


def round_like_idlevit(values, dtype_name):
    """float32 -> stored bits of the bundle dtype, round to nearest even, as idlevit does."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if dtype_name == "F32":
        return values
    if dtype_name == "F16":
        return values.astype(np.float16)
    bits = values.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    rounded[nan] = ((bits[nan] >> 16).astype(np.uint16)) | 0x40
    return rounded


# ------------------------------------------------------------------------------------------
# the source checkpoint, under canonical timm names

HF_LAYER = {
    "layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
}
HF_TOP = {
    "embeddings.cls_token": "cls_token", "embeddings.distillation_token": "dist_token",
    "embeddings.position_embeddings": "pos_embed", "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias", "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
HF_HEADS = {"classifier": "head", "cls_classifier": "head", "distillation_classifier": "head_dist"}


def canonical_name(name):
    """timm name for a checkpoint name, or None; q/k/v parts come back as ('qkv', i, part, kind)."""
    for prefix in ("module.", "model."):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    for prefix in ("vit.", "deit."):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            if rest in HF_TOP:
                return HF_TOP[rest]
            if rest.startswith("encoder.layer."):
                index, _, tail = rest[len("encoder.layer."):].partition(".")
                module, _, kind = tail.rpartition(".")
                if module in HF_LAYER:
                    return f"blocks.{index}.{HF_LAYER[module]}.{kind}"
                parts = {"attention.attention.query": 0, "attention.attention.key": 1, "attention.attention.value": 2}
                if module in parts:
                    return ("qkv", int(index), parts[module], kind)
            return None
    module, _, kind = name.rpartition(".")
    if module in HF_HEADS:
        return f"{HF_HEADS[module]}.{kind}"
    # Facebook's DeiT-III checkpoints: LayerScale as blocks.{i}.gamma_1 / gamma_2.
    if name.startswith("blocks.") and kind in ("gamma_1", "gamma_2"):
        return f"{module}.ls{kind[-1]}.gamma"
    return name


def load_source(path):
    """{timm name: float32 array} from a safetensors or HDF5 state dict."""
    with open(path, "rb") as f:
        magic = f.read(8)
    raw = {}
    if magic == b"\x89HDF\r\n\x1a\n":
        try:
            import h5py
        except ImportError:
            raise Failure(f"{os.path.basename(path)} is HDF5 and h5py is not installed")
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    raw[name.replace("/", ".")] = np.asarray(obj[()], dtype=np.float32)
            f.visititems(visit)
    else:
        _, header, _, tensors = read_safetensors(path)
        for name, array in tensors.items():
            raw[name] = widen(array, header[name]["dtype"])
    canonical, parts = {}, {}
    for name, array in raw.items():
        if name.endswith(".num_batches_tracked"):
            continue  # BatchNorm's training counter: idlevit drops it, PyTorch refills it on load
        target = canonical_name(name)
        if target is None:
            raise Failure(f"source tensor '{name}' has no timm name")
        if isinstance(target, tuple):
            _, index, part, kind = target
            parts.setdefault(f"blocks.{index}.attn.qkv.{kind}", {})[part] = array
        else:
            canonical[target] = array
    for name, pieces in parts.items():
        if sorted(pieces) != [0, 1, 2]:
            raise Failure(f"source lacks a part of '{name}' (query, key, value)")
        canonical[name] = np.concatenate([pieces[0], pieces[1], pieces[2]], axis=0)
    return canonical


# ------------------------------------------------------------------------------------------
# torch + timm

def build_timm_model(a):
    import torch
    import timm
    from functools import partial
    from bundle_metadata import arch_value
    if arch_value(a, "family") == "lvvit":
        # Not a timm model: the official LV-ViT module, as generate_lvvit.py writes it from the
        # published architecture.
        from generate_lvvit import LVViT
        model = LVViT(img_size=a["image_size"], patch_size=a["patch_size"], embed_dim=a["embed_dim"], depth=a["depth"],
                      num_heads=a["num_heads"], mlp_ratio=a["mlp_hidden"] / a["embed_dim"], skip_lam=a["skip_lam"],
                      num_classes=a["num_classes"], stem_width=a["stem_channels"], in_chans=a["in_channels"])
        return model.eval(), "LVViT (official architecture)"
    deit3 = arch_value(a, "layer_scale") and not arch_value(a, "prefix_positions")
    family = None
    if (a["image_size"], a["patch_size"], a["depth"], a["in_channels"], a["num_classes"]) == (224, 16, 12, 3, 1000) \
            and a["embed_dim"] // a["num_heads"] == 64 and a["mlp_hidden"] == 4 * a["embed_dim"] \
            and a["layer_norm_eps"] == 1e-6 and arch_value(a, "qkv_bias") \
            and (deit3 or not (arch_value(a, "layer_scale") or not arch_value(a, "prefix_positions"))):
        family = {192: "tiny", 384: "small", 768: "base"}.get(a["embed_dim"])
    if family and not (deit3 and a["distilled"]):
        name = ("deit3_" if deit3 else "deit_") + family + ("_distilled" if a["distilled"] else "") + "_patch16_224"
        return timm.create_model(name, pretrained=False).eval(), name
    from timm.models.vision_transformer import VisionTransformer
    from timm.models.deit import VisionTransformerDistilled
    cls = VisionTransformerDistilled if a["distilled"] else VisionTransformer
    extra = {}
    if arch_value(a, "layer_scale"):
        extra["init_values"] = 1e-5
    if not arch_value(a, "prefix_positions"):
        extra["no_embed_class"] = True
    model = cls(img_size=a["image_size"], patch_size=a["patch_size"], in_chans=a["in_channels"], num_classes=a["num_classes"],
                embed_dim=a["embed_dim"], depth=a["depth"], num_heads=a["num_heads"], mlp_ratio=a["mlp_hidden"] / a["embed_dim"],
                qkv_bias=arch_value(a, "qkv_bias"), norm_layer=partial(torch.nn.LayerNorm, eps=a["layer_norm_eps"]), **extra)
    return model.eval(), cls.__name__


def single_tensor(path, preferred):
    from safetensors.torch import load_file
    tensors = load_file(path)
    if preferred in tensors:
        return tensors[preferred]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise Failure(f"{os.path.basename(path)} has no tensor '{preferred}'")


def compare_logits(ours, ref, atol, what):
    err = float((ours.float() - ref.float()).abs().max())
    limit = atol + atol * float(ref.float().abs().max())
    print(f"  {what}: max abs error {err:.3e} (limit {limit:.1e})")
    if not err <= limit:
        raise Failure(f"{what} differ from the reference by {err:.3e}")


def torch_checks(args, bundle_path, a, idle, report):
    try:
        import torch
        import timm  # noqa: F401
    except ImportError:
        report.append("torch/timm not importable: strict loading and logits skipped")
        return
    from safetensors.torch import load_file
    state = load_file(bundle_path)
    model, name = build_timm_model(a)
    model.load_state_dict(state, strict=True)
    model.float().eval()
    print(f"  load_state_dict(strict=True) into {name}: ok")
    if args.input is None:
        return
    pixels = single_tensor(args.input, "pixel_values").float()
    if args.reference:
        with torch.no_grad():
            logits = model(pixels)
        compare_logits(logits, single_tensor(args.reference, "logits"), args.atol, "dense logits")
    if args.idle_reference:
        import idlevit_reference
        if a.get("family") == "lvvit":
            import lvvit_reference as idle_reference
        else:
            idle_reference = idlevit_reference
        result = idle_reference.idle_forward(model, pixels, idle["kept"], with_cut_loss=False)
        ref = load_file(args.idle_reference)
        compare_logits(result.logits, ref["logits"], args.atol, "IdleViT logits")
        for layer, selected in result.selected.items():
            key = f"blocks.{layer}.selected"
            if key in ref and not torch.equal(torch.sort(selected, dim=1).values.long(), ref[key].long()):
                raise Failure(f"{key}: selected tokens differ from the reference")
        print(f"  selected tokens equal the reference in layers {sorted(result.selected)}")


# ------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--source", required=True, help="the checkpoint the bundle was converted from (safetensors or HDF5)")
    parser.add_argument("--input", help="pixel_values safetensors for the logits checks")
    parser.add_argument("--reference", help="dense reference safetensors with 'logits'")
    parser.add_argument("--idle-reference", help="IdleViT reference safetensors (logits, blocks.{i}.selected)")
    parser.add_argument("--atol", type=float, default=1e-4, help="logits tolerance: |ours - ref| <= atol * (1 + max|ref|)")
    parser.add_argument("--require-torch", action="store_true", help="fail when torch or timm is missing")
    args = parser.parse_args()
    name = os.path.basename(args.bundle)
    report = []
    try:
        header_text, header, data_start, tensors = read_safetensors(args.bundle)
    except (OSError, ValueError, KeyError) as error:
        print(f"check_bundle: {name}: cannot read: {error}", file=sys.stderr)
        return 2
    try:
        with safe_open(args.bundle, framework="np") as f:
            metadata = f.metadata() or {}
            keys = set(f.keys())
        if keys != set(tensors):
            raise Failure("safetensors' reader sees other tensors than the header lists")
        if not header_text.startswith('{"__metadata__":{"format":"idlevit-bundle"'):
            raise Failure("the header does not start with __metadata__ and its 'format'")
        if data_start % 64 != 0:
            raise Failure(f"the data section starts at byte {data_start}, not on a 64-byte boundary")
        parsed, used_schema = check_metadata(metadata, header, tensors)
        a = parsed["architecture"]
        print(f"{name}: {metadata['producer']}, {metadata['dtype']}, depth {a['depth']}, dim {a['embed_dim']}, "
              f"kept {parsed['idle']['kept']}")
        print(f"  metadata valid ({'bundle.schema.json via jsonschema' if used_schema else 'rules checked by hand'})")

        source = load_source(args.source)
        stored = metadata["dtype"].upper()
        for tensor_name, array in tensors.items():
            if tensor_name not in source:
                raise Failure(f"tensor '{tensor_name}' is not in the source {os.path.basename(args.source)}")
            expected = round_like_idlevit(source[tensor_name], stored)
            if expected.shape != array.shape:
                raise Failure(f"tensor '{tensor_name}' has shape {list(array.shape)}, the source's is {list(expected.shape)}")
            if not np.array_equal(expected.view(np.uint8), np.ascontiguousarray(array).view(np.uint8)):
                diff = float(np.abs(widen(array, stored) - source[tensor_name]).max())
                raise Failure(f"tensor '{tensor_name}' differs from the source (max abs difference {diff:.3e})")
        unused = sorted(set(source) - set(tensors))
        if unused:
            raise Failure(f"source tensors missing from the bundle: {unused[:5]}")
        print(f"  {len(tensors)} tensors equal the source {'bit for bit' if stored == 'F32' else 'rounded to ' + stored}")
        with open(args.source, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        recorded = parsed["source"]
        if digest == recorded["sha256"]:
            print(f"  source sha256 matches the provenance ({recorded['file']})")
        elif os.path.basename(args.source) == recorded["file"]:
            raise Failure(f"provenance sha256 {recorded['sha256']} is not the sha256 of {recorded['file']} ({digest})")
        else:
            report.append(f"source {os.path.basename(args.source)} is not the recorded {recorded['file']}: sha256 not compared")

        torch_checks(args, args.bundle, a, parsed["idle"], report)
        if args.require_torch and any("torch/timm" in line for line in report):
            raise Failure("torch and timm are required (--require-torch)")
    except Failure as failure:
        print(f"check_bundle: {name}: FAILED: {failure}", file=sys.stderr)
        return 1
    for line in report:
        print(f"  note: {line}")
    print(f"{name}: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

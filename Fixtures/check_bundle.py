#!/usr/bin/env python3
"""Checks an IdleViT bundle written by idlevit from the Python side (issue 6, DESIGN.md section 5).

    check_bundle.py BUNDLE --source CHECKPOINT [--input IN --reference REF] [--idle-reference IDLE]

Always (numpy + safetensors):
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
SCHEMAS = os.path.join(os.path.dirname(HERE), "Schemas")
REQUIRED = ["format", "format_version", "producer", "dtype", "source", "architecture", "idle", "graph"]
ARCH_KEYS = ["image_size", "patch_size", "in_channels", "embed_dim", "depth", "num_heads", "mlp_hidden",
             "num_classes", "distilled", "layer_norm_eps"]
NP_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
             "I64": np.int64, "I32": np.int32}


class Failure(Exception):
    """A check that did not pass."""


# ------------------------------------------------------------------------------------------
# raw safetensors reading (numpy has no bfloat16, so BF16 is kept as its uint16 bits)

def read_safetensors(path):
    """(header dict, data offset, {name: numpy array}); BF16 arrays hold the raw uint16 bits."""
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
# metadata

def expected_tensors(a):
    c, h = a["embed_dim"], a["mlp_hidden"]
    n = (a["image_size"] // a["patch_size"]) ** 2 + (2 if a["distilled"] else 1)
    names = [("cls_token", [1, 1, c])] + ([("dist_token", [1, 1, c])] if a["distilled"] else [])
    names += [("pos_embed", [1, n, c]), ("patch_embed.proj.weight", [c, a["in_channels"], a["patch_size"], a["patch_size"]]),
              ("patch_embed.proj.bias", [c])]
    for i in range(a["depth"]):
        b = f"blocks.{i}."
        names += [(b + "norm1.weight", [c]), (b + "norm1.bias", [c]), (b + "attn.qkv.weight", [3 * c, c]),
                  (b + "attn.qkv.bias", [3 * c]), (b + "attn.proj.weight", [c, c]), (b + "attn.proj.bias", [c]),
                  (b + "norm2.weight", [c]), (b + "norm2.bias", [c]), (b + "mlp.fc1.weight", [h, c]),
                  (b + "mlp.fc1.bias", [h]), (b + "mlp.fc2.weight", [c, h]), (b + "mlp.fc2.bias", [c])]
    names += [("norm.weight", [c]), ("norm.bias", [c]), ("head.weight", [a["num_classes"], c]), ("head.bias", [a["num_classes"]])]
    if a["distilled"]:
        names += [("head_dist.weight", [a["num_classes"], c]), ("head_dist.bias", [a["num_classes"]])]
    return names


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def validate_with_schema(metadata, parsed):
    """True when jsonschema was available and used."""
    try:
        import jsonschema
    except ImportError:
        return False
    with open(os.path.join(SCHEMAS, "bundle.schema.json")) as f:
        bundle_schema = json.load(f)
    with open(os.path.join(SCHEMAS, "ir.schema.json")) as f:
        ir_schema = json.load(f)

    def check(schema, value, what):
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path)
            raise Failure(f"metadata {what}{' at ' + where if where else ''}: {e.message[:300]}")

    check(bundle_schema, metadata, "(bundle.schema.json)")
    for key, prop in bundle_schema["properties"].items():
        ref = prop.get("contentSchema", {}).get("$ref")
        if ref is None:
            continue
        document, _, pointer = ref.partition("#")
        schema = ir_schema if document == "ir.schema.json" else bundle_schema
        for part in [p for p in pointer.split("/") if p]:
            schema = schema[part]
        check(schema, parsed[key], f"'{key}'")
    return True


def validate_by_hand(metadata, parsed):
    """The schema's rules, for machines without jsonschema."""
    if metadata.get("producer", "").count(" ") != 1 or not metadata["producer"].startswith("idlevit "):
        raise Failure("metadata 'producer' is not 'idlevit <version>'")
    source = parsed["source"]
    if not isinstance(source, dict) or set(source) != {"file", "format", "sha256"}:
        raise Failure("metadata 'source' must be an object with exactly file, format, sha256")
    if not source["file"] or source["format"] not in ("safetensors", "onnx", "hdf5", "idlevit-bundle"):
        raise Failure("metadata 'source' has an empty file or an unknown format")
    sha = source["sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(ch in "0123456789abcdef" for ch in sha)):
        raise Failure("metadata 'source' sha256 is not 64 lower-case hex digits")
    a = parsed["architecture"]
    if not isinstance(a, dict) or set(a) != set(ARCH_KEYS):
        raise Failure(f"metadata 'architecture' must have exactly the keys {', '.join(ARCH_KEYS)}")
    for key in ARCH_KEYS[:8]:
        if not is_int(a[key]) or a[key] < 1:
            raise Failure(f"metadata 'architecture' {key} must be a positive integer")
    if not isinstance(a["distilled"], bool) or not isinstance(a["layer_norm_eps"], (int, float)) or a["layer_norm_eps"] < 0:
        raise Failure("metadata 'architecture' distilled must be a boolean and layer_norm_eps a number >= 0")
    idle = parsed["idle"]
    if not isinstance(idle, dict) or set(idle) != {"base_rate", "patch_count", "layers", "keep_ratios", "kept"}:
        raise Failure("metadata 'idle' must have exactly base_rate, patch_count, layers, keep_ratios, kept")
    rate = idle["base_rate"]
    if rate is not None and not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate <= 1):
        raise Failure("metadata 'idle' base_rate must be null or in (0, 1]")
    if not all(k is None or (is_int(k) and k >= 0) for k in idle["kept"]):
        raise Failure("metadata 'idle' kept entries must be null or non-negative integers")
    graph = parsed["graph"]
    if not isinstance(graph, dict) or graph.get("format") != "idlevit-ir" or graph.get("version") != 1:
        raise Failure("metadata 'graph' is not an idlevit-ir version 1 graph")
    for key in ("metadata", "inputs", "constants", "nodes", "outputs"):
        if key not in graph:
            raise Failure(f"metadata 'graph' lacks '{key}'")


def check_metadata(metadata, header, tensors):
    """Every metadata rule; returns the parsed JSON-valued entries."""
    for key in REQUIRED:
        if key not in metadata:
            raise Failure(f"metadata '{key}' is missing")
    if metadata["format"] != "idlevit-bundle" or metadata["format_version"] != "1":
        raise Failure(f"format {metadata['format']!r} version {metadata['format_version']!r}, expected idlevit-bundle 1")
    parsed = {}
    for key in ("source", "architecture", "idle", "graph"):
        try:
            parsed[key] = json.loads(metadata[key])
        except json.JSONDecodeError as error:
            raise Failure(f"metadata '{key}' is not valid JSON: {error}")
    used_schema = validate_with_schema(metadata, parsed)
    if not used_schema:
        validate_by_hand(metadata, parsed)

    stored = metadata["dtype"].upper()
    if stored not in ("F32", "F16", "BF16"):
        raise Failure(f"metadata 'dtype' {metadata['dtype']!r} is not f32, f16 or bf16")
    for name in tensors:
        if header[name]["dtype"] != stored:
            raise Failure(f"tensor '{name}' is {header[name]['dtype']}, metadata 'dtype' says {stored}")
    a = parsed["architecture"]
    expected = expected_tensors(a)
    if [name for name, _ in expected] != [n for n in header if n != "__metadata__"]:
        missing = [n for n, _ in expected if n not in tensors]
        extra = [n for n in tensors if n not in dict(expected)]
        raise Failure(f"tensors are not the timm state dict of the architecture in order (missing {missing[:3]}, extra {extra[:3]})")
    for name, shape in expected:
        if list(tensors[name].shape) != shape:
            raise Failure(f"tensor '{name}' has shape {list(tensors[name].shape)}, architecture needs {shape}")

    idle, depth = parsed["idle"], a["depth"]
    patches = (a["image_size"] // a["patch_size"]) ** 2
    kept = idle["kept"]
    if len(kept) != depth or len(idle["keep_ratios"]) != depth:
        raise Failure(f"metadata 'idle' has {len(kept)} kept / {len(idle['keep_ratios'])} ratio entries for depth {depth}")
    if idle["patch_count"] != patches:
        raise Failure(f"metadata 'idle' patch_count {idle['patch_count']} is not the model's {patches} patches")
    if any(k is not None and k > patches for k in kept):
        raise Failure(f"metadata 'idle' keeps more than {patches} tokens somewhere: {kept}")
    if idle["layers"] != [i for i, k in enumerate(kept) if k is not None]:
        raise Failure("metadata 'idle' layers do not list the layers with a kept count")
    for k, ratio in zip(kept, idle["keep_ratios"]):
        if (k is None) != (ratio is None) or (k is not None and ratio != k / patches):
            raise Failure(f"metadata 'idle' keep_ratios {idle['keep_ratios']} are not kept / patch_count")

    graph = parsed["graph"]
    if graph.get("architecture") != a:
        raise Failure("metadata 'graph' architecture differs from metadata 'architecture'")
    constants = {c["name"]: c["shape"] for c in graph["constants"]}
    if constants != {name: shape for name, shape in expected}:
        raise Failure("metadata 'graph' constants are not exactly the tensors with their shapes")
    prefix = 2 if a["distilled"] else 1
    selects = {n["name"]: n for n in graph["nodes"] if n["op"] == "token_select"}
    effective = {i: k for i, k in enumerate(kept) if k is not None and k != patches}
    if set(selects) != {f"blocks.{i}.selected" for i in effective}:
        raise Failure(f"metadata 'graph' token_select nodes {sorted(selects)} do not match the idle layers {sorted(effective)}")
    for i, k in effective.items():
        attrs = selects[f"blocks.{i}.selected"]["attributes"]
        if attrs.get("keep") != k or attrs.get("prefix") != prefix:
            raise Failure(f"metadata 'graph' node blocks.{i}.selected keeps {attrs.get('keep')}, 'idle' says {k}")
    return parsed, used_schema


# ------------------------------------------------------------------------------------------
# torch + timm

def build_timm_model(a):
    import torch
    import timm
    from functools import partial
    family = None
    if (a["image_size"], a["patch_size"], a["depth"], a["in_channels"], a["num_classes"]) == (224, 16, 12, 3, 1000) \
            and a["embed_dim"] // a["num_heads"] == 64 and a["mlp_hidden"] == 4 * a["embed_dim"] \
            and a["layer_norm_eps"] == 1e-6:
        family = {192: "deit_tiny", 384: "deit_small", 768: "deit_base"}.get(a["embed_dim"])
    if family:
        name = family + ("_distilled" if a["distilled"] else "") + "_patch16_224"
        return timm.create_model(name, pretrained=False).eval(), name
    from timm.models.vision_transformer import VisionTransformer
    from timm.models.deit import VisionTransformerDistilled
    cls = VisionTransformerDistilled if a["distilled"] else VisionTransformer
    model = cls(img_size=a["image_size"], patch_size=a["patch_size"], in_chans=a["in_channels"], num_classes=a["num_classes"],
                embed_dim=a["embed_dim"], depth=a["depth"], num_heads=a["num_heads"], mlp_ratio=a["mlp_hidden"] / a["embed_dim"],
                qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=a["layer_norm_eps"]))
    return model.eval(), cls.__name__


def single_tensor(path, preferred):
    import torch
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
        sys.path.insert(0, HERE)
        import idlevit_reference
        result = idlevit_reference.idle_forward(model, pixels, idle["kept"], with_cut_loss=False)
        from safetensors.torch import load_file as load
        ref = load(args.idle_reference)
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
            if expected.shape != array.shape or not np.array_equal(expected.view(np.uint8), np.ascontiguousarray(array).view(np.uint8)):
                diff = float(np.abs(widen(array, stored) - source[tensor_name]).max()) if expected.shape == array.shape else float("nan")
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

"""Metadata rules of IdleViT bundles for Fixtures/check_bundle.py (DESIGN.md section 5).

check_metadata validates a bundle's __metadata__ against Schemas/bundle.schema.json (each
JSON-valued entry against its contentSchema) when jsonschema is importable, by the same rules
written out by hand otherwise, and then checks what no schema can state: tensors against the
architecture, the graph against the tensors, the schedule against the depth and against the
graph's token_select nodes.
"""

from __future__ import annotations

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(os.path.dirname(HERE), "Schemas")
REQUIRED = ["format", "format_version", "producer", "dtype", "source", "architecture", "idle", "graph"]
ARCH_KEYS = ["image_size", "patch_size", "in_channels", "embed_dim", "depth", "num_heads", "mlp_hidden",
             "num_classes", "distilled", "layer_norm_eps"]
# Keys later versions added, with the value their absence means (bundles of the first release).
ARCH_OPTIONAL = {"family": "vit", "qkv_bias": True, "layer_scale": False, "prefix_positions": True,
                 "stem_channels": 0, "stem_batch_norm": False, "skip_lam": 1.0, "aux_head": False}


class Failure(Exception):
    """A check that did not pass."""


def arch_value(a, key):
    return a.get(key, ARCH_OPTIONAL.get(key))


def expected_tensors(a):
    """timm's state dict for the architecture (written independently of idlevit's table); LV-ViT's
    is the official TokenLabeling / IdleViT module's (PatchEmbed4_2 stem, aux_head)."""
    if arch_value(a, "family") == "lvvit":
        return lvvit_tensors(a)
    c, h = a["embed_dim"], a["mlp_hidden"]
    patches = (a["image_size"] // a["patch_size"]) ** 2
    prefix = 2 if a["distilled"] else 1
    n = patches + prefix if arch_value(a, "prefix_positions") else patches
    names = [("cls_token", [1, 1, c]), ("pos_embed", [1, n, c])] + ([("dist_token", [1, 1, c])] if a["distilled"] else [])
    names += [("patch_embed.proj.weight", [c, a["in_channels"], a["patch_size"], a["patch_size"]]), ("patch_embed.proj.bias", [c])]
    scale = arch_value(a, "layer_scale")
    for i in range(a["depth"]):
        b = f"blocks.{i}."
        names += [(b + "norm1.weight", [c]), (b + "norm1.bias", [c]), (b + "attn.qkv.weight", [3 * c, c])]
        if arch_value(a, "qkv_bias"):
            names += [(b + "attn.qkv.bias", [3 * c])]
        names += [(b + "attn.proj.weight", [c, c]), (b + "attn.proj.bias", [c])]
        if scale:
            names += [(b + "ls1.gamma", [c])]
        names += [(b + "norm2.weight", [c]), (b + "norm2.bias", [c]), (b + "mlp.fc1.weight", [h, c]),
                  (b + "mlp.fc1.bias", [h]), (b + "mlp.fc2.weight", [c, h]), (b + "mlp.fc2.bias", [c])]
        if scale:
            names += [(b + "ls2.gamma", [c])]
    names += [("norm.weight", [c]), ("norm.bias", [c]), ("head.weight", [a["num_classes"], c]), ("head.bias", [a["num_classes"]])]
    if a["distilled"]:
        names += [("head_dist.weight", [a["num_classes"], c]), ("head_dist.bias", [a["num_classes"]])]
    return names


def lvvit_tensors(a):
    c, h, w = a["embed_dim"], a["mlp_hidden"], arch_value(a, "stem_channels")
    n = (a["image_size"] // a["patch_size"]) ** 2 + 1
    names = [("cls_token", [1, 1, c]), ("pos_embed", [1, n, c])]
    for i, (inputs, k) in enumerate([(a["in_channels"], 7), (w, 3), (w, 3)], start=1):
        names += [(f"patch_embed.conv{i}.weight", [w, inputs, k, k])]
        if arch_value(a, "stem_batch_norm"):
            names += [(f"patch_embed.bn{i}.{p}", [w]) for p in ("weight", "bias", "running_mean", "running_var")]
        else:
            names += [(f"patch_embed.conv{i}.bias", [w])]
    half = a["patch_size"] // 2
    names += [("patch_embed.proj.weight", [c, w, half, half]), ("patch_embed.proj.bias", [c])]
    for i in range(a["depth"]):
        b = f"blocks.{i}."
        names += [(b + "norm1.weight", [c]), (b + "norm1.bias", [c]), (b + "attn.qkv.weight", [3 * c, c])]
        if arch_value(a, "qkv_bias"):
            names += [(b + "attn.qkv.bias", [3 * c])]
        names += [(b + "attn.proj.weight", [c, c]), (b + "attn.proj.bias", [c]), (b + "norm2.weight", [c]), (b + "norm2.bias", [c]),
                  (b + "mlp.fc1.weight", [h, c]), (b + "mlp.fc1.bias", [h]), (b + "mlp.fc2.weight", [c, h]), (b + "mlp.fc2.bias", [c])]
    names += [("norm.weight", [c]), ("norm.bias", [c]), ("head.weight", [a["num_classes"], c]), ("head.bias", [a["num_classes"]])]
    if arch_value(a, "aux_head"):
        names += [("aux_head.weight", [a["num_classes"], c]), ("aux_head.bias", [a["num_classes"]])]
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
        if ref is None or key not in parsed:
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
    if not source["file"] or source["format"] not in ("safetensors", "onnx", "hdf5", "pytorch", "idlevit-bundle"):
        raise Failure("metadata 'source' has an empty file or an unknown format")
    sha = source["sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(ch in "0123456789abcdef" for ch in sha)):
        raise Failure("metadata 'source' sha256 is not 64 lower-case hex digits")
    a = parsed["architecture"]
    if not isinstance(a, dict) or not set(ARCH_KEYS) <= set(a) or not set(a) <= set(ARCH_KEYS) | set(ARCH_OPTIONAL):
        raise Failure(f"metadata 'architecture' must have the keys {', '.join(ARCH_KEYS)} and may have {', '.join(ARCH_OPTIONAL)}")
    for key in ("qkv_bias", "layer_scale", "prefix_positions"):
        if not isinstance(arch_value(a, key), bool):
            raise Failure(f"metadata 'architecture' {key} must be a boolean")
    if arch_value(a, "family") not in ("vit", "lvvit"):
        raise Failure("metadata 'architecture' family must be 'vit' or 'lvvit'")
    if "preprocessing" in parsed:
        pre = parsed["preprocessing"]
        if (not isinstance(pre, dict) or set(pre) != {"mean", "std", "crop_pct", "interpolation"}
                or len(pre["mean"]) != 3 or len(pre["std"]) != 3 or not all(x > 0 for x in pre["std"])
                or not 0.05 <= pre["crop_pct"] <= 1):
            raise Failure("metadata 'preprocessing' must hold 3 means, 3 positive stds, crop_pct in [0.05, 1], interpolation")
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
    for key in ("source", "architecture", "idle", "graph") + (("preprocessing",) if "preprocessing" in metadata else ()):
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

#!/usr/bin/env python3
"""Writes the crafted hostile corpus under Fixtures/hostile/ and its manifest.json.

Every case is one way of attacking idlevit, grouped by class (overflow, allocation, hang,
fifo, data-loss, message, wrong-answer). `HostileCorpusTests` replays each one through the
built `idlevit` binary in a child process with a data-size limit (setrlimit RLIMIT_DATA) and a
time limit, and asserts exit 2 (or the case's `expect`), exactly one stderr line with no
control characters, no signal, and no file left behind or changed.

Files stay tiny: large inputs are described in the manifest and made at test time (sparse
files via ftruncate, FIFOs, a chunk repeated N times), so the committed corpus is well under
2 MB. Model files are header-only: `size` in the manifest extends the copy with zeros (a hole)
to the length its header declares, which is all a hostile header needs.

    /work/venv/bin/python Fixtures/hostile/make_hostile.py [path/to/idlevit]

The idlevit binary (default .build/debug/idlevit) is used once, to write a valid bundle whose
metadata the bundle cases then tamper with. Deterministic: no randomness, sorted keys where
order is free; rerunning gives the same bytes with the same idlevit.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
IDLEVIT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".build/debug/idlevit"
CASES = []
# Per-case wall-clock limit of HostileCorpusTests unless a case says otherwise (seconds; the
# tests run the debug build on a shared machine, so this is generous; `time_limit` tightens it
# where only speed shows the bug, e.g. inflating 16 GB of IDAT takes longer than 10 s).

# The tiny DeiT every model case starts from: image 8, patch 4 (4 patches), dim 64, one head,
# depth 1, MLP 64, 2 classes, timm names.
DIM, PATCH, IMAGE, MLP, CLASSES = 64, 4, 8, 64, 2
TOKENS = (IMAGE // PATCH) ** 2 + 1


def tiny_shapes(depth=1):
    shapes = {"cls_token": [1, 1, DIM], "pos_embed": [1, TOKENS, DIM],
              "patch_embed.proj.weight": [DIM, 3, PATCH, PATCH], "patch_embed.proj.bias": [DIM]}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": [DIM], b + "norm1.bias": [DIM],
                       b + "attn.qkv.weight": [3 * DIM, DIM], b + "attn.qkv.bias": [3 * DIM],
                       b + "attn.proj.weight": [DIM, DIM], b + "attn.proj.bias": [DIM],
                       b + "norm2.weight": [DIM], b + "norm2.bias": [DIM],
                       b + "mlp.fc1.weight": [MLP, DIM], b + "mlp.fc1.bias": [MLP],
                       b + "mlp.fc2.weight": [DIM, MLP], b + "mlp.fc2.bias": [DIM]})
    shapes.update({"norm.weight": [DIM], "norm.bias": [DIM], "head.weight": [CLASSES, DIM], "head.bias": [CLASSES]})
    return shapes


SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1}


def st_header(entries, metadata=None):
    """entries: list of (name, dtype, shape[, explicit offsets]); offsets tile in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    cursor = 0
    for entry in entries:
        name, dtype, shape = entry[:3]
        if len(entry) > 3:
            offsets = entry[3]
        else:
            count = 1
            for d in shape:
                count *= d
            offsets = [cursor, cursor + count * SIZES.get(dtype, 4)]
            cursor = offsets[1]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
    return header, cursor


def st_bytes(header, raw=None):
    text = raw if raw is not None else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text


def write(rel, data):
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return "hostile/" + rel


def case(name, kind, args, setup=(), expect=2, contains=None, stdout_clean=False, note="", time_limit=None):
    CASES.append({"name": name, "class": kind, "setup": list(setup), "args": args, "expect": expect,
                  **({"stderr_contains": contains} if contains else {}),
                  **({"time_limit": time_limit} if time_limit else {}),
                  **({"stdout_clean": True} if stdout_clean else {}),
                  **({"note": note} if note else {})})


def header_model(rel, entries, metadata=None, raw=None, data_length=None):
    """A header-only safetensors file; returns (fixture path, full size)."""
    header, length = st_header(entries, metadata)
    data = st_bytes(header, raw)
    return write(rel, data), len(data) + (length if data_length is None else data_length)


def model_case(name, kind, entries, metadata=None, command=("inspect",), extra=(), raw=None, data_length=None,
               contains=None, note=""):
    rel = "safetensors/" + name + ".safetensors"
    fixture, size = header_model(rel, entries, metadata, raw, data_length)
    case(name, kind, [command[0], "{tmp}/m.safetensors", *command[1:], *extra],
         setup=[{"copy": fixture, "to": "m.safetensors", "size": size}], contains=contains, note=note)


def tiny_entries(dtype="F32", depth=1, replace=None, add=()):
    entries = []
    for name, shape in tiny_shapes(depth).items():
        if replace and name in replace:
            if replace[name] is None:
                continue
            entries.append(replace[name])
        else:
            entries.append((name, dtype, shape))
    entries += list(add)
    return entries


# ---------------------------------------------------------------------------------------------
# safetensors containers


def safetensors_cases():
    big = 1 << 62
    # The control: the tiny model itself must load (exit 0), or the harness proves nothing.
    fixture, size = header_model("safetensors/control-tiny.safetensors", tiny_entries())
    case("control-tiny", "control", ["inspect", "{tmp}/m.safetensors"],
         setup=[{"copy": fixture, "to": "m.safetensors", "size": size}], expect=0)

    fixture, size = header_model("safetensors/metadata-escapes.safetensors", tiny_entries(),
                                 metadata={"note\x1b[2J": "line one\nline two\x1b]0;title\x07\u202e", "k": "\u0085\u2028"})
    case("inspect-metadata-escapes", "message", ["inspect", "{tmp}/m.safetensors"],
         setup=[{"copy": fixture, "to": "m.safetensors", "size": size}], expect=0, stdout_clean=True)

    raw_cases = {
        "header-length-max": struct.pack("<Q", (1 << 64) - 1) + b"{}",
        "header-length-past-eof": struct.pack("<Q", 1 << 40) + b"{}",
        "header-length-one": struct.pack("<Q", 1) + b"{",
        "header-not-utf8": st_bytes(None, b'{"\xff\xfe":1}'),
        "header-not-json": st_bytes(None, b"{not json}"),
        "header-array": st_bytes(None, b"[1,2,3]"),
        "header-deep-nesting": st_bytes(None, b'{"a":' + b"[" * 10000 + b"]" * 10000 + b"}"),
        "header-duplicate-keys": st_bytes(None, b'{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'),
        "header-huge-number": st_bytes(None, b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,0]}}'),
        "header-float-dim": st_bytes(None, b'{"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,0]}}'),
        "header-lone-surrogate": st_bytes(None, b'{"\\ud800":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'),
        "seven-bytes": b"\x10\x00\x00\x00\x00\x00\x00",
        "git-lfs-pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 1234\n",
        "empty": b"",
    }
    for name, data in raw_cases.items():
        fixture = write(f"safetensors/{name}.safetensors", data)
        case(name, "container", ["inspect", "{tmp}/m.safetensors"], setup=[{"copy": fixture, "to": "m.safetensors"}])

    model_case("shape-product-overflow", "overflow", [("w", "F32", [big, 4], [0, 0])])
    model_case("shape-int64-min", "overflow", [("w", "F32", [-(1 << 63)], [0, 0])])
    model_case("shape-rank-1000", "overflow", [("w", "F32", [1] * 1000, [0, 4])], data_length=4)
    model_case("offsets-past-int64", "overflow", [("w", "F32", [1], [(1 << 64) - 4, 1 << 64])])
    model_case("offsets-reversed", "container", [("w", "F32", [1], [4, 0])], data_length=4)
    model_case("offsets-overlap", "container", [("a", "F32", [2], [0, 8]), ("b", "F32", [2], [4, 12])], data_length=12)
    model_case("offsets-hole", "container", [("a", "F32", [1], [0, 4]), ("b", "F32", [1], [8, 12])], data_length=12)
    model_case("trailing-bytes", "container", [("a", "F32", [1], [0, 4])], data_length=64)
    model_case("dtype-unknown", "container", [("a", "Q7", [1], [0, 4])], data_length=4)
    model_case("dtype-control-chars", "message", [("a", "F\n32\x1b[31m", [1], [0, 4])], data_length=4)
    model_case("name-newline-ansi", "message", [("blocks.0.norm1\n.weight\x1b[2J", "F32", [1], [0, 8])], data_length=8)
    model_case("name-bidi-override", "message", [("head.\u202eweight", "F32", [1], [0, 8])], data_length=8)
    model_case("name-64k", "message", [("n" * 65536, "F32", [1], [0, 4])], data_length=4)
    model_case("metadata-not-string", "container", [("a", "F32", [1], [0, 4])], metadata={"k": 5}, data_length=4)
    model_case("metadata-key-escape", "message", [("a", "F32", [1], [0, 4])], metadata={"k\x1b]0;pwned\x07": 5}, data_length=4)

    # DeiT recognition on forged shapes and names.
    model_case("block-index-int64-max", "overflow",
               tiny_entries(add=[("blocks.9223372036854775807.norm1.weight", "F32", [DIM])]))
    model_case("block-index-1e6", "allocation",
               tiny_entries(add=[("blocks.1000000.norm1.weight", "F32", [DIM])]))
    model_case("block-index-1e18", "overflow",
               tiny_entries(add=[("blocks.1000000000000000000.norm1.weight", "F32", [DIM])]))
    model_case("block-index-huge-digits", "overflow",
               tiny_entries(add=[("blocks." + "9" * 400 + ".norm1.weight", "F32", [DIM])]))
    model_case("patch-weight-zero-huge", "overflow",
               tiny_entries(replace={"patch_embed.proj.weight": ("patch_embed.proj.weight", "F32", [0, 3, big, big], [0, 0])}),
               data_length=None)
    model_case("patch-weight-kernel-2e31", "overflow",
               tiny_entries(replace={"patch_embed.proj.weight": ("patch_embed.proj.weight", "F32", [0, 3, 1 << 31, 1 << 31], [0, 0])}))
    model_case("pos-embed-zero-huge", "overflow",
               tiny_entries(replace={"pos_embed": ("pos_embed", "F32", [0, 1 << 40, DIM], [0, 0])}))
    model_case("head-classes-zero-huge", "overflow",
               tiny_entries(replace={"head.weight": ("head.weight", "F32", [1 << 62, 0], [0, 0])}))
    model_case("embed-dim-zero", "overflow",
               tiny_entries(replace={"cls_token": ("cls_token", "F32", [1, 1, 0], [0, 0])}))
    model_case("qkv-zero-rows", "overflow",
               tiny_entries(replace={"blocks.0.attn.qkv.weight": ("blocks.0.attn.qkv.weight", "F32", [0, DIM], [0, 0])}))
    model_case("head-dim-mismatch-heads-flag", "overflow", tiny_entries(), extra=["--heads", "7"])
    model_case("depth-1024-empty-blocks", "allocation",
               tiny_entries(add=[(f"blocks.{i}.norm1.weight", "F32", [0], [0, 0]) for i in (1023,)]))

    # Sparse files: the header is right, the bytes are holes.
    n = 1_000_000_000
    model_case("sparse-f16-1e9", "allocation",
               tiny_entries(dtype="F16", replace={"blocks.0.mlp.fc1.weight": ("blocks.0.mlp.fc1.weight", "F16", [n // DIM, DIM])}),
               note="2 GB of F16 holes would be a 4 GB F32 copy")
    model_case("sparse-bf16-head", "allocation",
               tiny_entries(dtype="BF16", replace={"head.weight": ("head.weight", "BF16", [1 << 24, DIM])}))
    model_case("sparse-f32-junk-tensor", "allocation", tiny_entries(add=[("junk", "F32", [n])]))
    # Many tensors: header work must stay linear and bounded.
    case("zero-size-tensors-300k", "hang", ["inspect", "{tmp}/m.safetensors"],
         setup=[{"zero_tensors": 300000, "to": "m.safetensors"}])

    # Under the tensor limit but all wrong: the one line lists 20 problems and a count.
    case("unexpected-tensors-3000", "message", ["inspect", "{tmp}/m.safetensors"],
         setup=[{"zero_tensors": 3000, "to": "m.safetensors"}], contains=" more")
    # Input and reference files (run / verify).
    tiny_fixture, tiny_size = header_model("safetensors/tiny-model.safetensors", tiny_entries())
    tiny = {"copy": tiny_fixture, "to": "model.safetensors", "size": tiny_size}
    inp, inp_size = header_model("safetensors/input-batch-1e5.safetensors", [("pixel_values", "F32", [100000, 3, IMAGE, IMAGE])])
    case("input-batch-1e5", "allocation", ["run", "{tmp}/model.safetensors", "--input", "{tmp}/in.safetensors"],
         setup=[tiny, {"copy": inp, "to": "in.safetensors", "size": inp_size}])
    inp, inp_size = header_model("safetensors/input-batch-2e9.safetensors", [("pixel_values", "F16", [1 << 31, 3, IMAGE, IMAGE])])
    case("input-batch-2e31-f16", "overflow", ["run", "{tmp}/model.safetensors", "--input", "{tmp}/in.safetensors"],
         setup=[tiny, {"copy": inp, "to": "in.safetensors", "size": inp_size}])
    inp, inp_size = header_model("safetensors/input-ok.safetensors", [("pixel_values", "F32", [1, 3, IMAGE, IMAGE])])
    ok_input = {"copy": inp, "to": "in.safetensors", "size": inp_size}
    nan = np.full((1, 3, IMAGE, IMAGE), np.nan, dtype=np.float32)
    nan[0, 1] = np.inf
    header, _ = st_header([("pixel_values", "F32", [1, 3, IMAGE, IMAGE])])
    fixture = write("safetensors/input-nan.safetensors", st_bytes(header) + nan.tobytes())
    case("input-nan-pixels", "wrong-answer", ["run", "{tmp}/model.safetensors", "--input", "{tmp}/in.safetensors", "--json"],
         setup=[tiny, {"copy": fixture, "to": "in.safetensors"}], contains="non-finite")
    ref, ref_size = header_model("safetensors/reference-unrelated.safetensors", [("foo", "F32", [2])])
    case("verify-nothing-comparable", "wrong-answer",
         ["verify", "{tmp}/model.safetensors", "--input", "{tmp}/in.safetensors", "--reference", "{tmp}/ref.safetensors"],
         setup=[tiny, ok_input, {"copy": ref, "to": "ref.safetensors", "size": ref_size}], contains="nothing to compare")
    ref, ref_size = header_model("safetensors/reference-empty.safetensors", [])
    case("verify-empty-reference", "wrong-answer",
         ["verify", "{tmp}/model.safetensors", "--input", "{tmp}/in.safetensors", "--reference", "{tmp}/ref.safetensors"],
         setup=[tiny, ok_input, {"copy": ref, "to": "ref.safetensors", "size": ref_size}], contains="nothing to compare")
    ref, ref_size = header_model("safetensors/reference-sparse-i64.safetensors", [("blocks.0.selected", "I64", [1 << 27, 4])])
    case("verify-reference-sparse-i64", "allocation",
         ["verify", "{tmp}/model.safetensors", "--input", "{tmp}/in.safetensors", "--reference", "{tmp}/ref.safetensors"],
         setup=[tiny, ok_input, {"copy": ref, "to": "ref.safetensors", "size": ref_size}])
    return tiny


# ---------------------------------------------------------------------------------------------
# FIFOs, devices, directories, big side files


def fifo_cases(tiny):
    model = "{fixtures}/micro/model.safetensors"
    case("fifo-model", "fifo", ["inspect", "{tmp}/fifo"], setup=[{"fifo": "fifo"}])
    case("fifo-model-symlink", "fifo", ["inspect", "{tmp}/link.safetensors"], setup=[{"fifo": "fifo"}, {"link": "{tmp}/fifo", "to": "link.safetensors"}])
    case("fifo-input", "fifo", ["run", model, "--input", "{tmp}/fifo"], setup=[{"fifo": "fifo"}])
    case("fifo-reference", "fifo", ["verify", model, "--input", "{fixtures}/micro/input.safetensors", "--reference", "{tmp}/fifo"], setup=[{"fifo": "fifo"}])
    case("fifo-image", "fifo", ["run", model, "--image", "{tmp}/fifo.jpg"], setup=[{"fifo": "fifo.jpg"}])
    case("fifo-image-in-folder", "fifo", ["run", model, "--image", "{tmp}/images"],
         setup=[{"dir": "images"}, {"fifo": "images/a.png"}])
    case("fifo-labels", "fifo", ["run", model, "--input", "{fixtures}/micro/input.safetensors", "--labels", "{tmp}/fifo"], setup=[{"fifo": "fifo"}])
    case("fifo-config-json", "fifo", ["inspect", "{tmp}/model.safetensors"],
         setup=[{"link": "{fixtures}/micro-hf/model.safetensors", "to": "model.safetensors"}, {"fifo": "config.json"}])
    case("fifo-onnx-external-data", "fifo", ["inspect", "{tmp}/model.onnx"],
         setup=[{"copy": "micro/external/model.onnx", "to": "model.onnx"}, {"fifo": "model.onnx.data"}])
    case("dev-zero-model", "fifo", ["inspect", "/dev/zero"])
    case("dev-zero-image", "fifo", ["run", model, "--image", "/dev/zero"])
    case("dev-zero-labels", "fifo", ["run", model, "--input", "{fixtures}/micro/input.safetensors", "--labels", "/dev/zero"])
    case("directory-model", "fifo", ["inspect", "{tmp}"])
    case("missing-model", "fifo", ["inspect", "{tmp}/missing.safetensors"])
    case("symlink-loop-model", "fifo", ["inspect", "{tmp}/loop"], setup=[{"link": "{tmp}/loop", "to": "loop"}])
    case("dangling-symlink-image", "fifo", ["run", model, "--image", "{tmp}/gone.png"], setup=[{"link": "{tmp}/nowhere.png", "to": "gone.png"}])
    case("path-too-long", "fifo", ["inspect", "{tmp}/" + "a" * 5000 + ".safetensors"])
    case("path-with-newline-missing", "message", ["inspect", "{tmp}/new\nline\x1b[31m.safetensors"])
    case("labels-3gb-sparse", "allocation", ["run", model, "--input", "{fixtures}/micro/input.safetensors", "--labels", "{tmp}/labels.txt"],
         setup=[{"sparse": "labels.txt", "size": 3_000_000_000}])
    case("labels-not-utf8", "message", ["run", model, "--input", "{fixtures}/micro/input.safetensors", "--labels", "{tmp}/labels.txt"],
         setup=[{"copy": write("text/latin1-labels.txt", b"caf\xe9\n" * 10), "to": "labels.txt"}])
    case("config-json-3gb-sparse", "allocation", ["inspect", "{tmp}/model.safetensors"],
         setup=[{"link": "{fixtures}/micro-hf/model.safetensors", "to": "model.safetensors"}, {"sparse": "config.json", "size": 3_000_000_000}])
    case("config-json-deep", "container", ["inspect", "{tmp}/model.safetensors"],
         setup=[{"link": "{fixtures}/micro-hf/model.safetensors", "to": "model.safetensors"},
                {"copy": write("text/deep-config.json", b"[" * 5000 + b"]" * 5000), "to": "config.json"}])
    case("config-json-heads-zero", "overflow", ["inspect", "{tmp}/model.safetensors"],
         setup=[{"link": "{fixtures}/micro-hf/model.safetensors", "to": "model.safetensors"},
                {"copy": write("text/heads-zero-config.json", b'{"num_attention_heads": 0, "layer_norm_eps": 1e-12}'), "to": "config.json"}])
    case("config-json-heads-huge", "overflow", ["inspect", "{tmp}/model.safetensors"],
         setup=[{"link": "{fixtures}/micro-hf/model.safetensors", "to": "model.safetensors"},
                {"copy": write("text/heads-huge-config.json", b'{"num_attention_heads": 9223372036854775807, "layer_norm_eps": -1}'), "to": "config.json"}])


# ---------------------------------------------------------------------------------------------
# Command-line flags


def flag_cases():
    m = "{fixtures}/micro/model.safetensors"
    inp = "{fixtures}/micro/input.safetensors"
    flags = {
        "bench-batch-int64-max": ["bench", m, "--batch", "9223372036854775807", "--runs", "1", "--warmup", "0"],
        "bench-batch-1e5": ["bench", m, "--batch", "100000", "--runs", "1", "--warmup", "0"],
        "bench-batch-3e4-budget": ["bench", m, "--batch", "30000", "--runs", "1", "--warmup", "0"],
        "bench-batch-zero": ["bench", m, "--batch", "0"],
        "bench-batch-negative": ["bench", m, "--batch", "-5"],
        "bench-batch-overflow-text": ["bench", m, "--batch", "99999999999999999999999"],
        "bench-runs-1e12": ["bench", m, "--runs", "1000000000000"],
        "bench-warmup-negative": ["bench", m, "--warmup", "-1"],
        "bench-threads-zero": ["bench", m, "--threads", "0"],
        "bench-max-memory-garbage": ["bench", m, "--max-memory", "lots"],
        "bench-max-memory-tiny": ["bench", m, "--max-memory", "1K", "--runs", "1"],
        "bench-max-memory-overflow": ["bench", m, "--max-memory", "99999999999T"],
        "run-threads-zero": ["run", m, "--input", inp, "--threads", "0"],
        "run-threads-negative": ["run", m, "--input", inp, "--threads", "-3"],
        "run-threads-huge": ["run", m, "--input", inp, "--threads", "4611686018427387904"],
        "run-top-zero": ["run", m, "--input", inp, "--top", "0"],
        "run-top-int64-max": ["run", m, "--input", inp, "--top", "9223372036854775807"],
        "run-crop-pct-tiny": ["run", m, "--image", "{fixtures}/images/rocket.jpg", "--crop-pct", "1e-300"],
        "run-crop-pct-small": ["run", m, "--image", "{fixtures}/images/rocket.jpg", "--crop-pct", "0.0001"],
        "run-crop-pct-nan": ["run", m, "--image", "{fixtures}/images/rocket.jpg", "--crop-pct", "nan"],
        "run-crop-pct-inf": ["run", m, "--image", "{fixtures}/images/rocket.jpg", "--crop-pct", "inf"],
        "run-crop-pct-zero": ["run", m, "--image", "{fixtures}/images/rocket.jpg", "--crop-pct", "0"],
        "run-crop-pct-over-one": ["run", m, "--image", "{fixtures}/images/rocket.jpg", "--crop-pct", "1.5"],
        "run-no-input": ["run", m],
        "run-both-inputs": ["run", m, "--input", inp, "--image", "{fixtures}/images/rocket.jpg"],
        "keep-ratio-nan": ["stats", m, "--keep-ratio", "nan"],
        "keep-ratio-negative": ["stats", m, "--keep-ratio", "-0.5"],
        "idle-layers-int64": ["stats", m, "--keep-ratio", "0.5", "--idle-layers", "0-9223372036854775807"],
        "idle-layers-garbage": ["stats", m, "--keep-ratio", "0.5", "--idle-layers", "3-\n-1"],
        "kept-tokens-huge": ["stats", m, "--kept-tokens", "99999999999999,1,1,1"],
        "kept-tokens-many": ["stats", m, "--kept-tokens", ",".join(["1"] * 5000)],
        "kept-tokens-negative": ["stats", m, "--kept-tokens", "-1,1,1,1"],
        "heads-zero": ["inspect", m, "--heads", "0"],
        "heads-int64-max": ["inspect", m, "--heads", "9223372036854775807"],
        "heads-negative": ["inspect", m, "--heads", "-2"],
        "heads-not-dividing": ["inspect", m, "--heads", "3"],
        "verify-atol-nan": ["verify", m, "--input", inp, "--reference", "{fixtures}/micro/reference.safetensors", "--atol", "nan"],
        "verify-rtol-negative": ["verify", m, "--input", inp, "--reference", "{fixtures}/micro/reference.safetensors", "--rtol", "-1"],
        "convert-dtype-unknown": ["convert", m, "-o", "{tmp}/out.safetensors", "--dtype", "f8"],
        "visualize-columns-huge": ["visualize", m, "--keep-ratio", "0.5", "--image", "{fixtures}/images/rocket.jpg", "-o", "{tmp}/out.png", "--columns", "1000000000"],
        "unknown-option-newline": ["inspect", m, "--bogus\nline"],
        "unknown-command": ["frobnicate\x1b[31m"],
    }
    for name, args in flags.items():
        case(name, "flags", args)
    # Valid, if odd: every idle layer keeps no patch at all.
    case("keep-ratio-tiny", "control", ["stats", m, "--keep-ratio", "1e-300"], expect=0)


# ---------------------------------------------------------------------------------------------
# Output == input (data loss)


def data_loss_cases():
    model = {"copy": "micro/model-f16.safetensors", "to": "m.safetensors"}
    case("convert-same-path", "data-loss", ["convert", "{tmp}/m.safetensors", "-o", "{tmp}/m.safetensors", "--to", "safetensors", "--dtype", "f16"], setup=[model])
    case("convert-dot-path", "data-loss", ["convert", "{tmp}/m.safetensors", "-o", "{tmp}/./m.safetensors"], setup=[model])
    case("convert-dotdot-path", "data-loss", ["convert", "{tmp}/m.safetensors", "-o", "{tmp}/sub/../m.safetensors"], setup=[model, {"dir": "sub"}])
    case("convert-symlink", "data-loss", ["convert", "{tmp}/m.safetensors", "-o", "{tmp}/alias.safetensors"],
         setup=[model, {"link": "{tmp}/m.safetensors", "to": "alias.safetensors"}])
    case("convert-hard-link", "data-loss", ["convert", "{tmp}/m.safetensors", "-o", "{tmp}/twin.safetensors"],
         setup=[model, {"hardlink": "m.safetensors", "to": "twin.safetensors"}])
    case("convert-double-slash", "data-loss", ["convert", "{tmp}//m.safetensors", "-o", "{tmp}/m.safetensors", "--to", "safetensors"], setup=[model])
    case("convert-onnx-data-over-model", "data-loss", ["convert", "{tmp}/m.onnx.data", "-o", "{tmp}/m.onnx", "--to", "onnx", "--external-data"],
         setup=[{"copy": "micro/model-f16.safetensors", "to": "m.onnx.data"}])
    image = {"copy": "images/rocket.jpg", "to": "rocket.jpg"}
    case("visualize-over-image", "data-loss",
         ["visualize", "{fixtures}/micro/model.safetensors", "--keep-ratio", "0.5", "--image", "{tmp}/rocket.jpg", "-o", "{tmp}/rocket.jpg"], setup=[image])
    case("visualize-over-model", "data-loss",
         ["visualize", "{tmp}/m.safetensors", "--keep-ratio", "0.5", "--image", "{fixtures}/images/rocket.jpg", "-o", "{tmp}/./m.safetensors"], setup=[model])
    case("visualize-over-image-in-folder", "data-loss",
         ["visualize", "{fixtures}/micro/model.safetensors", "--keep-ratio", "0.5", "--image", "{tmp}/pics", "-o", "{tmp}/pics/rocket.jpg"],
         setup=[{"dir": "pics"}, {"copy": "images/rocket.jpg", "to": "pics/rocket.jpg"}])


# ---------------------------------------------------------------------------------------------
# Bundles: a valid bundle of the tiny model, then its metadata tampered with


def gather_from_other_tokens(meta, header):
    """An idle block's gather of the stream pointed at the patch embedding (one token fewer):
    every type still checks, but token_select's positions would index past it."""
    graph = json.loads(meta["graph"])
    nodes = graph["nodes"]
    patches = next(n for n in nodes if n["op"] == "patch_embed")
    gather = next(n for n in nodes if n["op"] == "gather_tokens")
    gather["inputs"][0] = patches["name"]
    meta["graph"] = json.dumps(graph, separators=(",", ":"))


def bundle_cases():
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        rng = np.random.default_rng(12)
        header, length = st_header([(n, "F32", s) for n, s in tiny_shapes().items()])
        data = b"".join((rng.standard_normal(s).astype(np.float32) * 0.05).tobytes() for s in tiny_shapes().values())
        (folder / "tiny.safetensors").write_bytes(st_bytes(header) + data)
        out = folder / "tiny.idlevit.safetensors"
        subprocess.run([str(IDLEVIT), "convert", str(folder / "tiny.safetensors"), "-o", str(out), "--kept-tokens", "2"], check=True)
        blob = out.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data_length = len(blob) - 8 - n
    meta = header["__metadata__"]
    assert meta["format"] == "idlevit-bundle", meta.keys()

    def bundle(name, kind, edit, contains=None, command=("inspect",)):
        h = json.loads(json.dumps(header))
        edit(h["__metadata__"], h)
        text = json.dumps(h, separators=(",", ":")).encode()
        # Keep `format` first (detection reads the first kilobyte) and pad like the writer.
        text += b" " * ((8 - (8 + len(text)) % 8) % 8)
        fixture = write(f"bundle/{name}.idlevit.safetensors", struct.pack("<Q", len(text)) + text)
        size = 8 + len(text) + data_length
        case(name, kind, [command[0], "{tmp}/b.safetensors", *command[1:]],
             setup=[{"copy": fixture, "to": "b.safetensors", "size": size}], contains=contains)

    bundle("bundle-control", "control", lambda m, h: None)
    CASES[-1]["expect"] = 0

    def arch(**changes):
        def edit(m, h):
            a = json.loads(m["architecture"])
            a.update(changes)
            m["architecture"] = json.dumps(a, separators=(",", ":"))
        return edit

    bundle("arch-image-size-2e32", "overflow", arch(image_size=1 << 32, patch_size=1))
    bundle("arch-image-size-2e62", "overflow", arch(image_size=1 << 62))
    bundle("arch-embed-dim-2e62", "overflow", arch(embed_dim=1 << 62))
    bundle("arch-depth-1e9", "allocation", arch(depth=1_000_000_000))
    bundle("arch-depth-1e6", "allocation", arch(depth=1_000_000))
    bundle("arch-depth-negative", "overflow", arch(depth=-1))
    bundle("arch-heads-zero", "overflow", arch(heads=0))
    bundle("arch-patch-zero", "overflow", arch(patch_size=0))
    bundle("arch-classes-2e62", "overflow", arch(classes=1 << 62))
    bundle("arch-mlp-2e40", "overflow", arch(mlp_hidden=1 << 40))
    bundle("arch-depth-float", "container", arch(depth=1.5))
    bundle("arch-depth-1e300", "overflow", arch(depth=1e300))
    bundle("arch-eps-nan-string", "container", arch(layer_norm_eps="nan"))

    def set_meta(key, value):
        return lambda m, h: m.__setitem__(key, value)

    bundle("format-version-plus-one", "wrong-answer", set_meta("format_version", "+1"))
    bundle("format-version-space", "wrong-answer", set_meta("format_version", " 1"))
    bundle("format-version-leading-zero", "wrong-answer", set_meta("format_version", "01"))
    bundle("format-version-float", "wrong-answer", set_meta("format_version", "1.0"))
    bundle("format-version-huge", "overflow", set_meta("format_version", "9" * 40))
    bundle("idle-kept-huge", "overflow", lambda m, h: m.__setitem__("idle", m["idle"].replace("[", "[9223372036854775807,", 1)))
    bundle("idle-not-json", "container", set_meta("idle", "{\n\x1b[31m"))
    bundle("graph-not-json", "container", set_meta("graph", "{" * 10000))
    bundle("graph-deep-arrays", "container", set_meta("graph", "[" * 10000 + "]" * 10000))
    bundle("graph-op-name-escape", "message", lambda m, h: m.__setitem__("graph", m["graph"].replace('"linear"', '"lin\\u001b[31mear\\n"', 1)))
    bundle("graph-huge-dim", "overflow", lambda m, h: m.__setitem__("graph", m["graph"].replace("64", "4611686018427387904", 3)))
    bundle("graph-gather-other-tokens", "wrong-answer", gather_from_other_tokens, contains="token_select")
    bundle("source-sha-garbage", "container", lambda m, h: m.__setitem__("source", '{"file":"x\\n","format":"onnx","sha256":"zz"}'))
    bundle("metadata-key-newline", "message", lambda m, h: m.__setitem__("evil\nkey\x1b[2J", "v\x1b]0;t\x07\u202e"))
    CASES[-1].update(expect=0, stdout_clean=True)
    bundle("producer-escape", "message", set_meta("producer", "idlevit\x1b[2J\r\nFAKE OK"))


# ---------------------------------------------------------------------------------------------
# ONNX


def onnx_model(nodes, initializers=(), inputs=None, opset=17, name="g", ir=8):
    inputs = inputs if inputs is not None else [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, IMAGE, IMAGE])]
    graph = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="hostile")
    model.ir_version = ir
    return model.SerializeToString()


def ints(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def onnx_cases():
    big = 1 << 62

    def onnx_case(name, kind, data, contains=None):
        fixture = write(f"onnx/{name}.onnx", data)
        case(name, kind, ["inspect", "{tmp}/m.onnx"], setup=[{"copy": fixture, "to": "m.onnx"}], contains=contains)

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    onnx_case("expand-huge-concat", "overflow", onnx_model([
        helper.make_node("Expand", ["one", "shape"], ["e1"]),
        helper.make_node("Expand", ["one", "shape"], ["e2"]),
        helper.make_node("Concat", ["e1", "e2"], ["y"], axis=0)], [one, ints("shape", [big])]))
    onnx_case("expand-huge-split", "overflow", onnx_model([
        helper.make_node("Expand", ["one", "shape"], ["e"]),
        helper.make_node("Split", ["e", "sizes"], ["a", "b"], axis=0)], [one, ints("shape", [big]), ints("sizes", [big, big])]))
    onnx_case("expand-from-input-huge", "overflow", onnx_model([
        helper.make_node("Expand", ["x", "shape"], ["y"])], [ints("shape", [big, 3, big, big])]))
    onnx_case("concat-many-huge-inputs", "overflow", onnx_model([
        helper.make_node("Expand", ["x", "shape"], ["e"]),
        helper.make_node("Concat", ["e"] * 8, ["y"], axis=0)], [ints("shape", [1 << 40, 3, IMAGE, IMAGE])]))
    onnx_case("split-sizes-overflow", "overflow", onnx_model([
        helper.make_node("Split", ["x", "sizes"], ["a", "b", "c"], axis=1)], [ints("sizes", [big, big, -(1 << 63) + 3])]))
    onnx_case("reshape-huge", "overflow", onnx_model([
        helper.make_node("Reshape", ["x", "shape"], ["y"])], [ints("shape", [big, big, -1])]))
    onnx_case("constant-of-shape-huge", "allocation", onnx_model([
        helper.make_node("ConstantOfShape", ["shape"], ["y"])], [ints("shape", [1 << 40])]))
    onnx_case("range-huge", "allocation", onnx_model([
        helper.make_node("Range", ["a", "b", "d"], ["y"])],
        [helper.make_tensor("a", TensorProto.INT64, [], [0]), helper.make_tensor("b", TensorProto.INT64, [], [big]),
         helper.make_tensor("d", TensorProto.INT64, [], [1])]))
    onnx_case("conv-huge-kernel", "overflow", onnx_model([
        helper.make_node("Conv", ["x", "w"], ["y"], strides=[65536, 65536], dilations=[65536, 65536])],
        [helper.make_tensor("w", TensorProto.FLOAT, [0, 3, 1 << 31, 1 << 31], [])]))
    onnx_case("initializer-zero-huge-dims", "overflow", onnx_model([
        helper.make_node("Shape", ["w"], ["s"]), helper.make_node("ReduceProd", ["s"], ["y"])],
        [helper.make_tensor("w", TensorProto.FLOAT, [0, (1 << 31) - 1, (1 << 31) - 1, (1 << 31) - 1], [])]))
    onnx_case("initializer-rank-100", "overflow", onnx_model([helper.make_node("Identity", ["w"], ["y"])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1] * 100, [1.0])]))
    onnx_case("mul-shape-overflow", "overflow", onnx_model([
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Mul", ["s", "k"], ["m"]),
        helper.make_node("Reshape", ["x", "m"], ["y"])], [ints("k", [big, big, big, big])]))
    onnx_case("input-dim-2e40", "overflow", onnx_model([helper.make_node("Identity", ["x"], ["y"])],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1 << 40, 1 << 40])]))
    onnx_case("op-type-escape", "message", onnx_model([helper.make_node("Evil\n\x1b[31mOp", ["x"], ["y"])]))
    onnx_case("node-name-escape", "message", onnx_model([helper.make_node("Frobnicate", ["x"], ["y"], name="n\x1b]0;t\x07\u202e")]))
    onnx_case("opset-zero", "container", onnx_model([helper.make_node("Identity", ["x"], ["y"])], opset=0))
    onnx_case("opset-huge", "container", onnx_model([helper.make_node("Identity", ["x"], ["y"])], opset=(1 << 63) - 1))
    onnx_case("truncated", "container", onnx_model([helper.make_node("Identity", ["x"], ["y"])])[:-7])
    # 60,000 empty nodes: 2 bytes each on the wire, ~200 bytes each unpacked.
    graph_body = b"\x0a\x00" * 20000
    onnx_case("many-empty-nodes", "allocation", b"\x08\x08" + b"\x3a" + _varint(len(graph_body)) + graph_body)

    # External data.
    def external(name, location, offset=None, length=None, kind="fifo", setup=(), dims=(4,)):
        t = TensorProto()
        t.name, t.data_type = "w", TensorProto.FLOAT
        t.dims.extend(dims)
        t.data_location = TensorProto.EXTERNAL
        entries = [("location", location)]
        if offset is not None:
            entries.append(("offset", offset))
        if length is not None:
            entries.append(("length", length))
        for k, v in entries:
            e = t.external_data.add()
            e.key, e.value = k, v
        data = onnx_model([helper.make_node("Identity", ["w"], ["y"])], [t])
        fixture = write(f"onnx/{name}.onnx", data)
        case(name, kind, ["inspect", "{tmp}/m.onnx"], setup=[{"copy": fixture, "to": "m.onnx"}, *setup])

    external("external-fifo", "data.bin", setup=[{"fifo": "data.bin"}])
    external("external-dev-zero-symlink", "zero.bin", setup=[{"link": "/dev/zero", "to": "zero.bin"}])
    external("external-absolute", "/etc/passwd", kind="container")
    external("external-dotdot", "../../etc/passwd", kind="container")
    external("external-directory", "sub", kind="container", setup=[{"dir": "sub"}])
    external("external-offset-huge", "data.bin", offset="99999999999999999999", kind="overflow", setup=[{"sparse": "data.bin", "size": 16}])
    external("external-offset-int64-max", "data.bin", offset="9223372036854775807", length="16", kind="overflow", setup=[{"sparse": "data.bin", "size": 16}])
    external("external-length-negative", "data.bin", length="-16", kind="overflow", setup=[{"sparse": "data.bin", "size": 16}])
    external("external-length-plus", "data.bin", length="+16", kind="container", setup=[{"sparse": "data.bin", "size": 16}])
    external("external-sparse-f32-1e9", "data.bin", kind="allocation", dims=(1 << 30,), setup=[{"sparse": "data.bin", "size": 4 << 30}])
    external("external-escape-location", "d\x1b[31m\n.bin", kind="message")


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


# ---------------------------------------------------------------------------------------------
# Images


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def ihdr(width, height, depth=8, color=2, interlace=0):
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace))


def jpeg_segments(data):
    """Splits a JPEG into (marker, payload) up to the first SOS (whose payload runs to EOI)."""
    out, i = [], 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((marker, data[i + 4:i + 2 + length]))
        i += 2 + length
        if marker == 0xDA:
            break
    return out


def image_cases():
    model = "{fixtures}/micro/model.safetensors"

    def image_case(name, kind, data, ext, contains=None):
        fixture = write(f"images/{name}.{ext}", data)
        case(name, kind, ["run", model, "--image", "{tmp}/i." + ext], setup=[{"copy": fixture, "to": "i." + ext}], contains=contains)

    sig = b"\x89PNG\r\n\x1a\n"
    end = png_chunk(b"IEND", b"")
    image_case("png-ihdr-2e31", "allocation", sig + ihdr(0x7FFFFFFF, 0x7FFFFFFF) + end, "png")
    image_case("png-ihdr-100k-square", "allocation", sig + ihdr(100000, 100000) + end, "png")
    image_case("png-rgba16-6000", "allocation", sig + ihdr(6000, 6000, 16, 6) + end, "png")
    image_case("png-ihdr-zero", "container", sig + ihdr(0, 10) + end, "png")
    row = b"\x00" + b"\x80" * 3 * 16
    image_case("png-truncated-idat", "container", sig + ihdr(16, 16) + png_chunk(b"IDAT", zlib.compress(row * 16)[:8]), "png")
    image_case("png-no-idat", "container", sig + ihdr(16, 16) + end, "png")
    # A small zlib stream that inflates to 1 GB after the image rows: only the rows may be read.
    compressor = zlib.compressobj(9)
    rows = compressor.compress(row * 16) + compressor.flush(zlib.Z_FULL_FLUSH)
    zeros = compressor.compress(b"\x00" * (16 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = compressor.flush(zlib.Z_FINISH)
    head = write("images/png-idat-bomb.head", sig + ihdr(16, 16) + png_chunk(b"IDAT", rows))
    chunk = write("images/png-idat-bomb.chunk", png_chunk(b"IDAT", zeros))
    tail = write("images/png-idat-bomb.tail", png_chunk(b"IDAT", final) + end)
    case("png-idat-bomb-16gb", "hang", ["run", model, "--image", "{tmp}/bomb.png"],
         setup=[{"repeat": chunk, "head": head, "tail": tail, "count": 1024, "to": "bomb.png"}], expect=0, time_limit=10.0,
         note="valid rows first, then 16 GB of deflated zeros: decoding must stop after the rows")
    # Same, but one interlaced 1x1 image: the last pass is the only one with pixels.
    c2 = zlib.compressobj(9)
    rows2 = c2.compress(b"\x00\x80\x80\x80") + c2.flush(zlib.Z_FULL_FLUSH)
    zeros2 = c2.compress(b"\x00" * (16 << 20)) + c2.flush(zlib.Z_FULL_FLUSH)
    head2 = write("images/png-idat-bomb-interlaced.head", sig + ihdr(1, 1, interlace=1) + png_chunk(b"IDAT", rows2))
    chunk2 = write("images/png-idat-bomb-interlaced.chunk", png_chunk(b"IDAT", zeros2))
    case("png-idat-bomb-interlaced", "hang", ["run", model, "--image", "{tmp}/bomb.png"],
         setup=[{"repeat": chunk2, "head": head2, "tail": tail, "count": 512, "to": "bomb.png"}], expect=0, time_limit=10.0)
    # A zlib bomb inside the rows themselves is bounded by the pixel budget; an iCCP / zTXt bomb
    # by libpng's chunk allocation limit.
    ztxt = b"Comment\x00\x00" + zlib.compress(b"A" * (64 << 20), 9)
    image_case("png-ztxt-bomb", "control", sig + ihdr(16, 16) + png_chunk(b"zTXt", ztxt) + png_chunk(b"IDAT", zlib.compress(row * 16)) + end, "png")
    CASES[-1]["expect"] = 0

    # JPEG: a real small progressive file supplies valid tables; the SOF is rewritten.
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buffer, "JPEG", progressive=True, quality=75)
    segments = jpeg_segments(buffer.getvalue())
    tables = b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments if m in (0xDB, 0xC4))
    sos = next(p for m, p in segments if m == 0xDA)

    def sof(kind, width, height, components=1):
        comps = b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
        payload = bytes([8]) + struct.pack(">HH", height, width) + bytes([components]) + comps
        return b"\xff" + bytes([kind]) + struct.pack(">H", len(payload) + 2) + payload

    def seg(marker, payload):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    image_case("jpeg-sof-65535", "allocation", b"\xff\xd8" + tables + sof(0xC0, 65535, 65535, 3) + seg(0xDA, sos) + b"\x00" * 64 + b"\xff\xd9", "jpg")
    image_case("jpeg-cmyk-8192", "allocation", b"\xff\xd8" + tables + sof(0xC2, 8192, 8192, 4) + seg(0xDA, sos) + b"\xff\xd9", "jpg")
    # Found by fuzz-jpeg (a timeout): 127 bytes claiming a progressive 8192 x 8192 CMYK image
    # whose one scan is empty; libjpeg paints the missing data grey, the resize then works
    # through 67 M pixels. Now refused as pixels the file cannot hold, like its baseline twin.
    image_case("jpeg-cmyk-8192-empty-scan", "allocation", bytes.fromhex(
        "ffd8ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20242e2720"
        "222c231c1c2837292c30313434341f27393d38323c2e333432ffc4001400010000000000000000000000000000"
        "0000ffc2001408200020000401110002110003110004424dffda0008010100000001ffd9"), "jpg")
    image_case("jpeg-baseline-8192-empty", "allocation",
               b"\xff\xd8" + tables + sof(0xC0, 8192, 8192) + seg(0xDA, sos) + b"\xff\xd9", "jpg")
    # 16 MB of image rows from a 20 KB file: more than deflate's 1032:1 can give.
    image_case("png-rows-claimed-by-tiny-idat", "allocation",
               sig + ihdr(4096, 4096, 8, 6) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16385, 9)) + end, "png")
    image_case("jpeg-sof-zero", "container", b"\xff\xd8" + tables + sof(0xC0, 0, 16) + b"\xff\xd9", "jpg")
    # Thousands of empty scans of a 4096 x 4096 progressive image (~60 KB).
    scan = seg(0xDA, sos)
    image_case("jpeg-progressive-5000-scans", "hang",
               b"\xff\xd8" + tables + sof(0xC2, 4096, 4096) + scan * 5000 + b"\xff\xd9", "jpg")
    image_case("jpeg-truncated", "container", buffer.getvalue()[: len(buffer.getvalue()) // 2], "jpg")
    image_case("jpeg-only-soi", "container", b"\xff\xd8\xff", "jpg")
    image_case("gif-disguised", "container", b"GIF89a" + b"\x00" * 32, "jpg")
    image_case("empty-png", "container", b"", "png")
    # A corrupt image whose file name would break the line.
    fixture = write("images/corrupt.png", sig + b"\x00" * 8)
    case("image-name-escape", "message", ["run", model, "--image", "{tmp}/a\n\x1b[31mb.png"],
         setup=[{"copy": fixture, "to": "a\n\x1b[31mb.png"}])
    case("image-folder-empty", "container", ["run", model, "--image", "{tmp}/empty"], setup=[{"dir": "empty"}])


# ---------------------------------------------------------------------------------------------
# HDF5: the committed files of make_hostile_h5.py, and a few made here


def hdf5_cases():
    for path in sorted(HERE.glob("*.h5")):
        valid = path.name in ("valid.h5", "float64.h5", "float32-be.h5", "float16-be.h5")
        kind = "control" if valid else "hang" if "loop" in path.name else "container"
        case("hdf5-" + path.stem, kind, ["inspect", "{fixtures}/hostile/" + path.name], expect=0 if valid else 2)
    base = (HERE / "valid.h5").read_bytes()
    sb = bytearray(base[:256])
    # Superblock v0 fields: end-of-file address huge, field sizes bad, version unknown.
    for name, offset, value in [("h5-eof-address-huge", 40, b"\xff" * 7 + b"\x7f"), ("h5-sizeof-offsets-3", 13, b"\x03"),
                                ("h5-superblock-v9", 8, b"\x09"), ("h5-btree-k-zero", 16, b"\x00\x00")]:
        data = bytearray(base)
        data[offset:offset + len(value)] = value
        fixture = write(f"hdf5/{name}.h5", bytes(data))
        case(name, "container", ["inspect", "{tmp}/m.h5"], setup=[{"copy": fixture, "to": "m.h5"}])
    # Found by fuzz-hdf5: a file cut inside the superblock's fixed fields (signature, version 1,
    # 17 bytes) was read past its end. Cuts on both sides of every fixed field of each version.
    sig = b"\x89HDF\r\n\x1a\n"
    cuts = {0: (9, 12, 16, 17, 19, 20, 23), 1: (16, 17, 19, 23), 2: (9, 10, 11, 12, 16), 3: (10, 11)}
    for version, lengths in cuts.items():
        for length in lengths:
            body = (sig + bytes([version]) + bytes(range(1, 40)))[:length]
            fixture = write(f"hdf5/h5-superblock-v{version}-cut-{length}.h5", body)
            case(f"h5-superblock-v{version}-cut-{length}", "container", ["inspect", "{tmp}/m.h5"], setup=[{"copy": fixture, "to": "m.h5"}])
    fixture = write("hdf5/h5-truncated-superblock.h5", bytes(sb[:20]))
    case("h5-truncated-superblock", "container", ["inspect", "{tmp}/m.h5"], setup=[{"copy": fixture, "to": "m.h5"}])
    fixture = write("hdf5/h5-signature-only-sparse.h5", bytes(sb[:64]))
    case("h5-sparse-8gb", "allocation", ["inspect", "{tmp}/m.h5"], setup=[{"copy": fixture, "to": "m.h5", "size": 8 << 30}])


def pth_cases():
    # The PyTorch importer's own hostile files (written by the pth stream's generator), replayed
    # here too so the corpus test covers every file in this folder.
    for path in sorted(HERE.glob("*.pth")):
        case("torch-" + path.stem, "container", ["inspect", "{fixtures}/hostile/" + path.name])


def main():
    for sub in ("safetensors", "bundle", "onnx", "images", "hdf5", "text"):
        folder = HERE / sub
        if folder.exists():
            for f in folder.iterdir():
                f.unlink()
    tiny = safetensors_cases()
    fifo_cases(tiny)
    flag_cases()
    data_loss_cases()
    bundle_cases()
    onnx_cases()
    image_cases()
    hdf5_cases()
    pth_cases()
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    manifest = {"about": "Hostile inputs replayed by HostileCorpusTests; written by make_hostile.py.",
                "placeholders": {"{tmp}": "a fresh folder per case", "{fixtures}": "the Fixtures folder"},
                "cases": CASES}
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=True) + "\n")
    total = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    print(f"{len(CASES)} cases, {total} bytes under Fixtures/hostile")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the idlevit test fixtures (see Fixtures/README.md). Deterministic and rerunnable:

    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install -r Fixtures/requirements.txt
    /tmp/fx/bin/python Fixtures/generate.py

Everything is seeded; running it twice on the same machine gives byte-identical files.
"""

import os

os.environ["TIMM_FUSED_ATTN"] = "0"  # must be set before timm is imported

import copy
import hashlib
import io
import json
import math
import struct
import sys
import warnings
from collections import Counter, OrderedDict
from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import safetensors
import torch
from safetensors.torch import save_file

import timm
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import idlevit_reference as ref  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

RATIOS = ["0.5", "0.7", "0.9"]
MARGIN_MIN = 1e-4
ONNX_TOL = 1e-4
BUDGET_BYTES = 60 * 1000 * 1000  # all of Fixtures/, every script's files
MAX_SEED_TRIES = 50

MODELS = OrderedDict([
    ("micro", dict(img=32, patch=8, dim=128, heads=2, depth=4, classes=10, distilled=False,
                   model_seed=1001, input_seed=2001)),
    # Distillation changes the token prefix and the head, not the width: a narrower model keeps
    # every copy of it small (the Fixtures/ budget is ~40 MB).
    ("micro-distilled", dict(img=32, patch=8, dim=64, heads=1, depth=4, classes=10, distilled=True,
                             model_seed=1002, input_seed=2002)),
    ("tiny12", dict(img=224, patch=16, dim=64, heads=1, depth=12, classes=1000, distilled=False,
                    model_seed=1003, input_seed=2003)),
])

# Files earlier layouts wrote, removed so a rerun never leaves a stale one behind.
STALE_FILES = ["micro/model-opset17.onnx", "micro/model-dynamo.onnx", "micro/weights-flat.h5",
               "tiny12/model-opset13.onnx", "tiny12/model-opset17.onnx"]


class MarginError(RuntimeError):
    pass


# ----------------------------------------------------------------------------------------------
# models

def build_model(cfg):
    torch.manual_seed(cfg["model_seed"])
    cls = VisionTransformerDistilled if cfg["distilled"] else VisionTransformer
    model = cls(img_size=cfg["img"], patch_size=cfg["patch"], embed_dim=cfg["dim"], depth=cfg["depth"],
                num_heads=cfg["heads"], mlp_ratio=4, qkv_bias=True, num_classes=cfg["classes"],
                class_token=True, global_pool="token")
    model.eval()
    perturb(model, cfg["model_seed"] + 7)
    return model


@torch.no_grad()
def perturb(model, seed):
    """Make every parameter non-trivial while keeping activations O(1):
    weights (Linear, Conv) rescaled to std 1/sqrt(fan_in) (keeps timm's draw, changes its scale),
    biases += 0.1 N(0,1), LayerNorm weights += 0.1 N(0,1) (so 1 + 0.1 N), LayerNorm biases += 0.1 N,
    cls_token / dist_token += N(0,1), pos_embed += 0.5 N(0,1), LayerScale gammas = 0.6 + 0.3 N(0,1)."""
    g = torch.Generator().manual_seed(seed)

    def noise(p):
        return torch.randn(p.shape, generator=g, dtype=torch.float32)

    norm_names = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, torch.nn.LayerNorm):
            norm_names.add(mname + ".weight")
            norm_names.add(mname + ".bias")
    for name, p in model.named_parameters():
        if name in ("cls_token", "dist_token"):
            p.add_(noise(p))
        elif name == "pos_embed":
            p.add_(0.5 * noise(p))
        elif name in norm_names:
            p.add_(0.1 * noise(p))
        elif name.endswith(".bias"):
            p.add_(0.1 * noise(p))
        elif name.endswith(".gamma"):
            # LayerScale (DeiT-III): trained gammas are far from timm's 1e-5 init; values
            # around 0.6 with spread keep both branches visible and each channel distinct.
            p.copy_(0.6 + 0.3 * noise(p))
        elif name.endswith(".weight") and p.ndim >= 2:
            fan_in = p[0].numel()
            p.mul_((1.0 / math.sqrt(fan_in)) / float(p.std()))
        else:
            raise RuntimeError(f"unhandled parameter {name}")
    for name, p in model.named_parameters():
        if float(p.abs().min()) == 0.0 and float(p.abs().max()) == 0.0:
            raise RuntimeError(f"parameter {name} is all zeros")


def state_dict_f32(model):
    return OrderedDict((k, v.detach().clone().contiguous()) for k, v in model.state_dict().items())


def rounded_model(model, dtype):
    m = copy.deepcopy(model)
    sd = OrderedDict((k, v.to(dtype).to(torch.float32)) for k, v in model.state_dict().items())
    m.load_state_dict(sd)
    return m.eval()


# ----------------------------------------------------------------------------------------------
# references

@torch.no_grad()
def capture_reference(model, x):
    """Activations from timm's own forward via forward hooks (outputs cloned)."""
    acts = OrderedDict()
    handles = []

    def hook(name):
        def fn(_mod, _inp, out):
            acts[name] = out.detach().clone().contiguous()
        return fn

    handles.append(model.patch_embed.register_forward_hook(hook("patch_embed")))
    handles.append(model.pos_drop.register_forward_hook(hook("pos_drop")))
    for i, blk in enumerate(model.blocks):
        handles.append(blk.register_forward_hook(hook(f"blocks.{i}")))
    handles.append(model.norm.register_forward_hook(hook("norm")))
    logits = model(x)
    for h in handles:
        h.remove()
    acts["logits"] = logits.detach().clone().contiguous()
    return acts


def make_input(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((2, 3, cfg["img"], cfg["img"]), generator=g, dtype=torch.float32)


def idle_runs(model, cfg, x, ratios=RATIOS):
    """Runs the idle reference at every ratio; raises MarginError when a selection is fragile."""
    np_ = model.patch_embed.num_patches
    runs = OrderedDict()
    for r in ratios:
        kept = ref.schedule(cfg["depth"], np_, float(r))
        res = ref.idle_forward(model, x, kept)
        margins = [m for ms in res.margins.values() for m in ms if m is not None]
        smallest = min(margins) if margins else None
        if smallest is not None and smallest < MARGIN_MIN:
            raise MarginError(f"r={r}: smallest relative selection margin {smallest:.3e} < {MARGIN_MIN}")
        runs[r] = (kept, res, smallest)
    return runs


def idle_tensors(res, depth, outputs=True, cut_loss=True):
    """Logits, and for each idle layer its selection, and unless asked not to its output and cut
    loss (dense layers' outputs equal reference.safetensors' and are not stored again). The
    order of the entries does not matter: save_file orders a file's tensors itself."""
    out = OrderedDict()
    out["logits"] = res.logits.contiguous()
    for i in range(depth):
        if outputs and i in res.selected:
            out[f"blocks.{i}"] = res.blocks[i].contiguous()
    for i, sel in res.selected.items():
        out[f"blocks.{i}.selected"] = sel.to(torch.int64).contiguous()
        if cut_loss:
            for part in ("inter", "intra", "total"):
                out[f"blocks.{i}.cut_loss.{part}"] = res.cut_loss[i][part].to(torch.float32).contiguous()
    return out


def idle_metadata(ratio, kept, seed, num_patches):
    """`__metadata__` of an idle-{r}.safetensors reference (the default schedule)."""
    return {"keep_ratio": ratio, "kept": json.dumps(kept), "input_seed": str(seed),
            "num_patches": str(num_patches), "schedule": "default (4 stages, stage 0 dense)"}


# ----------------------------------------------------------------------------------------------
# formats

def save_st(path, tensors, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(OrderedDict((k, v.contiguous()) for k, v in tensors.items()), str(path), metadata=metadata)
    if metadata and len(metadata) > 1:
        sort_metadata(path)


def sort_metadata(path):
    """safetensors writes `__metadata__` in hash-map order, which changes from run to run: rewrite
    the header in place with the metadata keys sorted (same length, same tensor entries)."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(n)
        hdr = json.loads(raw, object_pairs_hook=OrderedDict)
        meta = hdr.pop("__metadata__")
        new = OrderedDict([("__metadata__", OrderedDict(sorted(meta.items())))])
        new.update(hdr)
        text = json.dumps(new, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) != len(raw.rstrip(b" ")):
            raise RuntimeError(f"{path}: unexpected safetensors header formatting")
        f.seek(8)
        f.write(text + b" " * (n - len(text)))


def export_onnx(model, x, path, opset):
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), opset_version=opset, dynamo=False,
                          input_names=["pixel_values"], output_names=["logits"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})


def export_dynamo(model, x, path):
    """Dynamo exporter, opset 18, weights inside the file. Returns an error string on failure."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with warnings.catch_warnings(), io.StringIO() as sink:
            warnings.simplefilter("ignore")
            import contextlib
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=18,
                                         input_names=["pixel_values"], output_names=["logits"],
                                         dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
                                         external_data=False)
                prog.save(str(tmp), external_data=False)
        proto = onnx.load(str(tmp))
        # Drop per-node metadata (stack traces with absolute paths) so the file is reproducible.
        for node in proto.graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
        onnx.save_model(proto, str(path))
        return None
    except Exception as e:  # noqa: BLE001 - optional artefact
        return f"{type(e).__name__}: {e}".splitlines()[0][:200]
    finally:
        for p in (tmp, tmp.with_name(tmp.name + ".data")):
            if p.exists():
                p.unlink()


def check_onnx(path, x, logits):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    err = float(np.abs(out - logits.numpy()).max())
    if not err < ONNX_TOL:
        raise RuntimeError(f"{path}: ONNX Runtime logits differ by {err:.3e}")
    return err


def onnx_summary(path):
    m = onnx.load(str(path), load_external_data=False)
    ops = Counter(n.op_type for n in m.graph.node)
    inits = [i.name for i in m.graph.initializer]
    consts = sum(1 for n in m.graph.node if n.op_type == "Constant")
    return {
        "opset": {o.domain or "ai.onnx": o.version for o in m.opset_import}.get("ai.onnx"),
        "nodes": len(m.graph.node),
        "ops": OrderedDict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "initializers": len(inits),
        "initializer_names": inits,
        "constant_nodes": consts,
        "identity_nodes": ops.get("Identity", 0),
        "producer": f"{m.producer_name} {m.producer_version}",
        "ir_version": m.ir_version,
        "external": any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer),
    }


def h5_write(path, sd, nested, dtype, compress, group=None, attrs=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    with h5py.File(str(path), "w", libver="earliest", track_order=False) as f:
        root = f.create_group(group, track_order=False) if group else f
        for name, t in sd.items():
            arr = t.detach().cpu().numpy().astype(dtype)
            key = name.replace(".", "/") if nested else name
            kw = dict(track_times=False)
            if compress:
                kw.update(chunks=True, compression="gzip", compression_opts=6, shuffle=False)
            root.create_dataset(key, data=arr, **kw)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v


def hf_names(sd, dim, distilled=False):
    """timm -> Hugging Face transformers names: ViT (prefix `vit.`, `classifier`) or, distilled,
    DeiT (prefix `deit.`, a distillation token, `cls_classifier` and `distillation_classifier`)."""
    m = "deit" if distilled else "vit"
    out = OrderedDict()
    out[f"{m}.embeddings.cls_token"] = sd["cls_token"]
    if distilled:
        out[f"{m}.embeddings.distillation_token"] = sd["dist_token"]
    out[f"{m}.embeddings.position_embeddings"] = sd["pos_embed"]
    out[f"{m}.embeddings.patch_embeddings.projection.weight"] = sd["patch_embed.proj.weight"]
    out[f"{m}.embeddings.patch_embeddings.projection.bias"] = sd["patch_embed.proj.bias"]
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(depth):
        t, h = f"blocks.{i}.", f"{m}.encoder.layer.{i}."
        for p in ("weight", "bias"):
            out[h + f"layernorm_before.{p}"] = sd[t + f"norm1.{p}"]
            qkv = sd[t + f"attn.qkv.{p}"]
            for j, nm in enumerate(("query", "key", "value")):
                out[h + f"attention.attention.{nm}.{p}"] = qkv[j * dim:(j + 1) * dim].clone()
            out[h + f"attention.output.dense.{p}"] = sd[t + f"attn.proj.{p}"]
            out[h + f"layernorm_after.{p}"] = sd[t + f"norm2.{p}"]
            out[h + f"intermediate.dense.{p}"] = sd[t + f"mlp.fc1.{p}"]
            out[h + f"output.dense.{p}"] = sd[t + f"mlp.fc2.{p}"]
    out[f"{m}.layernorm.weight"] = sd["norm.weight"]
    out[f"{m}.layernorm.bias"] = sd["norm.bias"]
    if distilled:
        out["cls_classifier.weight"] = sd["head.weight"]
        out["cls_classifier.bias"] = sd["head.bias"]
        out["distillation_classifier.weight"] = sd["head_dist.weight"]
        out["distillation_classifier.bias"] = sd["head_dist.bias"]
    else:
        out["classifier.weight"] = sd["head.weight"]
        out["classifier.bias"] = sd["head.bias"]
    return out


def hf_config(cfg):
    labels = {str(i): f"class_{i}" for i in range(cfg["classes"])}
    return OrderedDict([
        ("architectures", ["ViTForImageClassification"]),
        ("model_type", "vit"),
        ("hidden_size", cfg["dim"]),
        ("num_hidden_layers", cfg["depth"]),
        ("num_attention_heads", cfg["heads"]),
        ("intermediate_size", 4 * cfg["dim"]),
        ("hidden_act", "gelu"),
        ("hidden_dropout_prob", 0.0),
        ("attention_probs_dropout_prob", 0.0),
        ("initializer_range", 0.02),
        ("layer_norm_eps", 1e-06),
        ("image_size", cfg["img"]),
        ("patch_size", cfg["patch"]),
        ("num_channels", 3),
        ("qkv_bias", True),
        ("encoder_stride", cfg["patch"]),
        ("id2label", labels),
        ("label2id", {v: int(k) for k, v in labels.items()}),
        ("torch_dtype", "float32"),
    ])


@torch.no_grad()
def attention_stats(model, x):
    """Mean max attention probability and mean normalised entropy over blocks (degeneracy check)."""
    acts = ref.dense_forward(model, x)
    inputs = [acts["pos_drop"]] + [acts[f"blocks.{i}"] for i in range(len(model.blocks) - 1)]
    maxp, ent = [], []
    for blk, xin in zip(model.blocks, inputs):
        heads, d = blk.attn.num_heads, blk.attn.head_dim
        h = torch.nn.functional.layer_norm(xin, blk.norm1.normalized_shape, blk.norm1.weight,
                                           blk.norm1.bias, blk.norm1.eps)
        qkv = torch.nn.functional.linear(h, blk.attn.qkv.weight, blk.attn.qkv.bias)
        b, n, _ = qkv.shape
        qkv = qkv.reshape(b, n, 3, heads, d).permute(2, 0, 3, 1, 4)
        a = ((qkv[0] * d ** -0.5) @ qkv[1].transpose(-2, -1)).softmax(-1)
        maxp.append(float(a.max(-1).values.mean()))
        ent.append(float((-(a * a.clamp_min(1e-30).log()).sum(-1) / math.log(n)).mean()))
    return sum(maxp) / len(maxp), sum(ent) / len(ent), float(acts["blocks.%d" % (len(model.blocks) - 1)].std())


# ----------------------------------------------------------------------------------------------
# main

def rel(p):
    return str(p.relative_to(HERE))


def versions():
    return OrderedDict([("python", sys.version.split()[0]), ("torch", torch.__version__), ("timm", timm.__version__),
                        ("safetensors", safetensors.__version__), ("numpy", np.__version__),
                        ("h5py", h5py.__version__), ("onnx", onnx.__version__),
                        ("onnxruntime", ort.__version__)])


def main():
    print(f"torch {torch.__version__}, timm {timm.__version__}, safetensors {safetensors.__version__}, "
          f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, h5py {h5py.__version__}, "
          f"numpy {np.__version__}; TIMM_FUSED_ATTN={os.environ['TIMM_FUSED_ATTN']}")
    for f in STALE_FILES:
        if (HERE / f).exists():
            (HERE / f).unlink()

    manifest = OrderedDict()
    onnx_info = OrderedDict()
    notes = []
    for name, cfg in MODELS.items():
        print(f"== {name}")
        d = HERE / name
        d.mkdir(exist_ok=True)
        model = build_model(cfg)
        for blk in model.blocks:
            assert not blk.attn.fused_attn, "TIMM_FUSED_ATTN=0 was not honoured"
        sd = state_dict_f32(model)
        nparams = sum(v.numel() for v in sd.values())
        np_ = model.patch_embed.num_patches

        # input: first seed (in order) whose selections all have a safe margin
        seed = cfg["input_seed"]
        tried = []
        for attempt in range(MAX_SEED_TRIES):
            x = make_input(cfg, seed)
            try:
                runs = idle_runs(model, cfg, x)
                break
            except MarginError as e:
                tried.append((seed, str(e)))
                print(f"    input seed {seed} rejected: {e}")
                seed += 1
        else:
            raise RuntimeError(f"{name}: no input seed in {MAX_SEED_TRIES} tries has safe selection margins")

        acts = capture_reference(model, x)
        explicit = ref.dense_forward(model, x)
        d_exp = max(float((explicit[k] - acts[k]).abs().max()) for k in acts)
        ref_r1 = ref.self_check(model, x)
        if ref_r1 > 1e-5:
            raise RuntimeError(f"{name}: keep ratio 1 differs from dense by {ref_r1}")
        maxp, ent, out_std = attention_stats(model, x)
        print(f"    params {nparams}, input seed {seed}, max|explicit dense - timm hooks| {d_exp:.3e}, "
              f"attention: mean max prob {maxp:.3f}, mean norm. entropy {ent:.3f}; last block std {out_std:.3f}; "
              f"logits std {float(acts['logits'].std()):.3f}")

        # weights
        save_st(d / "model.safetensors", sd)
        save_st(d / "model-f16.safetensors", OrderedDict((k, v.half()) for k, v in sd.items()))
        save_st(d / "model-bf16.safetensors", OrderedDict((k, v.bfloat16()) for k, v in sd.items()))
        save_st(d / "input.safetensors", {"pixel_values": x}, metadata={"seed": str(seed)})
        save_st(d / "reference.safetensors", acts, metadata={"input_seed": str(seed), "dtype": "f32"})
        logits16 = rounded_model(model, torch.float16)(x).detach()
        logitsbf = rounded_model(model, torch.bfloat16)(x).detach()
        save_st(d / "reference-f16.safetensors", {"logits": logits16},
                metadata={"input_seed": str(seed), "weights": "f16-rounded, computed in f32"})
        save_st(d / "reference-bf16.safetensors", {"logits": logitsbf},
                metadata={"input_seed": str(seed), "weights": "bf16-rounded, computed in f32"})
        print(f"    max|logits(f16 weights) - logits| {float((logits16 - acts['logits']).abs().max()):.3e}, "
              f"bf16 {float((logitsbf - acts['logits']).abs().max()):.3e}")

        # idle references
        margins = OrderedDict()
        kept_info = OrderedDict()
        for r, (kept, res, smallest) in runs.items():
            save_st(d / f"idle-{r}.safetensors", idle_tensors(res, cfg["depth"]), metadata=idle_metadata(r, kept, seed, np_))
            margins[r] = smallest
            kept_info[r] = kept
            loss = [float(res.cut_loss[i]["total"].mean()) for i in res.cut_loss]
            agree = float((res.logits.argmax(-1) == acts["logits"].argmax(-1)).float().mean())
            print(f"    r={r}: kept {kept}, smallest margin {smallest:.3e}, "
                  f"max|logits - dense| {float((res.logits - acts['logits']).abs().max()):.3e}, "
                  f"top-1 agreement {agree:.2f}, mean cut loss {sum(loss) / len(loss):.4f}")

        # ONNX: each graph shape once. micro at opset 13 (decomposed LayerNorm) and at opset 17
        # with external data; the small distilled model at 17, 13 and through the dynamo exporter.
        onnx_files = []
        if name == "micro":
            export_onnx(model, x, d / "model-opset13.onnx", 13)
            onnx_files.append(d / "model-opset13.onnx")
            ext = d / "external" / "model.onnx"
            ext.parent.mkdir(exist_ok=True)
            for p in (ext, ext.with_name("model.onnx.data")):
                if p.exists():
                    p.unlink()
            export_onnx(model, x, ext, 17)
            proto = onnx.load(str(ext))
            onnx.save_model(proto, str(ext), save_as_external_data=True, all_tensors_to_one_file=True,
                            location="model.onnx.data", size_threshold=0)
            onnx_files.append(ext)
        elif name == "micro-distilled":
            for opset in (17, 13):
                export_onnx(model, x, d / f"model-opset{opset}.onnx", opset)
                onnx_files.append(d / f"model-opset{opset}.onnx")
            err = export_dynamo(model, x, d / "model-dynamo.onnx")
            if err is not None:
                raise RuntimeError(f"dynamo export failed: {err}")
            onnx_files.append(d / "model-dynamo.onnx")
        for p in onnx_files:
            e = check_onnx(p, x, acts["logits"])
            s = onnx_summary(p)
            s["max_abs_error"] = e
            onnx_info[rel(p)] = s
            print(f"    {rel(p)}: onnxruntime max abs err {e:.3e}; opset {s['opset']}, {s['nodes']} nodes, "
                  f"{s['initializers']} initializers, {s['identity_nodes']} Identity")

        # HDF5
        # HDF5: both layouts in float32 on the small model, float16 + a top-level group on tiny12.
        if name == "micro-distilled":
            h5_write(d / "weights-flat.h5", sd, nested=False, dtype=np.float32, compress=False)
            h5_write(d / "weights-nested.h5", sd, nested=True, dtype=np.float32, compress=True)
        elif name == "tiny12":
            h5_write(d / "weights-nested-f16.h5", sd, nested=True, dtype=np.float16, compress=True,
                     group="state_dict",
                     attrs={"source": "idlevit fixtures", "architecture": np.bytes_(b"deit")})
            # numpy's float16 rounding (round to nearest even) is the same as torch's .half():
            # the f16 HDF5 weights give exactly reference-f16's logits; written under its own name too.
            np16 = OrderedDict((k, torch.from_numpy(v.numpy().astype(np.float16)).float()) for k, v in sd.items())
            same = all(torch.equal(np16[k], sd[k].half().float()) for k in sd)
            if not same:
                raise RuntimeError("numpy and torch float16 rounding differ")
            save_st(d / "reference-h5f16.safetensors", {"logits": logits16},
                    metadata={"input_seed": str(seed), "weights": "f16-rounded (HDF5), computed in f32"})

        # Hugging Face naming
        if name == "micro":
            hf = HERE / "micro-hf"
            hf.mkdir(exist_ok=True)
            save_st(hf / "model.safetensors", hf_names(sd, cfg["dim"]))
            (hf / "config.json").write_text(json.dumps(hf_config(cfg), indent=2) + "\n")
            hf_err = check_hf(hf, x, acts["logits"])
            notes.append("micro-hf cross-checked with transformers " + hf_err if hf_err
                         else "micro-hf not cross-checked (transformers not installed)")

        manifest[name] = OrderedDict([
            ("config", OrderedDict((k, v) for k, v in cfg.items() if k not in ("model_seed", "input_seed"))),
            ("num_patches", np_), ("parameters", nparams),
            ("model_seed", cfg["model_seed"]), ("input_seed", seed), ("rejected_input_seeds", [t[0] for t in tried]),
            ("kept", kept_info), ("smallest_margin", margins),
        ])

    (HERE / "manifest.json").write_text(json.dumps(OrderedDict([
        ("generator", versions()),
        ("models", manifest),
        ("onnx", OrderedDict((k, OrderedDict((kk, vv) for kk, vv in v.items() if kk != "initializer_names"))
                             for k, v in onnx_info.items())),
        ("notes", notes),
    ]), indent=2) + "\n")
    write_onnx_report(onnx_info)
    write_readme(manifest, onnx_info, notes)

    verify_outputs(manifest)

    print("== files written by generate.py")
    for p in sorted(my_files()):
        print(f"  {p.stat().st_size:>10,d}  {rel(p)}")
    mine = sum(p.stat().st_size for p in my_files())
    total = total_size()
    print(f"  {mine:>10,d}  total of these ({mine / 1e6:.2f} MB)")
    if total != mine:
        print(f"  {total - mine:>10,d}  other files in Fixtures/ (not written by generate.py)")
    print(f"  {total:>10,d}  Fixtures/ in all ({total / 1e6:.2f} MB, budget {BUDGET_BYTES / 1e6:.0f} MB)")
    if total > BUDGET_BYTES:
        raise RuntimeError(f"Fixtures/ is {total / 1e6:.2f} MB, over the {BUDGET_BYTES / 1e6:.0f} MB budget")


def check_hf(hf, x, logits):
    """Optional: if transformers is installed, check the HF-named weights give the same logits."""
    try:
        import transformers  # noqa: F401
        from transformers import ViTForImageClassification
    except Exception:  # noqa: BLE001
        print("    (transformers not installed: HF naming not cross-checked)")
        return None
    # from_pretrained (not load_state_dict): transformers 5 renamed ViT's modules and maps the
    # classic checkpoint names (the ones written here, as on the Hub) while loading.
    import contextlib
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        m, info = ViTForImageClassification.from_pretrained(str(hf), output_loading_info=True)
    m.eval()
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise RuntimeError(f"HF names: {bad}")
    with torch.no_grad():
        out = m(pixel_values=x).logits
    err = float((out - logits).abs().max())
    print(f"    micro-hf: transformers {transformers.__version__} ViTForImageClassification max abs err {err:.3e}")
    if err > 1e-4:
        raise RuntimeError("HF-named weights do not reproduce the logits")
    return f"{transformers.__version__} (ViTForImageClassification.from_pretrained): max abs logits error {err:.1e}"


def write_onnx_report(info):
    lines = ["# ONNX graphs written by generate.py (op histogram per file)", ""]
    for path, s in info.items():
        names = s["initializer_names"]
        lines.append(f"## {path}")
        lines.append(f"- opset {s['opset']}, ir_version {s['ir_version']}, producer {s['producer']}, "
                     f"{s['nodes']} nodes, {s['initializers']} initializers"
                     f"{' (external data)' if s['external'] else ''}, {s['constant_nodes']} Constant nodes, "
                     f"{s['identity_nodes']} Identity nodes; onnxruntime max abs err {s['max_abs_error']:.3e}")
        lines.append("- ops: " + ", ".join(f"{k} {v}" for k, v in s["ops"].items()))
        sample = names[:6] + (["..."] if len(names) > 8 else []) + (names[-2:] if len(names) > 8 else names[6:])
        lines.append("- initializer names: " + ", ".join(f"`{n}`" for n in sample))
        lines.append("")
    (HERE / "onnx-graphs.md").write_text("\n".join(lines))


def verify_outputs(manifest):
    """Reads every written file back the way a consumer would and checks it."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    for name, cfg in MODELS.items():
        d = HERE / name
        seed = manifest[name]["input_seed"]
        prefix = 2 if cfg["distilled"] else 1
        sd = load_file(str(d / "model.safetensors"))
        torch.manual_seed(0)
        cls = VisionTransformerDistilled if cfg["distilled"] else VisionTransformer
        fresh = cls(img_size=cfg["img"], patch_size=cfg["patch"], embed_dim=cfg["dim"], depth=cfg["depth"],
                    num_heads=cfg["heads"], mlp_ratio=4, qkv_bias=True, num_classes=cfg["classes"],
                    class_token=True, global_pool="token").eval()
        fresh.load_state_dict(sd, strict=True)
        x = load_file(str(d / "input.safetensors"))["pixel_values"]
        assert torch.equal(x, make_input(cfg, seed))
        refs = load_file(str(d / "reference.safetensors"))
        want = ["patch_embed", "pos_drop"] + [f"blocks.{i}" for i in range(cfg["depth"])] + ["norm", "logits"]
        assert sorted(refs) == sorted(want), sorted(refs)
        np_ = fresh.patch_embed.num_patches
        n = np_ + prefix
        assert refs["patch_embed"].shape == (2, np_, cfg["dim"]) and refs["pos_drop"].shape == (2, n, cfg["dim"])
        with torch.no_grad():
            assert float((fresh(x) - refs["logits"]).abs().max()) <= 1e-6
        for tag, dt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
            w = load_file(str(d / f"model-{tag}.safetensors"))
            assert all(w[k].dtype == dt and torch.equal(w[k], sd[k].to(dt)) for k in sd)
            m = copy.deepcopy(fresh)
            m.load_state_dict({k: v.float() for k, v in w.items()})
            with torch.no_grad():
                got = m(x)
            assert float((got - load_file(str(d / f"reference-{tag}.safetensors"))["logits"]).abs().max()) <= 1e-6
        for r in RATIOS:
            f = d / f"idle-{r}.safetensors"
            t = load_file(str(f))
            meta = safe_open(str(f), "pt").metadata()
            kept = json.loads(meta["kept"])
            assert meta["keep_ratio"] == r and kept == ref.schedule(cfg["depth"], np_, float(r))
            res = ref.idle_forward(fresh, x, kept)
            assert torch.equal(res.logits, t["logits"])
            for i, k in enumerate(kept):
                if k is None:
                    assert f"blocks.{i}.selected" not in t and f"blocks.{i}" not in t
                    assert torch.equal(res.blocks[i], refs[f"blocks.{i}"])
                    continue
                assert torch.equal(res.blocks[i], t[f"blocks.{i}"])
                sel = t[f"blocks.{i}.selected"]
                assert sel.dtype == torch.int64 and sel.shape == (2, k + prefix)
                assert torch.equal(sel[:, :prefix], torch.arange(prefix).expand(2, prefix))
                assert bool((sel[:, 1:] > sel[:, :-1]).all()) and int(sel.max()) < n
                for part in ("inter", "intra", "total"):
                    c = t[f"blocks.{i}.cut_loss.{part}"]
                    assert c.dtype == torch.float32 and c.shape == (2,)
                assert torch.allclose(t[f"blocks.{i}.cut_loss.inter"] + t[f"blocks.{i}.cut_loss.intra"],
                                      t[f"blocks.{i}.cut_loss.total"])
                # idle rows are bit-identical to the block input
                before = res.blocks[i - 1] if i > 0 else refs["pos_drop"]
                for b in range(2):
                    idle = sorted(set(range(n)) - set(sel[b].tolist()))
                    assert torch.equal(t[f"blocks.{i}"][b, idle], before[b, idle])
        if name == "micro-distilled":
            with h5py.File(str(d / "weights-flat.h5"), "r") as f:
                assert sorted(f.keys()) == sorted(sd)
                for k, v in sd.items():
                    ds = f[k]
                    assert ds.dtype == np.float32 and ds.chunks is None and ds.compression is None
                    assert np.array_equal(ds[()], v.numpy())
        if name == "micro-distilled":
            with h5py.File(str(d / "weights-nested.h5"), "r") as f:
                for k, v in sd.items():
                    ds = f[k.replace(".", "/")]
                    assert ds.dtype == np.float32 and ds.chunks is not None and ds.compression == "gzip"
                    assert np.array_equal(ds[()], v.numpy())
        if name == "tiny12":
            with h5py.File(str(d / "weights-nested-f16.h5"), "r") as f:
                assert list(f.keys()) == ["state_dict"]
                assert f.attrs["source"] == "idlevit fixtures" and f.attrs["architecture"] == b"deit"
                for k, v in sd.items():
                    ds = f["state_dict/" + k.replace(".", "/")]
                    assert ds.dtype == np.float16 and ds.chunks is not None and ds.compression == "gzip"
                    assert np.array_equal(ds[()], v.half().numpy())
            assert torch.equal(load_file(str(d / "reference-h5f16.safetensors"))["logits"],
                               load_file(str(d / "reference-f16.safetensors"))["logits"])
        if name == "micro":
            hf = load_file(str(HERE / "micro-hf" / "model.safetensors"))
            assert len(hf) == len(sd) + 4 * cfg["depth"]  # qkv weight and bias split in three
            c = cfg["dim"]
            for i in range(cfg["depth"]):
                q = hf[f"vit.encoder.layer.{i}.attention.attention.query.weight"]
                assert torch.equal(q, sd[f"blocks.{i}.attn.qkv.weight"][:c])
    print("verified: every file read back and checked")


def fmt_margin(m):
    return "n/a" if m is None else f"{m:.2e}"


def write_readme(manifest, onnx_info, notes):
    sizes = {rel(p): p.stat().st_size for p in my_files()}
    L = []
    add = L.append
    add("# Fixtures")
    add("")
    add("Small seeded DeiT models in every input format idlevit reads, an input per model, dense reference")
    add("activations from timm and IdleViT references from `idlevit_reference.py` (a Python implementation")
    add("of `shared/IDLEVIT.md` §3 and §5). Tests read these committed files: nobody needs Python to test.")
    add("**This file is written by `generate.py`; edit the generator, not this file.**")
    add("")
    add("## Regenerating")
    add("")
    add("```sh")
    add("python3 -m venv /tmp/fixtures-venv")
    add("/tmp/fixtures-venv/bin/pip install -r Fixtures/requirements.txt")
    add("/tmp/fixtures-venv/bin/python Fixtures/generate.py")
    add("```")
    add("")
    add("The generator sets `TIMM_FUSED_ATTN=0` before importing timm, runs PyTorch on one thread, seeds")
    add("everything and rewrites the safetensors headers with sorted `__metadata__` keys (safetensors writes")
    add("them in hash-map order otherwise), so a rerun on the same machine gives byte-identical files. A")
    add("different CPU / BLAS build may change the last bits of the float references. After writing, it")
    add("reads every file back and checks it (`verify_outputs`). Python 3.11; torch from PyPI is the CUDA")
    add("build and pulls the nvidia-* runtime libraries although only the CPU is used. transformers is only")
    add("used to cross-check `micro-hf` (skipped when not installed).")
    add("")
    add("## Models")
    add("")
    add("Built with timm's `VisionTransformer` (`VisionTransformerDistilled` for the distilled one),")
    add("`mlp_ratio=4, qkv_bias=True, class_token=True, global_pool='token'`, eval mode, LayerNorm eps 1e-6,")
    add("exact GELU, head size 64 (heads = dim / 64, DeiT's default). After timm's init every parameter is")
    add("perturbed (seeded): Linear/Conv weights rescaled to std 1/sqrt(fan_in), every bias += 0.1 N(0,1),")
    add("LayerNorm weights 1 + 0.1 N(0,1) and biases 0.1 N(0,1), cls/dist tokens += N(0,1),")
    add("pos_embed += 0.5 N(0,1). Attention softmaxes are neither uniform nor one-hot; logits have std ~1.")
    add("")
    add("| model | img | patch | Np | dim | heads | depth | classes | distilled | parameters | model seed | input seed |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m in manifest.items():
        c = m["config"]
        add(f"| `{name}` | {c['img']} | {c['patch']} | {m['num_patches']} | {c['dim']} | {c['heads']} | {c['depth']} "
            f"| {c['classes']} | {'yes' if c['distilled'] else 'no'} | {m['parameters']:,} | {m['model_seed']} "
            f"| {m['input_seed']} |")
    add("")
    rejected = {n: m["rejected_input_seeds"] for n, m in manifest.items() if m["rejected_input_seeds"]}
    add("Input seeds are tried in order from the base seed until every selection of every ratio has a safe")
    add("margin (below). " + ("Rejected seeds: " + "; ".join(f"{n}: {v}" for n, v in rejected.items()) + "."
                             if rejected else "No seed had to be rejected: each model uses its base seed."))
    add("")
    add("## Layout (per model folder `micro/`, `micro-distilled/`, `tiny12/`)")
    add("")
    add("| file | content |")
    add("|---|---|")
    add("| `model.safetensors` | F32 weights, names exactly as timm's `model.state_dict()` |")
    add("| `model-f16.safetensors`, `model-bf16.safetensors` | the same weights as F16 / BF16 |")
    add("| `input.safetensors` | `pixel_values` F32 [2,3,H,W], seeded N(0,1) (like normalised images); `__metadata__.seed` |")
    add("| `reference.safetensors` | F32 activations of the F32 model on that input, captured with forward hooks on the timm modules: `patch_embed` [B,Np,C] (flattened, before the tokens), `pos_drop` [B,N,C] (tokens + pos_embed, entering block 0), `blocks.{i}` [B,N,C], `norm` [B,N,C], `logits` [B,classes] (distilled: (head(tok0) + head_dist(tok1)) / 2) |")
    add("| `reference-f16.safetensors`, `reference-bf16.safetensors` | `logits` only, computed in float32 from the weights rounded to f16 / bf16 |")
    add("| `idle-{0.5,0.7,0.9}.safetensors` | IdleViT reference at r = 0.5 / 0.7 / 0.9, default schedule, F32 weights: `logits`, `blocks.{i}` for each idle layer (dense layers' outputs are those of `reference.safetensors`), `blocks.{i}.selected` I64 [B,S] for each idle layer (S = K+1, or K+2 distilled; sorted ascending token indices, 0 = class token, 1 = distillation token), `blocks.{i}.cut_loss.{inter,intra,total}` F32 [B]. `__metadata__`: `keep_ratio` (\"0.7\"), `kept` (JSON list, K per layer, null for dense), `input_seed`, `num_patches`, `schedule` |")
    add("| `model-opset13.onnx` (micro, micro-distilled), `model-opset17.onnx` (micro-distilled) | classic exporter (`dynamo=False`), dynamic batch; see ONNX below |")
    add("")
    add("Extra files:")
    add("")
    add("- `micro/external/model.onnx` + `micro/external/model.onnx.data`: micro's opset-17 graph, with every")
    add("  initializer in one external data file (`onnx.save_model(..., save_as_external_data=True,")
    add("  all_tensors_to_one_file=True, location=\"model.onnx.data\", size_threshold=0)`).")
    add("- `micro-distilled/model-dynamo.onnx`: the dynamo exporter (`dynamo=True`, opset 18, weights inside")
    add("  the file, per-node metadata/doc strings stripped for reproducibility).")
    add("- `micro-distilled/weights-flat.h5`: one float32 contiguous dataset per tensor, named like")
    add("  `blocks.0.attn.qkv.weight`, at the file root.")
    add("- `micro-distilled/weights-nested.h5`: float32, chunked + gzip, nested groups `blocks/0/attn/qkv/weight`.")
    add("- `tiny12/weights-nested-f16.h5`: float16, chunked + gzip, nested under one top-level group")
    add("  `state_dict/` (`state_dict/blocks/0/attn/qkv/weight`); root attributes `source = \"idlevit fixtures\"`")
    add("  (variable-length UTF-8 string) and `architecture = \"deit\"` (fixed-length ASCII string, 4 bytes).")
    add("  Its reference is `tiny12/reference-h5f16.safetensors` (`logits`), identical to `reference-f16`")
    add("  (numpy's and torch's float16 rounding agree; the generator checks it).")
    add("- `micro-hf/model.safetensors` + `micro-hf/config.json`: micro's F32 weights under Hugging Face")
    add("  transformers ViT names (IDLEVIT.md §1.6, prefix `vit.`; `attention.attention.{query,key,value}` are")
    add("  the three row blocks of timm's qkv) and a ViTConfig (`layer_norm_eps` 1e-06, `hidden_act` gelu,")
    add("  `model_type` vit, `ViTForImageClassification`, 10 labels). Use `micro/input.safetensors` and")
    add("  `micro/reference.safetensors` with it.")
    add("- `manifest.json`: machine-readable summary (configs, seeds, K per layer, smallest margins, ONNX")
    add("  errors and op histograms). `onnx-graphs.md`: op histogram and initializer names per ONNX file.")
    add("")
    add("## IdleViT reference (`idlevit_reference.py`)")
    add("")
    add("Explicit maths on the timm modules' weights (no timm forward). Schedule: depth D in four stages of")
    add("D/4 layers, stage 0 dense, stage s keeps K = floor(Np * r**s) (double power, Np = initial patch")
    add("count). Idle block: h = LN1(x) on all tokens; k for all tokens, q of the class token; score_j = mean")
    add("over heads of the raw q_cls . k_j (not scaled, not softmaxed), image tokens only, evaluated in float64")
    add("from the float32 q and k; top K by descending score, ties to the lower index (stable sort on (-score,")
    add("index)); class (and distillation) token always selected; attention among the selected tokens only")
    add("(gathered in ascending token order); idle rows are copied unchanged (bit-identical, checked). Keep")
    add("ratio 1 reproduces the dense model exactly (self-check: max difference 0).")
    add("")
    add("Token cut loss (IDLEVIT.md §5), per idle layer and image, in float64 then stored as F32: W = row")
    add("softmax over all N tokens of the head-averaged scaled logits (q_i . k_j) d^-0.5 from that block's LN1")
    add("of the block input (all heads); m_i = 1 for selected tokens (class and distillation included);")
    add("inter_i = sum_j |m_i - m_j| W_ij with the class column (j = 0 only) set to 0, L_inter = mean over all N")
    add("tokens of inter_i^2; intra_i = sum_j m_i m_j W_ij, L_intra = mean_i (intra_i - m_i)^2; total = L_inter")
    add("+ L_intra (not averaged over layers: one value per layer and image).")
    add("")
    add("### Selection margins")
    add("")
    add("For each idle layer and image: relative margin = (score of the K-th picked token - score of the")
    add(f"(K+1)-th) / max |score|. The generator refuses a fixture whose margin is below {MARGIN_MIN:g} (and tries the")
    add("next input seed). Smallest margin per fixture:")
    add("")
    add("| model | " + " | ".join(f"r = {r}" for r in RATIOS) + " |")
    add("|---|" + "---|" * len(RATIOS))
    for name, m in manifest.items():
        add(f"| `{name}` | " + " | ".join(fmt_margin(m["smallest_margin"][r]) for r in RATIOS) + " |")
    add("")
    add("K per idle layer: " + "; ".join(
        f"{name}: " + ", ".join(f"r={r} {sorted(set(k for k in m['kept'][r] if k is not None), reverse=True)}"
                               for r in RATIOS) for name, m in manifest.items()) + ".")
    add("")
    add("## ONNX")
    add("")
    add("Every ONNX file is run with onnxruntime (CPU, one thread) on the fixture input; max abs error")
    add(f"against `reference.safetensors` logits (must be < {ONNX_TOL:g}):")
    add("")
    add("| file | opset | nodes | initializers | max abs err |")
    add("|---|---|---|---|---|")
    for path, info in onnx_info.items():
        add(f"| `{path}` | {info['opset']} | {info['nodes']} | {info['initializers']}"
            f"{' (external)' if info['external'] else ''} | {info['max_abs_error']:.1e} |")
    add("")
    add("What the exporters produce (details in `onnx-graphs.md`):")
    add("")
    add("- Classic exporter: LayerNorm is `LayerNormalization` at opset 17 and ReduceMean / Sub / Pow / ReduceMean")
    add("  / Add / Sqrt / Div / Mul / Add at opset 13. GELU is Div(x, 1.4142135) -> Erf -> Add 1 -> Mul x -> Mul")
    add("  0.5. Block Linears are MatMul + Add(bias, MatMul) with the weight stored transposed ([in, out]) as an")
    add("  initializer named `onnx::MatMul_<n>`; biases, LayerNorm params, cls/dist token, pos_embed and the")
    add("  patch Conv keep their timm names. The head(s) are `Gemm` (transB = 1) on the original `head.weight`.")
    add("  qkv is Reshape [B, N, 3, H, d] -> Transpose (2,0,3,1,4) -> Split -> Squeeze; the scale is a Mul by")
    add("  0.125 on q before MatMul with Transpose(k). Shapes are computed at run time from Shape / Gather /")
    add("  Unsqueeze / Concat (dynamic batch); the class-token Expand goes through ConstantOfShape / Equal /")
    add("  Where. Constants are `Constant` nodes; no `Identity` nodes. Node names (`/blocks/blocks.0/attn/...`)")
    add("  must not be relied on: constants are shared across unrelated uses.")
    add("- Dynamo exporter (opset 18): no Constant nodes (constants are initializers named `val_<n>`), the")
    add("  transposed Linear weights are also `val_<n>`; q, k, v come from Slice + Squeeze instead of Split;")
    add("  Reshape targets are constant initializers with -1 for the batch and `allowzero = 1`;")
    add("  LayerNormalization carries `stash_type = 1`; GELU is Div -> Erf -> Add -> Mul(0.5, .) -> Mul(x, .).")
    add("")
    add("## Size")
    add("")
    total = sum(sizes.values())
    add(f"Files written by the generator: {total / 1e6:.1f} MB; the generator fails when Fixtures/ as a whole")
    add(f"exceeds {BUDGET_BYTES / 1e6:.0f} MB. To stay small, every graph shape is stored once: micro's opset-17")
    add("ONNX only with external data, micro-distilled (dim 64, one head) carries the other ONNX variants.")
    add("")
    add("| bytes | file |")
    add("|---:|---|")
    for path in sorted(sizes):
        if path in ("README.md",):
            continue
        add(f"| {sizes[path]:,} | `{path}` |")
    add("")
    if notes:
        add("## Notes")
        add("")
        for n in notes:
            add(f"- {n}")
        add("")
    # The sections other scripts' fixtures need (families, LV-ViT, pth, eval, images) follow a
    # marker and are kept as they are.
    kept = ""
    if (HERE / "README.md").exists():
        existing = (HERE / "README.md").read_text()
        if README_MARKER in existing:
            kept = existing[existing.index(README_MARKER):]
    (HERE / "README.md").write_text("\n".join(L) + ("\n" + kept if kept else ""))


README_MARKER = "<!-- generate.py writes everything above this line; it keeps what follows when it runs again. -->"


def all_files():
    skip = {"__pycache__"}
    return [p for p in HERE.rglob("*") if p.is_file() and not (set(p.relative_to(HERE).parts) & skip)]


OWN_TOP = {".gitignore", "README.md", "generate.py", "idlevit_reference.py", "manifest.json",
           "onnx-graphs.md", "requirements.txt"}
OWN_DIRS = set(MODELS) | {"micro-hf"}


def my_files():
    out = []
    for p in all_files():
        parts = p.relative_to(HERE).parts
        if (len(parts) == 1 and parts[0] in OWN_TOP) or (len(parts) > 1 and parts[0] in OWN_DIRS):
            out.append(p)
    return out


def total_size():
    return sum(p.stat().st_size for p in all_files())


if __name__ == "__main__":
    main()

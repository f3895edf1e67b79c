#!/usr/bin/env python3
"""Writes the PyTorch checkpoint fixtures: Fixtures/pth/ (torch.save files of the committed models
in every layout idlevit reads) and Fixtures/hostile/pth-*.pth (pickles and zips built to attack a
reader). Run with the fixtures venv (Fixtures/requirements.txt):

    /work/venv/bin/python Fixtures/generate_pth.py

The models' weights are read from the committed safetensors files, so the committed references
(reference*.safetensors) apply unchanged. Everything is seeded; the zip files are byte-identical
on a rerun. The legacy-layout files are not: torch writes storage keys from memory addresses.

Every hostile file whose payload would run code is checked here to really run it: the generator
loads it with `torch.load(weights_only=False)` in a subprocess and asserts that the payload
created its marker file (MARKER), then deletes the marker. The idlevit tests assert the marker
does not exist after idlevit has read the same files.
"""

import argparse
import io
import json
import logging
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

os.environ["TIMM_FUSED_ATTN"] = "0"

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import timm
from timm.models.deit import VisionTransformerDistilled

from generate import hf_names  # Fixtures/ is this script's folder, so its sibling imports

HERE = Path(__file__).resolve().parent
OUT = HERE / "pth"
UNIT = OUT / "unit"
HOSTILE = HERE / "hostile"
MARKER = "/tmp/idlevit-pth-marker"
TOUCH = f"touch {MARKER}"

torch.set_num_threads(1)
torch.manual_seed(13)


# ----------------------------------------------------------------------------------------------
# reading the committed models


def load_st(path):
    """Tensors of a safetensors file in the order their bytes sit in it (timm's state-dict order)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    out = OrderedDict()
    with safe_open(str(path), "pt") as f:
        for k in names:
            out[k] = f.get_tensor(k).clone()
    return out


MD = HERE / "micro-distilled"


def micro_distilled_model(sd):
    """timm's model of the micro-distilled fixture with these weights (strict load)."""
    model = VisionTransformerDistilled(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=1, mlp_ratio=4,
                                       qkv_bias=True, num_classes=10, class_token=True, global_pool="token")
    model.load_state_dict(sd, strict=True)
    return model.eval()


@torch.no_grad()
def check_logits(sd, reference, label):
    """The weights give the committed reference logits through timm (so `verify` must too)."""
    model = micro_distilled_model(OrderedDict((k, v.float()) for k, v in sd.items()))
    with safe_open(str(MD / "input.safetensors"), "pt") as f:
        x = f.get_tensor("pixel_values")
    with safe_open(str(reference), "pt") as f:
        expected = f.get_tensor("logits")
    err = float((model(x) - expected).abs().max())
    assert err < 1e-4, f"{label}: timm logits differ from {reference.name} by {err}"


def same_tensors(a, b, label):
    assert list(a) == list(b), f"{label}: names differ"
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), f"{label}: {k} differs"


# ----------------------------------------------------------------------------------------------
# Fixtures/pth: the layouts


HF_CONFIG = OrderedDict([
    ("architectures", ["DeiTForImageClassificationWithTeacher"]), ("model_type", "deit"), ("hidden_size", 64),
    ("num_hidden_layers", 4), ("num_attention_heads", 1), ("intermediate_size", 256), ("hidden_act", "gelu"),
    ("layer_norm_eps", 1e-06), ("image_size", 32), ("patch_size", 8), ("num_channels", 3), ("qkv_bias", True),
    ("id2label", OrderedDict((str(i), f"class_{i}") for i in range(10))),
    ("label2id", OrderedDict((f"class_{i}", i) for i in range(10))),
])


@torch.no_grad()
def check_hf(hf_sd):
    """transformers' own DeiT loads the renamed weights strictly and gives the reference logits."""
    try:
        from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher
    except ImportError:
        print("    transformers not installed: Hugging Face cross-check skipped")
        return
    # from_pretrained on a folder like a Hub repository: transformers maps the checkpoint names
    # of its repositories (deit.encoder.layer.N.attention.attention.query...) onto its modules,
    # and refuses missing or unexpected weights.
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(hf_sd, Path(tmp) / "pytorch_model.bin")
        (Path(tmp) / "config.json").write_text(json.dumps(HF_CONFIG))
        model, info = DeiTForImageClassificationWithTeacher.from_pretrained(tmp, output_loading_info=True)
    model.eval()
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    with safe_open(str(MD / "input.safetensors"), "pt") as f:
        x = f.get_tensor("pixel_values")
    with safe_open(str(MD / "reference.safetensors"), "pt") as f:
        expected = f.get_tensor("logits")
    err = float((model(pixel_values=x).logits - expected).abs().max())
    assert err < 1e-4, f"Hugging Face DeiT logits differ by {err}"
    print(f"    transformers DeiTForImageClassificationWithTeacher: max |logits - reference| {err:.1e}")


def strided_views(sd):
    """The same values as views into one shared storage: contiguous with an offset, transposed
    (2-D weights stored as W^T), every other row of a taller buffer (attention projections), and a
    permuted conv weight. Returns the state dict of views."""
    total = 7 + sum(2 * v.numel() if "attn.proj.weight" in k else v.numel() for k, v in sd.items())
    flat = torch.zeros(total)
    views = OrderedDict()
    off = 7
    for k, v in sd.items():
        n = v.numel()
        if "attn.proj.weight" in k:
            buf = flat[off:off + 2 * n].view(2 * v.shape[0], v.shape[1])
            buf[::2] = v
            views[k] = buf[::2]
            off += 2 * n
        elif v.dim() == 2:
            buf = flat[off:off + n].view(v.shape[1], v.shape[0])
            buf.copy_(v.t())
            views[k] = buf.t()
            off += n
        elif v.dim() == 4:
            c, i, p, q = v.shape
            buf = flat[off:off + n].view(i, p, q, c)
            buf.copy_(v.permute(1, 2, 3, 0))
            views[k] = buf.permute(3, 0, 1, 2)
            off += n
        else:
            buf = flat[off:off + n].view(v.shape)
            buf.copy_(v)
            views[k] = buf
            off += n
    assert off == total
    assert sum(not t.is_contiguous() for t in views.values()) >= 10
    assert len({t.untyped_storage().data_ptr() for t in views.values()}) == 1
    return views


def training_checkpoint(sd):
    """The official IdleViT (DeiT main.py) checkpoint: model, optimizer, lr_scheduler, epoch,
    scaler, args. The optimizer is timm's AdamW parameter groups over every parameter, stepped
    once with gradients on the heads only (so its state holds exp_avg / exp_avg_sq / step for
    those four tensors and the file stays small)."""
    from timm.scheduler import CosineLRScheduler

    model = micro_distilled_model(sd)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "token" not in n and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "token" not in n and "pos_embed" not in n)]
    optimizer = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.05}], lr=5e-4)
    g = torch.Generator().manual_seed(1313)
    for n, p in model.named_parameters():
        p.grad = torch.randn(p.shape, generator=g) if n.startswith("head") else None
    saved = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    optimizer.step()
    model.load_state_dict(saved)  # the step only fills the optimizer state; the weights stay the fixture's
    scheduler = CosineLRScheduler(optimizer, t_initial=30, lr_min=1e-5, warmup_t=5, warmup_lr_init=1e-6)
    scheduler.step(12)
    args = argparse.Namespace(
        batch_size=128, epochs=30, model="deit_small_patch16_224", input_size=224, drop=0.0, drop_path=0.1,
        model_ema=False, opt="adamw", opt_eps=1e-08, momentum=0.9, weight_decay=0.05, sched="cosine", lr=0.0005,
        warmup_lr=1e-06, min_lr=1e-05, warmup_epochs=5, smoothing=0.1, mixup=0.8, cutmix=1.0,
        teacher_model="regnety_160", distillation_type="none", base_keep_rate=0.7, keep_layers=(3, 6, 9),
        finetune="https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth",
        data_path="/datasets01/imagenet_full_size/061417/", data_set="IMNET", output_dir="output/idlevit_deit_s_0.7",
        device="cuda", seed=0, resume="", start_epoch=0, eval=False, dist_eval=True, num_workers=10, pin_mem=True,
        world_size=8, dist_url="env://", rank=0, gpu=0, distributed=True, dist_backend="nccl")
    scaler = OrderedDict([("scale", 65536.0), ("growth_factor", 2.0), ("backoff_factor", 0.5),
                          ("growth_interval", 2000), ("_growth_tracker", 0)])
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(),
            "epoch": 12, "scaler": scaler, "args": args}


def write_layouts():
    OUT.mkdir(exist_ok=True)
    (OUT / "hf").mkdir(exist_ok=True)
    f32 = load_st(MD / "model.safetensors")
    f16 = load_st(MD / "model-f16.safetensors")
    bf16 = load_st(MD / "model-bf16.safetensors")
    check_logits(f32, MD / "reference.safetensors", "f32")
    check_logits(f16, MD / "reference-f16.safetensors", "f16")
    check_logits(bf16, MD / "reference-bf16.safetensors", "bf16")

    files = OrderedDict()
    # A plain state dict as model.state_dict() gives it (an OrderedDict with _metadata).
    files["micro-distilled-plain.pth"] = (micro_distilled_model(f32).state_dict(), {}, "reference.safetensors")
    # Facebook DeiT's release layout, in the legacy stream format of torch < 1.6.
    files["micro-distilled-model-legacy.pth"] = ({"model": f32}, {"_use_new_zipfile_serialization": False}, "reference.safetensors")
    # Lightning-style {"state_dict": ...} of a DataParallel model (module. prefix), float16.
    files["micro-distilled-state_dict-f16.pth"] = (
        {"state_dict": OrderedDict(("module." + k, v) for k, v in f16.items()), "epoch": 3, "best_acc1": 0.125},
        {}, "reference-f16.safetensors")
    # DeiT training checkpoint with an EMA copy, bfloat16: the EMA holds the fixture's weights,
    # "model" their negation, so --key model_ema is the one that passes.
    files["micro-distilled-ema-bf16.pth"] = (
        {"model": OrderedDict((k, -v) for k, v in bf16.items()), "model_ema": bf16, "epoch": 299}, {},
        "reference-bf16.safetensors")
    # The official IdleViT training checkpoint.
    files["micro-distilled-training.pth"] = (training_checkpoint(f32), {}, "reference.safetensors")
    # Views sharing one storage, non-contiguous strides, pickle protocol 4 (STACK_GLOBAL, FRAME, MEMOIZE).
    files["micro-distilled-views.pth"] = (strided_views(f32), {"pickle_protocol": 4}, "reference.safetensors")
    # A Hugging Face repository's pytorch_model.bin (DeiT names, with its config.json).
    hf = hf_names(f32, f32["cls_token"].shape[-1], distilled=True)
    check_hf(hf)
    files["hf/pytorch_model.bin"] = (hf, {}, "reference.safetensors")
    (OUT / "hf" / "config.json").write_text(json.dumps(HF_CONFIG, indent=2) + "\n")

    for name, (obj, kwargs, _) in files.items():
        path = OUT / name
        torch.save(obj, path, **kwargs)
        back = torch.load(path, weights_only=False)
        print(f"  {path.relative_to(HERE)}: {path.stat().st_size:,} bytes")
        if name == "micro-distilled-views.pth":
            same_tensors(OrderedDict((k, v.contiguous()) for k, v in back.items()), f32, name)
            assert sum(not v.is_contiguous() for v in back.values()) >= 10, "views were not kept"
    return files


# ----------------------------------------------------------------------------------------------
# Fixtures/pth/unit: small tensors of every kind, with the values torch reads as the expectation


def unit_tensors():
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5) * 0.25 - 3.0
    half = (base[0] * 1.5).half()
    with_attr = torch.linspace(-2, 2, 6)
    with_attr.note = "a Python attribute makes torch pickle this through _rebuild_from_type_v2"
    t = OrderedDict()
    t["contiguous_offset"] = base[1]
    t["transposed"] = base[0].t()
    t["strided"] = base[:, ::2, 1::2]
    t["permuted"] = base.permute(2, 0, 1)
    t["scalar"] = base[2, 3, 4]
    t["row"] = base[2, 1].unsqueeze(0)
    t["half"] = half
    t["half_transposed"] = half.t()
    t["bfloat16"] = base[1].bfloat16()
    t["double_strided"] = base.double()[1:, 2]
    t["empty"] = torch.zeros(0, 4)
    t["parameter"] = torch.nn.Parameter(torch.linspace(-1, 1, 7), requires_grad=True)
    t["with_attribute"] = with_attr
    return t


def write_unit():
    UNIT.mkdir(parents=True, exist_ok=True)
    tensors = unit_tensors()
    save_file(OrderedDict((k, v.detach().float().contiguous()) for k, v in tensors.items()), str(UNIT / "views-expected.safetensors"))
    torch.save(tensors, UNIT / "views.pth")
    torch.save(tensors, UNIT / "views-legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(tensors, UNIT / "views-protocol1.pth", pickle_protocol=1)
    torch.save(tensors, UNIT / "views-protocol5.pth", pickle_protocol=5)
    for name in ("views.pth", "views-legacy.pth", "views-protocol1.pth", "views-protocol5.pth"):
        back = torch.load(UNIT / name, weights_only=False)
        for k, v in tensors.items():
            assert torch.equal(back[k].detach(), v.detach()) and back[k].stride() == v.stride(), f"{name}: {k}"

    # Tensors idlevit does not load sit beside a model: a uint16 tensor (_rebuild_tensor_v3 over
    # an untyped storage with a dtype), an int64 step, a float in a list.
    mixed = {"model": OrderedDict([("w", torch.arange(6, dtype=torch.float32).reshape(2, 3))]),
             "counts": torch.tensor([1, 2, 3], dtype=torch.uint16), "step": torch.tensor(5), "history": [0.5, 0.25]}
    torch.save(mixed, UNIT / "mixed.pth")
    # {"model_ema": sd} alone: one candidate, found without --key.
    torch.save({"model_ema": OrderedDict([("w", torch.ones(2))]), "epoch": 1}, UNIT / "model_ema-only.pth")
    # Integer weights in the state dict: refused with the tensor's name.
    torch.save(OrderedDict([("w", torch.ones(2)), ("position_ids", torch.arange(4))]), UNIT / "integer-weight.pth")

    # Big-endian: the same archive with byteorder "big" (zipfile rewrites it, which also gives a
    # zip written by another writer: sizes in the local headers, no data descriptors), and a
    # legacy stream whose sys_info says little_endian False.
    rewrite_zip(UNIT / "views.pth", UNIT / "big-endian.pth", {"views/byteorder": b"big"}, folder="big-endian")
    legacy = (UNIT / "views-legacy.pth").read_bytes()
    flag = b"little_endianq\x02\x88"
    assert legacy.count(flag) == 1
    (UNIT / "legacy-big-endian.pth").write_bytes(legacy.replace(flag, b"little_endianq\x02\x89"))
    # Same content, another top folder name and a zip writer with no alignment padding.
    rewrite_zip(UNIT / "views.pth", UNIT / "renamed-folder.pth", {}, folder="some folder name")
    # Same content with zip64 fields everywhere, as a > 4 GB checkpoint has them.
    zip64_everywhere(UNIT / "views.pth", UNIT / "zip64.pth")
    for name in ("big-endian.pth", "renamed-folder.pth", "zip64.pth"):
        with zipfile.ZipFile(UNIT / name) as z:
            assert z.testzip() is None, name
    back = torch.load(UNIT / "zip64.pth", weights_only=False)
    assert all(torch.equal(back[k].detach(), v.detach()) for k, v in tensors.items())


def zip64_everywhere(source, target):
    """The entries of a torch zip written by hand with zip64 extra fields in every local and
    central header (their 32-bit sizes and offsets 0xFFFFFFFF) and the zip64 end records."""
    with zipfile.ZipFile(source) as z:
        items = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    out, central = bytearray(), bytearray()
    for name, data in items:
        raw, offset, crc = name.encode(), len(out), zlib.crc32(data)
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(local_extra))
        out += raw + local_extra + data
        central_extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(raw), len(central_extra), 0, 0, 0, 0, 0xFFFFFFFF) + raw + central_extra
    directory = len(out)
    out += central
    record = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(items), len(items), len(central), directory)
    out += struct.pack("<IIQI", 0x07064B50, 0, record, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    Path(target).write_bytes(bytes(out))


FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def rewrite_zip(source, target, replace, folder):
    """Copies a torch zip with Python's zipfile under another folder name, replacing entries."""
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for info in z.infolist():
            data = replace.get(info.filename, z.read(info.filename))
            name = folder + "/" + info.filename.split("/", 1)[1]
            out.writestr(zipfile.ZipInfo(name, FIXED_TIME), data)


def torch_zip(path, pickle_bytes, storages=None, folder="archive", extra=None, compress=None):
    """A torch.save-shaped zip around a hand-made data.pkl: byteorder, version, data/<key>."""
    entries = [(f"{folder}/data.pkl", pickle_bytes), (f"{folder}/byteorder", b"little"), (f"{folder}/version", b"3\n")]
    entries += [(f"{folder}/data/{k}", v) for k, v in (storages or {}).items()]
    entries += list(extra or [])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = (compress or {}).get(name, zipfile.ZIP_STORED)
            z.writestr(info, data)


# ----------------------------------------------------------------------------------------------
# Fixtures/hostile/pth-*: each payload, if a real unpickler ran it, creates MARKER


class Call:
    """Pickles as REDUCE(func, args)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class FakeStorage:
    def __init__(self, key, dtype_class, numel):
        self.key, self.dtype_class, self.numel = key, dtype_class, numel


class TorchPickler(pickle.Pickler):
    """torch's persistent ids for FakeStorage, so a hand-made tensor rebuild points at data/<key>."""

    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.dtype_class, obj.key, "cpu", obj.numel)
        return None


def torch_pickle(obj, protocol=2):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def rebuild(storage, offset, size, stride):
    return Call(torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False, OrderedDict())


def p2(body):
    """A protocol-2 pickle from raw opcodes."""
    return b"\x80\x02" + body + b"."


def u(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def write_hostile():
    HOSTILE.mkdir(exist_ok=True)
    small = FakeStorage("0", torch.FloatStorage, 4)
    four_floats = {"0": struct.pack("<4f", 1, 2, 3, 4)}
    files = OrderedDict()   # name -> (bytes or writer, runs code if loaded by Python)

    def save(name, obj, **kwargs):
        buf = io.BytesIO()
        torch.save(obj, buf, **kwargs)
        return buf.getvalue()

    # Code reached through each opcode.
    files["pth-reduce-system.pth"] = (save("x", {"model": OrderedDict([("head.weight", Call(os.system, TOUCH))])}), True)
    files["pth-reduce-eval.pth"] = (save("x", Call(eval, f"open({MARKER!r}, 'w')")), True)
    files["pth-stack-global-exec.pth"] = (save("x", OrderedDict([("w", Call(exec, f"open({MARKER!r}, 'w')"))]), pickle_protocol=4), True)
    files["pth-inst-popen.pth"] = ("zip", b"(]" + b"(" + u("touch") + u(MARKER) + b"e" + b"isubprocess\nPopen\n.", True)
    files["pth-obj-system.pth"] = ("zip", b"(cposix\nsystem\n" + u(TOUCH) + b"o.", True)
    # NEWOBJ makes an uninitialised Popen; getattr(it, '__init__')(['touch', MARKER]) runs it.
    files["pth-newobj-popen.pth"] = ("zip", p2(b"cbuiltins\ngetattr\n" + b"csubprocess\nPopen\n)\x81" + u("__init__") + b"\x86R"
                                               + b"](" + u("touch") + u(MARKER) + b"e\x85R"), True)
    # BUILD: the first sets the instance's __setstate__ to os.system, the second calls it.
    files["pth-build-setstate.pth"] = ("zip", p2(b"cargparse\nNamespace\n)\x81}" + u("__setstate__") + b"cposix\nsystem\nsb"
                                                 + u(TOUCH) + b"b"), True)
    # The same with a callable idlevit does not refuse by name: it stays inert, and the state
    # dict position it fills is an error naming it.
    with_tensor = torch_pickle(OrderedDict([("cls_token", rebuild(small, 0, (1, 1, 4), (4, 4, 1)))]))
    assert with_tensor.endswith(b"s.")  # one item: key, value, SETITEM
    files["pth-build-setstate-filehandler.pth"] = ("zip", with_tensor[:-1] + u("head.weight") + b"cargparse\nNamespace\n)\x81}"
                                                   + u("__setstate__") + b"clogging\nFileHandler\nsb" + u(MARKER) + b"bs.", four_floats, True)
    # A tensor rebuild swapped for another callable, and a storage swapped for one.
    files["pth-rebuild-swapped.pth"] = ("zip", torch_pickle(OrderedDict([
        ("cls_token", rebuild(small, 0, (1, 1, 4), (4, 4, 1))), ("head.weight", Call(logging.FileHandler, MARKER))])), four_floats, True)
    files["pth-storage-swapped.pth"] = ("zip", torch_pickle(OrderedDict([
        ("head.weight", rebuild(Call(logging.FileHandler, MARKER), 0, (4,), (1,)))])), four_floats, True)
    files["pth-legacy-system.pth"] = (save("x", {"model": OrderedDict([("w", Call(os.system, TOUCH))])},
                                           _use_new_zipfile_serialization=False), True)

    # The zip container.
    good = save("x", OrderedDict([("w", torch.arange(4.0))]))
    files["pth-zip-traversal.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(small, 0, (4,), (1,)))])), four_floats, False,
                                      [("archive/../../../../../../tmp/idlevit-pth-marker", b"written by a naive extractor")])
    files["pth-zip-absolute.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(small, 0, (4,), (1,)))])), four_floats, False,
                                     [(MARKER, b"written by a naive extractor")])
    files["pth-zip-outside-folder.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(small, 0, (4,), (1,)))])), four_floats, False,
                                           [("other/data/0", b"\0" * 16)])
    big = 32 << 20
    files["pth-zip-bomb.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(FakeStorage("0", torch.FloatStorage, big // 4), 0, (big // 4,), (1,)))])),
                                 {"0": b"\0" * big}, False, None, {"archive/data/0": zipfile.ZIP_DEFLATED})
    files["pth-zip-overlap.pth"] = (overlapping_zip(good), False)
    files["pth-zip-truncated.pth"] = (good[: len(good) * 3 // 5], False)

    # The pickle machine's limits and checks.
    files["pth-deep-marks.pth"] = ("zip", b"\x80\x02" + b"(" * 66_000 + b".", False)
    # [((((None,),),)...) 150,000 deep, [[[...]]] 20,000 deep]
    files["pth-deep-nesting.pth"] = ("zip", b"\x80\x02]N" + b"\x85" * 150_000 + b"a" + b"]" * 20_000 + b"a" * 20_000 + b".", False)
    # 10 references per level, 40 levels: 10^40 elements if expanded.
    laughs = b"\x80\x02" + u("lol") + b"q\x00"
    for level in range(40):
        laughs += b"]q" + bytes([level + 1]) + b"(" + (b"h" + bytes([level])) * 10 + b"e"
    files["pth-billion-laughs.pth"] = ("zip", laughs + b".", False)
    files["pth-memo-huge-index.pth"] = ("zip", p2(b"N" + b"r\xff\xff\xff\xff" + b"j\xfe\xff\xff\xff"), False)
    files["pth-long-huge.pth"] = ("zip", p2(b"\x8b\xff\xff\xff\x7f"), False)
    files["pth-truncated-pickle.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(small, 0, (4,), (1,)))]))[:-9], four_floats, False)
    legacy = save("x", OrderedDict([("w", torch.arange(64.0))]), _use_new_zipfile_serialization=False)
    files["pth-truncated-legacy.pth"] = (legacy[:-100], False)
    files["pth-view-past-storage.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(small, 2, (10,), (1,)))])), four_floats, False)
    files["pth-storage-larger-than-entry.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(FakeStorage("0", torch.FloatStorage, 1 << 40), 0, (4,), (1,)))])),
                                                  four_floats, False)
    files["pth-size-overflow.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(small, 0, (1 << 62, 1 << 62), (1, 1)))])), four_floats, False)
    files["pth-broadcast.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(small, 0, (1 << 16, 1 << 16), (0, 0)))])), four_floats, False)
    files["pth-storage-key-traversal.pth"] = ("zip", torch_pickle(OrderedDict([("w", rebuild(FakeStorage("../byteorder", torch.FloatStorage, 1), 0, (1,), (1,)))])),
                                              {}, False)

    for name, spec in files.items():
        path = HOSTILE / name
        if spec[0] == "zip":
            _, pkl, *rest = spec
            storages = rest[0] if len(rest) > 1 and isinstance(rest[0], dict) else {}
            runs = rest[1] if len(rest) > 1 and isinstance(rest[0], dict) else rest[0]
            extra = rest[2] if len(rest) > 2 else None
            compress = rest[3] if len(rest) > 3 else None
            torch_zip(path, pkl, storages, extra=extra, compress=compress)
        else:
            data, runs = spec
            path.write_bytes(data)
        print(f"  {path.relative_to(HERE)}: {path.stat().st_size:,} bytes" + ("  (payload checked to run in Python)" if runs else ""))
        if runs:
            check_payload_runs(path)


def overlapping_zip(good):
    """A valid torch zip whose first entry's central-directory sizes are stretched over the
    next entry: both would read the same bytes (the trick of overlapping zip bombs)."""
    data = bytearray(good)
    eocd = data.rfind(b"PK\x05\x06")
    cd = struct.unpack_from("<I", data, eocd + 16)[0]
    # first central header: compressed / uncompressed sizes at +20 / +24
    assert data[cd:cd + 4] == b"PK\x01\x02"
    size = struct.unpack_from("<I", data, cd + 20)[0]
    struct.pack_into("<II", data, cd + 20, size + 200, size + 200)
    return bytes(data)


def check_payload_runs(path):
    """The payload really executes when Python's unpickler loads the file."""
    if os.path.exists(MARKER):
        os.remove(MARKER)
    code = f"import torch\ntry:\n    torch.load({str(path)!r}, weights_only=False)\nexcept Exception:\n    pass\n"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", code], cwd=tmp, timeout=120, capture_output=True)
    for _ in range(50):  # a spawned `touch` may finish just after the loader
        if os.path.exists(MARKER):
            break
        time.sleep(0.1)
    if not os.path.exists(MARKER):
        raise RuntimeError(f"{path.name}: the payload did not create {MARKER} when loaded with torch.load(weights_only=False)")
    os.remove(MARKER)


def main():
    print("Fixtures/pth (layouts):")
    write_layouts()
    print("Fixtures/pth/unit:")
    write_unit()
    print("Fixtures/hostile/pth-*:")
    write_hostile()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    total += sum(p.stat().st_size for p in HOSTILE.glob("pth-*"))
    print(f"total {total:,} bytes")
    assert total < 6_500_000, "over the pth fixture budget"


if __name__ == "__main__":
    main()

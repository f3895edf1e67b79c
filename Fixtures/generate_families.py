#!/usr/bin/env python3
"""Writes the fixtures of the ViT-family variants besides DeiT (issue 15), seeded and rerunnable:

    /work/venv/bin/python Fixtures/generate_families.py      (Fixtures/requirements.txt)

  deit3-micro      DeiT-III: LayerScale (perturbed gammas) and positions for the patches only
                   (timm's no_embed_class), timm names; also under Facebook's original names
                   (blocks.{i}.gamma_1 / gamma_2), as ONNX (opset 17 and 13), HDF5 and torch.save
  vit-micro        timm ViT without qkv bias, with a timm hub config.json (mean = std = 0.5,
                   crop_pct 0.9, label names), as safetensors, ONNX (opset 17), HDF5, torch.save

Each folder holds input.safetensors, reference.safetensors (timm forward hooks: patch_embed,
pos_drop, blocks.{i}, norm, logits) and idle-{0.5,0.7}.safetensors from
Fixtures/idlevit_reference.py (logits, blocks.{i}.selected per idle layer). Models reuse
generate.py's helpers (perturbation, reference capture, ONNX export, HDF5 writing).
"""

import os

os.environ["TIMM_FUSED_ATTN"] = "0"  # before timm is imported

import json
import sys
from collections import OrderedDict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate as gen  # noqa: E402  (its module level only defines helpers and constants)
import idlevit_reference as ref  # noqa: E402
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

RATIOS = ["0.5", "0.7"]

FAMILIES = OrderedDict([
    ("deit3-micro", dict(img=32, patch=8, dim=32, heads=2, depth=4, classes=10, qkv_bias=True,
                         layer_scale=True, no_embed_class=True, model_seed=1101, input_seed=2101)),
    ("vit-micro", dict(img=32, patch=8, dim=32, heads=2, depth=4, classes=10, qkv_bias=False,
                       layer_scale=False, no_embed_class=False, model_seed=1102, input_seed=2102)),
])


def build(cfg):
    torch.manual_seed(cfg["model_seed"])
    extra = dict(init_values=1e-5) if cfg["layer_scale"] else {}
    model = VisionTransformer(img_size=cfg["img"], patch_size=cfg["patch"], embed_dim=cfg["dim"], depth=cfg["depth"],
                              num_heads=cfg["heads"], mlp_ratio=4, qkv_bias=cfg["qkv_bias"], num_classes=cfg["classes"],
                              class_token=True, global_pool="token", no_embed_class=cfg["no_embed_class"], **extra)
    model.eval()
    gen.perturb(model, cfg["model_seed"] + 7)
    for blk in model.blocks:
        assert not blk.attn.fused_attn, "TIMM_FUSED_ATTN=0 was not honoured"
    return model


def facebook_names(sd):
    """DeiT-III's original checkpoints name LayerScale gamma_1 / gamma_2."""
    return OrderedDict((k.replace(".ls1.gamma", ".gamma_1").replace(".ls2.gamma", ".gamma_2"), v) for k, v in sd.items())


def timm_hub_config(cfg):
    return {
        "architecture": "vit_micro_patch8_32",
        "num_classes": cfg["classes"],
        "num_features": cfg["dim"],
        "global_pool": "token",
        "pretrained_cfg": {"input_size": [3, cfg["img"], cfg["img"]], "interpolation": "bicubic", "crop_pct": 0.9,
                           "crop_mode": "center", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                           "num_classes": cfg["classes"], "first_conv": "patch_embed.proj", "classifier": "head"},
        "label_names": [f"thing {i}" for i in range(cfg["classes"])],
    }


def main():
    for name, cfg in FAMILIES.items():
        print(f"== {name}")
        d = HERE / name
        d.mkdir(exist_ok=True)
        model = build(cfg)
        sd = gen.state_dict_f32(model)
        seed = cfg["input_seed"]
        for _ in range(gen.MAX_SEED_TRIES):
            x = gen.make_input(cfg, seed)
            try:
                runs = gen.idle_runs(model, cfg, x, RATIOS)
                break
            except gen.MarginError as e:
                print(f"    input seed {seed} rejected: {e}")
                seed += 1
        else:
            raise RuntimeError(f"{name}: no input seed with safe selection margins")
        acts = gen.capture_reference(model, x)
        explicit = ref.dense_forward(model, x)
        d_exp = max(float((explicit[k] - acts[k]).abs().max()) for k in acts)
        assert d_exp < 1e-5, f"explicit dense differs from timm by {d_exp}"
        assert ref.self_check(model, x) < 1e-5
        print(f"    params {sum(v.numel() for v in sd.values())}, input seed {seed}, max|explicit - timm| {d_exp:.2e}")

        gen.save_st(d / "model.safetensors", sd)
        gen.save_st(d / "input.safetensors", {"pixel_values": x}, metadata={"seed": str(seed)})
        gen.save_st(d / "reference.safetensors", acts, metadata={"input_seed": str(seed), "dtype": "f32"})
        for r, (kept, res, smallest) in runs.items():
            gen.save_st(d / f"idle-{r}.safetensors", gen.idle_tensors(res, len(model.blocks), outputs=False, cut_loss=False),
                        metadata=gen.idle_metadata(r, kept, seed, model.patch_embed.num_patches))
            print(f"    r={r}: kept {kept}, smallest margin {smallest:.3e}")

        gen.export_onnx(model, x, d / "model-opset17.onnx", 17)
        gen.check_onnx(d / "model-opset17.onnx", x, acts["logits"])
        if cfg["layer_scale"]:
            gen.export_onnx(model, x, d / "model-opset13.onnx", 13)
            gen.check_onnx(d / "model-opset13.onnx", x, acts["logits"])
            gen.save_st(d / "model-facebook.safetensors", facebook_names(sd))
        gen.h5_write(d / "weights.h5", sd, nested=False, dtype="float32", compress=False)
        torch.save(OrderedDict((k, v.clone()) for k, v in sd.items()), str(d / "model.pth"))
        if name == "vit-micro":
            (d / "config.json").write_text(json.dumps(timm_hub_config(cfg), indent=2) + "\n")
    total = sum(f.stat().st_size for n in FAMILIES for f in (HERE / n).iterdir())
    print(f"families: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

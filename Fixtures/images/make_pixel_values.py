#!/usr/bin/env python3
"""Writes the PIL / timm references for the image fixtures in this folder.

    pip install -r Fixtures/images/requirements.txt
    python Fixtures/images/make_pixel_values.py

pixel_values.safetensors
    PHOTO.crop          U8  [224, 224, 3]  PIL: convert('RGB'), Resize(256, BICUBIC), CenterCrop(224)
    pixel_values        F32 [1, 3, 224, 224]  chelsea.png through the full torchvision transform
                        (Resize(256) BICUBIC, CenterCrop(224), ToTensor, Normalize(ImageNet)), i.e. an
                        input file for `idlevit run --input`
    variants/NAME.rgb   U8  [h, w, 3]  PIL's Image.open(f).convert('RGB') of each variant
    resize.up/.down     U8  PIL's BICUBIC resize of variants/rgb.png to 150x100 and of chelsea.png to 123x82
reference_logits.safetensors (model: ../tiny12/model.safetensors, timm VisionTransformer in eval mode)
    logits              F32 [4, 1000]  the photos through the transform above (DeiT's crop_pct 0.875)
    logits_timm_cfg     F32 [4, 1000]  the photos through timm.data.create_transform(**resolve_data_config(
                        model=deit_tiny_patch16_224)), whose pretrained config says crop_pct 0.9 (Resize(248))
Photos in the order of the metadata key "photos". Crops are stored as bytes (not floats) to keep the
fixtures small: ToTensor/Normalize of a byte is exact Float32 arithmetic the tests redo.
"""

import json
import os
from pathlib import Path

os.environ["TIMM_FUSED_ATTN"] = "0"  # the plain attention path, as Fixtures/generate.py uses

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import timm
import timm.data
from timm.models.vision_transformer import VisionTransformer
from torchvision import transforms

HERE = Path(__file__).resolve().parent
PHOTOS = ["chelsea.png", "rocket.jpg", "astronaut_progressive.jpg", "camera_gray.jpg"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def deit_transform(size=224, crop_pct=0.875):
    """DeiT's evaluation transform (IDLEVIT.md §1.7), with torchvision on PIL images."""
    return transforms.Compose([
        transforms.Resize(int(size / crop_pct), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


def pil_crop(image, size=224, resize=256):
    """The same resize and crop written out with Pillow alone: torchvision's size rule (shorter
    side to `resize`, longer side int(resize * long / short)) and crop offsets round((h - size) / 2)."""
    w, h = image.size
    short, long = min(w, h), max(w, h)
    new_long = int(resize * long / short)
    new_w, new_h = (resize, new_long) if w <= h else (new_long, resize)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


def tiny12():
    model = VisionTransformer(img_size=224, patch_size=16, embed_dim=64, depth=12, num_heads=1, mlp_ratio=4,
                              qkv_bias=True, num_classes=1000, class_token=True, global_pool="token")
    model.load_state_dict(load_file(str(HERE.parent / "tiny12" / "model.safetensors")))
    return model.eval()


def main():
    torch.set_num_threads(1)
    tensors = {}
    transform = deit_transform()
    timm_cfg = timm.data.resolve_data_config({}, model=timm.create_model("deit_tiny_patch16_224", pretrained=False))
    timm_transform = timm.data.create_transform(**timm_cfg)
    print("timm's own eval transform for deit_tiny_patch16_224:", timm_cfg)
    batch, batch_timm = [], []
    for name in PHOTOS:
        rgb = Image.open(HERE / name).convert("RGB")
        crop = pil_crop(rgb)
        pixels = transform(rgb)
        # The Pillow-only path must agree with torchvision's to the byte.
        redone = (torch.from_numpy(crop).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN)[:, None, None]) \
            / torch.tensor(STD)[:, None, None]
        assert torch.equal(redone, pixels), name
        tensors[Path(name).stem + ".crop"] = torch.from_numpy(crop.copy())
        batch.append(pixels)
        batch_timm.append(timm_transform(rgb))
    tensors["pixel_values"] = batch[0][None].contiguous()

    for path in sorted((HERE / "variants").iterdir()):
        if path.suffix in (".png", ".jpg"):
            tensors["variants/" + path.stem + ".rgb"] = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
    small = Image.open(HERE / "variants" / "rgb.png").convert("RGB")
    tensors["resize.up"] = torch.from_numpy(np.asarray(small.resize((150, 100), Image.BICUBIC)).copy())
    chelsea = Image.open(HERE / "chelsea.png").convert("RGB")
    tensors["resize.down"] = torch.from_numpy(np.asarray(chelsea.resize((123, 82), Image.BICUBIC)).copy())
    metadata = {"photos": json.dumps(PHOTOS), "pixel_values_image": PHOTOS[0],
                "transform": "Resize(256, BICUBIC), CenterCrop(224), ToTensor(), Normalize(ImageNet mean/std)",
                "pillow": Image.__version__}
    save_file(tensors, str(HERE / "pixel_values.safetensors"), metadata=metadata)

    model = tiny12()
    with torch.no_grad():
        logits = model(torch.stack(batch))
        logits_timm = model(torch.stack(batch_timm))
    save_file({"logits": logits.contiguous(), "logits_timm_cfg": logits_timm.contiguous()},
              str(HERE / "reference_logits.safetensors"),
              metadata={"photos": json.dumps(PHOTOS), "model": "Fixtures/tiny12/model.safetensors",
                        "timm_cfg": json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in timm_cfg.items()}),
                        "torch": torch.__version__, "timm": timm.__version__})
    for name, t in tensors.items():
        print(f"{name}: {tuple(t.shape)} {t.dtype}")
    print("top-1 classes:", logits.argmax(-1).tolist(), "timm cfg:", logits_timm.argmax(-1).tolist())


if __name__ == "__main__":
    main()

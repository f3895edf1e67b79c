#!/usr/bin/env python3
"""Writes Fixtures/eval/: small labelled image folders for `idlevit eval`, whose labels are
derived from timm's own predictions, so the expected top-1 / top-5 are known exactly.

    /work/venv/bin/python Fixtures/generate_eval.py      # (pinned: Fixtures/requirements.txt)

Model: Fixtures/tiny12/model.safetensors in timm's VisionTransformer (eval mode, TIMM_FUSED_ATTN=0),
and the IdleViT reference `idlevit_reference.idle_forward` at r = 0.5 and 0.7 (default schedule).
Transform: DeiT's evaluation transform, the one `idlevit eval` applies by default: PIL
convert('RGB'), torchvision Resize(256, BICUBIC), CenterCrop(224), ToTensor, Normalize(ImageNet).

Images: seeded crops of the committed photographs in Fixtures/images (random box, size, flip,
rotation), stored as JPEG (baseline, progressive, grayscale) and PNG (RGB, RGBA, gray, palette).
A candidate is kept only when every decision the tests check has a safe margin in both models
(dense and each idle ratio): the label's logit is at least LOGIT_MARGIN from the best and from the
5th-best other class, the top-1 class leads the runner-up by LOGIT_MARGIN, and every idle
selection has a relative score margin of at least SELECTION_MARGIN (as Fixtures/generate.py).

Layouts written:
  eval/imagenet/<wnid>/NAME       36 images, ImageNet validation layout (folders named by WordNet
                                  id): 16 labelled with timm's top-1, 10 with its 3rd class, 10 with
                                  its 11th class (outside the top-5).
  eval/by-index/<index>/NAME      5 other images, folders named by class index (3 top-1, 1 2nd
                                  class, 1 21st class), plus one text file that is not an image.
  eval/labels.csv                 a `path,label` CSV over eval/imagenet (paths relative to it):
                                  24 of its images with other labels (timm's 2nd class, top-1, or
                                  the 6th class; some written as WordNet ids, some as indices),
                                  a header line, a quoted path, and one path that does not exist.
  eval/expected.json              per layout, per file: the label, and for dense / idle-0.5 /
                                  idle-0.7 the label's rank and the top-1 class; and the totals.
"""

import json
import os
import random
import shutil
import sys
from pathlib import Path

os.environ["TIMM_FUSED_ATTN"] = "0"  # must be set before timm is imported

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms

import timm
from timm.models.vision_transformer import VisionTransformer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import idlevit_reference as ref  # noqa: E402

OUT = HERE / "eval"
SEED = 1717
LOGIT_MARGIN = 2e-3
SELECTION_MARGIN = 1e-4
RATIOS = ["0.5", "0.7"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BUDGET_BYTES = 3 * 1000 * 1000
SYNSETS = (Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt").read_text().split()
assert len(SYNSETS) == 1000 and SYNSETS == sorted(SYNSETS)

SOURCES = ["images/chelsea.png", "images/rocket.jpg", "images/astronaut_progressive.jpg",
           "images/camera_gray.jpg", "images/variants/rgb.png"]
KINDS = ["jpeg", "jpeg-progressive", "jpeg-gray", "png-rgb", "png-rgba", "png-gray", "png-palette", "jpeg"]


def deit_transform():
    return transforms.Compose([
        transforms.Resize(int(224 / 0.875), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


def tiny12():
    model = VisionTransformer(img_size=224, patch_size=16, embed_dim=64, depth=12, num_heads=1, mlp_ratio=4,
                              qkv_bias=True, num_classes=1000, class_token=True, global_pool="token")
    model.load_state_dict(load_file(str(HERE / "tiny12" / "model.safetensors")))
    return model.eval()


def candidate(rng, photos, index):
    """A seeded crop of one photograph, as (PIL image to save, file suffix, save arguments)."""
    photo = photos[rng.randrange(len(photos))]
    w, h = photo.size
    cw = rng.randint(max(16, w // 5), w)
    ch = min(h, max(16, int(cw * rng.uniform(0.6, 1.6))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    image = photo.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.25:
        image = image.transpose(Image.ROTATE_90)
    short = rng.randint(64, 150)
    scale = short / min(image.size)
    image = image.resize((max(8, round(image.width * scale)), max(8, round(image.height * scale))), Image.LANCZOS)
    kind = KINDS[index % len(KINDS)]
    if kind.startswith("jpeg"):
        if kind == "jpeg-gray":
            image = image.convert("L")
        args = dict(format="JPEG", quality=rng.randint(75, 92), progressive=kind == "jpeg-progressive")
        return image, ".jpg", args
    if kind == "png-rgba":
        alpha = Image.linear_gradient("L").resize(image.size)
        image = image.copy()
        image.putalpha(alpha)
    elif kind == "png-gray":
        image = image.convert("L")
    elif kind == "png-palette":
        image = image.convert("P", palette=Image.ADAPTIVE, colors=64)
    return image, ".png", dict(format="PNG", optimize=True)


def analyse(model, pixels):
    """Dense (timm) and idle (reference) logits of one image and whether the idle selections
    all have a safe margin."""
    with torch.no_grad():
        out = {"dense": model(pixels)[0].double()}
    safe = True
    for r in RATIOS:
        kept = ref.schedule(12, 196, float(r))
        res = ref.idle_forward(model, pixels, kept, with_cut_loss=False)
        out["idle-" + r] = res.logits[0].double()
        for layer, margins in res.margins.items():
            if any(m is not None and m < SELECTION_MARGIN for m in margins):
                safe = False
    return out, safe


def order(logits):
    """Classes by descending logit, ties to the lower index (idlevit's ranking)."""
    values = logits.numpy()
    return list(np.lexsort((np.arange(values.shape[0]), -values)))


def rank(logits, label):
    value = float(logits[label])
    return int(sum(1 for j, x in enumerate(logits.tolist()) if x > value or (x == value and j < label)))


def label_is_safe(logits, label):
    """The label's top-1 and top-5 membership cannot flip by a float rounding."""
    others = sorted((float(x) for j, x in enumerate(logits.tolist()) if j != label), reverse=True)
    value = float(logits[label])
    return abs(value - others[0]) >= LOGIT_MARGIN and abs(value - others[4]) >= LOGIT_MARGIN


def top1_is_safe(logits):
    top = sorted(logits.tolist(), reverse=True)
    return top[0] - top[1] >= LOGIT_MARGIN


def record(name, label, outputs):
    entry = {"file": name, "label": label}
    for key, logits in outputs.items():
        entry[key] = {"rank": rank(logits, label), "top1": int(order(logits)[0])}
    return entry


def totals(entries, keys):
    result = {"files": len(entries), "images": sum(1 for e in entries if "dense" in e)}
    for key in keys:
        images = [e for e in entries if key in e]
        result[key] = {"top1": sum(e[key]["rank"] < 1 for e in images), "top5": sum(e[key]["rank"] < 5 for e in images)}
    for r in RATIOS:
        images = [e for e in entries if "dense" in e]
        result["agreement-" + r] = sum(e["dense"]["top1"] == e["idle-" + r]["top1"] for e in images)
    return result


def write_readme(expected, tried):
    rows = []
    for name, layout in expected["layouts"].items():
        t = layout["totals"]
        cells = [f"`{name}`", str(t["files"]), str(t["images"])]
        for key in ["dense", "idle-0.5", "idle-0.7"]:
            cells.append(f"{t[key]['top1']} / {t[key]['top5']}")
        cells += [str(t["agreement-0.5"]), str(t["agreement-0.7"])]
        rows.append("| " + " | ".join(cells) + " |")
    text = f"""# Fixtures/eval: labelled image folders for `idlevit eval`

Written by `Fixtures/generate_eval.py` (seed {SEED}; edit the script, not this file):

    /work/venv/bin/python Fixtures/generate_eval.py     # versions pinned in Fixtures/requirements.txt

The labels are derived from timm's own predictions with `Fixtures/tiny12/model.safetensors` (random
weights, so the classes mean nothing; what matters is that the expected accuracy is known exactly).
Each image is a seeded crop of a photograph in `Fixtures/images` (random box, size 64-150 px on the
short side, flips, rotations), stored as baseline / progressive / grayscale JPEG or RGB / RGBA / gray /
palette PNG. It goes through DeiT's evaluation transform (PIL `convert('RGB')`, `Resize(256,
BICUBIC)`, `CenterCrop(224)`, `ToTensor`, `Normalize(ImageNet)`), timm's dense forward and the IdleViT
reference (`idlevit_reference.idle_forward`, r = 0.5 and 0.7). Each image is labelled with the class
timm ranks at a chosen position (its top-1, 2nd, 3rd, 6th, 11th or 21st class), so some images are
right at top-1, some only at top-5, some neither. An image is used only when no float rounding can
change what the tests check: in every model the label's logit is at least {LOGIT_MARGIN} away from the best
and the 5th-best other class, the top-1 leads the runner-up by {LOGIT_MARGIN}, and every idle selection
has a relative score margin of at least {SELECTION_MARGIN} ({tried} candidates drawn to keep the ones used).

| path | content |
|---|---|
| `imagenet/<wnid>/imgNNN.{{jpg,png}}` | ImageNet validation layout: folders named by WordNet id (class index = position in the sorted list of the 1000 ImageNet-1k ids); labelled with timm's top-1 (16 images), 3rd class (10), 11th class (10) |
| `by-index/<index>/picNNN.{{jpg,png}}` | folders named by class index: top-1 (3), 2nd class (1), 21st class (1), and `not-an-image.txt`, which eval lists as failed |
| `labels.csv` | `path,label` over `imagenet/` (paths relative to it; CRLF lines, a header, one quoted path, labels as WordNet ids and as indices): 24 images with other labels than their folders (timm's 2nd, 1st, 6th class in turn) and `n01440764/missing.jpg`, which does not exist |
| `expected.json` | per layout and file: the label, and for `dense`, `idle-0.5`, `idle-0.7` the label's rank (0 = top-1; ties to the lower class index) and the top-1 class; the totals below |

Expected counts (top-1 / top-5 images; agreement = images whose top-1 is the same dense and idle):

| layout | files | images | dense | IdleViT r=0.5 | IdleViT r=0.7 | agreement r=0.5 | agreement r=0.7 |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

The tests (`EvalCLITests`) run `--limit` subsets of these in the debug build; `Fixtures/check_eval.py`
runs every layout whole with a built binary and compares all the counts.
"""
    (OUT / "README.md").write_text(text)


class Candidates:
    """Accepted candidate images (safe top-1 and selections in every model), generated on demand
    from the seeded stream; a candidate that does not fit one slot stays available for the next."""

    def __init__(self, model, transform, photos, staging):
        self.model, self.transform, self.photos, self.staging = model, transform, photos, staging
        self.rng = random.Random(SEED)
        self.pool = []
        self.tried = 0

    def outputs(self, path):
        pixels = self.transform(Image.open(path).convert("RGB"))[None]
        return analyse(self.model, pixels)

    def generate(self):
        while True:
            self.tried += 1
            if self.tried > 2000:
                raise RuntimeError("too many candidates rejected")
            image, suffix, args = candidate(self.rng, self.photos, self.tried)
            path = self.staging / f"c{self.tried}{suffix}"
            image.save(path, **args)
            outputs, safe = self.outputs(path)
            if safe and all(top1_is_safe(v) for v in outputs.values()):
                return (path, suffix, outputs)
            path.unlink()

    def take(self, position):
        """A candidate whose dense class at `position` is a safe label in every model, and that label."""
        for item in self.pool:
            label = int(order(item[2]["dense"])[position])
            if all(label_is_safe(v, label) for v in item[2].values()):
                self.pool.remove(item)
                return item, label
        while True:
            item = self.generate()
            label = int(order(item[2]["dense"])[position])
            if all(label_is_safe(v, label) for v in item[2].values()):
                return item, label
            self.pool.append(item)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model = tiny12()
    transform = deit_transform()
    photos = [Image.open(HERE / s).convert("RGB") for s in SOURCES]
    keys = ["dense"] + ["idle-" + r for r in RATIOS]

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    staging = OUT / ".staging"
    staging.mkdir()
    pool = Candidates(model, transform, photos, staging)

    def fill(root, plan, folder_name, prefix):
        """Places one image per plan entry (the rank of timm's dense class used as its label)."""
        entries = []
        for n, position in enumerate(plan):
            (path, suffix, outputs), label = pool.take(position)
            name = f"{folder_name(label)}/{prefix}{n:03d}{suffix}"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), root / name)
            entries.append(record(name, label, outputs))
        return sorted(entries, key=lambda e: e["file"].encode())

    # Labels: which class of timm's dense ranking (0 = its top-1) each image is labelled with.
    imagenet, by_index = OUT / "imagenet", OUT / "by-index"
    entries_imagenet = fill(imagenet, [0] * 16 + [2] * 10 + [10] * 10, lambda c: SYNSETS[c], "img")
    entries_by_index = fill(by_index, [0, 0, 0, 1, 20], str, "pic")
    print(f"{pool.tried} candidates generated, {len(pool.pool)} left unused")
    shutil.rmtree(staging)
    note = f"{entries_by_index[0]['file'].split('/')[0]}/not-an-image.txt"
    (by_index / note).write_text("This file is not an image: idlevit eval lists it as failed.\n")
    entries_by_index.append({"file": note, "label": entries_by_index[0]["label"], "failed": True})
    entries_by_index.sort(key=lambda e: e["file"].encode())

    # The CSV: other labels for 24 of the ImageNet-layout images (timm's 2nd class, its top-1,
    # its 6th class in turn; an image whose class at that rank is not a safe label is skipped),
    # some as WordNet ids and some as indices, a quoted path, and a file that does not exist.
    csv_entries, lines = [], ["path,label"]
    for e in entries_imagenet:
        if len(csv_entries) == 24:
            break
        outputs, _ = pool.outputs(imagenet / e["file"])
        label = int(order(outputs["dense"])[[1, 0, 5][len(csv_entries) % 3]])
        if not all(label_is_safe(v, label) for v in outputs.values()):
            continue
        n = len(csv_entries)
        text = SYNSETS[label] if n % 2 == 0 else str(label)
        lines.append((f'"{e["file"]}"' if n == 3 else e["file"]) + "," + text)
        csv_entries.append(record(e["file"], label, outputs))
    assert len(csv_entries) == 24
    missing = "n01440764/missing.jpg"
    lines.insert(5, f"{missing},0")
    csv_entries.append({"file": missing, "label": 0, "failed": True})
    csv_entries.sort(key=lambda e: e["file"].encode())
    (OUT / "labels.csv").write_text("\r\n".join(lines) + "\r\n")

    expected = {"model": "tiny12/model.safetensors", "transform": "Resize(256, BICUBIC), CenterCrop(224), ToTensor, Normalize(ImageNet)",
                "keep_ratios": RATIOS, "logit_margin": LOGIT_MARGIN, "selection_margin": SELECTION_MARGIN,
                "seed": SEED, "torch": torch.__version__, "timm": timm.__version__, "pillow": Image.__version__, "layouts": {}}
    for name, entries in [("imagenet", entries_imagenet), ("by-index", entries_by_index), ("labels.csv", csv_entries)]:
        expected["layouts"][name] = {"totals": totals(entries, keys), "files": entries}
        print(name, json.dumps(expected["layouts"][name]["totals"]))
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")

    write_readme(expected, pool.tried)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"Fixtures/eval: {size:,} bytes")
    if size > BUDGET_BYTES:
        raise RuntimeError(f"Fixtures/eval is {size:,} bytes, over its {BUDGET_BYTES:,} budget")


if __name__ == "__main__":
    main()

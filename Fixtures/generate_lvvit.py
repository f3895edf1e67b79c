#!/usr/bin/env python3
"""Writes Fixtures/lvvit-micro/, a small seeded LV-ViT, seeded and rerunnable:

    /work/venv/bin/python Fixtures/generate_lvvit.py      (Fixtures/requirements.txt)

The module below is written from the published architecture (LV-ViT, Jiang et al. 2021, "All
Tokens Matter: Token Labeling for Training Better Vision Transformers"; TokenLabeling's
tlt/models/lvvit.py + layers.py, which IdleViT's lvvit.py copies as LVViT / IdleLVViT), with the
official module names, so its state dict has the official checkpoints' keys:

  patch_embed  conv1 7x7/2 pad 3 no bias -> bn1 -> relu -> conv2 3x3 pad 1 -> bn2 -> relu
               -> conv3 3x3 pad 1 -> bn3 -> relu -> proj (kernel = stride = patch / 2, bias);
               one ReLU module (inplace) used three times, as PatchEmbed4_2 does
  tokens       cls_token prepended, + pos_embed [1, Np + 1, C]
  blocks       x + attn(norm1 x) / skip_lam; x + mlp(norm2 x) / skip_lam; qkv without bias,
               q scaled before q k^T, MLP ratio 3, nn.LayerNorm (eps 1e-5), exact GELU
  head         eval with return_dense: head(x[:, 0]) + 0.5 * aux_head(x[:, 1:]).max(1)[0]

Geometry (micro): 32 px, patch 8 (stem to 16 x 16, then 4 x 4 = 16 patches), stem width 8
(official: 64), dim 32, 2 heads, depth 8, skip_lam 2 (LV-ViT-S's), 10 classes.

Parameters are perturbed (seeded) so nothing is trivial: every weight rescaled to std
1/sqrt(fan_in), biases 0.1 N, LayerNorm 1 + 0.1 N / 0.1 N, BatchNorm weight 1 + 0.2 N, bias
0.2 N, running_mean 0.3 N, running_var exp(0.4 N), num_batches_tracked 375300; cls_token N,
pos_embed 0.5 N.

Written (Fixtures/lvvit-micro/):
  model.safetensors       the state dict as safetensors.torch.save_file writes it (F32, and the
                          three I64 num_batches_tracked scalars)
  model.pth               torch.save of the plain state dict (TokenLabeling's releases)
  model-checkpoint.pth    torch.save({"model": state_dict, "epoch": 29}) (IdleViT's fine-tuned
                          checkpoints, which infer.py reads as checkpoint["model"])
  model-opset17.onnx      torch.onnx.export (classic exporter, dynamic batch): BatchNorm folded
                          into the convolutions, skip_lam as Div, the head as Gather/Gemm and
                          Slice/MatMul/ReduceMax/Mul 0.5/Add
  input.safetensors       pixel_values [2, 3, 32, 32], seeded N(0, 1)
  reference.safetensors   forward hooks on this module: patch_embed.bn{k}, .relu{k} (k = 1..3),
                          patch_embed [B, Np, C] (flattened), pos_drop, blocks.{i}, norm, head
                          (the class-token head alone), aux_max (max over the patch tokens of
                          aux_head), logits: what every format computes
  reference-conv.safetensors  patch_embed.conv{k}: the convolutions before BatchNorm, which only
                          formats that keep BatchNorm apart (not the ONNX export) compute
  idle-{0.5,0.7}.safetensors  lvvit_reference.idle_forward at r = 0.5 / 0.7, default schedule
                          (layers 2-7 of 8: stages of depth/4 as the official LV-ViT-S layers
                          4-15 of 16): logits, blocks.{i}.selected (I64, ascending, 0 = class),
                          blocks.{i}.cut_loss.{inter,intra,total} (IDLEVIT.md §5, F32 [B])

Checks before writing: the explicit reference's dense pass equals the module's hooks (< 1e-5);
keep ratio 1 equals dense; a port of IdleLVViT's own test path (argsort on the raw q_cls . k,
in-place row writes) gives the reference's logits and selections; ONNX Runtime matches the
logits within 1e-4; every selection margin is above generate.MARGIN_MIN.
"""

import math
import sys
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate as gen  # noqa: E402  (module level: helpers, torch single-threaded and deterministic)
import lvvit_reference as ref  # noqa: E402

FOLDER = HERE / "lvvit-micro"
RATIOS = ["0.5", "0.7"]
CFG = dict(img=32, patch=8, stem=8, dim=32, heads=2, depth=8, mlp_ratio=3.0, skip_lam=2.0, classes=10,
           model_seed=1201, input_seed=2201)
BUDGET_BYTES = 2_100_000


# ----------------------------------------------------------------------------------------------
# the model, from the published architecture

class PatchEmbed4_2(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim, width):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.conv1 = nn.Conv2d(in_chans, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.proj = nn.Conv2d(width, embed_dim, kernel_size=patch_size // 2, stride=patch_size // 2)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        return self.proj(x)


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, skip_lam):
        super().__init__()
        self.skip_lam = skip_lam
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x)) / self.skip_lam
        return x + self.mlp(self.norm2(x)) / self.skip_lam


class LVViT(nn.Module):
    def __init__(self, img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, skip_lam, num_classes, stem_width, in_chans=3):
        super().__init__()
        self.patch_embed = PatchEmbed4_2(img_size, patch_size, in_chans, embed_dim, stem_width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(p=0.0)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, skip_lam) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self.aux_head = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        x = self.pos_drop(x)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return self.head(x[:, 0]) + 0.5 * self.aux_head(x[:, 1:]).max(1)[0]


@torch.no_grad()
def official_idle_logits(model, x, ratio):
    """IdleLVViT's eval path (infer.py's lvvit_s schedule scaled to this depth: idle layers
    D/4..D-1, keep ratios r**(s+1) per stage of D/4 layers, K = int(Np * ratio)), ported:
    argsort (descending) of the head-averaged raw q_cls . k over the image tokens, keys from
    every token, q and v from the selected ones, both branches / skip_lam, rows written back."""
    depth = len(model.blocks)
    stage = depth // 4
    idle_layers = list(range(stage, depth))
    keep_ratios = [ratio ** (i + 1) for i in range(3) for _ in range(stage)]
    x = model.patch_embed(x).flatten(2).transpose(1, 2)
    x = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + model.pos_embed
    init_n = x.shape[1] - 1
    selections = OrderedDict()
    p = 0
    for i, blk in enumerate(model.blocks):
        if i not in idle_layers:
            x = blk(x)
            continue
        keep = int(init_n * keep_ratios[p])
        p += 1
        b, n, c = x.shape
        h = blk.norm1(x)
        a = blk.attn
        w = a.qkv.weight
        q = F.linear(h[:, 0:1], w[0:c])
        k = F.linear(h, w[c:2 * c])
        scores = (q.reshape(b, 1, a.num_heads, c // a.num_heads).permute(0, 2, 1, 3)
                  @ k.reshape(b, n, a.num_heads, c // a.num_heads).permute(0, 2, 3, 1))
        top = torch.argsort(scores.mean(1)[:, 0, 1:], dim=1, descending=True)[:, :keep]
        top = torch.cat([torch.zeros(b, 1, dtype=top.dtype), top + 1], dim=1)
        hs = torch.stack([h[j, top[j]] for j in range(b)])
        ks = torch.stack([k[j, top[j]] for j in range(b)])
        s = keep + 1
        qs = F.linear(hs, w[0:c]).reshape(b, s, a.num_heads, c // a.num_heads).permute(0, 2, 1, 3)
        vs = F.linear(hs, w[2 * c:]).reshape(b, s, a.num_heads, c // a.num_heads).permute(0, 2, 1, 3)
        attn = ((qs * a.scale) @ ks.reshape(b, s, a.num_heads, c // a.num_heads).permute(0, 2, 3, 1)).softmax(dim=-1)
        out = a.proj((attn @ vs).transpose(1, 2).reshape(b, s, c))
        t = torch.stack([x[j, top[j]] for j in range(b)]) + out / blk.skip_lam
        t = t + blk.mlp(blk.norm2(t)) / blk.skip_lam
        x = x.clone()
        for j in range(b):
            x[j, top[j]] = t[j]
        selections[i] = torch.sort(top, dim=1)[0]
    x = model.norm(x)
    return model.head(x[:, 0]) + 0.5 * model.aux_head(x[:, 1:]).max(1)[0], selections


# ----------------------------------------------------------------------------------------------
# fixture

def build():
    torch.manual_seed(CFG["model_seed"])
    model = LVViT(CFG["img"], CFG["patch"], CFG["dim"], CFG["depth"], CFG["heads"], CFG["mlp_ratio"], CFG["skip_lam"],
                  CFG["classes"], CFG["stem"]).eval()
    perturb(model, CFG["model_seed"] + 7)
    return model


@torch.no_grad()
def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)

    def noise(t):
        return torch.randn(t.shape, generator=g, dtype=torch.float32)

    layer_norms = {n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    batch_norms = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for name, p in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        if name == "cls_token":
            p.copy_(noise(p))
        elif name == "pos_embed":
            p.copy_(0.5 * noise(p))
        elif owner in layer_norms:
            p.copy_((1.0 if leaf == "weight" else 0.0) + 0.1 * noise(p))
        elif owner in batch_norms:
            p.copy_((1.0 if leaf == "weight" else 0.0) + 0.2 * noise(p))
        elif leaf == "bias":
            p.copy_(0.1 * noise(p))
        elif leaf == "weight" and p.ndim >= 2:
            p.copy_(noise(p) * (1.0 / math.sqrt(p[0].numel())))
        else:
            raise RuntimeError(f"unhandled parameter {name}")
    for name in sorted(batch_norms):
        bn = model.get_submodule(name)
        bn.running_mean.copy_(0.3 * noise(bn.running_mean))
        bn.running_var.copy_(torch.exp(0.4 * noise(bn.running_var)))
        bn.num_batches_tracked.fill_(375300)


@torch.no_grad()
def capture_reference(model, x):
    acts = OrderedDict()
    pe = model.patch_embed
    handles = []

    def keep(name, transform=None):
        def fn(_mod, _inp, out):
            t = out.detach().clone()
            acts[name] = (transform(t) if transform else t).contiguous()
        return fn

    relu_calls = []
    handles.append(pe.relu.register_forward_hook(lambda _m, _i, out: relu_calls.append(out.detach().clone())))
    for k in (1, 2, 3):
        handles.append(getattr(pe, f"conv{k}").register_forward_hook(keep(f"patch_embed.conv{k}")))
        # ReLU is in place: clone BatchNorm's output before it is overwritten.
        handles.append(getattr(pe, f"bn{k}").register_forward_hook(keep(f"patch_embed.bn{k}")))
    handles.append(pe.register_forward_hook(keep("patch_embed", lambda t: t.flatten(2).transpose(1, 2))))
    handles.append(model.pos_drop.register_forward_hook(keep("pos_drop")))
    for i, blk in enumerate(model.blocks):
        handles.append(blk.register_forward_hook(keep(f"blocks.{i}")))
    handles.append(model.norm.register_forward_hook(keep("norm")))
    handles.append(model.head.register_forward_hook(keep("head")))
    handles.append(model.aux_head.register_forward_hook(keep("aux_max", lambda t: t.max(1)[0])))
    logits = model(x)
    for h in handles:
        h.remove()
    assert len(relu_calls) == 3
    ordered = OrderedDict()
    for k in (1, 2, 3):
        ordered[f"patch_embed.conv{k}"] = acts[f"patch_embed.conv{k}"]
        ordered[f"patch_embed.bn{k}"] = acts[f"patch_embed.bn{k}"]
        ordered[f"patch_embed.relu{k}"] = relu_calls[k - 1].contiguous()
    for name, value in acts.items():
        ordered.setdefault(name, value)
    ordered["logits"] = logits.detach().clone().contiguous()
    return ordered


def idle_runs(model, x):
    np_ = model.patch_embed.num_patches
    runs = OrderedDict()
    for r in RATIOS:
        kept = ref.schedule(CFG["depth"], np_, float(r))
        res = ref.idle_forward(model, x, kept)
        margins = [m for ms in res.margins.values() for m in ms if m is not None]
        if margins and min(margins) < gen.MARGIN_MIN:
            raise gen.MarginError(f"r={r}: smallest relative selection margin {min(margins):.3e}")
        runs[r] = (kept, res, min(margins) if margins else None)
    return runs


def main():
    FOLDER.mkdir(exist_ok=True)
    model = build()
    sd = OrderedDict((k, v.detach().clone().contiguous()) for k, v in model.state_dict().items())
    seed = CFG["input_seed"]
    for _ in range(gen.MAX_SEED_TRIES):
        x = gen.make_input(CFG, seed)
        try:
            runs = idle_runs(model, x)
            break
        except gen.MarginError as e:
            print(f"    input seed {seed} rejected: {e}")
            seed += 1
    else:
        raise RuntimeError("no input seed with safe selection margins")

    acts = capture_reference(model, x)
    explicit = ref.dense_forward(model, x)
    d_exp = max(float((explicit[k] - acts[k]).abs().max()) for k in explicit)
    assert d_exp < 1e-5, f"explicit dense differs from the module by {d_exp}"
    assert ref.self_check(model, x) < 1e-5
    for r, (kept, res, _) in runs.items():
        logits, selections = official_idle_logits(model, x, float(r))
        d = float((logits - res.logits).abs().max())
        assert d < 1e-5, f"r={r}: IdleLVViT's path differs from the reference by {d}"
        for i, sel in selections.items():
            assert torch.equal(sel, res.selected[i]), f"r={r} layer {i}: selections differ"
    params = sum(p.numel() for p in model.parameters())
    print(f"lvvit-micro: {params} parameters, input seed {seed}, max|explicit - module| {d_exp:.2e}, "
          f"logits std {float(acts['logits'].std()):.3f}")

    gen.save_st(FOLDER / "model.safetensors", sd)
    torch.save(OrderedDict((k, v.clone()) for k, v in sd.items()), str(FOLDER / "model.pth"))
    torch.save({"model": OrderedDict((k, v.clone()) for k, v in sd.items()), "epoch": 29}, str(FOLDER / "model-checkpoint.pth"))
    gen.save_st(FOLDER / "input.safetensors", {"pixel_values": x}, metadata={"seed": str(seed)})
    convs = OrderedDict((k, acts.pop(k)) for k in list(acts) if k.startswith("patch_embed.conv"))
    gen.save_st(FOLDER / "reference.safetensors", acts, metadata={"input_seed": str(seed), "dtype": "f32"})
    gen.save_st(FOLDER / "reference-conv.safetensors", convs, metadata={"input_seed": str(seed), "dtype": "f32"})
    for r, (kept, res, smallest) in runs.items():
        gen.save_st(FOLDER / f"idle-{r}.safetensors", gen.idle_tensors(res, len(model.blocks), outputs=False),
                    metadata=gen.idle_metadata(r, kept, seed, model.patch_embed.num_patches))
        agree = float((res.logits.argmax(-1) == acts["logits"].argmax(-1)).float().mean())
        print(f"    r={r}: kept {kept}, smallest margin {smallest:.3e}, top-1 agreement with dense {agree:.2f}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen.export_onnx(model, x, FOLDER / "model-opset17.onnx", 17)
    err = gen.check_onnx(FOLDER / "model-opset17.onnx", x, acts["logits"])
    print(f"    ONNX opset 17: ONNX Runtime max abs logits error {err:.2e}")
    total = sum(f.stat().st_size for f in FOLDER.iterdir())
    print(f"lvvit-micro: {total / 1e6:.2f} MB")
    if total > BUDGET_BYTES:
        raise RuntimeError(f"lvvit-micro is {total} bytes, over its budget of {BUDGET_BYTES}")


if __name__ == "__main__":
    main()

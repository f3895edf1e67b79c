"""Python reference of IdleViT on LV-ViT (shared/IDLEVIT.md §3 and §6), on top of the LV-ViT
module of generate_lvvit.py (official names: patch_embed.conv1/bn1/conv2/bn2/conv3/bn3/proj,
cls_token, pos_embed, blocks.{i}.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2, norm, head,
aux_head; each block has `skip_lam`, each attention `num_heads` and `head_dim`).

Only the module's weights are read; every step is explicit maths, and the selection, the top-K
rule, the margins and the token cut loss are idlevit_reference.py's own functions (imported, not
changed). What LV-ViT adds, following TokenLabeling's `LV_ViT` and IdleViT's `IdleLVViT`:

  stem       conv1 7x7/2 pad 3 -> BatchNorm (eval: running statistics) -> ReLU, conv2 and conv3
             3x3/1 pad 1 each -> BatchNorm -> ReLU, then proj (kernel = stride = patch / 2)
  block      x + attn(norm1 x) / skip_lam; x + mlp(norm2 x) / skip_lam  (a true division)
  idle block the selected rows get both branches divided by skip_lam, exactly as IdleLVViT's
             test path (`batch_index_select(x, top) + attn / skip_lam`, then `+ mlp / skip_lam`)
  head       head(x[:, 0]) + 0.5 * aux_head(x[:, 1:]).max over tokens

Public functions
  schedule(depth, num_patches, r)   idlevit_reference.schedule: four stages of depth/4 layers;
                                    for LV-ViT-S (depth 16) layers 4-15 keep r, r, r, r, r^2 x4,
                                    r^3 x4 -- the official infer.py / main.py schedule
  dense_forward(model, x)           -> activations (official module names) incl. the stem, logits
  idle_forward(model, x, kept)      -> idlevit_reference.IdleResult
  self_check(model, x)              -> max |idle(r=1) - dense|
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

import idlevit_reference as base

schedule = base.schedule
top_k = base.top_k
selection_margin = base.selection_margin
IdleResult = base.IdleResult

STEM = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def _batch_norm(bn, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm2d in eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)


def embed(model, pixels: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Returns (stem activations by name, patch_embed [B,Np,C], pos_drop [B,N,C])."""
    pe = model.patch_embed
    acts: Dict[str, torch.Tensor] = {}
    x = pixels
    for k, (conv_name, bn_name) in enumerate(STEM, start=1):
        conv, bn = getattr(pe, conv_name), getattr(pe, bn_name)
        x = F.conv2d(x, conv.weight, conv.bias, stride=conv.stride, padding=conv.padding)
        acts[f"patch_embed.conv{k}"] = x.clone()
        x = _batch_norm(bn, x)
        acts[f"patch_embed.bn{k}"] = x.clone()
        x = F.relu(x)
        acts[f"patch_embed.relu{k}"] = x.clone()
    p = F.conv2d(x, pe.proj.weight, pe.proj.bias, stride=pe.proj.stride)
    p = p.flatten(2).transpose(1, 2).contiguous()
    cls = model.cls_token.expand(p.shape[0], -1, -1)
    return acts, p, torch.cat([cls, p], dim=1) + model.pos_embed


def _mlp(block, x: torch.Tensor) -> torch.Tensor:
    h = base._layer_norm(block.norm2, x)
    h = F.gelu(base._linear(block.mlp.fc1, h))  # exact erf form
    return base._linear(block.mlp.fc2, h)


def _attention_branch(block, h: torch.Tensor) -> torch.Tensor:
    heads, d = base._heads(block)
    qkv = base._linear(block.attn.qkv, h)
    c = h.shape[-1]
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
    return base._linear(block.attn.proj, base._attention(q, k, v, heads, d))


def dense_block(block, x: torch.Tensor) -> torch.Tensor:
    x = x + _attention_branch(block, base._layer_norm(block.norm1, x)) / block.skip_lam
    return x + _mlp(block, x) / block.skip_lam


def head(model, x_normed: torch.Tensor) -> torch.Tensor:
    logits = base._linear(model.head, x_normed[:, 0])
    if getattr(model, "aux_head", None) is None:
        return logits
    return logits + 0.5 * base._linear(model.aux_head, x_normed[:, 1:]).max(1)[0]


@torch.no_grad()
def dense_forward(model, pixels: torch.Tensor) -> Dict[str, torch.Tensor]:
    acts, p, x = embed(model, pixels)
    acts["patch_embed"] = p.clone()
    acts["pos_drop"] = x.clone()
    for i, blk in enumerate(model.blocks):
        x = dense_block(blk, x)
        acts[f"blocks.{i}"] = x.clone()
    xn = base._layer_norm(model.norm, x)
    acts["norm"] = xn.clone()
    acts["logits"] = head(model, xn).clone()
    return acts


def idle_block_one(block, x: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image x [N, C]. Returns (new x, selected token indices ascending [S], float64 scores
    [Np]). Selection as idlevit_reference (raw head-averaged q_cls . k_j of LN1(x)); both
    branches of the selected rows divided by skip_lam."""
    heads, d = base._heads(block)
    scores = base.token_scores(block, x, 1)
    picked = top_k(scores, k) + 1
    sel = torch.from_numpy(np.concatenate([[0], np.sort(picked)]).astype(np.int64))
    h = base._layer_norm(block.norm1, x)
    wq, bq = base._qkv_rows(block, 0)
    wk, bk = base._qkv_rows(block, 1)
    wv, bv = base._qkv_rows(block, 2)
    k_all = F.linear(h, wk, bk)                          # keys from every token
    hs = h.index_select(0, sel)
    a = base._linear(block.attn.proj, base._attention(F.linear(hs, wq, bq), k_all.index_select(0, sel), F.linear(hs, wv, bv), heads, d))
    t = x.index_select(0, sel) + a / block.skip_lam
    t = t + _mlp(block, t) / block.skip_lam
    out = x.clone()
    out[sel] = t
    return out, sel, scores


@torch.no_grad()
def idle_forward(model, pixels: torch.Tensor, kept: Sequence[Optional[int]], with_cut_loss: bool = True) -> IdleResult:
    blocks = list(model.blocks)
    if len(kept) != len(blocks):
        raise ValueError(f"schedule has {len(kept)} entries for {len(blocks)} blocks")
    res = IdleResult(kept=list(kept))
    _, _, x = embed(model, pixels)
    for i, blk in enumerate(blocks):
        k = kept[i]
        if k is None:
            x = dense_block(blk, x)
        else:
            if not (0 <= k <= x.shape[1] - 1):
                raise ValueError(f"layer {i}: K = {k} outside [0, {x.shape[1] - 1}]")
            x = base.idle_layer(res, i, x, k, lambda xb, blk=blk: idle_block_one(blk, xb, k),
                                (lambda xb, sb, blk=blk: base.token_cut_loss(blk, xb, sb)) if with_cut_loss else None)
        res.blocks[i] = x.clone()
    res.logits = head(model, base._layer_norm(model.norm, x)).clone()
    return res


@torch.no_grad()
def self_check(model, pixels: torch.Tensor) -> float:
    """Keep ratio 1 must equal dense: max |idle(r=1) - dense| over the logits and blocks."""
    depth = len(model.blocks)
    np_ = model.pos_embed.shape[1] - 1
    idle = idle_forward(model, pixels, schedule(depth, np_, 1.0), with_cut_loss=False)
    dense = dense_forward(model, pixels)
    d_blocks = max(float((idle.blocks[i] - dense[f"blocks.{i}"]).abs().max()) for i in range(depth))
    return max(float((idle.logits - dense["logits"]).abs().max()), d_blocks)

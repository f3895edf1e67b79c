"""Python reference of IdleViT (shared/IDLEVIT.md) on top of a timm VisionTransformer.

Only the model's weights are taken from the timm modules; every block is computed here with
explicit maths (LayerNorm, one qkv Linear, scaled dot-product attention with an explicit softmax,
exact-erf GELU MLP, DeiT-III's LayerScale on both residual branches), so nothing depends on timm's
fused attention or in-place tricks. DeiT-III's patch-only position embedding (`no_embed_class`)
is added before the class token is prepended.

Public functions
  schedule(depth, num_patches, r)        -> [None | K] per layer (None = dense layer)
  dense_forward(model, x)                -> dict of activations (timm module names) incl. logits
  idle_forward(model, x, kept)           -> IdleResult (logits, blocks, selected, scores, cut loss)
  token_cut_loss(model, block_index, x_in, selected) -> (inter, intra, total) per image
  selection_margin(scores, k)            -> relative gap between the K-th and (K+1)-th score
  self_check(model, x)                   -> max |idle(r=1) - dense| for the logits (and blocks)

Selection rule (IDLEVIT.md §3): score_j = mean over heads of the raw dot product q_cls,h . k_j,h
(no scale, no softmax) over image tokens only, evaluated in float64 from the float32 q and k.
Top K by descending score, ties to the lower token index (stable sort on (-score, index)).
Prefix tokens (class, and distillation at index 1 for distilled models) are always selected.
The selected rows are gathered in ascending token order (attention is permutation-equivariant,
and ascending order makes keep ratio 1 reproduce the dense computation row for row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------
# schedule

def schedule(depth: int, num_patches: int, r: float) -> List[Optional[int]]:
    """Default IdleViT schedule: four stages of depth/4 layers; stage 0 dense, stage s keeps
    K = floor(Np * r**s) image tokens (r**s as a double power, Np = initial patch count)."""
    if depth % 4 != 0:
        raise ValueError(f"depth {depth} is not divisible by 4")
    if not (0.0 < r <= 1.0):
        raise ValueError(f"keep ratio {r} is not in (0, 1]")
    per_stage = depth // 4
    kept: List[Optional[int]] = []
    for layer in range(depth):
        s = layer // per_stage
        if s == 0:
            kept.append(None)
        else:
            kept.append(int(math.floor(float(num_patches) * math.pow(float(r), float(s)))))
    return kept


# ----------------------------------------------------------------------------------------------
# model helpers

def num_prefix_tokens(model) -> int:
    return 2 if getattr(model, "dist_token", None) is not None else 1


def _layer_norm(mod, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, mod.normalized_shape, mod.weight, mod.bias, mod.eps)


def _linear(mod, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, mod.weight, mod.bias)


def _heads(block) -> Tuple[int, int]:
    attn = block.attn
    return attn.num_heads, attn.head_dim


def _qkv_rows(block, which: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row block `which` (0 = q, 1 = k, 2 = v) of the fused qkv Linear."""
    w = block.attn.qkv.weight
    b = block.attn.qkv.bias
    c = w.shape[0] // 3
    return w[which * c:(which + 1) * c], (b[which * c:(which + 1) * c] if b is not None else None)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, d: int) -> torch.Tensor:
    """q, k, v: [..., S, C] -> multi-head attention output [..., S, C] (before proj)."""
    *lead, s, c = q.shape
    qh = q.reshape(*lead, s, heads, d).transpose(-3, -2)   # [..., H, S, d]
    kh = k.reshape(*lead, s, heads, d).transpose(-3, -2)
    vh = v.reshape(*lead, s, heads, d).transpose(-3, -2)
    logits = (qh * (d ** -0.5)) @ kh.transpose(-2, -1)     # [..., H, S, S]
    w = logits.softmax(dim=-1)
    out = w @ vh                                           # [..., H, S, d]
    return out.transpose(-3, -2).reshape(*lead, s, c)


def _layer_scale(mod, x: torch.Tensor) -> torch.Tensor:
    """DeiT-III's LayerScale (timm `ls1` / `ls2`: x * gamma per channel); identity otherwise."""
    gamma = getattr(mod, "gamma", None)
    return x * gamma if gamma is not None else x


def _mlp(block, x: torch.Tensor) -> torch.Tensor:
    h = _layer_norm(block.norm2, x)
    h = _linear(block.mlp.fc1, h)
    h = F.gelu(h)  # exact erf form
    return _layer_scale(block.ls2, _linear(block.mlp.fc2, h))


def dense_block(block, x: torch.Tensor) -> torch.Tensor:
    heads, d = _heads(block)
    h = _layer_norm(block.norm1, x)
    qkv = _linear(block.attn.qkv, h)
    c = x.shape[-1]
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
    a = _layer_scale(block.ls1, _linear(block.attn.proj, _attention(q, k, v, heads, d)))
    x = x + a
    return x + _mlp(block, x)


def embed(model, pixels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns (patch_embed [B,Np,C], pos_drop [B,N,C])."""
    conv = model.patch_embed.proj
    p = F.conv2d(pixels, conv.weight, conv.bias, stride=conv.stride, padding=conv.padding)
    p = p.flatten(2).transpose(1, 2).contiguous()
    b = p.shape[0]
    toks = [model.cls_token.expand(b, -1, -1)]
    if num_prefix_tokens(model) == 2:
        toks.append(model.dist_token.expand(b, -1, -1))
    if getattr(model, "no_embed_class", False):
        # DeiT-III: positions for the patches only, added before the class token is prepended.
        x = torch.cat(toks + [p + model.pos_embed], dim=1)
    else:
        x = torch.cat(toks + [p], dim=1) + model.pos_embed
    return p, x


def head(model, x_normed: torch.Tensor) -> torch.Tensor:
    if num_prefix_tokens(model) == 2:
        return (_linear(model.head, x_normed[:, 0]) + _linear(model.head_dist, x_normed[:, 1])) / 2
    return _linear(model.head, x_normed[:, 0])


@torch.no_grad()
def dense_forward(model, pixels: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Dense forward with explicit maths, capturing timm-named activations (cloned)."""
    acts: Dict[str, torch.Tensor] = {}
    p, x = embed(model, pixels)
    acts["patch_embed"] = p.clone()
    acts["pos_drop"] = x.clone()
    for i, blk in enumerate(model.blocks):
        x = dense_block(blk, x)
        acts[f"blocks.{i}"] = x.clone()
    xn = _layer_norm(model.norm, x)
    acts["norm"] = xn.clone()
    acts["logits"] = head(model, xn).clone()
    return acts


# ----------------------------------------------------------------------------------------------
# idle block

def token_scores(block, x: torch.Tensor, prefix: int) -> torch.Tensor:
    """x: [N, C] one image. Returns float64 scores [Np] for the image tokens (index j -> token
    prefix + j): mean over heads of the raw q_cls . k_j (float64 from float32 q, k)."""
    heads, d = _heads(block)
    h = _layer_norm(block.norm1, x)
    wq, bq = _qkv_rows(block, 0)
    wk, bk = _qkv_rows(block, 1)
    q_cls = F.linear(h[0:1], wq, bq)[0]               # [C] float32
    k = F.linear(h, wk, bk)                             # [N, C] float32
    qh = q_cls.double().reshape(heads, d)
    kh = k[prefix:].double().reshape(-1, heads, d)
    return torch.einsum("hd,nhd->nh", qh, kh).mean(dim=1)


def top_k(scores: torch.Tensor, k: int) -> np.ndarray:
    """Indices (into the image tokens) of the top k scores, descending, ties to the lower index."""
    s = scores.detach().cpu().numpy().astype(np.float64)
    idx = np.arange(s.shape[0])
    order = np.lexsort((idx, -s))  # primary key -score, secondary index (stable)
    return order[:k]


def selection_margin(scores: torch.Tensor, k: int) -> Optional[float]:
    """(score of K-th picked - score of (K+1)-th) / max|score|; None when K is 0 or all tokens."""
    n = scores.shape[0]
    if k <= 0 or k >= n:
        return None
    s = scores.detach().cpu().numpy().astype(np.float64)
    order = np.lexsort((np.arange(n), -s))
    denom = float(np.max(np.abs(s)))
    if denom == 0.0:
        return 0.0
    return float(s[order[k - 1]] - s[order[k]]) / denom


def idle_block_one(block, x: torch.Tensor, k: int, prefix: int
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image x [N, C]. Returns (new x [N, C], selected token indices ascending [S] int64,
    float64 scores [Np])."""
    heads, d = _heads(block)
    n = x.shape[0]
    scores = token_scores(block, x, prefix)
    picked = top_k(scores, k) + prefix
    sel = np.concatenate([np.arange(prefix), np.sort(picked)]).astype(np.int64)
    sel_t = torch.from_numpy(sel)

    h = _layer_norm(block.norm1, x)                      # all N tokens
    wq, bq = _qkv_rows(block, 0)
    wk, bk = _qkv_rows(block, 1)
    wv, bv = _qkv_rows(block, 2)
    k_all = F.linear(h, wk, bk)                          # keys for all tokens
    hs = h.index_select(0, sel_t)
    ks = k_all.index_select(0, sel_t)
    qs = F.linear(hs, wq, bq)
    vs = F.linear(hs, wv, bv)
    a = _layer_scale(block.ls1, _linear(block.attn.proj, _attention(qs, ks, vs, heads, d)))
    t = x.index_select(0, sel_t) + a
    t = t + _mlp(block, t)
    out = x.clone()
    out[sel_t] = t
    assert out.shape[0] == n
    return out, sel_t, scores


# ----------------------------------------------------------------------------------------------
# token cut loss (IDLEVIT.md §5), per image

def token_cut_loss(block, x: torch.Tensor, selected: torch.Tensor
                   ) -> Tuple[float, float, float]:
    """x: [N, C] the block input of one image (all tokens); selected: token indices (prefix
    included). W = row softmax of the head-averaged scaled attention logits over all N tokens
    (from LN1(x) and this block's q, k, all heads), computed in float64 from float32 q, k.
    inter_i = sum_j |m_i - m_j| W_ij with the class column (j = 0) set to 0,
    L_inter = mean_i inter_i^2; intra_i = sum_j m_i m_j W_ij, L_intra = mean_i (intra_i - m_i)^2;
    total = L_inter + L_intra. Means are over all N tokens."""
    heads, d = _heads(block)
    n = x.shape[0]
    h = _layer_norm(block.norm1, x)
    wq, bq = _qkv_rows(block, 0)
    wk, bk = _qkv_rows(block, 1)
    q = F.linear(h, wq, bq).double().reshape(n, heads, d).transpose(0, 1)   # [H, N, d]
    k = F.linear(h, wk, bk).double().reshape(n, heads, d).transpose(0, 1)
    logits = (q @ k.transpose(-2, -1)) * (d ** -0.5)                          # [H, N, N]
    w = logits.mean(dim=0).softmax(dim=-1)                                    # [N, N]
    m = torch.zeros(n, dtype=torch.float64)
    m[selected] = 1.0
    diff = (m[:, None] - m[None, :]).abs()
    w_inter = w.clone()
    w_inter[:, 0] = 0.0
    inter = (diff * w_inter).sum(dim=1)
    l_inter = float((inter ** 2).mean())
    intra = (m[:, None] * m[None, :] * w).sum(dim=1)
    l_intra = float(((intra - m) ** 2).mean())
    return l_inter, l_intra, l_inter + l_intra


# ----------------------------------------------------------------------------------------------
# idle forward

@dataclass
class IdleResult:
    kept: List[Optional[int]]
    logits: torch.Tensor = None
    blocks: Dict[int, torch.Tensor] = field(default_factory=dict)        # every block [B,N,C]
    selected: Dict[int, torch.Tensor] = field(default_factory=dict)      # idle layers [B,S] int64
    scores: Dict[int, torch.Tensor] = field(default_factory=dict)        # idle layers [B,Np] f64
    cut_loss: Dict[int, Dict[str, torch.Tensor]] = field(default_factory=dict)  # [B] f64 each
    margins: Dict[int, List[Optional[float]]] = field(default_factory=dict)     # per image


def idle_layer(res: "IdleResult", i: int, x: torch.Tensor, k: int, block_one, cut_loss=None) -> torch.Tensor:
    """Idle layer i over the batch, image by image: block_one(x_b) -> (output, selected, scores);
    records the selections, scores, margins and, with `cut_loss(x_b, selected)` -> (inter,
    intra, total), the token cut loss in `res`; returns the layer's output. Shared by every
    family's reference (lvvit_reference.py too)."""
    outs, sels, scs, margins, losses = [], [], [], [], []
    for b in range(x.shape[0]):
        ob, sb, sc = block_one(x[b])
        if cut_loss is not None:
            losses.append(cut_loss(x[b], sb))
        outs.append(ob); sels.append(sb); scs.append(sc)
        margins.append(selection_margin(sc, k))
    res.selected[i] = torch.stack(sels)
    res.scores[i] = torch.stack(scs)
    res.margins[i] = margins
    if cut_loss is not None:
        res.cut_loss[i] = {part: torch.tensor([loss[j] for loss in losses], dtype=torch.float64)
                           for j, part in enumerate(("inter", "intra", "total"))}
    return torch.stack(outs)


@torch.no_grad()
def idle_forward(model, pixels: torch.Tensor, kept: Sequence[Optional[int]],
                 with_cut_loss: bool = True) -> IdleResult:
    """Runs the model with idle blocks: kept[i] = K (image tokens kept) or None (dense)."""
    blocks = list(model.blocks)
    if len(kept) != len(blocks):
        raise ValueError(f"schedule has {len(kept)} entries for {len(blocks)} blocks")
    prefix = num_prefix_tokens(model)
    res = IdleResult(kept=list(kept))
    _, x = embed(model, pixels)
    for i, blk in enumerate(blocks):
        k = kept[i]
        if k is None:
            x = dense_block(blk, x)
        else:
            np_ = x.shape[1] - prefix
            if not (0 <= k <= np_):
                raise ValueError(f"layer {i}: K = {k} outside [0, {np_}]")
            x = idle_layer(res, i, x, k, lambda xb, blk=blk: idle_block_one(blk, xb, k, prefix),
                           (lambda xb, sb, blk=blk: token_cut_loss(blk, xb, sb)) if with_cut_loss else None)
        res.blocks[i] = x.clone()
    xn = _layer_norm(model.norm, x)
    res.logits = head(model, xn).clone()
    return res


# ----------------------------------------------------------------------------------------------
# self-check

@torch.no_grad()
def self_check(model, pixels: torch.Tensor, verbose: bool = True) -> float:
    """Keep ratio 1 must equal dense: returns max |logits(idle r=1) - logits(dense)| (also
    checks blocks). Compares against both our explicit dense forward and timm's own forward."""
    depth = len(model.blocks)
    np_ = model.patch_embed.num_patches
    kept = schedule(depth, np_, 1.0)
    assert all(k is None or k == np_ for k in kept)
    idle = idle_forward(model, pixels, kept, with_cut_loss=False)
    dense = dense_forward(model, pixels)
    timm_logits = model(pixels)
    d_logits = float((idle.logits - dense["logits"]).abs().max())
    d_blocks = max(float((idle.blocks[i] - dense[f"blocks.{i}"]).abs().max()) for i in range(depth))
    d_timm = float((dense["logits"] - timm_logits).abs().max())
    if verbose:
        print(f"    self-check r=1: max|idle-dense| logits {d_logits:.3e}, blocks {d_blocks:.3e}; "
              f"max|explicit dense - timm| logits {d_timm:.3e}")
    return max(d_logits, d_blocks)


if __name__ == "__main__":
    import os
    os.environ.setdefault("TIMM_FUSED_ATTN", "0")
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    m = VisionTransformer(img_size=32, patch_size=8, embed_dim=128, depth=4, num_heads=2,
                          mlp_ratio=4, qkv_bias=True, num_classes=10).eval()
    for p in m.parameters():
        p.data.normal_(0, 0.2)
    xx = torch.randn(2, 3, 32, 32)
    print("schedule(12, 196, 0.7) =", schedule(12, 196, 0.7))
    print("schedule(4, 16, 0.5)   =", schedule(4, 16, 0.5))
    diff = self_check(m, xx)
    assert diff == 0.0 or diff < 1e-5, diff

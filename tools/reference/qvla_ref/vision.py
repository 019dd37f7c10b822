"""Qwen3.5 vision tower (docs/architecture.md §4). Computes in the dtype of the weights
(float64 for fixtures)."""
import math

import torch
import torch.nn.functional as F

P = "model.visual."


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def merge_block_coords(gh, gw, merge=2):
    """(row, col) of every patch in merge-block order (bh, bw, ih, iw)."""
    rows, cols = [], []
    for bh in range(gh // merge):
        for bw in range(gw // merge):
            for ih in range(merge):
                for iw in range(merge):
                    rows.append(bh * merge + ih)
                    cols.append(bw * merge + iw)
    return torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)


def interp_pos_embed(table, side, gh, gw, merge=2):
    """Bilinear, corner-aligned resampling of the learned [side*side, D] table to gh x gw,
    returned in merge-block order. y = r*(side-1)/max(gh-1,1), x = c*(side-1)/max(gw-1,1)."""
    rows, cols = merge_block_coords(gh, gw, merge)
    dt = table.dtype
    y = rows.to(dt) * (side - 1) / max(gh - 1, 1)
    x = cols.to(dt) * (side - 1) / max(gw - 1, 1)
    y0 = torch.floor(y).long()
    x0 = torch.floor(x).long()
    y1 = torch.clamp(y0 + 1, max=side - 1)
    x1 = torch.clamp(x0 + 1, max=side - 1)
    dy = (y - y0.to(dt))[:, None]
    dx = (x - x0.to(dt))[:, None]
    T = table
    return ((1 - dy) * (1 - dx) * T[y0 * side + x0] + (1 - dy) * dx * T[y0 * side + x1]
            + dy * (1 - dx) * T[y1 * side + x0] + dy * dx * T[y1 * side + x1])


def vision_rope(gh, gw, head_dim, theta=10000.0, merge=2, dtype=torch.float64):
    """cos, sin [Np, head_dim] for the 2-D rotary embedding (docs/architecture.md §4.3)."""
    dim = head_dim // 2
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=dtype) / dim))  # dim/2 freqs
    rows, cols = merge_block_coords(gh, gw, merge)
    f = torch.cat([rows.to(dtype)[:, None] * inv[None], cols.to(dtype)[:, None] * inv[None]], dim=-1)
    emb = torch.cat([f, f], dim=-1)
    return emb.cos(), emb.sin()


def vision_forward(W, vc, pixel_values, grid, return_blocks=False):
    """One image. pixel_values [Np, C*T*p*p] -> merged tokens [Np/merge^2, out_hidden].
    (Images are processed independently: equivalent to cu_seqlens attention per image.)"""
    _, gh, gw = grid
    x = pixel_values.to(W[P + "patch_embed.proj.weight"].dtype)
    wp = W[P + "patch_embed.proj.weight"].reshape(vc.hidden_size, -1)
    x = x @ wp.T + W[P + "patch_embed.proj.bias"]
    x = x + interp_pos_embed(W[P + "pos_embed.weight"], vc.pos_side, gh, gw, vc.merge)
    cos, sin = vision_rope(gh, gw, vc.head_dim, vc.rope_theta, vc.merge, x.dtype)
    n = x.shape[0]
    H, hd = vc.num_heads, vc.head_dim
    blocks = []
    for j in range(vc.depth):
        b = f"{P}blocks.{j}."
        h = layer_norm(x, W[b + "norm1.weight"], W[b + "norm1.bias"], vc.eps)
        qkv = (h @ W[b + "attn.qkv.weight"].T + W[b + "attn.qkv.bias"]).reshape(n, 3, H, hd)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]            # [n, H, hd]
        q = q * cos[:, None] + rotate_half(q) * sin[:, None]
        k = k * cos[:, None] + rotate_half(k) * sin[:, None]
        s = torch.einsum("qhd,khd->hqk", q, k) * (hd ** -0.5)
        a = torch.softmax(s, dim=-1)
        o = torch.einsum("hqk,khd->qhd", a, v).reshape(n, H * hd)
        x = x + (o @ W[b + "attn.proj.weight"].T + W[b + "attn.proj.bias"])
        h = layer_norm(x, W[b + "norm2.weight"], W[b + "norm2.bias"], vc.eps)
        h = gelu_tanh(h @ W[b + "mlp.linear_fc1.weight"].T + W[b + "mlp.linear_fc1.bias"])
        x = x + (h @ W[b + "mlp.linear_fc2.weight"].T + W[b + "mlp.linear_fc2.bias"])
        blocks.append(x)
    m = P + "merger."
    y = layer_norm(x, W[m + "norm.weight"], W[m + "norm.bias"], vc.eps)
    y = y.reshape(n // (vc.merge ** 2), -1)
    y = gelu_erf(y @ W[m + "linear_fc1.weight"].T + W[m + "linear_fc1.bias"])
    y = y @ W[m + "linear_fc2.weight"].T + W[m + "linear_fc2.bias"]
    return (y, blocks) if return_blocks else y

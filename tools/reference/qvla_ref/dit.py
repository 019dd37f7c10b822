"""QVLA-DiT action decoder (docs/action-decoder.md §4–§6, GR00T N1.6 style). Computes in the dtype of the
weights (float64 for fixtures). Prefix of every tensor: `action_expert.`"""
import math

import torch
import torch.nn.functional as F

from .vision import layer_norm, gelu_tanh

P = "action_expert."


def lin(W, name, x):
    y = x @ W[P + name + ".weight"].T
    b = W.get(P + name + ".bias")
    return y + b if b is not None else y


def time_bucket(tau, num_buckets):
    """k = floor(tau * (num_buckets - 1)), tau as a Python float (float64)."""
    return int(math.floor(float(tau) * (num_buckets - 1)))


def timestep_features(k, channels, dtype=torch.float64):
    """phi(k) = [cos(k*w_i), sin(k*w_i)], w_i = exp(-ln(1e4) * i / (half - 1)), half = channels/2."""
    half = channels // 2
    i = torch.arange(half, dtype=dtype)
    w = torch.exp(-math.log(10000.0) * i / (half - 1))
    a = float(k) * w
    return torch.cat([torch.cos(a), torch.sin(a)])


def action_time_features(k, width, dtype=torch.float64):
    """tau_emb = [sin(k*nu_j), cos(k*nu_j)], nu_j = exp(-ln(1e4) * j / (width/2)), j < width/2."""
    half = width // 2
    j = torch.arange(half, dtype=dtype)
    nu = torch.exp(-math.log(10000.0) * j / half)
    a = float(k) * nu
    return torch.cat([torch.sin(a), torch.cos(a)])


def attention(q, k, v, heads, head_dim, key_mask=None):
    """q [Lq, D], k/v [Lk, D]; key_mask [Lk] bool (True = valid key)."""
    Lq, Lk = q.shape[0], k.shape[0]
    q = q.reshape(Lq, heads, head_dim)
    k = k.reshape(Lk, heads, head_dim)
    v = v.reshape(Lk, heads, head_dim)
    s = torch.einsum("qhd,khd->hqk", q, k) * (head_dim ** -0.5)
    if key_mask is not None:
        s = s.masked_fill(~key_mask[None, None, :], float("-inf"))
    a = torch.softmax(s, dim=-1)
    return torch.einsum("hqk,khd->qhd", a, v).reshape(Lq, heads * head_dim)


class CrossKV:
    """Per-observation cache: c = vl_norm(C) and every cross block's K_i, V_i (computed once)."""

    def __init__(self, W, dc, vlm_hidden, vlm_mask=None):
        self.c = layer_norm(vlm_hidden, W[P + "vl_norm.weight"], W[P + "vl_norm.bias"], dc.vl_norm_eps)
        self.mask = (torch.ones(vlm_hidden.shape[0], dtype=torch.bool) if vlm_mask is None
                     else torch.as_tensor(vlm_mask, dtype=torch.bool))
        self.k, self.v = {}, {}
        for i in range(dc.num_layers):
            if i % dc.cross_every == 0:
                b = f"dit.blocks.{i}.attn."
                self.k[i] = lin(W, b + "to_k", self.c)
                self.v[i] = lin(W, b + "to_v", self.c)


def encode_state(W, dc, state=None):
    """state: normalised, zero-padded [s_max] or None -> state token [1, D]."""
    if state is None:
        return W[P + "state_null_token"].reshape(1, dc.hidden_size)
    s = torch.as_tensor(state, dtype=W[P + "state_encoder.fc1.weight"].dtype).reshape(1, dc.s_max)
    return lin(W, "state_encoder.fc2", F.relu(lin(W, "state_encoder.fc1", s)))


def dit_velocity(W, dc, y, tau, state_token, h_e, cross=None, vlm_hidden=None, vlm_mask=None):
    """One network evaluation. y [h_max, k_max] current chunk Y_tau; tau float in [0, 1].
    cross: CrossKV (cached path); or vlm_hidden [S, d_vlm] (+ mask) for the uncached path.
    Returns the raw (unmasked) velocity [h_max, k_max]."""
    D, H, hd = dc.hidden_size, dc.num_heads, dc.head_dim
    dtype = W[P + "position_embedding.weight"].dtype
    y = torch.as_tensor(y, dtype=dtype)
    k = time_bucket(tau, dc.num_buckets)
    # action tokens
    a_emb = lin(W, "action_encoder.w1", y)                                     # [h_max, D]
    t_emb = action_time_features(k, D, dtype)[None].expand(dc.h_max, D)
    z = lin(W, "action_encoder.w3", F.silu(lin(W, "action_encoder.w2", torch.cat([a_emb, t_emb], -1))))
    z = z + W[P + "position_embedding.weight"][:dc.h_max]
    x = torch.cat([state_token, z], 0)                                        # [1 + h_max, D]
    # timestep embedding
    phi = timestep_features(k, dc.timestep_channels, dtype)
    e = lin(W, "dit.timestep_encoder.linear_2", F.silu(lin(W, "dit.timestep_encoder.linear_1", phi)))
    se = F.silu(e)
    self_mask = torch.zeros(1 + dc.h_max, dtype=torch.bool)
    self_mask[0] = True
    self_mask[1:1 + h_e] = True
    if cross is None:
        c = layer_norm(torch.as_tensor(vlm_hidden, dtype=dtype), W[P + "vl_norm.weight"], W[P + "vl_norm.bias"], dc.vl_norm_eps)
        cmask = (torch.ones(c.shape[0], dtype=torch.bool) if vlm_mask is None
                 else torch.as_tensor(vlm_mask, dtype=torch.bool))
    for i in range(dc.num_layers):
        b = f"dit.blocks.{i}."
        mod = lin(W, b + "norm1.linear", se)
        scale, shift = mod[:D], mod[D:]
        h = layer_norm(x, None, None, dc.norm_eps) * (1.0 + scale) + shift
        q = lin(W, b + "attn.to_q", h)
        if i % dc.cross_every == 0:
            if cross is not None:
                kk, vv, km = cross.k[i], cross.v[i], cross.mask
            else:
                kk, vv, km = lin(W, b + "attn.to_k", c), lin(W, b + "attn.to_v", c), cmask
        else:
            kk, vv, km = lin(W, b + "attn.to_k", h), lin(W, b + "attn.to_v", h), self_mask
        x = x + lin(W, b + "attn.to_out", attention(q, kk, vv, H, hd, km))
        x = x + lin(W, b + "ff.fc2", gelu_tanh(lin(W, b + "ff.fc1", layer_norm(x, None, None, dc.norm_eps))))
    mod = lin(W, "dit.proj_out_1", se)
    shift, scale = mod[:D], mod[D:]
    o = layer_norm(x, None, None, dc.out_norm_eps) * (1.0 + scale) + shift
    o = lin(W, "dit.proj_out_2", o)
    o = lin(W, "action_decoder.fc2", F.relu(lin(W, "action_decoder.fc1", o)))
    return o[-dc.h_max:]


def action_mask(dc, h_e, k_e, dtype=torch.float64):
    m = torch.zeros(dc.h_max, dc.k_max, dtype=dtype)
    m[:h_e, :k_e] = 1.0
    return m

"""Batched autograd port of the qvla reference model (tools/reference/qvla_ref).

`QVLAModel(cfg)` is an `nn.Module` whose parameters are named exactly as the checkpoint tensors
(`model.visual.*`, `model.language_model.*`, `action_expert.*`), so `state_dict()` round-trips to
model.safetensors. Every forward takes `W = model.weights()` (name -> Parameter) and mirrors the reference
function of the same name, batched:

* vision(W, pv, grid):           pv [B, Np, 1536] (or [B, Np, 768] with the two identical temporal frames
                                 folded into the patch-embed weight) -> merged tokens [B, Np/4, out_hidden].
* text(W, h, pos3, upto):        right-padded [B, L, D] embeddings, pos3 [B, 3, L] -> HF hidden_states list
                                 (causal attention + causal GDN, so right padding never changes a valid token).
* dit_cross / dit_state / dit_velocity: the DiT over [B, R, 1 + h_max, D] (R noise draws share one VLM
                                 context), cross attention masked by the VLM key mask [B, S].

The Gated DeltaNet uses the chunked (WY/UT) form batched over [B, H]; the unit-lower-triangular system is solved
with torch.linalg.solve_triangular (one call per chunk) instead of the reference's per-row forward substitution.
A sequence no longer than `gdn_chunk` is one chunk. Everything runs in the dtype of the parameters.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import REF  # noqa: F401  (puts tools/reference on sys.path)
from qvla_ref.config import text_cfg, vision_cfg, dit_cfg
from qvla_ref.params import all_shapes
from qvla_ref.text import rms_norm_zc, rms_norm_gated, l2norm, rotate_half
from qvla_ref.vision import merge_block_coords, vision_rope

PV = "model.visual."
PT = "model.language_model."
PA = "action_expert."
NEG_INF = float("-inf")


def _register(root, name, tensor):
    parts = name.split(".")
    m = root
    for p in parts[:-1]:
        if p not in m._modules:
            m.add_module(p, nn.Module())
        m = m._modules[p]
    m.register_parameter(parts[-1], nn.Parameter(tensor))


def attention(q, k, v, heads, head_dim, key_mask=None, causal=False):
    """q [N, Lq, H*hd], k/v [N, Lk, H*hd]; key_mask [N, Lk] bool (True = valid key)."""
    N, Lq, _ = q.shape
    Lk = k.shape[1]
    q = q.reshape(N, Lq, heads, head_dim).transpose(1, 2)
    k = k.reshape(N, Lk, heads, head_dim).transpose(1, 2)
    v = v.reshape(N, Lk, heads, head_dim).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) * (head_dim ** -0.5)
    if key_mask is not None:
        s = s.masked_fill(~key_mask[:, None, None, :], NEG_INF)
    if causal:
        cm = torch.ones(Lq, Lk, dtype=torch.bool).triu(1)
        s = s.masked_fill(cm, NEG_INF)
    a = torch.softmax(s, dim=-1)
    return (a @ v).transpose(1, 2).reshape(N, Lq, heads * head_dim)


def delta_rule_chunked_batched(q, k, v, beta, g, C=64):
    """Gated delta rule, chunked form, zero initial state. q,k [B, H, L, dk] (q scaled, both L2-normalised),
    v [B, H, L, dv], beta/g [B, H, L]. Returns o [B, H, L, dv]. Same maths as qvla_ref.text.delta_rule_chunked."""
    B, H, L, dk = k.shape
    dv = v.shape[-1]
    if L <= C:
        C = L
    pad = (C - L % C) % C
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        beta, g = F.pad(beta, (0, pad)), F.pad(g, (0, pad))
    Lp = L + pad
    dt = v.dtype
    tril_strict = torch.ones(C, C, dtype=torch.bool).tril(-1)
    tril_incl = torch.ones(C, C, dtype=torch.bool).tril(0)
    eye = torch.eye(C, dtype=dt)
    S = None
    outs = []
    for c0 in range(0, Lp, C):
        Q, K, V = q[:, :, c0:c0 + C], k[:, :, c0:c0 + C], v[:, :, c0:c0 + C]
        b = beta[:, :, c0:c0 + C]
        gam = torch.cumsum(g[:, :, c0:c0 + C], -1)                            # [B, H, C]
        diff = gam[..., :, None] - gam[..., None, :]
        dec = torch.exp(diff.masked_fill(~tril_incl, NEG_INF))                  # e^{γi-γj}, 0 above the diagonal
        KK = K @ K.transpose(-1, -2)
        M = (b[..., :, None] * KK * dec).masked_fill(~tril_strict, 0.0)
        A = M + eye                                   # unit lower triangular (I + M)
        QK = (Q @ K.transpose(-1, -2)) * dec
        if S is None:
            Vp = torch.linalg.solve_triangular(A, b[..., None] * V, upper=False, unitriangular=True)
            O = QK @ Vp
        else:
            eg = torch.exp(gam)
            UW = torch.linalg.solve_triangular(A, torch.cat([b[..., None] * V, (b * eg)[..., None] * K], -1),
                                               upper=False, unitriangular=True)
            Vp = UW[..., :dv] - UW[..., dv:] @ S
            O = (eg[..., None] * Q) @ S + QK @ Vp
        outs.append(O)
        if c0 + C < Lp:
            gC = gam[..., -1:]
            Kd = torch.exp(gC - gam)[..., None] * K
            Snew = Kd.transpose(-1, -2) @ Vp
            S = Snew if S is None else torch.exp(gC)[..., None] * S + Snew
    o = torch.cat(outs, 2) if len(outs) > 1 else outs[0]
    return o[:, :, :L]


class QVLAModel(nn.Module):
    def __init__(self, cfg, dtype=torch.float32, gdn_chunk=64):
        super().__init__()
        self.cfg = cfg
        self.tc, self.vc, self.dc = text_cfg(cfg), vision_cfg(cfg), dit_cfg(cfg)
        self.shapes = all_shapes(cfg)
        for name in sorted(self.shapes):
            _register(self, name, torch.zeros(self.shapes[name], dtype=dtype))
        self.image_token_id = cfg["image_token_id"]
        self.gdn_chunk = gdn_chunk
        self._cache = {}

    # ------------------------------------------------------------------ helpers
    def weights(self):
        return dict(self.named_parameters())

    @property
    def dtype(self):
        return self.model.language_model.embed_tokens.weight.dtype

    def _cached(self, key, fn):
        v = self._cache.get(key)
        if v is None:
            v = fn()
            self._cache[key] = v
        return v

    # ------------------------------------------------------------------ vision
    def _pos_interp_index(self, gh, gw, dtype):
        def make():
            side, merge = self.vc.pos_side, self.vc.merge
            rows, cols = merge_block_coords(gh, gw, merge)
            y = rows.to(dtype) * (side - 1) / max(gh - 1, 1)
            x = cols.to(dtype) * (side - 1) / max(gw - 1, 1)
            y0, x0 = torch.floor(y).long(), torch.floor(x).long()
            y1, x1 = torch.clamp(y0 + 1, max=side - 1), torch.clamp(x0 + 1, max=side - 1)
            dy, dx = (y - y0.to(dtype))[:, None], (x - x0.to(dtype))[:, None]
            return (y0 * side + x0, y0 * side + x1, y1 * side + x0, y1 * side + x1,
                    (1 - dy) * (1 - dx), (1 - dy) * dx, dy * (1 - dx), dy * dx)
        return self._cached(("pos", gh, gw, dtype), make)

    def pos_embed(self, W, gh, gw):
        T = W[PV + "pos_embed.weight"]
        i00, i01, i10, i11, w00, w01, w10, w11 = self._pos_interp_index(gh, gw, T.dtype)
        return w00 * T[i00] + w01 * T[i01] + w10 * T[i10] + w11 * T[i11]

    def vision(self, W, pv, grid):
        """pv [B, Np, C_in*T*p*p] (or [B, Np, C_in*p*p]: identical temporal frames folded) -> [B, Np/m^2, out]."""
        vc = self.vc
        _, gh, gw = grid
        B, n, fin = pv.shape
        C, H, hd = vc.hidden_size, vc.num_heads, vc.head_dim
        wp = W[PV + "patch_embed.proj.weight"]
        if fin == vc.in_ch * vc.patch * vc.patch and vc.temporal > 1:
            wp = wp.sum(2)
        x = F.linear(pv.to(wp.dtype), wp.reshape(C, -1), W[PV + "patch_embed.proj.bias"])
        x = x + self.pos_embed(W, gh, gw)
        cos, sin = self._cached(("vrope", gh, gw, x.dtype),
                                lambda: vision_rope(gh, gw, hd, vc.rope_theta, vc.merge, x.dtype))
        cos, sin = cos[:, None], sin[:, None]
        for j in range(vc.depth):
            b = f"{PV}blocks.{j}."
            h = F.layer_norm(x, (C,), W[b + "norm1.weight"], W[b + "norm1.bias"], vc.eps)
            qkv = F.linear(h, W[b + "attn.qkv.weight"], W[b + "attn.qkv.bias"]).reshape(B, n, 3, H, hd)
            q, k, v = qkv.unbind(2)                                   # [B, n, H, hd]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            o = attention(q.reshape(B, n, C), k.reshape(B, n, C), v.reshape(B, n, C), H, hd)
            x = x + F.linear(o, W[b + "attn.proj.weight"], W[b + "attn.proj.bias"])
            h = F.layer_norm(x, (C,), W[b + "norm2.weight"], W[b + "norm2.bias"], vc.eps)
            h = F.gelu(F.linear(h, W[b + "mlp.linear_fc1.weight"], W[b + "mlp.linear_fc1.bias"]), approximate="tanh")
            x = x + F.linear(h, W[b + "mlp.linear_fc2.weight"], W[b + "mlp.linear_fc2.bias"])
        m = PV + "merger."
        y = F.layer_norm(x, (C,), W[m + "norm.weight"], W[m + "norm.bias"], vc.eps)
        y = y.reshape(B, n // (vc.merge ** 2), -1)
        y = F.gelu(F.linear(y, W[m + "linear_fc1.weight"], W[m + "linear_fc1.bias"]))
        return F.linear(y, W[m + "linear_fc2.weight"], W[m + "linear_fc2.bias"])

    # ------------------------------------------------------------------ text
    def embed(self, W, ids, img_index=None, vis=None):
        """ids [B, L] long (padding: any valid id); img_index (bi, li) long tensors of the image pads in
        row-major order; vis [n_pads, D] the vision tokens in that order."""
        h = F.embedding(ids, W[PT + "embed_tokens.weight"])
        if vis is not None and vis.shape[0]:
            h = h.index_put(img_index, vis.to(h.dtype))
        return h

    def mrope(self, pos3, dtype):
        """pos3 [B, 3, L] -> cos, sin [B, L, rotary_dim]."""
        tc = self.tc
        rot, half = tc.rotary_dim, tc.rotary_dim // 2

        def onehot():
            axis = torch.zeros(half, dtype=torch.long)
            sec = tc.mrope_section
            if tc.mrope_interleaved:
                for j in range(half):
                    if j % 3 == 1 and j < 3 * sec[1]:
                        axis[j] = 1
                    elif j % 3 == 2 and j < 3 * sec[2]:
                        axis[j] = 2
            else:
                axis[sec[0]:sec[0] + sec[1]] = 1
                axis[sec[0] + sec[1]:] = 2
            inv = 1.0 / (tc.rope_theta ** (torch.arange(0, rot, 2, dtype=dtype) / rot))
            return F.one_hot(axis, 3).T.to(torch.bool), inv

        sel, inv = self._cached(("mrope", dtype), onehot)
        freqs = pos3.to(dtype)[:, :, :, None] * inv                        # [B, 3, L, half]
        f = torch.where(sel[None, :, None, :], freqs, torch.zeros((), dtype=dtype)).sum(1)   # exact pick
        emb = torch.cat([f, f], dim=-1)
        return emb.cos(), emb.sin()

    def gated_deltanet(self, W, pre, x):
        tc = self.tc
        B, L, _ = x.shape
        Hk, Hv, dk, dv, K = tc.lk_heads, tc.lv_heads, tc.lk_dim, tc.lv_dim, tc.conv_k
        kd = Hk * dk
        mixed = F.linear(x, W[pre + "in_proj_qkv.weight"])                 # [B, L, conv_dim]
        z = F.linear(x, W[pre + "in_proj_z.weight"]).reshape(B, L, Hv, dv)
        b = F.linear(x, W[pre + "in_proj_b.weight"])                       # [B, L, Hv]
        a = F.linear(x, W[pre + "in_proj_a.weight"])
        conv_dim = mixed.shape[-1]
        u = F.conv1d(F.pad(mixed.transpose(1, 2), (K - 1, 0)), W[pre + "conv1d.weight"], groups=conv_dim)
        u = F.silu(u).transpose(1, 2)                                      # [B, L, conv_dim]
        q = u[..., :kd].reshape(B, L, Hk, dk)
        k = u[..., kd:2 * kd].reshape(B, L, Hk, dk)
        v = u[..., 2 * kd:].reshape(B, L, Hv, dv)
        beta = torch.sigmoid(b)
        g = -torch.exp(W[pre + "A_log"].to(x.dtype)) * F.softplus(a + W[pre + "dt_bias"])
        q = l2norm(q) / (dk ** 0.5)
        k = l2norm(k)
        rep = Hv // Hk
        if rep > 1:
            q = q.repeat_interleave(rep, dim=2)
            k = k.repeat_interleave(rep, dim=2)
        o = delta_rule_chunked_batched(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       beta.transpose(1, 2), g.transpose(1, 2), self.gdn_chunk)
        o = o.transpose(1, 2)                                              # [B, L, Hv, dv]
        y = rms_norm_gated(o, z, W[pre + "norm.weight"].to(x.dtype), tc.eps).reshape(B, L, Hv * dv)
        return F.linear(y, W[pre + "out_proj.weight"])

    def full_attention(self, W, pre, x, cos, sin):
        tc = self.tc
        B, L, _ = x.shape
        Hq, Hkv, hd, rot = tc.num_heads, tc.num_kv_heads, tc.head_dim, tc.rotary_dim
        qg = F.linear(x, W[pre + "q_proj.weight"]).reshape(B, L, Hq, 2 * hd)
        q, gate = qg[..., :hd], qg[..., hd:].reshape(B, L, Hq * hd)
        k = F.linear(x, W[pre + "k_proj.weight"]).reshape(B, L, Hkv, hd)
        v = F.linear(x, W[pre + "v_proj.weight"]).reshape(B, L, Hkv, hd)
        q = rms_norm_zc(q, W[pre + "q_norm.weight"], tc.eps)
        k = rms_norm_zc(k, W[pre + "k_norm.weight"], tc.eps)
        c, s = cos[:, :, None], sin[:, :, None]

        def rope(t):
            tr = t[..., :rot]
            return torch.cat([tr * c + rotate_half(tr) * s, t[..., rot:]], dim=-1)

        q, k = rope(q), rope(k)
        grp = Hq // Hkv
        if grp > 1:
            k = k.repeat_interleave(grp, dim=2)
            v = v.repeat_interleave(grp, dim=2)
        o = attention(q.reshape(B, L, Hq * hd), k.reshape(B, L, Hq * hd), v.reshape(B, L, Hq * hd),
                      Hq, hd, causal=True)
        o = o * torch.sigmoid(gate)
        return F.linear(o, W[pre + "o_proj.weight"])

    def text(self, W, h, pos3, upto=None):
        """h [B, L, D] embeddings, pos3 [B, 3, L]. Returns HF hidden_states [emb, out_0, ...] up to index
        `upto` (default num_layers, whose entry is model.norm(out_{N-1}))."""
        tc = self.tc
        N = tc.num_layers
        upto = N if upto is None else upto
        cos, sin = self.mrope(pos3, h.dtype)
        hs = [h]
        for i in range(upto):
            pre = f"{PT}layers.{i}."
            x = rms_norm_zc(h, W[pre + "input_layernorm.weight"], tc.eps)
            if tc.layer_types[i] == "linear_attention":
                x = self.gated_deltanet(W, pre + "linear_attn.", x)
            else:
                x = self.full_attention(W, pre + "self_attn.", x, cos, sin)
            h = h + x
            x = rms_norm_zc(h, W[pre + "post_attention_layernorm.weight"], tc.eps)
            m = pre + "mlp."
            x = F.linear(F.silu(F.linear(x, W[m + "gate_proj.weight"])) * F.linear(x, W[m + "up_proj.weight"]),
                         W[m + "down_proj.weight"])
            h = h + x
            hs.append(h)
        if upto == N:
            hs[-1] = rms_norm_zc(h, W[PT + "norm.weight"], tc.eps)
        return hs

    def logits(self, W, final):
        E = W[PT + "embed_tokens.weight"] if self.tc.tie else W["lm_head.weight"]
        return F.linear(final, E)

    # ------------------------------------------------------------------ DiT
    def _lin(self, W, name, x):
        return F.linear(x, W[PA + name + ".weight"], W.get(PA + name + ".bias"))

    def dit_cross(self, W, vlm_hidden):
        """vlm_hidden [B, S, d_vlm] -> {cross block i: (K, V) [B, S, D]}."""
        dc = self.dc
        c = F.layer_norm(vlm_hidden, (dc.d_vlm,), W[PA + "vl_norm.weight"], W[PA + "vl_norm.bias"], dc.vl_norm_eps)
        kv = {}
        for i in range(dc.num_layers):
            if i % dc.cross_every == 0:
                b = f"dit.blocks.{i}.attn."
                kv[i] = (self._lin(W, b + "to_k", c), self._lin(W, b + "to_v", c))
        return kv

    def dit_state(self, W, state, has_state):
        """state [B, s_max] (normalised, zero-padded), has_state [B] bool -> state tokens [B, 1, D]."""
        D = self.dc.hidden_size
        enc = self._lin(W, "state_encoder.fc2", F.relu(self._lin(W, "state_encoder.fc1", state.to(self.dtype))))
        null = W[PA + "state_null_token"].reshape(1, D).expand(state.shape[0], D)
        return torch.where(has_state[:, None], enc, null)[:, None]

    @staticmethod
    def time_features(k, channels, dtype):
        half = channels // 2
        i = torch.arange(half, dtype=dtype)
        w = torch.exp(-math.log(10000.0) * i / (half - 1))
        a = k.to(dtype)[..., None] * w
        return torch.cat([torch.cos(a), torch.sin(a)], -1)

    @staticmethod
    def action_time_features(k, width, dtype):
        half = width // 2
        j = torch.arange(half, dtype=dtype)
        nu = torch.exp(-math.log(10000.0) * j / half)
        a = k.to(dtype)[..., None] * nu
        return torch.cat([torch.sin(a), torch.cos(a)], -1)

    def dit_velocity(self, W, y, bucket, state_tok, h_e, kv, cmask, tap=None):
        """y [B, R, h_max, k_max] (Y_tau, R draws per context); bucket [B, R] long time buckets;
        state_tok [B, 1, D]; h_e [B] long; kv from dit_cross; cmask [B, S] bool (valid VLM tokens).
        Returns the raw (unmasked) velocity [B, R, h_max, k_max]. tap (training only): a list that gets the
        state token's output of the last block [B, R, D] appended (the auxiliary loss reads it)."""
        dc = self.dc
        D, H, hd, hm = dc.hidden_size, dc.num_heads, dc.head_dim, dc.h_max
        B, R = y.shape[:2]
        T = 1 + hm
        dt = self.dtype
        y = y.to(dt)
        a_emb = self._lin(W, "action_encoder.w1", y)                                  # [B, R, h, D]
        t_emb = self.action_time_features(bucket, D, dt)[:, :, None].expand(B, R, hm, D)
        z = self._lin(W, "action_encoder.w3",
                      F.silu(self._lin(W, "action_encoder.w2", torch.cat([a_emb, t_emb], -1))))
        z = z + W[PA + "position_embedding.weight"][:hm]
        x = torch.cat([state_tok[:, None].expand(B, R, 1, D), z], 2)                  # [B, R, T, D]
        phi = self.time_features(bucket, dc.timestep_channels, dt)
        e = self._lin(W, "dit.timestep_encoder.linear_2", F.silu(self._lin(W, "dit.timestep_encoder.linear_1", phi)))
        se = F.silu(e)[:, :, None]                                                     # [B, R, 1, D]
        self_mask = (torch.arange(T)[None, :] <= h_e[:, None])                         # state + rows < h_e
        self_mask = self_mask[:, None].expand(B, R, T).reshape(B * R, T)
        for i in range(dc.num_layers):
            b = f"dit.blocks.{i}."
            mod = self._lin(W, b + "norm1.linear", se)
            scale, shift = mod[..., :D], mod[..., D:]
            h = F.layer_norm(x, (D,), eps=dc.norm_eps) * (1.0 + scale) + shift
            q = self._lin(W, b + "attn.to_q", h)
            if i % dc.cross_every == 0:
                kk, vv = kv[i]
                o = attention(q.reshape(B, R * T, D), kk, vv, H, hd, cmask).reshape(B, R, T, D)
            else:
                kk = self._lin(W, b + "attn.to_k", h).reshape(B * R, T, D)
                vv = self._lin(W, b + "attn.to_v", h).reshape(B * R, T, D)
                o = attention(q.reshape(B * R, T, D), kk, vv, H, hd, self_mask).reshape(B, R, T, D)
            x = x + self._lin(W, b + "attn.to_out", o)
            f = F.gelu(self._lin(W, b + "ff.fc1", F.layer_norm(x, (D,), eps=dc.norm_eps)), approximate="tanh")
            x = x + self._lin(W, b + "ff.fc2", f)
        if tap is not None:
            tap.append(x[:, :, 0])
        x = x[:, :, 1:]
        mod = self._lin(W, "dit.proj_out_1", se)
        shift, scale = mod[..., :D], mod[..., D:]
        o = F.layer_norm(x, (D,), eps=dc.out_norm_eps) * (1.0 + scale) + shift
        o = self._lin(W, "dit.proj_out_2", o)
        return self._lin(W, "action_decoder.fc2", F.relu(self._lin(W, "action_decoder.fc1", o)))


def time_bucket(tau, num_buckets):
    """k = floor(tau * (num_buckets - 1)) on a float64 tensor (the reference does it on a Python float)."""
    return torch.floor(tau.to(torch.float64) * (num_buckets - 1)).long()

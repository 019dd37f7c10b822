"""Qwen3.5 hybrid text decoder (docs/architecture.md §5): Gated DeltaNet + gated full attention,
zero-centred RMSNorms, SwiGLU MLP, M-RoPE, caches for decode, greedy decoding.
Computes in the dtype of the weights (float64 for the fixtures)."""
import torch
import torch.nn.functional as F

P = "model.language_model."


# ----------------------------------------------------------------------------- norms / helpers
def rms_norm_zc(x, w, eps):
    """Zero-centred RMSNorm: x * rsqrt(mean(x^2)+eps) * (1 + w)."""
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * (1.0 + w)


def rms_norm_gated(x, z, w, eps):
    """GDN output norm: (x * rsqrt(mean(x^2)+eps)) * w * silu(z)  (plain weight)."""
    n = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)
    return (w * n) * F.silu(z)


def softplus_torch(x):
    """PyTorch softplus (beta 1, threshold 20): x if x > 20 else log(1 + exp(x))."""
    return torch.where(x > 20.0, x, torch.log1p(torch.exp(torch.clamp(x, max=20.0))))


def l2norm(x, eps=1e-6):
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


# ----------------------------------------------------------------------------- M-RoPE
def mrope_cos_sin(tc, pos3, dtype=torch.float64):
    """pos3 [3, L] (t, h, w) integer positions -> cos, sin [L, rotary_dim] (docs/architecture.md §5.9)."""
    rot = tc.rotary_dim
    half = rot // 2
    inv = 1.0 / (tc.rope_theta ** (torch.arange(0, rot, 2, dtype=dtype) / rot))   # [half]
    freqs = pos3.to(dtype)[:, :, None] * inv[None, None, :]                       # [3, L, half]
    sec = tc.mrope_section
    axis = torch.zeros(half, dtype=torch.long)
    if tc.mrope_interleaved:
        for j in range(half):
            if j % 3 == 1 and j < 3 * sec[1]:
                axis[j] = 1
            elif j % 3 == 2 and j < 3 * sec[2]:
                axis[j] = 2
    else:  # Qwen2-VL chunked layout [T..T H..H W..W]
        axis[sec[0]:sec[0] + sec[1]] = 1
        axis[sec[0] + sec[1]:] = 2
    f = freqs[axis, :, torch.arange(half)].T                                        # [L, half]
    emb = torch.cat([f, f], dim=-1)
    return emb.cos(), emb.sin()


def apply_partial_rope(x, cos, sin, rot):
    """x [L, H, hd]; rotate the first `rot` dims of every head (pairs (d, d+rot/2))."""
    xr, xp = x[..., :rot], x[..., rot:]
    xr = xr * cos[:, None] + rotate_half(xr) * sin[:, None]
    return torch.cat([xr, xp], dim=-1)


# ----------------------------------------------------------------------------- gated delta rule
def delta_rule_recurrent(q, k, v, beta, g, S=None):
    """q,k [L, H, dk] (q already scaled, both L2-normalised), v [L, H, dv], beta,g [L, H].
    S [H, dk, dv] initial state (zeros when None). Returns o [L, H, dv], final S. docs/architecture.md §5.5."""
    L, H, dk = k.shape
    dv = v.shape[-1]
    S = torch.zeros(H, dk, dv, dtype=v.dtype) if S is None else S.clone()
    out = torch.zeros(L, H, dv, dtype=v.dtype)
    for t in range(L):
        S = S * torch.exp(g[t])[:, None, None]
        mem = torch.einsum("hi,hiv->hv", k[t], S)
        delta = beta[t][:, None] * (v[t] - mem)
        S = S + k[t][:, :, None] * delta[:, None, :]
        out[t] = torch.einsum("hi,hiv->hv", q[t], S)
    return out, S


def _unit_lower_solve(Mstrict, rhs):
    """Solve (I + Mstrict) X = rhs by forward substitution; Mstrict [H, C, C] strictly lower."""
    H, C, _ = Mstrict.shape
    X = torch.zeros_like(rhs)
    for i in range(C):
        X[:, i] = rhs[:, i] - torch.einsum("hj,hjd->hd", Mstrict[:, i, :i], X[:, :i])
    return X


def delta_rule_chunked(q, k, v, beta, g, S=None, C=64):
    """Chunked (WY / UT-transform) form of the same recurrence, docs/architecture.md §5.6. Same signature."""
    L, H, dk = k.shape
    dv = v.shape[-1]
    pad = (C - L % C) % C
    def p(x):
        return torch.cat([x, torch.zeros((pad,) + x.shape[1:], dtype=x.dtype)], 0) if pad else x
    q, k, v, beta, g = p(q), p(k), p(v), p(beta), p(g)
    Lp = L + pad
    S = torch.zeros(H, dk, dv, dtype=v.dtype) if S is None else S.clone()
    out = torch.zeros(Lp, H, dv, dtype=v.dtype)
    tril_strict = torch.tril(torch.ones(C, C, dtype=torch.bool), -1)
    tril_incl = torch.tril(torch.ones(C, C, dtype=torch.bool), 0)
    for c0 in range(0, Lp, C):
        Q = q[c0:c0 + C].transpose(0, 1)          # [H, C, dk]
        K = k[c0:c0 + C].transpose(0, 1)
        V = v[c0:c0 + C].transpose(0, 1)          # [H, C, dv]
        b = beta[c0:c0 + C].T                     # [H, C]
        gam = torch.cumsum(g[c0:c0 + C].T, -1)    # [H, C]
        dec = torch.exp(gam[:, :, None] - gam[:, None, :])   # e^{γ_i-γ_j}
        KK = K @ K.transpose(1, 2)
        M = torch.where(tril_strict, b[:, :, None] * KK * dec, torch.zeros((), dtype=v.dtype))
        U = _unit_lower_solve(M, b[:, :, None] * V)
        Wm = _unit_lower_solve(M, (b * torch.exp(gam))[:, :, None] * K)
        Vp = U - Wm @ S
        D = torch.where(tril_incl, dec, torch.zeros((), dtype=v.dtype))
        O = (torch.exp(gam)[:, :, None] * Q) @ S + ((Q @ K.transpose(1, 2)) * D) @ Vp
        gC = gam[:, -1]
        S = torch.exp(gC)[:, None, None] * S + (torch.exp(gC[:, None] - gam)[:, :, None] * K).transpose(1, 2) @ Vp
        out[c0:c0 + C] = O.transpose(0, 1)
    return out[:L], S


# ----------------------------------------------------------------------------- layers
def gated_deltanet(W, pre, tc, x, cache, mode="chunked"):
    """x [L, D] (normed). cache: dict with 'conv' [conv_dim, K-1] and 'S' [Hv, dk, dv] (updated in place)."""
    L = x.shape[0]
    Hk, Hv, dk, dv, K = tc.lk_heads, tc.lv_heads, tc.lk_dim, tc.lv_dim, tc.conv_k
    key_dim, val_dim = Hk * dk, Hv * dv
    mixed = x @ W[pre + "in_proj_qkv.weight"].T              # [L, conv_dim]
    z = (x @ W[pre + "in_proj_z.weight"].T).reshape(L, Hv, dv)
    b = x @ W[pre + "in_proj_b.weight"].T                    # [L, Hv]
    a = x @ W[pre + "in_proj_a.weight"].T
    conv_dim = mixed.shape[1]
    prev = cache.get("conv") if cache is not None else None
    if prev is None:
        prev = torch.zeros(conv_dim, K - 1, dtype=x.dtype)
    full = torch.cat([prev.T, mixed], 0)                       # [K-1+L, conv_dim]
    wc = W[pre + "conv1d.weight"].reshape(conv_dim, K)
    u = torch.zeros(L, conv_dim, dtype=x.dtype)
    for kk in range(K):                                        # W[c, K-1] multiplies the current token
        u = u + wc[:, kk] * full[kk:kk + L]
    u = F.silu(u)
    q = u[:, :key_dim].reshape(L, Hk, dk)
    k = u[:, key_dim:2 * key_dim].reshape(L, Hk, dk)
    v = u[:, 2 * key_dim:].reshape(L, Hv, dv)
    beta = torch.sigmoid(b)
    g = -torch.exp(W[pre + "A_log"].to(x.dtype)) * softplus_torch(a + W[pre + "dt_bias"])
    q = l2norm(q) / (dk ** 0.5)
    k = l2norm(k)
    rep = Hv // Hk
    q = q.repeat_interleave(rep, dim=1)                        # v-head j uses k-head j // rep
    k = k.repeat_interleave(rep, dim=1)
    S0 = cache.get("S") if cache is not None else None
    if mode == "recurrent" or L == 1:
        o, S = delta_rule_recurrent(q, k, v, beta, g, S0)
    else:
        o, S = delta_rule_chunked(q, k, v, beta, g, S0)
    if cache is not None:
        cache["conv"] = full[-(K - 1):].T.clone()
        cache["S"] = S
    y = rms_norm_gated(o, z, W[pre + "norm.weight"].to(x.dtype), tc.eps).reshape(L, val_dim)
    return y @ W[pre + "out_proj.weight"].T


def full_attention(W, pre, tc, x, cos, sin, cache):
    """x [L, D] (normed); cos/sin [L, rot] for the new tokens. cache: dict 'k','v' [T, Hkv, hd]."""
    L = x.shape[0]
    Hq, Hkv, hd = tc.num_heads, tc.num_kv_heads, tc.head_dim
    qg = (x @ W[pre + "q_proj.weight"].T).reshape(L, Hq, 2 * hd)
    q, gate = qg[..., :hd], qg[..., hd:].reshape(L, Hq * hd)
    k = (x @ W[pre + "k_proj.weight"].T).reshape(L, Hkv, hd)
    v = (x @ W[pre + "v_proj.weight"].T).reshape(L, Hkv, hd)
    q = rms_norm_zc(q, W[pre + "q_norm.weight"], tc.eps)
    k = rms_norm_zc(k, W[pre + "k_norm.weight"], tc.eps)
    q = apply_partial_rope(q, cos, sin, tc.rotary_dim)
    k = apply_partial_rope(k, cos, sin, tc.rotary_dim)
    past = 0
    if cache is not None:
        if cache.get("k") is not None:
            past = cache["k"].shape[0]
            k = torch.cat([cache["k"], k], 0)
            v = torch.cat([cache["v"], v], 0)
        cache["k"], cache["v"] = k, v
    T = k.shape[0]
    grp = Hq // Hkv
    kx = k.repeat_interleave(grp, dim=1)                       # q-head h uses kv-head h // grp
    vx = v.repeat_interleave(grp, dim=1)
    s = torch.einsum("qhd,khd->hqk", q, kx) * (hd ** -0.5)
    qi = torch.arange(L)[:, None] + past
    ki = torch.arange(T)[None, :]
    s = s.masked_fill(~(ki <= qi)[None], float("-inf"))
    a = torch.softmax(s, dim=-1)
    o = torch.einsum("hqk,khd->qhd", a, vx).reshape(L, Hq * hd)
    o = o * torch.sigmoid(gate)
    return o @ W[pre + "o_proj.weight"].T


def mlp(W, pre, x):
    return (F.silu(x @ W[pre + "gate_proj.weight"].T) * (x @ W[pre + "up_proj.weight"].T)) @ W[pre + "down_proj.weight"].T


# ----------------------------------------------------------------------------- model
def new_cache(tc):
    return [dict() for _ in range(tc.num_layers)]


def embed(W, ids):
    return W[P + "embed_tokens.weight"][torch.as_tensor(ids, dtype=torch.long)]


def lm_head(W, tc, h):
    E = W[P + "embed_tokens.weight"] if tc.tie else W["lm_head.weight"]
    return h @ E.T


def text_forward(W, tc, h, pos3, cache=None, gdn_mode="chunked"):
    """h [L, D] input embeddings; pos3 [3, L]. Returns (hidden_states list in HF indexing
    [emb, out_0, ..., out_{N-2}, norm(out_{N-1})], last layer output before the final norm, final normed)."""
    cos, sin = mrope_cos_sin(tc, pos3, h.dtype)
    hs = [h]
    for i, lt in enumerate(tc.layer_types):
        pre = f"{P}layers.{i}."
        c = cache[i] if cache is not None else None
        x = rms_norm_zc(h, W[pre + "input_layernorm.weight"], tc.eps)
        if lt == "linear_attention":
            x = gated_deltanet(W, pre + "linear_attn.", tc, x, c, gdn_mode)
        else:
            x = full_attention(W, pre + "self_attn.", tc, x, cos, sin, c)
        h = h + x
        x = rms_norm_zc(h, W[pre + "post_attention_layernorm.weight"], tc.eps)
        h = h + mlp(W, pre + "mlp.", x)
        hs.append(h)
    last = h
    final = rms_norm_zc(h, W[P + "norm.weight"], tc.eps)
    hs[-1] = final
    return hs, last, final

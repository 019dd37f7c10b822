"""Tensor names and shapes of a qvla checkpoint, derived from the config (no allocation), and
closed-form parameter counts written independently of the shape listing (for the self-check)."""
from .config import text_cfg, vision_cfg, dit_cfg

F32_ALWAYS = ("linear_attn.A_log", "linear_attn.norm.weight")


def text_shapes(cfg):
    tc = text_cfg(cfg)
    D, P = tc.hidden_size, "model.language_model."
    s = {P + "embed_tokens.weight": (tc.vocab_size, D), P + "norm.weight": (D,)}
    if not tc.tie:
        s["lm_head.weight"] = (tc.vocab_size, D)
    for i, lt in enumerate(tc.layer_types):
        p = f"{P}layers.{i}."
        s[p + "input_layernorm.weight"] = (D,)
        s[p + "post_attention_layernorm.weight"] = (D,)
        s[p + "mlp.gate_proj.weight"] = (tc.intermediate_size, D)
        s[p + "mlp.up_proj.weight"] = (tc.intermediate_size, D)
        s[p + "mlp.down_proj.weight"] = (D, tc.intermediate_size)
        if lt == "full_attention":
            a, hd = p + "self_attn.", tc.head_dim
            s[a + "q_proj.weight"] = (tc.num_heads * hd * 2, D)
            s[a + "k_proj.weight"] = (tc.num_kv_heads * hd, D)
            s[a + "v_proj.weight"] = (tc.num_kv_heads * hd, D)
            s[a + "o_proj.weight"] = (D, tc.num_heads * hd)
            s[a + "q_norm.weight"] = (hd,)
            s[a + "k_norm.weight"] = (hd,)
        else:
            a = p + "linear_attn."
            kd, vd = tc.lk_heads * tc.lk_dim, tc.lv_heads * tc.lv_dim
            s[a + "in_proj_qkv.weight"] = (2 * kd + vd, D)
            s[a + "in_proj_z.weight"] = (vd, D)
            s[a + "in_proj_b.weight"] = (tc.lv_heads, D)
            s[a + "in_proj_a.weight"] = (tc.lv_heads, D)
            s[a + "conv1d.weight"] = (2 * kd + vd, 1, tc.conv_k)
            s[a + "dt_bias"] = (tc.lv_heads,)
            s[a + "A_log"] = (tc.lv_heads,)
            s[a + "norm.weight"] = (tc.lv_dim,)
            s[a + "out_proj.weight"] = (D, vd)
    return s


def vision_shapes(cfg):
    vc = vision_cfg(cfg)
    P, C = "model.visual.", vc.hidden_size
    s = {P + "patch_embed.proj.weight": (C, vc.in_ch, vc.temporal, vc.patch, vc.patch),
         P + "patch_embed.proj.bias": (C,), P + "pos_embed.weight": (vc.num_pos, C)}
    for j in range(vc.depth):
        b = f"{P}blocks.{j}."
        for n in ("norm1", "norm2"):
            s[b + n + ".weight"] = (C,)
            s[b + n + ".bias"] = (C,)
        s[b + "attn.qkv.weight"] = (3 * C, C)
        s[b + "attn.qkv.bias"] = (3 * C,)
        s[b + "attn.proj.weight"] = (C, C)
        s[b + "attn.proj.bias"] = (C,)
        s[b + "mlp.linear_fc1.weight"] = (vc.intermediate_size, C)
        s[b + "mlp.linear_fc1.bias"] = (vc.intermediate_size,)
        s[b + "mlp.linear_fc2.weight"] = (C, vc.intermediate_size)
        s[b + "mlp.linear_fc2.bias"] = (C,)
    m, M = P + "merger.", C * vc.merge ** 2
    s[m + "norm.weight"] = (C,)
    s[m + "norm.bias"] = (C,)
    s[m + "linear_fc1.weight"] = (M, M)
    s[m + "linear_fc1.bias"] = (M,)
    s[m + "linear_fc2.weight"] = (vc.out_hidden, M)
    s[m + "linear_fc2.bias"] = (vc.out_hidden,)
    return s


def dit_shapes(cfg):
    dc = dit_cfg(cfg)
    P, D = "action_expert.", dc.hidden_size
    s = {}

    def lin(name, o, i, bias=True):
        s[P + name + ".weight"] = (o, i)
        if bias:
            s[P + name + ".bias"] = (o,)

    s[P + "vl_norm.weight"] = (dc.d_vlm,)
    s[P + "vl_norm.bias"] = (dc.d_vlm,)
    lin("state_encoder.fc1", dc.state_hidden, dc.s_max)
    lin("state_encoder.fc2", D, dc.state_hidden)
    s[P + "state_null_token"] = (1, 1, D)
    lin("action_encoder.w1", D, dc.k_max)
    lin("action_encoder.w2", D, 2 * D)
    lin("action_encoder.w3", D, D)
    s[P + "position_embedding.weight"] = (dc.max_seq_len, D)
    lin("dit.timestep_encoder.linear_1", D, dc.timestep_channels)
    lin("dit.timestep_encoder.linear_2", D, D)
    for i in range(dc.num_layers):
        b = f"dit.blocks.{i}."
        kv_in = dc.d_vlm if i % dc.cross_every == 0 else D
        lin(b + "norm1.linear", 2 * D, D)
        lin(b + "attn.to_q", D, D)
        lin(b + "attn.to_k", D, kv_in)
        lin(b + "attn.to_v", D, kv_in)
        lin(b + "attn.to_out", D, D)
        lin(b + "ff.fc1", dc.ff_inner, D)
        lin(b + "ff.fc2", D, dc.ff_inner)
    lin("dit.proj_out_1", 2 * D, D)
    lin("dit.proj_out_2", dc.d_out, D)
    lin("action_decoder.fc1", dc.mlp_hidden, dc.d_out)
    lin("action_decoder.fc2", dc.k_max, dc.mlp_hidden)
    return s


def all_shapes(cfg, with_dit=True):
    s = {}
    s.update(vision_shapes(cfg))
    s.update(text_shapes(cfg))
    if with_dit and "action_expert" in cfg:
        s.update(dit_shapes(cfg))
    return s


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


# ---------------------------------------------------------------- closed-form counts (independent)
def dit_param_count_formula(a):
    """Closed form from the docs/action-decoder.md §2.1/§2.2 hyper-parameters (dict a = action_expert)."""
    D, V, L, ce = a["hidden_size"], a["d_vlm"], a["num_layers"], a.get("cross_every", 2)
    FF, T = a["ff_inner"], a.get("timestep_channels", 256)
    n_cross = len([i for i in range(L) if i % ce == 0])
    n_self = L - n_cross
    common = (2 * D * D + 2 * D) + 2 * (D * D + D) + (2 * D * FF + FF + D)   # adaLN, q, out, ff
    cross = common + 2 * (D * V + D)
    self_ = common + 2 * (D * D + D)
    core = n_cross * cross + n_self * self_
    core += (T * D + D) + (D * D + D)                                          # timestep encoder
    core += (2 * D * D + 2 * D) + (a["d_out"] * D + a["d_out"])                # proj_out_1/2
    rest = 2 * V                                                               # vl_norm
    rest += a["state_hidden"] * a["s_max"] + a["state_hidden"] + D * a["state_hidden"] + D + D
    rest += (D * a["k_max"] + D) + (2 * D * D + D) + (D * D + D)               # action encoder
    rest += a["max_seq_len"] * D
    rest += a["mlp_hidden"] * a["d_out"] + a["mlp_hidden"] + a["k_max"] * a["mlp_hidden"] + a["k_max"]
    return {"cross_block": cross, "self_block": self_, "core": core, "rest": rest, "total": core + rest}


def vlm_param_count_formula(cfg):
    tc, vc = text_cfg(cfg), vision_cfg(cfg)
    D, I = tc.hidden_size, tc.intermediate_size
    per_common = 2 * D + 3 * D * I
    hd = tc.head_dim
    full = D * tc.num_heads * hd * 2 + 2 * D * tc.num_kv_heads * hd + tc.num_heads * hd * D + 2 * hd
    kd, vd = tc.lk_heads * tc.lk_dim, tc.lv_heads * tc.lv_dim
    lin = (2 * kd + vd) * D + vd * D + 2 * tc.lv_heads * D + (2 * kd + vd) * tc.conv_k + 2 * tc.lv_heads + tc.lv_dim + D * vd
    n_full = tc.layer_types.count("full_attention")
    n_lin = tc.num_layers - n_full
    text = tc.vocab_size * D * (1 if tc.tie else 2) + D + tc.num_layers * per_common + n_full * full + n_lin * lin
    C, M = vc.hidden_size, vc.hidden_size * vc.merge ** 2
    blk = 4 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C * vc.intermediate_size + vc.intermediate_size + C
    vis = C * vc.in_ch * vc.temporal * vc.patch ** 2 + C + vc.num_pos * C + vc.depth * blk
    vis += 2 * C + M * M + M + vc.out_hidden * M + vc.out_hidden
    text_tensors = 2 + (0 if tc.tie else 1) + 5 * tc.num_layers + 6 * n_full + 9 * n_lin
    vis_tensors = 3 + 12 * vc.depth + 6
    return {"text": text, "vision": vis, "text_tensors": text_tensors, "vision_tensors": vis_tensors}

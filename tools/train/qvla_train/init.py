"""Initial weights for training from scratch (deterministic given the seed; tensors drawn in sorted-name order).

* Linear / conv-free matrices, embeddings, position tables, state_null_token: N(0, 0.02^2) (HF initializer_range).
* Biases: 0.
* Zero-centred RMSNorms (input/post_attention layernorm, model.norm, q_norm, k_norm; applied as x*(1+w)): w = 0.
* GDN gated output norm `linear_attn.norm.weight` (plain w): 1.
* LayerNorm weights (vision norm1/norm2/merger.norm, DiT vl_norm): 1; their biases 0.
* GDN `A_log` = log U[1, 16]; `dt_bias` = softplus^-1(dt), dt = exp(U[log 1e-3, log 0.1]) (Mamba / fla init: the
  per-token decay exp(-A*softplus(a + dt_bias)) then starts between ~0.98 and ~0.2 instead of forgetting at once);
  `conv1d.weight` U(-1/sqrt(K), 1/sqrt(K)) (nn.Conv1d's default for a depthwise conv).
* DiT adaLN modulation linears (`dit.blocks.*.norm1.linear`, `dit.proj_out_1`): 0 (adaLN-Zero without a gate:
  every block starts with a plain LayerNorm), and `action_decoder.fc2`: 0 (the velocity starts at 0).
"""
import math

import torch

STD = 0.02


def init_tensor(name, shape, gen, scheme="fan_in", n_layers=None):
    n_layers = n_layers or {}
    def normal(std):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float32)

    zeros = torch.zeros(shape, dtype=torch.float32)
    if name.endswith("linear_attn.A_log"):
        return torch.log(uniform(1.0, 16.0))
    if name.endswith("linear_attn.dt_bias"):
        dt = torch.exp(uniform(math.log(1e-3), math.log(0.1)))
        return dt + torch.log(-torch.expm1(-dt))                           # inverse softplus
    if name.endswith("conv1d.weight"):
        b = 1.0 / math.sqrt(shape[-1])
        return uniform(-b, b)
    if name.endswith("linear_attn.norm.weight"):
        return torch.ones(shape)
    if name.startswith("model.language_model.") and name.endswith("norm.weight"):
        return zeros                                                       # zero-centred: (1 + w)
    if name.startswith("model.visual.") and (".norm" in name) and len(shape) == 1:
        return torch.ones(shape) if name.endswith(".weight") else zeros
    if name.startswith("action_expert.vl_norm."):
        return torch.ones(shape) if name.endswith(".weight") else zeros
    if ("norm1.linear" in name or "proj_out_1" in name or "action_decoder.fc2" in name):
        return zeros
    if name.endswith(".bias"):
        return zeros
    if len(shape) >= 2 or name.endswith("state_null_token"):
        if scheme == "hf" or len(shape) < 2 or any(k in name for k in TABLES):
            return normal(STD if scheme == "hf" else TABLE_STD)
        fan_in = 1
        for d in shape[1:]:
            fan_in *= d
        std = fan_in ** -0.5
        if any(name.endswith(k) for k in RESIDUAL_OUT):
            std *= (2 * n_layers.get(name.split(".")[0] + "." + name.split(".")[1], 4)) ** -0.5
        return normal(std)
    raise ValueError(f"no init rule for {name} {shape}")


# 'fan_in' scheme: matrices N(0, 1/fan_in), the residual-branch output projections further scaled by
# 1/sqrt(2 * layers) (GPT-2); tables (embeddings, position tables) N(0, TABLE_STD^2).
TABLES = ("embed_tokens", "pos_embed", "position_embedding")
TABLE_STD = 0.05
RESIDUAL_OUT = ("o_proj.weight", "down_proj.weight", "linear_attn.out_proj.weight", "attn.proj.weight",
                "mlp.linear_fc2.weight", "attn.to_out.weight", "ff.fc2.weight")


def init_weights(model, seed, scheme="fan_in"):
    gen = torch.Generator().manual_seed(int(seed))
    params = dict(model.named_parameters())
    layers = {"model.language_model": model.tc.num_layers, "model.visual": model.vc.depth,
              "action_expert.dit": model.dc.num_layers}
    with torch.no_grad():
        for n in sorted(params):
            params[n].copy_(init_tensor(n, tuple(params[n].shape), gen, scheme, layers))


def no_decay(name, p):
    """AdamW weight decay only on matrices, not on biases, norms, A_log/dt_bias, embeddings and position tables."""
    return (p.dim() < 2 or "embed_tokens" in name or "pos_embed" in name or "position_embedding" in name
            or "state_null_token" in name)

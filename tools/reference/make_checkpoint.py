#!/usr/bin/python3
"""Generate a random-weight qvla checkpoint directory for any config.

usage: /usr/bin/python3 tools/reference/make_checkpoint.py CONFIG.json OUT_DIR
          [--tokenizer weights/tiny/tokenizer.json] [--dtype bf16|f32] [--seed 0] [--shards N]
          [--min-pixels N] [--max-pixels N]

* CONFIG.json: a Qwen3.5 config + `action_expert` (weights/README.md). `text_config.vocab_size: "auto"` is
  replaced by the tokenizer size rounded up to a multiple of 64 ("exact": the tokenizer size); the special token ids
  (image/video pad, vision start/end, eos) are read from the tokenizer's added tokens.
* Weights: linears N(0, 1/fan_in) (adaLN modulation linears half that std), biases N(0, 0.02^2),
  embeddings N(0, 0.5^2), zero-centred RMSNorm weights N(0, 0.1^2), plain norm weights 1 + N(0, 0.1^2),
  LayerNorm biases N(0, 0.05^2), A_log = log(U(1, 16)), dt_bias N(0, 0.1^2), conv1d N(0, 1/K).
* Writes config.json, model.safetensors (or shards + model.safetensors.index.json),
  preprocessor_config.json. Tensors are BF16 or F32; A_log and linear_attn.norm.weight are always F32.
* Deterministic: torch.manual_seed(seed), one thread, tensors generated in sorted-name order,
  sorted JSON keys, no timestamps.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qvla_ref import safetensors_io as st  # noqa: E402
from qvla_ref.params import all_shapes, F32_ALWAYS  # noqa: E402


def tokenizer_info(path):
    with open(path, encoding="utf-8") as f:
        tok = json.load(f)
    ids = dict(tok["model"]["vocab"])
    for a in tok.get("added_tokens", []):
        ids[a["content"]] = a["id"]
    size = max(ids.values()) + 1
    return ids, size


def fill_config(cfg, tok_path):
    cfg = json.loads(json.dumps(cfg))
    if tok_path:
        ids, size = tokenizer_info(tok_path)
        tc = cfg["text_config"]
        if tc.get("vocab_size") in (None, "auto"):
            tc["vocab_size"] = (size + 63) // 64 * 64
        elif tc.get("vocab_size") == "exact":
            tc["vocab_size"] = size
        assert tc["vocab_size"] >= size
        cfg["image_token_id"] = ids["<|image_pad|>"]
        cfg["video_token_id"] = ids["<|video_pad|>"]
        cfg["vision_start_token_id"] = ids["<|vision_start|>"]
        cfg["vision_end_token_id"] = ids["<|vision_end|>"]
        tc["eos_token_id"] = ids["<|endoftext|>"]
        cfg["eos_token_id"] = ids["<|endoftext|>"]
    tie = cfg.get("tie_word_embeddings", cfg["text_config"].get("tie_word_embeddings", False))
    cfg["text_config"]["tie_word_embeddings"] = tie
    cfg["tie_word_embeddings"] = tie
    ae = cfg.get("action_expert")
    if ae is not None and ae.get("vlm_layer") in (None, "auto"):
        ae["vlm_layer"] = cfg["text_config"]["num_hidden_layers"]
    return cfg


def init_tensor(name, shape, gen):
    def randn(std):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std

    if name.endswith("A_log"):
        return torch.log(torch.rand(shape, generator=gen, dtype=torch.float32) * 15.0 + 1.0)
    if name.endswith("dt_bias"):
        return randn(0.1)
    if name.endswith("conv1d.weight"):
        return randn(1.0 / math.sqrt(shape[-1]))
    if name.endswith("embed_tokens.weight") or name.endswith("pos_embed.weight") \
            or name.endswith("position_embedding.weight") or name.endswith("state_null_token"):
        return randn(0.5)
    if name.startswith("model.language_model.") and (name.endswith("layernorm.weight") or name.endswith("norm.weight")) \
            and "linear_attn.norm" not in name:
        return randn(0.1)                                    # zero-centred (1 + w)
    if name.endswith("linear_attn.norm.weight"):
        return 1.0 + randn(0.1)                              # plain weight
    if (".norm" in name or "vl_norm" in name) and name.endswith(".weight") and len(shape) == 1:
        return 1.0 + randn(0.1)                              # LayerNorm weights (vision, vl_norm)
    if (".norm" in name or "vl_norm" in name) and name.endswith(".bias") and "norm1.linear" not in name:
        return randn(0.05)
    if name.endswith(".bias"):
        return randn(0.02)
    if name.endswith(".weight") and len(shape) >= 2:
        fan_in = 1
        for d in shape[1:]:
            fan_in *= d
        std = 1.0 / math.sqrt(fan_in)
        if "norm1.linear" in name or "proj_out_1" in name:
            std *= 0.5
        return randn(std)
    raise ValueError(f"no init rule for {name} {shape}")


def generate_weights(cfg, seed=0):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    shapes = all_shapes(cfg)
    return {n: init_tensor(n, shapes[n], gen) for n in sorted(shapes)}


def dtype_map(names, dtype):
    out = {}
    for n in names:
        if dtype == "f32" or any(n.endswith(s) for s in F32_ALWAYS):
            out[n] = "F32"
        else:
            out[n] = "BF16"
    return out


def write_checkpoint(cfg, out_dir, dtype="bf16", seed=0, shards=1, min_pixels=16384, max_pixels=65536):
    os.makedirs(out_dir, exist_ok=True)
    W = generate_weights(cfg, seed)
    dts = dtype_map(W, dtype)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    pp = {
        "image_processor_type": "Qwen2VLImageProcessorFast",
        "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels},
        "patch_size": cfg["vision_config"]["patch_size"],
        "temporal_patch_size": cfg["vision_config"]["temporal_patch_size"],
        "merge_size": cfg["vision_config"]["spatial_merge_size"],
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "do_resize": True, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True,
        "resample": 3, "rescale_factor": 1.0 / 255.0,
    }
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(pp, f, indent=2, sort_keys=True)
        f.write("\n")
    names = sorted(W)
    for old in os.listdir(out_dir):
        if old.startswith("model") and (old.endswith(".safetensors") or old.endswith(".index.json")):
            os.remove(os.path.join(out_dir, old))
    if shards <= 1:
        st.save_file(W, os.path.join(out_dir, "model.safetensors"), dts, {"format": "pt"})
    else:
        per = math.ceil(len(names) / shards)
        wm, total = {}, 0
        for s in range(shards):
            part = names[s * per:(s + 1) * per]
            fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            st.save_file({n: W[n] for n in part}, os.path.join(out_dir, fn), {n: dts[n] for n in part}, {"format": "pt"})
            for n in part:
                wm[n] = fn
                total += W[n].numel() * (4 if dts[n] == "F32" else 2)
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2, sort_keys=True)
            f.write("\n")
    return W


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out_dir")
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--min-pixels", type=int, default=16384)
    ap.add_argument("--max-pixels", type=int, default=65536)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with open(a.config) as f:
        cfg = json.load(f)
    cfg = fill_config(cfg, a.tokenizer)
    W = write_checkpoint(cfg, a.out_dir, a.dtype, a.seed, a.shards, a.min_pixels, a.max_pixels)
    n = sum(t.numel() for t in W.values())
    print(f"wrote {a.out_dir}: {len(W)} tensors, {n} parameters ({a.dtype})")


if __name__ == "__main__":
    main()

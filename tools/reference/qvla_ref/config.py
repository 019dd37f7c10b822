"""Reads a qvla checkpoint config.json (HF Qwen3.5 config + `action_expert`) into plain attributes.
See weights/README.md for the contract."""
import json
import math
import os


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return f"Obj({self.__dict__})"


DEFAULT_PREPROCESSOR = {
    "min_pixels": 65536, "max_pixels": 16777216, "patch_size": 16, "temporal_patch_size": 2,
    "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
}


def text_cfg(cfg):
    tc = cfg["text_config"]
    n = tc["num_hidden_layers"]
    layer_types = tc.get("layer_types")
    if layer_types is None:
        iv = tc.get("full_attention_interval", 4)
        layer_types = ["full_attention" if (i + 1) % iv == 0 else "linear_attention" for i in range(n)]
    rp = tc.get("rope_parameters") or {}
    rs = tc.get("rope_scaling") or {}
    rope_theta = rp.get("rope_theta", tc.get("rope_theta", 10000.0))
    prf = rp.get("partial_rotary_factor", tc.get("partial_rotary_factor", 1.0))
    msec = rp.get("mrope_section", rs.get("mrope_section"))
    minter = rp.get("mrope_interleaved", rs.get("mrope_interleaved", True))
    hd = tc.get("head_dim", tc["hidden_size"] // tc["num_attention_heads"])
    rot = int(hd * prf)
    assert sum(msec) == rot // 2, "sum(mrope_section) must equal rotary_dim/2"
    tie = tc.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))
    return Obj(
        hidden_size=tc["hidden_size"], num_layers=n, layer_types=layer_types,
        num_heads=tc["num_attention_heads"], num_kv_heads=tc["num_key_value_heads"], head_dim=hd,
        intermediate_size=tc["intermediate_size"], vocab_size=tc["vocab_size"],
        eps=tc.get("rms_norm_eps", 1e-6), rope_theta=float(rope_theta), rotary_dim=rot,
        mrope_section=list(msec), mrope_interleaved=minter,
        lk_heads=tc["linear_num_key_heads"], lv_heads=tc["linear_num_value_heads"],
        lk_dim=tc["linear_key_head_dim"], lv_dim=tc["linear_value_head_dim"],
        conv_k=tc["linear_conv_kernel_dim"], tie=bool(tie),
    )


def vision_cfg(cfg):
    vc = cfg["vision_config"]
    npos = vc["num_position_embeddings"]
    side = int(round(math.sqrt(npos)))
    assert side * side == npos
    return Obj(
        depth=vc["depth"], hidden_size=vc["hidden_size"], num_heads=vc["num_heads"],
        head_dim=vc["hidden_size"] // vc["num_heads"], intermediate_size=vc["intermediate_size"],
        patch=vc["patch_size"], temporal=vc["temporal_patch_size"], merge=vc["spatial_merge_size"],
        in_ch=vc.get("in_channels", 3), out_hidden=vc["out_hidden_size"], num_pos=npos, pos_side=side,
        eps=1e-6, rope_theta=10000.0,
    )


def dit_cfg(cfg):
    a = dict(cfg["action_expert"])
    a.setdefault("cross_every", 2)
    a.setdefault("norm_eps", 1e-5)
    a.setdefault("out_norm_eps", 1e-6)
    a.setdefault("vl_norm_eps", 1e-5)
    a.setdefault("num_buckets", 1000)
    a.setdefault("timestep_channels", 256)
    a.setdefault("time_convention", "tau1_noise")
    a.setdefault("alt_vl", False)
    a.setdefault("time_shift", 3.0)
    assert a["hidden_size"] == a["num_heads"] * a["head_dim"]
    return Obj(**a)


def load_config(ckpt_dir):
    with open(os.path.join(ckpt_dir, "config.json")) as f:
        cfg = json.load(f)
    return cfg


def load_preprocessor(ckpt_dir):
    p = dict(DEFAULT_PREPROCESSOR)
    path = os.path.join(ckpt_dir, "preprocessor_config.json")
    if os.path.exists(path):
        with open(path) as f:
            j = json.load(f)
        size = j.get("size") or {}
        if "shortest_edge" in size:
            p["min_pixels"] = size["shortest_edge"]
        if "longest_edge" in size:
            p["max_pixels"] = size["longest_edge"]
        for k in ("min_pixels", "max_pixels", "patch_size", "temporal_patch_size", "merge_size",
                  "image_mean", "image_std"):
            if k in j and j[k] is not None:
                p[k] = j[k]
    return p

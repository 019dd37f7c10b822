"""Checkpoint directory I/O: load a qvla checkpoint into QVLAModel, write model.safetensors (F32), and publish
RUN_DIR/ckpt atomically.

Publishing: the directory is written as RUN_DIR/ckpt-STEP.tmp, renamed to RUN_DIR/ckpt-STEP, and RUN_DIR/ckpt is
a symlink to it, replaced with os.replace (atomic): a reader sees either the old or the new complete checkpoint.
The previous ckpt-STEP directory is kept (a reader may still be inside it); older ones are deleted.
"""
import json
import os
import shutil

import numpy as np
import torch

from . import REF  # noqa: F401
from qvla_ref import safetensors_io as st


def load_weights_into(model, ckpt_dir):
    raw, _ = st.load_checkpoint_dir(ckpt_dir, as_float64=True)
    missing = [n for n in model.shapes if n not in raw]
    if missing:
        raise ValueError(f"{ckpt_dir}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    with torch.no_grad():
        for n, p in model.named_parameters():
            a = raw[n]
            if tuple(a.shape) != tuple(p.shape):
                raise ValueError(f"{n}: shape {a.shape} != {tuple(p.shape)}")
            p.copy_(torch.from_numpy(a).to(p.dtype))


def export_safetensors(model, path, state=None):
    sd = state if state is not None else {n: p.detach() for n, p in model.named_parameters()}
    T = {n: t.detach().to(torch.float32).cpu().numpy() for n, t in sd.items()}
    for n, a in T.items():
        if not np.isfinite(a).all():
            raise ValueError(f"refusing to write a checkpoint with non-finite {n}")
    st.save_file(T, path, {n: "F32" for n in T}, {"format": "pt"})


def preprocessor_config(cfg, min_pixels=4096, max_pixels=16384):
    vc = cfg["vision_config"]
    return {
        "image_processor_type": "Qwen2VLImageProcessorFast",
        "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels},
        "min_pixels": min_pixels, "max_pixels": max_pixels,
        "patch_size": vc["patch_size"], "temporal_patch_size": vc["temporal_patch_size"],
        "merge_size": vc["spatial_merge_size"],
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "do_resize": True, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True,
        "resample": 3, "rescale_factor": 1.0 / 255.0,
    }


def _json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def publish_ckpt(run_dir, step, cfg, weights, tokenizer_path, embodiments, pp, extra=None):
    """weights: {name: tensor}. Writes RUN_DIR/ckpt-STEP and points RUN_DIR/ckpt at it."""
    name = f"ckpt-{step:07d}"
    final = os.path.join(run_dir, name)
    tmp = final + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    _json(os.path.join(tmp, "config.json"), cfg)
    _json(os.path.join(tmp, "preprocessor_config.json"), pp)
    _json(os.path.join(tmp, "embodiments.json"), embodiments)
    shutil.copy(tokenizer_path, os.path.join(tmp, "tokenizer.json"))
    T = {n: t.detach().to(torch.float32).cpu().numpy() for n, t in weights.items()}
    for n, a in T.items():
        if not np.isfinite(a).all():
            shutil.rmtree(tmp)
            raise ValueError(f"refusing to write a checkpoint with non-finite {n}")
    st.save_file(T, os.path.join(tmp, "model.safetensors"), {n: "F32" for n in T}, {"format": "pt"})
    if extra:
        _json(os.path.join(tmp, "training.json"), extra)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    link = os.path.join(run_dir, "ckpt")
    if os.path.isdir(link) and not os.path.islink(link):
        raise ValueError(f"{link} is a real directory; expected the symlink this trainer writes")
    prev = os.path.basename(os.readlink(link)) if os.path.islink(link) else None
    tmp_link = os.path.join(run_dir, ".ckpt.link.tmp")
    if os.path.lexists(tmp_link):
        os.remove(tmp_link)
    os.symlink(name, tmp_link)
    os.replace(tmp_link, link)
    for d in os.listdir(run_dir):
        if d.startswith("ckpt-") and d not in (name, prev) and os.path.isdir(os.path.join(run_dir, d)):
            shutil.rmtree(os.path.join(run_dir, d), ignore_errors=True)
    return final

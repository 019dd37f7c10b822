"""Offline evaluation on held-out shards: sampled chunks (Euler, the engine's default sampler) vs the expert's clean
chunk, in normalised units over the valid rows/channels, per (world, embodiment, level) group.

  mse      mean over samples of mean((sampled - label)^2 over row < h_e, col < k_e)
  mse_t2a  the same with the images removed from the prompt (T2A)
  fm       flow-matching loss at fixed noise/tau (seeded), the training objective on held-out data
  base     mse of predicting the group's mean label chunk (the best deterministic blind guess)
  blind    2 * base: the expected mse of a sampler that ignores the observation but samples the group's chunk
           distribution exactly (two independent draws differ by twice the variance). A flow policy's sampled
           mse is to be compared with blind; below base it beats even the mean chunk.
"""
import numpy as np
import torch

from .data import Sampler, build_batch, vision_tokens, seq_vis
from .model import time_bucket
from .objective import batch_loss


@torch.no_grad()
def sample_chunks(model, bt, gen, steps=10):
    W = model.weights()
    dc = model.dc
    vis = vision_tokens(model, W, bt)
    a = bt.act
    h = model.embed(W, a.ids, a.img_index, seq_vis(a, vis))
    ctx = model.text(W, h, a.pos3, upto=dc.vlm_layer)[dc.vlm_layer]
    kv = model.dit_cross(W, ctx)
    stt = model.dit_state(W, bt.state, bt.has_state)
    B = ctx.shape[0]
    rows = torch.arange(dc.h_max)[None, :, None] < bt.h_e[:, None, None]
    cols = torch.arange(dc.k_max)[None, None, :] < bt.k_e[:, None, None]
    m = (rows & cols).to(model.dtype)[:, None]
    y = torch.randn((B, 1, dc.h_max, dc.k_max), generator=gen, dtype=model.dtype) * m
    for n in range(steps):
        t0, t1 = 1.0 - n / steps, (0.0 if n == steps - 1 else 1.0 - (n + 1) / steps)
        tau = torch.full((B, 1), t0, dtype=torch.float64)
        v = model.dit_velocity(W, y, time_bucket(tau, dc.num_buckets), stt, bt.h_e, kv, a.mask) * m
        y = y + (t1 - t0) * v
    return y[:, 0], m[:, 0]


@torch.no_grad()
def evaluate(model, shards, tt, pad_id, n_per_group=64, batch=32, steps=10, seed=1234, t2a_ok=None):
    """Returns {group name: {n, mse, mse_t2a, fm, base}} and the mean over groups under 'all'."""
    samp = Sampler(shards, "group")
    out = {}
    for g, sis in enumerate(samp.groups):
        s0 = shards[sis[0]]
        name = f"{s0.world}/{s0.embodiment}/{s0.level}"
        picks = [(si, i) for si in sis for i in range(shards[si].n)]
        rng = np.random.default_rng([seed, g])
        if len(picks) > n_per_group:
            picks = [picks[j] for j in sorted(rng.choice(len(picks), n_per_group, replace=False))]
        labels = np.stack([shards[si].actions[i] for si, i in picks])
        masks = []
        res = {"mse": [], "mse_t2a": [], "fm": []}
        for b0 in range(0, len(picks), batch):
            pk = picks[b0:b0 + batch]
            for mode in ("img", "t2a"):
                if mode == "t2a" and t2a_ok is not None and not all(t2a_ok[si] for si, _ in pk):
                    continue
                bt = build_batch(shards, pk, [mode == "t2a"] * len(pk), [], tt, model.image_token_id, pad_id,
                                 model.vc.merge)
                gen = torch.Generator().manual_seed(seed + 7919 * g + b0)
                y, m = sample_chunks(model, bt, gen, steps)
                err = (((y - bt.actions) ** 2) * m).sum((1, 2)) / m.sum((1, 2))
                res["mse" if mode == "img" else "mse_t2a"].extend(err.tolist())
                if mode == "img":
                    masks.append(m.numpy())
                    res["fm"].append(float(batch_loss(model, bt, gen, 4, 0.0)["fm"]) * len(pk))
        m = np.concatenate(masks)
        mean_chunk = (labels * m).sum(0) / np.maximum(m.sum(0), 1)
        base = (((labels - mean_chunk) ** 2) * m).sum((1, 2)) / m.sum((1, 2))
        out[name] = {"n": len(picks), "mse": float(np.mean(res["mse"])),
                     "mse_t2a": float(np.mean(res["mse_t2a"])) if res["mse_t2a"] else float("nan"),
                     "fm": float(np.sum(res["fm"]) / len(picks)), "base": float(np.mean(base)),
                     "blind": 2.0 * float(np.mean(base))}
    keys = ("mse", "mse_t2a", "fm", "base", "blind")
    out["all"] = {"n": sum(v["n"] for v in out.values())}
    out["all"].update({k: float(np.mean([v[k] for n, v in out.items() if n != "all"])) for k in keys})
    return out


def format_eval(res):
    lines = [f"{'group':32s} {'n':>5s} {'mse':>8s} {'mse_t2a':>8s} {'fm':>8s} {'base':>8s} {'blind':>8s}"]
    for name, v in res.items():
        lines.append(f"{name:32s} {v['n']:5d} {v['mse']:8.4f} {v['mse_t2a']:8.4f} {v['fm']:8.4f} {v['base']:8.4f} "
                     f"{v['blind']:8.4f}")
    return "\n".join(lines)

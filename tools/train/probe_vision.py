#!/usr/bin/python3
"""Linear probe: is the object's position linearly readable from what the DiT reads (hidden_states[vlm_layer] at
the image tokens)? Ridge regression, half of the held-out samples fit, half scored (R^2 of the obj x/y targets of
qvla_train/aux.py), per group, for each checkpoint given ("init" = a fresh fan-in init).

  nice -n 19 /usr/bin/python3 tools/train/probe_vision.py --data data/val-A init weights/toy runs/X/ckpt
"""
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import argparse
import json
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_train import REPO, REF  # noqa: E402
from qvla_train.model import QVLAModel  # noqa: E402
from qvla_train.init import init_weights  # noqa: E402
from qvla_train.data import load_shards, TokenTable, build_batch, vision_tokens, seq_vis  # noqa: E402
from qvla_train.checkpoint import load_weights_into  # noqa: E402
from qvla_train.aux import shard_targets  # noqa: E402
sys.path.insert(0, REF)
from make_checkpoint import fill_config  # noqa: E402


@torch.no_grad()
def features(model, shards, picks, tt, pad_id):
    W = model.weights()
    out = []
    for b0 in range(0, len(picks), 32):
        pk = picks[b0:b0 + 32]
        bt = build_batch(shards, pk, [False] * len(pk), [], tt, model.image_token_id, pad_id, model.vc.merge)
        vis = vision_tokens(model, W, bt)
        a = bt.act
        h = model.embed(W, a.ids, a.img_index, seq_vis(a, vis))
        ctx = model.text(W, h, a.pos3, upto=model.dc.vlm_layer)[model.dc.vlm_layer]
        bi, li = a.img_index
        for b in range(len(pk)):
            tok = ctx[b, li[bi == b]]
            v = torch.stack([vis[(b, 0)].flatten(), tok.flatten()])     # vision-tower output, VLM layer
            out.append(v.numpy())
    return np.stack(out)                                               # [N, 2, n*D]


def ridge_r2(X, Y):
    """R^2 on the second half, best over a few ridge strengths (chosen on a third quarter would be stricter)."""
    return max((_ridge(X, Y, lam) for lam in (0.1, 1.0, 10.0, 100.0)), key=lambda r: r.mean())


def _ridge(X, Y, lam):
    n = len(X) // 2
    mu, sd = X[:n].mean(0), X[:n].std(0) + 1e-6
    Xs = (X - mu) / sd
    A = Xs[:n].T @ Xs[:n] + lam * np.eye(X.shape[1])
    w = np.linalg.solve(A, Xs[:n].T @ (Y[:n] - Y[:n].mean(0)))
    P = Xs[n:] @ w + Y[:n].mean(0)
    return 1 - ((P - Y[n:]) ** 2).sum(0) / ((Y[n:] - Y[n:].mean(0)) ** 2).sum(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("ckpts", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(2)
    with open(os.path.join(HERE, "configs", "toy.json")) as f:
        cfg = fill_config(json.load(f), os.path.join(REPO, "weights/tiny/tokenizer.json"))
    tt = TokenTable(os.path.join(REPO, "weights/tiny/tokenizer.json"))
    pad = cfg["text_config"]["eos_token_id"]
    shards = load_shards(a.data.split(","), {"min_pixels": 4096, "max_pixels": 16384}, log=lambda *x: None)
    for ck in a.ckpts:
        model = QVLAModel(cfg, torch.float32)
        if ck == "init":
            init_weights(model, 0, "fan_in")
        else:
            load_weights_into(model, ck)
        for si, s in enumerate(shards):
            T, M = shard_targets(s)
            if not M[:, 0].any():
                continue
            rng = np.random.default_rng(0)
            idx = rng.permutation(np.nonzero(M[:, 0])[0])[:a.n]
            F = features(model, shards, [(si, int(i)) for i in idx], tt, pad)
            Y = T[idx, :2]
            r_v = ridge_r2(F[:, 0], Y)
            r_h = ridge_r2(F[:, 1], Y)
            print(f"{ck:40s} {s.world}/{s.embodiment}: R2 obj x/y  vision-out {r_v[0]:.3f}/{r_v[1]:.3f}  "
                  f"vlm-layer {r_h[0]:.3f}/{r_h[1]:.3f}  (n={len(idx)}, half fit, half scored)", flush=True)


if __name__ == "__main__":
    main()

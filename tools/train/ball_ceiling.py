"""How good can a Level-A ball prediction be, and what limits it? (issue: the trajectory goal of weights/toy)

Trains a small MLP (batch 256) from the 4 observed positions to the 12 future ones on the same 10,000 training seeds the policy
saw, and evaluates FDE / ADE / success (FDE < 0.08, src/worlds/ball.ts FDE_SUCCESS) on the evaluation seeds, for
three kinds of input:
- true: the exact simulated positions (the dynamics alone: what a perfect perception would give);
- true + noise: the same with Gaussian position noise of sigma pixels (128-px frame), i.e. imperfect perception;
- read: the positions an exact-colour reader recovers from the frame the policy sees (tools/train/ball_tracks.ts).
The policy itself sees only pixels; this separates "the dynamics are hard to learn from 10k examples" from
"the positions are hard to read precisely from the frame".

Input: JSON from tools/train/ball_tracks.ts. Run (Debian torch, 2 threads; ~1 min per input kind):
  /usr/bin/python3 tools/train/ball_ceiling.py --train data/ball/train.json --eval data/ball/eval.json \
      --json bench/eval/ball-ceiling.json
Each row also carries a learning curve (success vs training samples seen), to compare with the policy's budget.
"""
import argparse
import json
import math

import numpy as np
import torch

FDE_SUCCESS = 0.08
IMG = 128
OBS = 4


def load(path):
    rows = json.load(open(path))
    pts = np.array([r["pts"] for r in rows], np.float64)                  # [N, 16, 2]
    if pts.shape[1] != OBS + 12:
        raise ValueError(f"{path}: expected {OBS + 12} positions per episode, got {pts.shape[1]}")
    read = np.array([[p if p is not None else [math.nan, math.nan] for p in r["read"]] for r in rows], np.float64)
    motion = np.array([r["motion"] for r in rows])
    return pts, read, motion


def features(obs):
    """obs [N, 4, 2] -> current position, the three velocities and two accelerations (scaled to ~unit range)."""
    cur = obs[:, -1]
    v = np.diff(obs, axis=1) * 10
    a = np.diff(v, axis=1)
    return np.concatenate([cur, v.reshape(len(obs), -1), a.reshape(len(obs), -1)], 1)


def fit(xtr, ytr, seed, steps, log, every=0, probe=None):
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    net = torch.nn.Sequential(
        torch.nn.Linear(xtr.shape[1], 256), torch.nn.GELU(),
        torch.nn.Linear(256, 256), torch.nn.GELU(),
        torch.nn.Linear(256, 256), torch.nn.GELU(),
        torch.nn.Linear(256, ytr.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    X = torch.tensor((xtr - mu) / sd, dtype=torch.float32)
    predict = lambda x: net(torch.tensor((x - mu) / sd, dtype=torch.float32)).detach().numpy().astype(np.float64)
    Y = torch.tensor(ytr, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    for s in range(steps):
        idx = torch.randint(0, len(X), (256,), generator=g)
        loss = ((net(X[idx]) - Y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and (s + 1) % 1000 == 0:
            print(f"  step {s + 1}: train mse {loss.item():.5f}", flush=True)
        if probe and every and ((s + 1) % every == 0 or (s + 1) & s == 0 and s + 1 >= 16):
            probe(s + 1, predict)
    return predict


def score(pred_rel, cur, fut, motion):
    pred = pred_rel.reshape(len(cur), 12, 2) + cur[:, None]
    d = np.linalg.norm(pred - fut, axis=2)
    fde = d[:, -1]
    out = {"ade": float(d.mean()), "fde": float(fde.mean()), "success_rate": float((fde < FDE_SUCCESS).mean()),
           "successes": int((fde < FDE_SUCCESS).sum()), "episodes": len(fde), "by_motion": {}}
    for m in sorted(set(motion)):
        k = motion == m
        out["by_motion"][m] = {"episodes": int(k.sum()), "fde": float(fde[k].mean()),
                               "success_rate": float((fde[k] < FDE_SUCCESS).mean())}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--sigmas", default="0.25,0.5,1,2", help="position noise in pixels of the 128-px frame")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--curve-every", type=int, default=500, help="evaluate every N steps (and at powers of two)")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ptr, rtr, _ = load(a.train)
    pev, rev, mev = load(a.eval)
    rng = np.random.default_rng(a.seed)
    results = []

    def run(name, obs_tr, obs_ev):
        ok_tr = ~np.isnan(obs_tr).any((1, 2))
        ok_ev = ~np.isnan(obs_ev).any((1, 2))
        cur_tr, cur_ev = obs_tr[:, -1], obs_ev[:, -1]
        ytr = (ptr[:, OBS:] - cur_tr[:, None]).reshape(len(ptr), -1)
        print(f"[{name}] training on {ok_tr.sum()} episodes", flush=True)
        curve = []

        def evaluate(predict):
            pred = np.zeros((len(pev), 24))
            pred[ok_ev] = predict(features(obs_ev[ok_ev]))
            # an unreadable frame counts as a miss: predict "stays put"
            return score(pred, np.where(ok_ev[:, None], cur_ev, pev[:, OBS - 1]), pev[:, OBS:], mev)

        def probe(step, predict):
            r = evaluate(predict)
            curve.append({"step": step, "samples": step * 256, "fde": r["fde"], "success_rate": r["success_rate"]})

        predict = fit(features(obs_tr[ok_tr]), ytr[ok_tr], a.seed, a.steps, True, a.curve_every, probe)
        r = evaluate(predict)
        r["curve"] = curve
        r.update({"input": name, "unreadable_eval": int((~ok_ev).sum())})
        print("  curve: " + " ".join(f"{c['samples']}:{c['success_rate']:.2f}" for c in curve))
        print(f"[{name}] FDE {r['fde']:.4f} ADE {r['ade']:.4f} success {r['successes']}/{r['episodes']} "
              + " ".join(f"{m}:{v['success_rate']:.2f}" for m, v in r["by_motion"].items()), flush=True)
        results.append(r)

    obs_tr, obs_ev = ptr[:, :OBS], pev[:, :OBS]
    run("true", obs_tr, obs_ev)
    for s in [float(v) for v in a.sigmas.split(",") if v]:
        n = s / IMG
        run(f"true+noise {s:g}px", obs_tr + rng.normal(0, n, obs_tr.shape), obs_ev + rng.normal(0, n, obs_ev.shape))
    run("read from the frame", rtr, rev)
    cv = pev[:, OBS - 1][:, None] + (np.arange(1, 13)[None, :, None]) * (pev[:, OBS - 1] - pev[:, OBS - 2])[:, None]
    rcv = score((cv - pev[:, OBS - 1][:, None]).reshape(len(pev), -1), pev[:, OBS - 1], pev[:, OBS:], mev)
    rcv["input"] = "constant velocity (true positions)"
    results.append(rcv)
    print(f"[cv] FDE {rcv['fde']:.4f} success {rcv['successes']}/{rcv['episodes']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"train": a.train, "eval": a.eval, "steps": a.steps, "seed": a.seed,
                       "fde_success": FDE_SUCCESS, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

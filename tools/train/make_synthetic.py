#!/usr/bin/python3
"""Synthetic recorded shards in the format of src/worlds/README.md ("Recorded shards"), for testing the trainer
before the real recorder exists. Not a world: a coloured square on a plain background, a learnable toy target.

usage: /usr/bin/python3 tools/train/make_synthetic.py --out DIR [--embodiment planar|rover|tracker] [--n 600]
          [--seed 0] [--shard-size 2000] [--level A]

* planar (tabletop, camera `top` 128x128, actions x, y (relative), gripper; state x, y, gripper; chunk 8):
  the chunk moves the end effector from the state toward the block, the gripper closes in the last rows.
* rover (nav, camera `front` 128x96, waypoints x, y, yaw; no state; chunk 8): waypoints toward the pillar,
  whose column in the image gives the bearing.
* tracker (ball, camera `top` 128x128, x, y world positions; no state; chunk 12): the ball moves along the
  direction given by its colour.
Action prompts and VQA prompts are built with the tiny tokenizer (tools/reference/qvla_ref/tokenizer.py + prompt.py,
needs the Debian package python3-regex) exactly as act() / chat() build them.
Writes DIR/E-L-00000.safetensors ..., DIR/embodiments.json (merged with an existing one) and DIR/manifest.json.
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_train import REPO  # noqa: E402
from qvla_ref import safetensors_io as st  # noqa: E402
from qvla_ref.prompt import action_prompt, chat_prompt, image_token_count  # noqa: E402
from qvla_ref.embodiment import normalize  # noqa: E402

H_MAX = K_MAX = S_MAX = 16
COLORS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}

EMBODIMENTS = {
    "planar": {
        "name": "planar gantry", "task_type": "manipulation", "description": "an end effector over the table",
        "cameras": ["top"], "control": {"mode": "end-effector targets", "rate_hz": 10, "chunk": 8, "frame": "world"},
        "action": {"names": ["x", "y", "gripper"], "relative": [True, True, False], "gripper": [2],
                   "binarize_gripper": True},
        "state": {"names": ["x", "y", "gripper"]},
        "normalization": {"method": "min_max",
                          "action": {"min": [-0.4, -0.4, 0.0], "max": [0.4, 0.4, 1.0]},
                          "state": {"min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 1.0]}},
        "prompt": None,
    },
    "rover": {
        "name": "rover", "task_type": "navigation", "description": "a differential-drive robot",
        "cameras": ["front"], "control": {"mode": "waypoints", "rate_hz": 2, "chunk": 8, "frame": "robot"},
        "action": {"names": ["x", "y", "yaw"], "relative": [False, False, False], "gripper": [],
                   "binarize_gripper": False},
        "normalization": {"method": "min_max",
                          "action": {"min": [-0.5, -2.0, -3.2], "max": [2.5, 2.0, 3.2]}},
        "prompt": None,
    },
    "tracker": {
        "name": "tracker", "task_type": "trajectory", "description": "a fixed overhead camera",
        "cameras": ["top"], "control": {"mode": "future ball positions", "rate_hz": 10, "chunk": 12, "frame": "world"},
        "action": {"names": ["x", "y"], "relative": [False, False], "gripper": [], "binarize_gripper": False},
        "normalization": {"method": "min_max", "action": {"min": [0.0, 0.0], "max": [1.0, 1.0]}},
        "prompt": None,
    },
}
CAM_HW = {"planar": (128, 128), "rover": (96, 128), "tracker": (128, 128)}
CORNERS = ["top left", "top right", "bottom left", "bottom right"]


def draw(rng, H, W, cx, cy, color, r=7):
    img = np.full((H, W, 3), 0, np.uint8)
    img[:] = rng.integers(90, 140, size=3).astype(np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, size=(H, W, 1)), 0, 255).astype(np.uint8)
    y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, H)
    x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, W)
    img[y0:y1, x0:x1] = COLORS[color]
    return img


def sample(emb, rng):
    """One synthetic decision: frame, instruction, raw state (or None), raw action chunk [chunk, K], vqa pair."""
    H, W = CAM_HW[emb]
    color = list(COLORS)[int(rng.integers(len(COLORS)))]
    if emb == "planar":
        bx, by = rng.uniform(0.1, 0.9, 2)
        ex, ey = rng.uniform(0.05, 0.95, 2)
        img = draw(rng, H, W, bx * (W - 1), (1 - by) * (H - 1), color)
        corner = CORNERS[int(rng.integers(4))]
        instr = f"put the {color} block in the {corner} square"
        n = 8
        t = np.arange(1, n + 1) / n
        act = np.stack([(bx - ex) * t, (by - ey) * t, (t > 0.75).astype(np.float64)], 1)
        act[:, :2] = np.clip(act[:, :2], -0.4, 0.4)
        return img, instr, np.array([ex, ey, 0.0]), act, ("What colour is the block?", color)
    if emb == "rover":
        bearing = rng.uniform(-0.6, 0.6)
        dist = rng.uniform(0.5, 2.0)
        img = draw(rng, H, W, (0.5 - bearing / 1.2) * (W - 1), H * 0.45, color, r=9)
        instr = f"go to the {color} pillar"
        n = 8
        t = np.arange(1, n + 1) / n
        act = np.stack([dist * t * np.cos(bearing), dist * t * np.sin(bearing), np.full(n, bearing)], 1)
        return img, instr, None, act, ("What colour is the pillar?", color)
    # tracker: direction from the colour
    ang = {"red": 0.0, "green": 1.57, "blue": 3.14, "yellow": -1.57}[color]
    px, py = rng.uniform(0.3, 0.7, 2)
    img = draw(rng, H, W, px * (W - 1), (1 - py) * (H - 1), color, r=5)
    instr = f"predict the {color} ball"
    n = 12
    t = np.arange(1, n + 1) * 0.02
    act = np.stack([px + t * np.cos(ang), py + t * np.sin(ang)], 1)
    return img, instr, None, act, ("What colour is the ball?", color)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--embodiment", default="planar", choices=sorted(EMBODIMENTS))
    ap.add_argument("--level", default="A")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-size", type=int, default=2000)
    a = ap.parse_args()
    from qvla_ref.tokenizer import Tokenizer
    tok = Tokenizer.from_file(os.path.join(REPO, "weights/tiny/tokenizer.json"))
    im_end = tok.token_to_id("<|im_end|>")
    entry = EMBODIMENTS[a.embodiment]
    H, W = CAM_HW[a.embodiment]
    grid = (1, H // 16, W // 16)
    ntok = image_token_count(grid)
    cam = entry["cameras"][0]
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for i in range(a.n):
        img, instr, state, act, (q, ans) = sample(a.embodiment, rng)
        ids = action_prompt(entry, instr, [(cam, ntok)], tok)
        vq = chat_prompt(q, [ntok], tok=tok)
        vqa = vq + tok.encode(ans) + [im_end]
        s = np.zeros(S_MAX, np.float32)
        if state is not None:
            s[:len(state)] = normalize(entry, "state", state)
        an = np.zeros((H_MAX, K_MAX), np.float32)
        an[:act.shape[0], :act.shape[1]] = normalize(entry, "action", act)
        rows.append(dict(img=img, instr=instr, ids=ids, vqa=vqa, vqa_start=len(vq), state=s,
                         has_state=state is not None, act=an, h_e=act.shape[0], k_e=act.shape[1], q=q, ans=ans))
    files = []
    for k, s0 in enumerate(range(0, a.n, a.shard_size)):
        part = rows[s0:s0 + a.shard_size]
        N = len(part)
        Lm = max(len(r["ids"]) for r in part)
        Lq = max(len(r["vqa"]) for r in part)
        T = {
            "frames": np.stack([r["img"] for r in part])[:, None],
            "input_ids": np.full((N, Lm), -1, np.int32), "input_len": np.array([len(r["ids"]) for r in part], np.int32),
            "state": np.stack([r["state"] for r in part]), "has_state": np.array([r["has_state"] for r in part], np.uint8),
            "actions": np.stack([r["act"] for r in part]),
            "h_e": np.array([r["h_e"] for r in part], np.int32), "k_e": np.array([r["k_e"] for r in part], np.int32),
            "vqa_ids": np.full((N, Lq), -1, np.int32), "vqa_len": np.array([len(r["vqa"]) for r in part], np.int32),
            "vqa_answer_start": np.array([r["vqa_start"] for r in part], np.int32),
            "episode": np.arange(s0, s0 + N, dtype=np.int32), "decision": np.zeros(N, np.int32),
            "seed": np.arange(s0, s0 + N, dtype=np.int32),
        }
        for j, r in enumerate(part):
            T["input_ids"][j, :len(r["ids"])] = r["ids"]
            T["vqa_ids"][j, :len(r["vqa"])] = r["vqa"]
        meta = {"world": "synthetic", "embodiment": a.embodiment, "level": a.level,
                "image_grids": json.dumps([list(grid)]), "instructions": json.dumps([r["instr"] for r in part]),
                "vqa": json.dumps([[r["q"], r["ans"]] for r in part])}
        fn = f"{a.embodiment}-{a.level}-{k:05d}.safetensors"
        st.save_file(T, os.path.join(a.out, fn), None, meta)
        files.append({"file": fn, "samples": N})
    reg_path = os.path.join(a.out, "embodiments.json")
    reg = {"version": 1, "embodiments": {}}
    if os.path.exists(reg_path):
        with open(reg_path) as f:
            reg = json.load(f)
    reg["embodiments"][a.embodiment] = entry
    with open(reg_path, "w") as f:
        json.dump(reg, f, indent=2, sort_keys=True)
        f.write("\n")
    man_path = os.path.join(a.out, "manifest.json")
    man = {"synthetic": True, "shards": []}
    if os.path.exists(man_path):
        with open(man_path) as f:
            man = json.load(f)
    man["shards"] = [s for s in man["shards"] if not s["file"].startswith(f"{a.embodiment}-{a.level}-")] + files
    with open(man_path, "w") as f:
        json.dump(man, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(files)} shard(s), {a.n} samples of {a.embodiment} to {a.out} "
          f"(prompt {min(len(r['ids']) for r in rows)}..{max(len(r['ids']) for r in rows)} tokens)")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Self-tests of the trainer (not of the model port: that is check_port.py). Exit status 1 on failure.

usage: nice -n 5 /usr/bin/python3 tools/train/selftest.py [--keep DIR]      (~2 min on 2 busy cores)

1. T2A rule: dropping the image spans from an action prompt == the tokenizer's action prompt with no images,
   for every embodiment of weights/tiny/embodiments.json and of the synthetic shards, 1 and 3 cameras, several
   instructions (needs python3-regex for the reference tokenizer).
2. Shard loading / batch assembly on synthetic shards (planar 128x128 with state, rover 128x96 without state,
   tracker): image pads, positions, VQA targets are the answer tokens + <|im_end|>.
3. Determinism and resume: a 6-step run, and a run stopped after 3 steps then --resume'd to 6, give bit-identical
   state.pt weights/optimizer/EMA, identical model.safetensors and identical log.csv losses; a second fresh run
   with the same seed is identical too; another seed differs.
4. The exported checkpoint directory loads in the reference (tools/reference/qvla_ref) with every file present.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads crawl on shared, busy cores

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_train import REPO  # noqa: E402
from qvla_train.data import TokenTable, drop_vision_spans, load_shards, build_batch, Sampler  # noqa: E402
from qvla_ref import safetensors_io as st  # noqa: E402

PY = "/usr/bin/python3"
FAIL = []


def ok(cond, msg):
    print(f"  {'ok ' if cond else 'BAD'} {msg}")
    if not cond:
        FAIL.append(msg)


def test_t2a():
    print("T2A prompt = action prompt without its image spans:")
    try:
        from qvla_ref.tokenizer import Tokenizer
    except ImportError as e:
        print(f"  skipped (reference tokenizer unavailable: {e}; apt-get install python3-regex)")
        return
    from qvla_ref.prompt import action_prompt
    import make_synthetic
    tokp = os.path.join(REPO, "weights/tiny/tokenizer.json")
    tok = Tokenizer.from_file(tokp)
    tt = TokenTable(tokp)
    with open(os.path.join(REPO, "weights/tiny/embodiments.json")) as f:
        embs = dict(json.load(f)["embodiments"])
    embs.update(make_synthetic.EMBODIMENTS)
    instrs = ["put the green disc in the top right square", "go to the red pillar", "  stack the cups  ",
              "predict the blue ball.", "move 3 cm left, then stop!", "x"]
    n = 0
    for name, e in sorted(embs.items()):
        for ins in instrs:
            for cams in (e["cameras"], e["cameras"][:1], ["cam_a", "view1", "top"]):
                ids = action_prompt(e, ins, [(c, 12 + 4 * j) for j, c in enumerate(cams)], tok)
                want = action_prompt(e, ins, [], tok)
                got = drop_vision_spans(ids, tt)
                if got != want:
                    ok(False, f"{name} / {ins!r} / {cams}")
                    return
                n += 1
    ok(True, f"{n} prompts ({len(embs)} embodiments x {len(instrs)} instructions x 3 camera sets)")


def test_batch(data):
    print("shard loading and batch assembly:")
    cfgp = os.path.join(HERE, "configs", "toy.json")
    with open(cfgp) as f:
        cfg = json.load(f)
    img = cfg["image_token_id"]
    tt = TokenTable(os.path.join(REPO, "weights/tiny/tokenizer.json"))
    pp = {"min_pixels": 4096, "max_pixels": 16384}
    shards = load_shards([data], pp, log=lambda *x: None)
    for s in shards:
        s.check(img, 2, (16, 16, 16))
    samp = Sampler(shards, "group")
    picks = samp.draw(np.random.default_rng(0), 12)
    t2a = [i % 4 == 1 for i in range(12)]
    bt = build_batch(shards, picks, t2a, [0, 1, 2, 5], tt, img, 0)
    a = bt.act
    n_pad = int((a.ids == img).sum())
    n_vis = sum(shards[si].grids[0][1] * shards[si].grids[0][2] // 4 for (si, _), t in zip(picks, t2a) if not t)
    ok(n_pad == n_vis == len(a.img_index[0]), f"image pads {n_pad} == vision tokens {n_vis} (T2A rows have none)")
    ok(sorted({k for k in a.img_keys}) == sorted(k for k in a.img_keys), "image keys unique")
    for b, (si, i) in enumerate(picks):
        if not t2a[b]:
            L = int(a.lens[b])
            ok(torch.equal(a.ids[b, :L], torch.from_numpy(shards[si].action_ids(i))), f"row {b} ids == stored ids") \
                if b < 2 else None
    q = bt.vqa
    si, i = picks[0]
    s = shards[si]
    L, st0 = int(s.vqa_len[i]), int(s.vqa_answer_start[i])
    r0 = q.tgt_index[0] == 0
    ok(q.targets[r0].tolist() == s.vqa_ids[i, st0:L].tolist() and q.tgt_index[1][r0].tolist() == list(range(st0 - 1, L - 1)),
       "VQA targets are the answer tokens + <|im_end|>, predicted from the previous position")
    ok(tt.text[int(q.targets[r0][-1])] == "<|im_end|>", "last VQA target is <|im_end|>")
    grids = sorted(g for g, _, _ in bt.groups)
    ok(len(grids) == len(set(grids)), f"one vision group per grid: {grids}")


def run(args, cwd=REPO):
    r = subprocess.run(["nice", "-n", "5", PY, os.path.join(HERE, "train.py")] + args, cwd=cwd,
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        raise RuntimeError(f"train.py {' '.join(args)} failed")
    return r.stdout


def losses(run_dir):
    with open(os.path.join(run_dir, "log.csv")) as f:
        return [(r["step"], r["loss"], r["fm_loss"], r["text_loss"], r["grad_norm"]) for r in csv.DictReader(f)]


def val_rows(run_dir, step):
    with open(os.path.join(run_dir, "val.csv")) as f:
        return [r for r in csv.DictReader(f) if r["step"] == step]


def same_state(d1, d2):
    a = torch.load(os.path.join(d1, "state.pt"))
    b = torch.load(os.path.join(d2, "state.pt"))
    same = a["step"] == b["step"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    same = same and all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    same = same and all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    fa = open(os.path.join(d1, "ckpt", "model.safetensors"), "rb").read()
    fb = open(os.path.join(d2, "ckpt", "model.safetensors"), "rb").read()
    return same and fa == fb


def test_determinism(data, tmp):
    print("determinism and resume (3 runs of 6 steps, batch 8):")
    common = ["--data", data, "--steps", "6", "--batch", "8", "--warmup", "2", "--ckpt-every", "100",
              "--text-frac", "0.5", "--t2a-frac", "0.3", "--quiet", "--val", data, "--val-n", "4"]
    d1, d2, d3, d4 = (os.path.join(tmp, f"r{i}") for i in range(1, 5))
    run(common + ["--out", d1, "--seed", "7"])
    run(common + ["--out", d2, "--seed", "7", "--stop-after", "3"])
    ok(len(losses(d2)) == 3, "stopped run logged 3 steps")
    run(common + ["--out", d2, "--seed", "7", "--resume"])
    run(common + ["--out", d3, "--seed", "7"])
    run(common + ["--out", d4, "--seed", "8"])
    ok(losses(d1) == losses(d2), "log.csv losses: straight run == stopped + resumed run")
    ok(same_state(d1, d2), "weights, EMA, optimizer moments, model.safetensors: straight == resumed (bit-exact)")
    ok(same_state(d1, d3), "two fresh runs with the same seed are bit-identical")
    ok(losses(d1) != losses(d4), "another seed gives another run")
    v1, v2 = (val_rows(d, "6") for d in (d1, d2))
    ok(len(v1) == 4 and v1 == v2, f"val.csv at the last step: straight == resumed ({len(v1)} rows: 3 groups + all)")
    n_text = [r[3] for r in losses(d1)]
    ok(any(n_text) and not all(n_text), "some steps carry the VQA text loss, some do not")
    return d1


def test_ckpt(run_dir):
    print("exported checkpoint directory:")
    ck = os.path.join(run_dir, "ckpt")
    files = sorted(os.listdir(ck))
    ok(files == ["config.json", "embodiments.json", "model.safetensors", "preprocessor_config.json",
                 "tokenizer.json", "training.json"], f"files {files}")
    from qvla_ref.model import QVLA
    m = QVLA(ck)
    ok(m.pp["min_pixels"] == 4096 and m.pp["max_pixels"] == 16384, "preprocessor min/max pixels 4096/16384")
    _, dts, _ = st.load_file(os.path.join(ck, "model.safetensors"))
    ok(set(dts.values()) == {"F32"}, "all tensors F32")
    with open(os.path.join(ck, "config.json")) as f:
        cfg = json.load(f)
    ok(isinstance(cfg["text_config"]["vocab_size"], int), f"vocab_size {cfg['text_config']['vocab_size']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    tmp = a.keep or tempfile.mkdtemp(prefix="qvla-train-selftest-")
    os.makedirs(tmp, exist_ok=True)
    try:
        data = os.path.join(tmp, "data")
        if not os.path.exists(os.path.join(data, "manifest.json")):
            for e, n in (("planar", 60), ("rover", 40), ("tracker", 30)):
                subprocess.run([PY, os.path.join(HERE, "make_synthetic.py"), "--out", data, "--embodiment", e,
                                "--n", str(n), "--shard-size", "25", "--seed", "3"], check=True, capture_output=True)
        test_t2a()
        test_batch(data)
        d1 = test_determinism(data, tmp)
        test_ckpt(d1)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if FAIL:
        print(f"FAILED ({len(FAIL)}): " + "; ".join(FAIL))
        sys.exit(1)
    print("selftest: all OK")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""VQA accuracy of a checkpoint on held-out shards vs chance (issue "A policy that works": "VQA accuracy vs chance").

Every held-out sample carries one question about its frame 0 and the answer (`vqa_ids`, metadata `vqa`). An answer
counts as correct when greedy decoding reproduces it exactly (answer tokens and <|im_end|>): with teacher forcing,
that is "the argmax at every answer position is the answer's token" (greedy decoding yields the same tokens exactly
then, and diverges otherwise). The PyTorch training port runs the checkpoint (equal to the engine's to ~1e-6:
test/model/toy.parity.test.ts). Chance per question: the majority answer's share of the held-out answers (the best
answer that ignores the image) and 1 / number of distinct answers.

  nice -n 19 /usr/bin/python3 tools/train/eval_vqa.py --ckpt weights/toy --data data/val-A [--json FILE]
"""
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import argparse
import collections
import json
import sys

import re

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_train import REPO, REF  # noqa: E402,F401
from qvla_train.model import QVLAModel  # noqa: E402
from qvla_train.data import load_shards, TokenTable, build_batch, vision_tokens, seq_vis  # noqa: E402
from qvla_train.checkpoint import load_weights_into  # noqa: E402


COLOURS = re.compile(r"\b(red|green|blue|yellow|purple)\b")


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--n", type=int, default=300, help="samples per shard (first N)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(os.path.join(a.ckpt, "config.json")) as f:
        cfg = json.load(f)
    model = QVLAModel(cfg, torch.float32)
    load_weights_into(model, a.ckpt)
    W = model.weights()
    tt = TokenTable(os.path.join(a.ckpt, "tokenizer.json"))
    pad = cfg["text_config"]["eos_token_id"]
    pp = json.load(open(os.path.join(a.ckpt, "preprocessor_config.json")))
    shards = load_shards(a.data, {"min_pixels": pp["min_pixels"], "max_pixels": pp["max_pixels"]},
                         log=lambda *x: None)
    stats = collections.defaultdict(lambda: {"n": 0, "correct": 0, "answers": collections.Counter()})
    for si, s in enumerate(shards):
        if not s.has_vqa:
            continue
        qa = json.loads(s.meta["vqa"])
        idx = [i for i in range(min(a.n, s.n)) if s.vqa_len[i] > 0]
        for b0 in range(0, len(idx), 32):
            pk = [(si, i) for i in idx[b0:b0 + 32]]
            bt = build_batch(shards, pk, [False] * len(pk), list(range(len(pk))), tt, model.image_token_id, pad,
                             model.vc.merge)
            vis = vision_tokens(model, W, bt)
            q = bt.vqa
            h = model.embed(W, q.ids, q.img_index, seq_vis(q, vis))
            final = model.text(W, h, q.pos3)[-1]
            pred = model.logits(W, final[q.tgt_index]).argmax(-1)
            ok = (pred == q.targets).numpy()
            rows = q.tgt_index[0].numpy()
            for r, (_, i) in enumerate(pk):
                question, answer = qa[i]
                key = (f"{s.world}/{s.level}", COLOURS.sub("<colour>", question))
                st = stats[key]
                st["n"] += 1
                st["correct"] += int(ok[rows == r].all())
                st["answers"][answer] += 1
    out = []
    print(f"{'world/level':16s} {'question':42s} {'n':>5s} {'accuracy':>9s} {'majority':>9s} {'1/#ans':>7s}")
    for (g, qn), st in sorted(stats.items()):
        maj = st["answers"].most_common(1)[0][1] / st["n"]
        row = {"group": g, "question": qn, "n": st["n"], "accuracy": st["correct"] / st["n"], "majority": maj,
               "uniform": 1 / len(st["answers"]), "answers": len(st["answers"])}
        out.append(row)
        print(f"{g:16s} {qn:42s} {st['n']:5d} {row['accuracy']:9.3f} {maj:9.3f} {row['uniform']:7.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"checkpoint": a.ckpt, "data": a.data, "results": out}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Offline evaluation of a checkpoint directory on held-out recorded shards (qvla_train/evaluate.py): sampled
chunks (Euler, --steps) vs the expert's labels in normalised units, with and without images, per group.

usage: nice -n 5 /usr/bin/python3 tools/train/eval_offline.py --ckpt RUN_DIR/ckpt --data DIR [--data DIR2 ...]
          [--n 64] [--steps 10] [--threads 2] [--json OUT.json]
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads crawl on shared, busy cores

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_train.model import QVLAModel  # noqa: E402
from qvla_train.checkpoint import load_weights_into  # noqa: E402
from qvla_train.data import load_shards, TokenTable  # noqa: E402
from qvla_train.evaluate import evaluate, format_eval  # noqa: E402
from qvla_ref.config import load_preprocessor  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--n", type=int, default=64, help="samples per group")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    with open(os.path.join(a.ckpt, "config.json")) as f:
        cfg = json.load(f)
    m = QVLAModel(cfg, torch.float32, gdn_chunk=128)
    load_weights_into(m, a.ckpt)
    pp = load_preprocessor(a.ckpt)
    shards = load_shards(a.data, pp, m.vc.merge, m.vc.patch, log=lambda *x: None)
    tt = TokenTable(os.path.join(a.ckpt, "tokenizer.json"))
    ok = []
    for s in shards:
        s.check(m.image_token_id, m.vc.merge, (m.dc.h_max, m.dc.k_max, m.dc.s_max),
                vocab=m.tc.vocab_size, im_start=tt.id("<|im_start|>"))
        try:
            for i in range(s.n):
                s.t2a_ids(i, tt)
            ok.append(True)
        except ValueError:
            ok.append(False)
    res = evaluate(m, shards, tt, cfg["text_config"]["eos_token_id"], a.n, steps=a.steps, t2a_ok=ok)
    print(format_eval(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()

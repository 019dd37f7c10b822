#!/usr/bin/python3
"""Training speed: sec/step and its parts for some batch sizes, on the given shards.

usage: nice -n 5 /usr/bin/python3 tools/train/bench.py --data DIR [--batch 32 64] [--steps 8] [--warm 2]
          [--config tools/train/configs/toy.json] [--profile]
Prints, per batch size, the median over --steps of: batch assembly, forward, backward, optimizer (+ EMA), and the
mean prompt length. Text (VQA) steps and plain steps are timed separately (text_frac of the steps are text steps).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads crawl on shared, busy cores

import argparse
import statistics
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train  # noqa: E402
from qvla_train.objective import batch_loss  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--config", default=os.path.join(HERE, "configs", "toy.json"))
    ap.add_argument("--extra", default="", help="extra train.py arguments, e.g. '--draws 2'")
    ap.add_argument("--profile", action="store_true")
    b = ap.parse_args()
    out = tempfile.mkdtemp()
    for B in b.batch:
        argv = sum([["--data", d] for d in b.data], []) + ["--out", out, "--config", b.config, "--batch", str(B),
                                                           "--quiet"] + b.extra.split()
        a = train.parse_args(argv)
        tr = train.Trainer(a, log=lambda *x: None)
        times = {"plain": [], "text": []}
        parts = {k: [] for k in ("batch", "forward", "backward", "optim")}
        lens = []
        prof = None
        for s in range(b.warm + b.steps):
            if b.profile and s == b.warm:
                prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                prof.__enter__()
            t0 = time.perf_counter()
            bt, gen = tr.make_batch(s)
            t1 = time.perf_counter()
            o = batch_loss(tr.model, bt, gen, a.draws, a.text_weight, a.tau_s, a.tau_alpha)
            t2 = time.perf_counter()
            tr.opt.zero_grad(set_to_none=True)
            o["loss"].backward()
            t3 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(tr.model.parameters(), a.clip)
            tr.opt.step()
            if tr.ema is not None:
                with torch.no_grad():
                    for nm, p in tr.model.named_parameters():
                        tr.ema[nm].mul_(0.999).add_(p.detach(), alpha=0.001)
            t4 = time.perf_counter()
            if s >= b.warm:
                times["text" if bt.vqa is not None else "plain"].append(t4 - t0)
                for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    parts[k].append(v)
                lens.append(float(bt.act.lens.float().mean()))
        if prof is not None:
            prof.__exit__(None, None, None)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        allt = times["plain"] + times["text"]
        med = {k: statistics.median(v) for k, v in parts.items()}
        print(f"batch {B:4d}: {statistics.mean(allt):.3f} s/step mean  (plain {statistics.median(times['plain']) if times['plain'] else float('nan'):.3f}, "
              f"with VQA {statistics.median(times['text']) if times['text'] else float('nan'):.3f} median)  "
              + "  ".join(f"{k} {v:.3f}" for k, v in med.items())
              + f"  prompt {statistics.mean(lens):.0f} tokens, draws {a.draws}", flush=True)


if __name__ == "__main__":
    main()

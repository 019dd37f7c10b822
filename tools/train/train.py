#!/usr/bin/python3
"""Train a qvla checkpoint on recorded shards (src/worlds/README.md) — see tools/train/README.md.

usage: nice -n 5 /usr/bin/python3 tools/train/train.py --data DIR [--data DIR2 ...] --out RUN_DIR
           --config tools/train/configs/toy.json --steps N --batch B --seed S [--resume] [options]

RUN_DIR gets: args.json (the run's arguments), log.csv (step,loss,fm_loss,text_loss,lr,sec_per_step,grad_norm,
n_text), state.pt (model, EMA, optimizer, step; every --ckpt-every steps and at the end), and ckpt -> ckpt-STEP/
(config.json, model.safetensors F32, tokenizer.json, embodiments.json, preprocessor_config.json, training.json),
published atomically at the same times.
Determinism: the batch of step t is drawn from numpy default_rng([seed, t]) and its noise/tau from a torch
Generator seeded with (seed, t), so a run and a --resume'd run give bit-identical weights (same machine, same
thread count).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads crawl on shared, busy cores

import argparse
import csv
import json
import math
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_train import REPO, REF  # noqa: E402
from qvla_train.model import QVLAModel  # noqa: E402
from qvla_train.init import init_weights, no_decay  # noqa: E402
from qvla_train.data import load_shards, merge_embodiments, Sampler, TokenTable, build_batch  # noqa: E402
from qvla_train.objective import batch_loss  # noqa: E402
from qvla_train.aux import AuxHead, n_targets, shard_targets  # noqa: E402
from qvla_train.checkpoint import publish_ckpt, preprocessor_config, load_weights_into  # noqa: E402
from qvla_train.evaluate import evaluate, format_eval  # noqa: E402

sys.path.insert(0, REF)
from make_checkpoint import fill_config  # noqa: E402

LOG_FIELDS = ["step", "loss", "fm_loss", "text_loss", "lr", "sec_per_step", "grad_norm", "n_text", "aux_loss", "aux_cell_acc"]
VAL_FIELDS = ["step", "group", "n", "mse", "mse_t2a", "fm", "base", "blind"]
RUN_KEYS = ["data", "config", "steps", "batch", "seed", "lr", "min_lr", "warmup", "weight_decay", "beta2", "clip",
            "draws", "t2a_frac", "text_frac", "text_rows", "text_weight", "ema", "balance", "tau_s", "tau_alpha",
            "gdn_chunk", "init", "init_from", "tokenizer", "min_pixels", "max_pixels", "threads", "val", "val_n",
            "aux_weight", "aux_trail", "aux_scale", "group_weights"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, help="directory of shards (repeatable)")
    ap.add_argument("--out", required=True, help="run directory")
    ap.add_argument("--config", default=os.path.join(HERE, "configs", "toy.json"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue RUN_DIR/state.pt with the saved args.json")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    ap.add_argument("--min-lr", type=float, default=0.1, help="final lr as a fraction of --lr (cosine)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--clip", type=float, default=1.0, help="global grad-norm clip")
    ap.add_argument("--draws", type=int, default=4, help="noise/tau draws per VLM forward")
    ap.add_argument("--t2a-frac", type=float, default=0.1, help="fraction of rows with the images removed")
    ap.add_argument("--text-frac", type=float, default=0.5, help="fraction of steps that add the VQA text loss")
    ap.add_argument("--text-rows", type=float, default=0.25, help="VQA rows per such step, as a fraction of --batch")
    ap.add_argument("--text-weight", type=float, default=0.2)
    ap.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights (0: off)")
    ap.add_argument("--balance", default="group", choices=["group", "shard", "sample"])
    ap.add_argument("--tau-s", type=float, default=0.999)
    ap.add_argument("--tau-alpha", type=float, default=1.5)
    ap.add_argument("--gdn-chunk", type=int, default=128)
    ap.add_argument("--init", default="fan_in", choices=["fan_in", "hf"],
                    help="random init scheme (qvla_train/init.py): fan_in = N(0, 1/fan_in); hf = N(0, 0.02^2)")
    ap.add_argument("--init-from", default=None, help="start from this checkpoint directory instead of random init")
    ap.add_argument("--tokenizer", default=os.path.join(REPO, "weights/tiny/tokenizer.json"))
    ap.add_argument("--min-pixels", type=int, default=4096)
    ap.add_argument("--max-pixels", type=int, default=16384)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--log-every", type=int, default=10, help="stdout progress every N steps (log.csv: every step)")
    ap.add_argument("--val", action="append", default=[], help="held-out shard directory (repeatable): sampled-chunk "
                    "MSE of the exported (EMA) weights at every checkpoint, in RUN_DIR/val.csv")
    ap.add_argument("--val-n", type=int, default=64, help="held-out samples per group")
    ap.add_argument("--aux-weight", type=float, default=0.0,
                    help="weight of the auxiliary localisation loss (qvla_train/aux.py; training only, the head is "
                    "not exported); 0: off")
    ap.add_argument("--aux-trail", action="store_true",
                    help="ball frames also get each earlier trail dot's position as an auxiliary target (aux.py)")
    ap.add_argument("--aux-scale", type=float, default=1.0,
                    help="> 1: auxiliary position targets multiplied by this, smooth-L1 instead of MSE (aux.py)")
    ap.add_argument("--group-weights", default="",
                    help="with --balance group: relative draw weights by world, e.g. 'ball=2' (others 1)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="testing: save state + ckpt and exit after this many steps of this process")
    return ap.parse_args(argv)


def parse_group_weights(text):
    """'ball=2,nav=1' -> {'ball': 2.0, 'nav': 1.0}; worlds not named weigh 1."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, sep, v = part.partition("=")
        try:
            w = float(v)
        except ValueError:
            w = -1
        if not sep or not k or not w > 0:
            raise ValueError(f"--group-weights: expected WORLD=POSITIVE_NUMBER, got {part!r}")
        out[k.strip()] = w
    return out


def lr_at(a, step):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (a.min_lr + (1 - a.min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def step_generators(seed, step):
    rng = np.random.default_rng([seed, step])
    gen = torch.Generator().manual_seed((seed * 1_000_003 + step) % (2 ** 62))
    return rng, gen


def atomic_torch_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    def __init__(self, a, log=print):
        self.a = a
        self.log = log
        torch.set_num_threads(a.threads)
        torch.set_flush_denormal(True)     # AdamW moments and GDN decays underflow: denormals are 100x slower
        torch.manual_seed(a.seed)          # nothing draws from it (every draw uses a seeded generator); for safety
        with open(a.config) as f:
            cfg = json.load(f)
        self.cfg = fill_config(cfg, a.tokenizer)
        self.model = QVLAModel(self.cfg, torch.float32, gdn_chunk=a.gdn_chunk)
        if a.init_from:
            load_weights_into(self.model, a.init_from)
        else:
            init_weights(self.model, a.seed, a.init)
        self.pp = {"min_pixels": a.min_pixels, "max_pixels": a.max_pixels}
        m = self.model
        self.shards = load_shards(a.data, self.pp, m.vc.merge, m.vc.patch, log=log)
        self.tt = TokenTable(a.tokenizer)
        chk = dict(vocab=m.tc.vocab_size, im_start=self.tt.id("<|im_start|>"))
        for s in self.shards:
            s.check(m.image_token_id, m.vc.merge, (m.dc.h_max, m.dc.k_max, m.dc.s_max), **chk)
        self.embodiments = merge_embodiments(a.data)
        for s in self.shards:
            if s.embodiment not in self.embodiments["embodiments"]:
                raise ValueError(f"{s.path}: embodiment {s.embodiment} not in embodiments.json")
        self.pad_id = self.cfg["text_config"]["eos_token_id"]
        self.t2a_ok = []
        for s in self.shards:           # the T2A rule must hold on every sample of a shard, else no T2A there
            try:
                for i in range(s.n):
                    s.t2a_ids(i, self.tt)
                self.t2a_ok.append(True)
            except ValueError as e:
                log(f"[data] {s.path}: no T2A rows ({e})")
                self.t2a_ok.append(False)
        self.aux = None
        if a.aux_weight > 0:
            for s in self.shards:
                s.aux_T, s.aux_M = shard_targets(s, a.aux_trail)
                log(f"[aux] {os.path.basename(s.path)}: targets obj {s.aux_M[:, 0].mean():.3f} "
                    f"aux {s.aux_M[:, 2].mean():.3f} of {s.n}")
            torch.manual_seed(a.seed + 7919)
            self.aux = AuxHead(m.tc.hidden_size, m.dc.hidden_size, n_targets(a.aux_trail))
        self.sampler = Sampler(self.shards, a.balance, parse_group_weights(a.group_weights))
        n = sum(s.n for s in self.shards)
        log(f"[data] {len(self.shards)} shards, {n} samples, {len(self.sampler.groups)} sampling groups "
            f"({a.balance}); RAM frames {sum(s.frames.nbytes for s in self.shards) / 2 ** 20:.0f} MiB")
        decay = [p for nm, p in m.named_parameters() if not no_decay(nm, p)]
        rest = [p for nm, p in m.named_parameters() if no_decay(nm, p)]
        groups = [{"params": decay, "weight_decay": a.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        if self.aux is not None:
            groups.append({"params": list(self.aux.parameters()), "weight_decay": a.weight_decay})
        self.opt = torch.optim.AdamW(groups,
                                     lr=a.lr, betas=(0.9, a.beta2), eps=1e-8)
        self.ema = {nm: p.detach().clone() for nm, p in m.named_parameters()} if a.ema > 0 else None
        self.val = None
        if a.val:
            self.val = load_shards(a.val, self.pp, m.vc.merge, m.vc.patch, log=log)
            for s in self.val:
                s.check(m.image_token_id, m.vc.merge, (m.dc.h_max, m.dc.k_max, m.dc.s_max), **chk)
            self.val_t2a_ok = []
            for s in self.val:
                try:
                    for i in range(s.n):
                        s.t2a_ids(i, self.tt)
                    self.val_t2a_ok.append(True)
                except ValueError:
                    self.val_t2a_ok.append(False)
            self.eval_model = QVLAModel(self.cfg, torch.float32, gdn_chunk=a.gdn_chunk)
        self.step = 0
        nparam = sum(p.numel() for p in m.parameters())
        log(f"[model] {nparam} parameters ({nparam * 4 / 1e6:.2f} MB f32), vlm_layer {m.dc.vlm_layer}")

    # -------------------------------------------------------------- state
    def state_dict(self):
        return {"step": self.step, "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "ema": self.ema, "args": {k: getattr(self.a, k) for k in RUN_KEYS},
                "torch_rng": torch.get_rng_state(),
                "aux": None if self.aux is None else self.aux.state_dict()}

    def load_state(self, sd):
        self.model.load_state_dict(sd["model"])
        if self.aux is not None:
            self.aux.load_state_dict(sd["aux"])
        self.opt.load_state_dict(sd["opt"])
        if self.ema is not None:
            self.ema = sd["ema"]
        self.step = sd["step"]
        torch.set_rng_state(sd["torch_rng"])

    # -------------------------------------------------------------- one step
    def make_batch(self, step):
        a = self.a
        rng, gen = step_generators(a.seed, step)
        picks = self.sampler.draw(rng, a.batch)
        t2a = (rng.random(a.batch) < a.t2a_frac) & np.array([self.t2a_ok[si] for si, _ in picks])
        vqa_rows = []
        if rng.random() < a.text_frac:
            n = max(1, int(round(a.text_rows * a.batch)))
            vqa_rows = [b for b in range(n) if self.shards[picks[b][0]].has_vqa
                        and self.shards[picks[b][0]].vqa_len[picks[b][1]] > 0]
        m = self.model
        bt = build_batch(self.shards, picks, t2a, vqa_rows, self.tt, m.image_token_id, self.pad_id, m.vc.merge)
        return bt, gen

    def train_step(self, step):
        a = self.a
        lr = lr_at(a, step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        bt, gen = self.make_batch(step)
        out = batch_loss(self.model, bt, gen, a.draws, a.text_weight, a.tau_s, a.tau_alpha,
                         aux_head=self.aux, aux_weight=a.aux_weight, aux_scale=a.aux_scale)
        loss = out["loss"]
        self.opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: non-finite loss {float(loss)}")
        loss.backward()
        params = list(self.model.parameters()) + ([] if self.aux is None else list(self.aux.parameters()))
        gn = torch.nn.utils.clip_grad_norm_(params, a.clip)
        if not torch.isfinite(gn):
            raise FloatingPointError(f"step {step}: non-finite gradient norm")
        self.opt.step()
        if self.ema is not None:
            d = min(a.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for nm, p in self.model.named_parameters():
                    self.ema[nm].mul_(d).add_(p.detach(), alpha=1 - d)
        self.step = step + 1
        return {"loss": float(loss), "fm_loss": float(out["fm"]),
                "text_loss": float(out["text"]) if "text" in out else None, "lr": lr, "grad_norm": float(gn),
                "n_text": 0 if bt.vqa is None else len(bt.vqa.lens),
                "aux": float(out["aux"]) if "aux" in out else None,
                "aux_cell_acc": float(out["aux_cell_acc"]) if "aux_cell_acc" in out else None,
                "aux_parts": {k[4:]: float(v) for k, v in out.items() if k.startswith("aux_") and k != "aux_cell_acc"}}

    # -------------------------------------------------------------- checkpoints
    def export_weights(self):
        if self.ema is not None:
            return self.ema
        return {nm: p.detach() for nm, p in self.model.named_parameters()}

    def validate(self):
        with torch.no_grad():
            for nm, p in self.eval_model.named_parameters():
                p.copy_(self.export_weights()[nm])
        return evaluate(self.eval_model, self.val, self.tt, self.pad_id, self.a.val_n, t2a_ok=self.val_t2a_ok)

    def save(self, run_dir):
        atomic_torch_save(self.state_dict(), os.path.join(run_dir, "state.pt"))
        extra = {"step": self.step, "weights": "ema" if self.ema is not None else "raw",
                 "args": {k: getattr(self.a, k) for k in RUN_KEYS}}
        publish_ckpt(run_dir, self.step, self.cfg, self.export_weights(), self.a.tokenizer, self.embodiments,
                     preprocessor_config(self.cfg, self.a.min_pixels, self.a.max_pixels), extra)


def read_log(path, upto):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto]


def main(argv=None):
    a = parse_args(argv)
    run = a.out
    os.makedirs(run, exist_ok=True)
    args_path = os.path.join(run, "args.json")
    state_path = os.path.join(run, "state.pt")
    sd = None
    if a.resume:
        if not os.path.exists(state_path):
            sys.exit(f"--resume: {state_path} does not exist")
        with open(args_path) as f:
            saved = json.load(f)
        for k in RUN_KEYS:
            if k in saved and saved[k] != getattr(a, k):
                print(f"[resume] {k}: using the run's {saved[k]!r} (command line had {getattr(a, k)!r})")
                setattr(a, k, saved[k])
        sd = torch.load(state_path)
    else:
        if os.path.exists(state_path):
            sys.exit(f"{state_path} exists: use --resume, or another --out")
        with open(args_path, "w") as f:
            json.dump({k: getattr(a, k) for k in RUN_KEYS}, f, indent=2, sort_keys=True)
            f.write("\n")
    tr = Trainer(a)
    if sd is not None:
        tr.load_state(sd)
        print(f"[resume] from step {tr.step}")
    log_path = os.path.join(run, "log.csv")
    for path, fields in ((log_path, LOG_FIELDS), (os.path.join(run, "val.csv"), VAL_FIELDS)):
        if path == log_path or os.path.exists(path):      # drop rows past the resumed step (they are redone)
            rows = read_log(path, tr.step)
            with open(path + ".tmp", "w", newline="") as f:
                w = csv.DictWriter(f, fields)
                w.writeheader()
                w.writerows(rows)
            os.replace(path + ".tmp", path)
    logf = open(log_path, "a", newline="")
    w = csv.DictWriter(logf, LOG_FIELDS)
    t_last = time.time()
    acc = []
    done = 0
    while tr.step < a.steps:
        s = tr.step
        t0 = time.time()
        r = tr.train_step(s)
        dt = time.time() - t0
        w.writerow({"step": s + 1, "loss": f"{r['loss']:.6g}", "fm_loss": f"{r['fm_loss']:.6g}",
                    "text_loss": "" if r["text_loss"] is None else f"{r['text_loss']:.6g}", "lr": f"{r['lr']:.6g}",
                    "sec_per_step": f"{dt:.4f}", "grad_norm": f"{r['grad_norm']:.4g}", "n_text": r["n_text"],
                    "aux_loss": "" if r["aux"] is None else f"{r['aux']:.6g}",
                    "aux_cell_acc": "" if r["aux_cell_acc"] is None else f"{r['aux_cell_acc']:.4g}"})
        acc.append(r)
        if (s + 1) % a.log_every == 0 or s + 1 == a.steps:
            logf.flush()
            if not a.quiet:
                fm = np.mean([x["fm_loss"] for x in acc])
                tl = [x["text_loss"] for x in acc if x["text_loss"] is not None]
                el = time.time() - t_last
                al = [x["aux"] for x in acc if x["aux"] is not None]
                ac = [x["aux_cell_acc"] for x in acc if x["aux_cell_acc"] is not None]
                parts = {}
                for x in acc:
                    for k, v in (x.get("aux_parts") or {}).items():
                        parts.setdefault(k, []).append(v)
                auxs = (f"aux {np.mean(al):.3f} (" + " ".join(f"{k} {np.mean(v):.3f}" for k, v in sorted(parts.items()))
                        + f") cell-acc {np.mean(ac):.2f}  ") if al else ""
                print(f"step {s + 1:6d}/{a.steps}  fm {fm:.4f}  text {np.mean(tl) if tl else float('nan'):.3f}  {auxs}"
                      f"lr {r['lr']:.2e}  |g| {r['grad_norm']:.2f}  {el / len(acc):.3f} s/step  "
                      f"eta {(a.steps - s - 1) * el / len(acc) / 60:.1f} min", flush=True)
            acc = []
            t_last = time.time()
        done += 1
        stop = a.stop_after and done >= a.stop_after
        if tr.step % a.ckpt_every == 0 or tr.step == a.steps or stop:
            logf.flush()
            tr.save(run)
            if not a.quiet:
                print(f"[ckpt] step {tr.step}: {os.path.join(run, 'ckpt')} -> ckpt-{tr.step:07d}", flush=True)
            if tr.val is not None:
                t0 = time.time()
                res = tr.validate()
                vp = os.path.join(run, "val.csv")
                new = not os.path.exists(vp)
                with open(vp, "a", newline="") as f:
                    vw = csv.DictWriter(f, VAL_FIELDS)
                    if new:
                        vw.writeheader()
                    for g, v in res.items():
                        vw.writerow({"step": tr.step, "group": g, **{k: (f"{x:.6g}" if isinstance(x, float) else x)
                                                                    for k, x in v.items()}})
                if not a.quiet:
                    print(f"[val] step {tr.step} ({time.time() - t0:.0f} s)\n" + format_eval(res), flush=True)
        if stop:
            break
    logf.close()


if __name__ == "__main__":
    main()

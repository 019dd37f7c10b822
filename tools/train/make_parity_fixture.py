#!/usr/bin/python3
"""Parity fixture of a trained checkpoint: the training port's actions on world observations, for
test/model/toy.parity.test.ts (qvla's act() must give the same chunk from the same inputs and noise).

usage: nice -n 10 /usr/bin/python3 tools/train/make_parity_fixture.py CKPT_DIR OUT.safetensors
       (needs the compiled TypeScript: npx tsc -p tsconfig.json; ~1 min on a busy 2-core machine)

The inputs come from the TypeScript side, never from a Python copy of the worlds: this script runs
`node tools/train/parity_inputs.mjs CKPT_DIR TMP` (cases: TOY_PARITY_CASES in src/testing/toyParity.ts), which
writes per case the camera frames (U8), the action-prompt ids act() builds, the normalised state and the noise
`qvla eval` draws for that decision (Rng(decisionSeed(seed, decision)).normals(h_max*k_max), src/util/rng.ts).

The reference is the *training port* (qvla_train.model.QVLAModel) with a float64 copy of the checkpoint's F32
weights: vision tower (engine preprocessing, no resize), text decoder up to hidden_states[vlm_layer], DiT with the
sampler of tools/reference/qvla_ref/sampling.py (the engine's solvers and time grid, velocities masked), for every
(solver, steps) of the case (Euler 10 and Heun 4, uniform grid). The same port in float32 is run too; its
deviation from float64 is stored (metadata) as a yardstick for the engine's own float32 error.

Output tensors (sorted names; metadata JSON with sorted keys, no timestamps or paths: the file is a function of
the checkpoint and the sources), per case NAME:
  NAME.frames U8 [C, H, W, 3]  NAME.input_ids I32 [L]  NAME.state F32 [s_max]  NAME.noise F32 [h_max, k_max]
  NAME.SOLVER_STEPS.raw          F32 [h_max, k_max]  the float64 port's chunk (normalised, masked), rounded to F32
  NAME.SOLVER_STEPS.raw_f32      F32 [h_max, k_max]  the float32 port's chunk
  NAME.SOLVER_STEPS.actions      F32 [h_e, k_e]      physical actions (unnormalised, relative channels + state,
                                                     gripper binarised) from the float64 chunk
  NAME.SOLVER_STEPS.actions_cont F32 [h_e, k_e]      the same before binarising the gripper
  CASE0.vlm_hidden               F32 [L, d_vlm]      hidden_states[vlm_layer] of the first case (float64 port)
__metadata__.parity: JSON {cases: [...the inputs' case records + f32 port errors], checkpoint_sha256 (of
model.safetensors: the test refuses a fixture made from other weights), h_max, k_max, s_max, vlm_layer}.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads crawl on shared, busy cores

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_train import REPO  # noqa: E402
from qvla_train.model import QVLAModel, time_bucket  # noqa: E402
from qvla_train.checkpoint import load_weights_into  # noqa: E402
from qvla_train.data import frames_to_pixel_values, Seq  # noqa: E402
from qvla_ref import safetensors_io as st  # noqa: E402
from qvla_ref.rope_index import rope_index  # noqa: E402
from qvla_ref.sampling import sample  # noqa: E402
from qvla_ref.embodiment import unnormalize  # noqa: E402


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def make_inputs(ckpt, path):
    r = subprocess.run(["node", os.path.join(HERE, "parity_inputs.mjs"), ckpt, path], cwd=REPO,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"parity_inputs.mjs failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    print(r.stdout.strip())


@torch.no_grad()
def run_case(m, c, T, dims):
    """The chunks of one case for every (solver, steps), and hidden_states[vlm_layer], in m's dtype."""
    W = m.weights()
    dc = m.dc
    n = c["name"]
    ids = T[f"{n}.input_ids"].astype(np.int64)
    grids = [tuple(g) for g in c["image_grids"]]
    mm = (ids == m.image_token_id).astype(np.int32)
    pos3, _ = rope_index(mm, grids, m.vc.merge)
    seq = Seq([(ids, pos3, [(0, k) for k in range(len(grids))])], m.image_token_id, 0)
    vis = None
    if grids:
        fr = T[f"{n}.frames"]
        toks = [m.vision(W, frames_to_pixel_values(fr[k:k + 1], m.vc.patch, m.vc.temporal, m.vc.merge,
                                                   fold=False, dtype=m.dtype), g)[0]
                for k, g in enumerate(grids)]
        vis = torch.cat(toks, 0)
    if int(mm.sum()) != (0 if vis is None else vis.shape[0]):
        raise ValueError(f"{n}: {int(mm.sum())} image pads for {0 if vis is None else vis.shape[0]} vision tokens")
    h = m.embed(W, seq.ids, seq.img_index, vis)
    ctx = m.text(W, h, seq.pos3, upto=dc.vlm_layer)[dc.vlm_layer]            # [1, L, D]
    kv = m.dit_cross(W, ctx)
    has = torch.tensor([c["state_raw"] is not None])
    stt = m.dit_state(W, torch.from_numpy(T[f"{n}.state"].astype(np.float64))[None], has)
    h_e, k_e = c["h_e"], c["k_e"]
    he_t = torch.tensor([h_e])
    mask = ((torch.arange(dc.h_max)[:, None] < h_e) & (torch.arange(dc.k_max)[None, :] < k_e)).to(m.dtype)
    kmask = torch.ones(1, ctx.shape[1], dtype=torch.bool)

    def vel(y, tau):
        b = time_bucket(torch.tensor([[float(tau)]], dtype=torch.float64), dc.num_buckets)
        return m.dit_velocity(W, y[None, None], b, stt, he_t, kv, kmask)[0, 0]

    noise = torch.from_numpy(T[f"{n}.noise"].astype(np.float64)).to(m.dtype)
    out = {}
    for solver, steps in c["samples"]:
        out[f"{solver}_{steps}"] = sample(vel, noise, mask, steps, solver, "uniform", dc.time_shift)
    return out, ctx[0]


def physical(entry, y, state_raw, h_e, k_e):
    """act()'s unnormalisation (src/policy/embodiments.ts unnormalizeActions) in float64: (continuous, final)."""
    x = unnormalize(entry, "action", np.asarray(y, np.float64)[:h_e, :k_e])
    a = entry["action"]
    if any(a["relative"]):
        names = entry["state"]["names"]
        for ch, rel in enumerate(a["relative"]):
            if rel:
                x[:, ch] += state_raw[names.index(a["names"][ch])]
    cont = x.copy()
    if a.get("binarize_gripper"):
        for g in a["gripper"]:
            x[:, g] = (x[:, g] >= 0.5).astype(np.float64)
    return cont, x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    with open(os.path.join(a.ckpt, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(a.ckpt, "embodiments.json")) as f:
        reg = json.load(f)["embodiments"]
    tmp = tempfile.mkdtemp(prefix="qvla-parity-")
    try:
        make_inputs(a.ckpt, os.path.join(tmp, "inputs.safetensors"))
        T, _, meta = st.load_file(os.path.join(tmp, "inputs.safetensors"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    inp = json.loads(meta["parity_inputs"])
    models = {}
    for dt in (torch.float64, torch.float32):
        models[dt] = QVLAModel(cfg, dt, gdn_chunk=128)
        load_weights_into(models[dt], a.ckpt)
    dc = models[torch.float64].dc
    for k, v in (("h_max", dc.h_max), ("k_max", dc.k_max), ("s_max", dc.s_max)):
        if inp[k] != v:
            sys.exit(f"inputs {k} {inp[k]} != config {v}")
    tensors, dtypes = {}, {}

    def put(name, arr, dtype):
        tensors[name] = np.ascontiguousarray(arr)
        dtypes[name] = dtype

    cases = []
    for ci, c in enumerate(inp["cases"]):
        n = c["name"]
        for key in (f"{n}.frames", f"{n}.input_ids", f"{n}.state", f"{n}.noise"):
            if key in T:
                put(key, T[key], {"uint8": "U8", "int32": "I32", "float32": "F32"}[str(T[key].dtype)])
        r64, ctx = run_case(models[torch.float64], c, T, inp)
        r32, ctx32 = run_case(models[torch.float32], c, T, inp)
        rec = dict(c)
        rec["f32_port_err"] = {}
        if ci == 0:
            put(f"{n}.vlm_hidden", ctx.numpy().astype(np.float32), "F32")
            rec["vlm_hidden_f32_port_err"] = float((ctx32.double() - ctx).abs().max())
            rec["vlm_hidden_max_abs"] = float(ctx.abs().max())
        for key, y in r64.items():
            y32 = r32[key]
            put(f"{n}.{key}.raw", y.numpy().astype(np.float32), "F32")
            put(f"{n}.{key}.raw_f32", y32.numpy().astype(np.float32), "F32")
            cont, x = physical(reg[c["embodiment"]], y.numpy(), c["state_raw"], c["h_e"], c["k_e"])
            put(f"{n}.{key}.actions", x.astype(np.float32), "F32")
            put(f"{n}.{key}.actions_cont", cont.astype(np.float32), "F32")
            err = float((y32.double() - y).abs().max())
            rec["f32_port_err"][key] = err
            print(f"  {n:16s} {key:9s} max|raw| {float(y.abs().max()):.3f}  f32 port vs f64: {err:.2e}")
        cases.append(rec)
    md = {"cases": cases, "checkpoint_sha256": sha256(os.path.join(a.ckpt, "model.safetensors")),
          "h_max": dc.h_max, "k_max": dc.k_max, "s_max": dc.s_max, "vlm_layer": dc.vlm_layer,
          "vlm_hidden_case": inp["cases"][0]["name"],
          "reference": "tools/train/qvla_train QVLAModel float64 + qvla_ref.sampling (make_parity_fixture.py)"}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    st.save_file(tensors, a.out, dtypes, {"parity": json.dumps(md, sort_keys=True)})
    print(f"{a.out}: {len(cases)} cases, {len(tensors)} tensors ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()

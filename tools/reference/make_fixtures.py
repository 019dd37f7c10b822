#!/usr/bin/python3
"""Generate the golden fixtures under test/fixtures/ (and the sample images under weights/tiny/samples/).

usage: /usr/bin/python3 tools/reference/make_fixtures.py [--repo ROOT] [--only NAME ...]

Every fixture is one safetensors file computed by the float64 PyTorch reference (qvla_ref) and stored
as F32 (ids as I32, images as U8). Tensor names are listed in tools/reference/README.md; the JSON
`__metadata__["case"]` describes the case.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_ref import safetensors_io as st  # noqa: E402
from qvla_ref.model import QVLA  # noqa: E402
from qvla_ref.png import write_png, read_png, scene  # noqa: E402
from qvla_ref.prompt import action_prompt, action_prompt_text, chat_prompt, chat_prompt_text, image_token_count  # noqa: E402
from qvla_ref.tokenizer import Tokenizer  # noqa: E402
from qvla_ref.vision import vision_forward, interp_pos_embed  # noqa: E402
from qvla_ref.dit import CrossKV, encode_state, dit_velocity, action_mask, time_bucket  # noqa: E402
from qvla_ref.sampling import sample, time_grid  # noqa: E402
from qvla_ref.embodiment import unnormalize  # noqa: E402

SAMPLES = [  # (file, seed, kind)
    ("aloha_cam_high.png", 11, "table"),
    ("aloha_cam_left_wrist.png", 12, "table"),
    ("aloha_cam_right_wrist.png", 13, "table"),
    ("widowx_image_0.png", 21, "table"),
    ("nav_front.png", 31, "floor"),
]

SAMPLERS = [  # (name, steps, solver, grid)
    ("euler_1", 1, "euler", "uniform"),
    ("euler_4", 4, "euler", "uniform"),
    ("euler_10", 10, "euler", "uniform"),
    ("heun_4", 4, "heun", "uniform"),
    ("midpoint_4", 4, "midpoint", "uniform"),
    ("rk4_4", 4, "rk4", "uniform"),
    ("euler_4_cosine", 4, "euler", "cosine"),
    ("euler_4_shift", 4, "euler", "shift"),
]

VEL_TAUS = [1.0, 0.73, 0.25]


def f32(x):
    """Round to float32 and back to float64 (inputs are stored as F32, so use exactly those values)."""
    return torch.as_tensor(np.asarray(torch.as_tensor(x).detach().numpy(), dtype=np.float32).astype(np.float64))


def make_samples(repo):
    d = os.path.join(repo, "weights/tiny/samples")
    os.makedirs(d, exist_ok=True)
    for fn, seed, kind in SAMPLES:
        write_png(os.path.join(d, fn), scene(120, 160, seed, kind))


def build_case(repo, name, ckpt_rel, images, prompt, dit_case, seed, light=False, keep_pv=None):
    """images: list of (camera, uint8 [H,W,3], source description).
    prompt: {"kind": "action", "embodiment": key, "instruction": str} or {"kind": "chat", "text": str}.
    dit_case: {"h_e", "k_e", "state": np.array or None} or None.
    light: leave out the bulky intermediates (pixel_values, per-block vision outputs, cross K/V).
    keep_pv: indices of the images whose pixel_values are stored (default: all unless light)."""
    torch.manual_seed(seed)
    ckpt = os.path.join(repo, ckpt_rel)
    m = QVLA(ckpt)
    tok = Tokenizer.from_file(os.path.join(ckpt, "tokenizer.json"))
    T = {}
    meta = {"name": name, "checkpoint": ckpt_rel, "seed": seed, "dtype_note":
            "computed in float64 by tools/reference/qvla_ref from the stored weights; stored as F32",
            "images": [], "vlm_layer": m.dc.vlm_layer if m.dc else None,
            "hidden_states_indexing": "HF: 0 = embeddings, i = output of layer i-1 (i < N), N = final norm output"}
    entry = None
    pvs, grids = [], []
    for i, (cam, img, src) in enumerate(images):
        pv, grid, rs = m.preprocess(img)
        pvs.append(pv)
        grids.append(grid)
        T[f"input.image.{i}"] = img.astype(np.uint8)
        T[f"vision.resized.{i}"] = rs
        if (not light) if keep_pv is None else (i in keep_pv):
            T[f"vision.pixel_values.{i}"] = pv
        meta["images"].append({"camera": cam, "height": int(img.shape[0]), "width": int(img.shape[1]),
                               "source": src, "resized": [int(rs.shape[0]), int(rs.shape[1])],
                               "grid_thw": list(grid), "tokens": image_token_count(grid, m.vc.merge)})
    # prompt
    counts = [(cam, image_token_count(g, m.vc.merge)) for (cam, _, _), g in zip(images, grids)]
    if prompt["kind"] == "action":
        with open(os.path.join(ckpt, "embodiments.json")) as f:
            entry = json.load(f)["embodiments"][prompt["embodiment"]]
        ids = action_prompt(entry, prompt["instruction"], counts, tok)
        meta["prompt_text"] = action_prompt_text(entry, prompt["instruction"], [c for c, _ in counts])
    else:
        ids = chat_prompt(prompt["text"], [n for _, n in counts], thinking=False, tok=tok)
        meta["prompt_text"] = chat_prompt_text(prompt["text"], len(counts), thinking=False)
    meta["prompt"] = prompt
    L = len(ids)
    meta["seq_len"] = L
    # VLM forward (prefill, chunked GDN) + per-block vision outputs
    out = m.run_vlm(pvs, grids, ids)
    for i, (pv, g) in enumerate(zip(pvs, grids)):
        W, vc = m.W, m.vc
        wp = W["model.visual.patch_embed.proj.weight"].reshape(vc.hidden_size, -1)
        y, blocks = vision_forward(W, vc, pv, g, return_blocks=True)
        assert torch.equal(y, out["vision"][i])
        if not light:
            T[f"vision.patch_embed.{i}"] = pv @ wp.T + W["model.visual.patch_embed.proj.bias"]
            T[f"vision.pos_embed.{i}"] = interp_pos_embed(W["model.visual.pos_embed.weight"], vc.pos_side, g[1], g[2], vc.merge)
            for j, b in enumerate(blocks):
                T[f"vision.block.{j}.{i}"] = b
        T[f"vision.output.{i}"] = y
    T["input.input_ids"] = np.asarray(ids, dtype=np.int32)
    T["input.mm_token_type_ids"] = np.asarray(out["mm_token_type_ids"], dtype=np.int32)
    T["input.position_ids"] = out["pos3"].numpy().astype(np.int32)
    T["input.rope_delta"] = np.asarray([out["rope_delta"]], dtype=np.int32)
    T["input.image_grid_thw"] = np.asarray(grids, dtype=np.int32).reshape(-1, 3)
    for k, h in enumerate(out["hidden_states"]):
        T[f"text.hidden_states.{k}"] = h
    T["text.last_layer_output"] = out["last_layer_output"]
    T["text.logits_last4"] = out["logits"][-4:]
    # greedy decode with cache, checked against full recompute
    toks, dlog, _ = m.greedy_decode(pvs, grids, ids, 8)
    rlog = m.recompute_decode(pvs, grids, ids, toks)
    d = float((rlog - dlog).abs().max())
    assert d < 1e-9 and [int(t) for t in rlog.argmax(-1)] == toks, f"decode cache mismatch {d}"
    top2 = torch.topk(dlog, 2, dim=-1).values
    T["decode.tokens"] = np.asarray(toks, dtype=np.int32)
    T["decode.logits"] = dlog
    T["decode.margin"] = top2[:, 0] - top2[:, 1]
    meta["decode"] = {"n": 8, "cache_vs_recompute_max_abs": d, "min_top1_margin": float((top2[:, 0] - top2[:, 1]).min())}
    # action decoder
    if dit_case is not None and m.dc is not None:
        dc = m.dc
        h_e, k_e = dit_case["h_e"], dit_case["k_e"]
        vlm = f32(out["hidden_states"][dc.vlm_layer])     # DiT consumes exactly the stored F32 values
        T["dit.vlm_hidden"] = vlm
        T["dit.h_e"] = np.asarray([h_e], dtype=np.int32)
        T["dit.k_e"] = np.asarray([k_e], dtype=np.int32)
        T["dit.action_mask"] = action_mask(dc, h_e, k_e)
        state = dit_case.get("state")
        if state is not None:
            s = np.zeros(dc.s_max, dtype=np.float32)
            s[:len(state)] = np.asarray(state, dtype=np.float32)
            state = torch.from_numpy(s.astype(np.float64))
            T["dit.state"] = state
        T["dit.has_state"] = np.asarray([0 if state is None else 1], dtype=np.int32)
        cross = CrossKV(m.W, dc, vlm)
        if not light:
            T["dit.vl_norm"] = cross.c
            for i in sorted(cross.k):
                T[f"dit.cross_k.{i}"] = cross.k[i]
                T[f"dit.cross_v.{i}"] = cross.v[i]
        if entry is not None and state is not None and entry.get("state"):
            ns = len(entry["state"]["names"])
            T["dit.state_raw"] = unnormalize(entry, "state", state.numpy()[:ns])
        st_tok = encode_state(m.W, dc, state)
        T["dit.state_token"] = st_tok
        mask = action_mask(dc, h_e, k_e)
        g = torch.Generator().manual_seed(seed + 1)
        y = f32(torch.randn(dc.h_max, dc.k_max, generator=g, dtype=torch.float32)) * mask
        T["dit.vel.y"] = y
        T["dit.vel.tau"] = np.asarray(VEL_TAUS, dtype=np.float32)
        T["dit.vel.bucket"] = np.asarray([time_bucket(np.float32(t), dc.num_buckets) for t in VEL_TAUS], dtype=np.int32)
        for j, tau in enumerate(VEL_TAUS):
            tau = float(np.float32(tau))
            v = dit_velocity(m.W, dc, y, tau, st_tok, h_e, cross=cross)
            vu = dit_velocity(m.W, dc, y, tau, st_tok, h_e, vlm_hidden=vlm)
            assert torch.equal(v, vu), "cached vs uncached cross K/V differ"
            T[f"dit.vel.out.{j}"] = v
        noise = f32(torch.randn(dc.h_max, dc.k_max, generator=g, dtype=torch.float32))
        T["sample.noise"] = noise
        meta["samplers"] = {}
        for sname, steps, solver, grid in SAMPLERS:
            buckets = []

            def fn(yy, tau, _b=buckets):
                _b.append(time_bucket(tau, dc.num_buckets))
                return dit_velocity(m.W, dc, yy, tau, st_tok, h_e, cross=cross)

            yfin, traj = sample(fn, noise, mask, steps, solver, grid, dc.time_shift, return_all=True)
            assert float((yfin * (1 - mask)).abs().max()) == 0.0
            T[f"sample.{sname}"] = yfin
            if sname in ("euler_4", "heun_4"):
                T[f"sample.{sname}.traj"] = torch.stack(traj)
            T[f"sample.{sname}.buckets"] = np.asarray(buckets, dtype=np.int32)
            if sname == "euler_10" and entry is not None:
                T["action.euler_10.unnormalized"] = unnormalize(entry, "action", yfin.numpy()[:h_e, :k_e])
            meta["samplers"][sname] = {"steps": steps, "solver": solver, "grid": grid,
                                       "taus": time_grid(steps, grid, dc.time_shift), "buckets": buckets}
        meta["dit"] = {"h_e": h_e, "k_e": k_e, "state": None if state is None else [float(v) for v in state[:len(dit_case['state'])]],
                       "vel_taus": VEL_TAUS, "noise_seed": seed + 1,
                       "note": "dit.* and sample.* use dit.vlm_hidden (F32-rounded hidden_states[vlm_layer]) as input"}
    meta_s = json.dumps(meta, sort_keys=True)
    dts = {}
    Tn = {}
    for k, v in T.items():
        a = v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        Tn[k] = a
        assert a.dtype.kind != "f" or np.isfinite(a).all(), f"{name}: {k} not finite"
    path = os.path.join(repo, "test/fixtures", f"{name}.safetensors")
    n = st.save_file(Tn, path, dts, {"case": meta_s, "format": "qvla-fixture-v1"})
    print(f"{name}: {path} {n} bytes, {len(Tn)} tensors, L={L}, tokens={toks}")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.abspath(os.path.join(HERE, "../..")))
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    repo = a.repo
    make_samples(repo)
    sd = os.path.join(repo, "weights/tiny/samples")
    load = lambda fn: read_png(os.path.join(sd, fn))  # noqa: E731
    cases = {}
    # A: tiny, one camera image, widowx action prompt, with state
    cases["case_a_tiny_widowx"] = lambda: build_case(
        repo, "case_a_tiny_widowx", "weights/tiny",
        [("image_0", load("widowx_image_0.png"), "weights/tiny/samples/widowx_image_0.png")],
        {"kind": "action", "embodiment": "widowx", "instruction": "put the red block in the blue bowl"},
        {"h_e": 4, "k_e": 7, "state": [0.1, -0.35, 0.6, -0.9, 0.25, 0.0, 0.75, -0.5]}, seed=100)
    # B: second config (fixture_b: f32, untied head, Hq=Hkv, Hv=Hk, 2 shards), two odd-sized images
    rng = np.random.RandomState(7)
    cases["case_b_two_images"] = lambda: build_case(
        repo, "case_b_two_images", "test/fixtures/fixture_b",
        [("cam_a", scene(97, 131, 41, "table"), "scene(97, 131, seed=41, 'table')"),
         ("cam_b", scene(250, 170, 42, "floor"), "scene(250, 170, seed=42, 'floor')")],
        {"kind": "action", "embodiment": "testbot", "instruction": "  stack the cups  "},
        {"h_e": 7, "k_e": 9, "state": list(np.round(rng.uniform(-1, 1, 6), 4))}, seed=200, keep_pv=[1])
    # C: tiny, text only (T2A), navigation, no state
    cases["case_c_t2a_nav"] = lambda: build_case(
        repo, "case_c_t2a_nav", "weights/tiny", [],
        {"kind": "action", "embodiment": "nav", "instruction": "go to the kitchen and stop at the door"},
        {"h_e": 8, "k_e": 3, "state": None}, seed=300)
    # D: tiny, three cameras, aloha (H_e = h_max), state
    cases["case_d_tiny_aloha"] = lambda: build_case(
        repo, "case_d_tiny_aloha", "weights/tiny",
        [(c, load(f"aloha_{c}.png"), f"weights/tiny/samples/aloha_{c}.png")
         for c in ("cam_high", "cam_left_wrist", "cam_right_wrist")],
        {"kind": "action", "embodiment": "aloha", "instruction": "fold the towel"},
        {"h_e": 16, "k_e": 14, "state": list(np.round(np.linspace(-0.9, 0.9, 14), 3))}, seed=400, light=True)
    # E: tiny, chat prompt (VLM only), one image
    cases["case_e_tiny_chat"] = lambda: build_case(
        repo, "case_e_tiny_chat", "weights/tiny",
        [(None, load("nav_front.png"), "weights/tiny/samples/nav_front.png")],
        {"kind": "chat", "text": "Describe this image."}, None, seed=500)
    for k, fn in cases.items():
        if a.only and k not in a.only:
            continue
        fn()


if __name__ == "__main__":
    main()

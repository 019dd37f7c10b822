#!/usr/bin/python3
"""Checks the batched autograd port (qvla_train/model.py) against the float64 reference (tools/reference/qvla_ref)
on weights/tiny and test/fixtures/fixture_b, with the fixtures' inputs.

usage: /usr/bin/python3 tools/train/check_port.py     (exit status 1 on any failure; ~1 min on 2 cores)

Every comparison is max|port - ref| / max|ref| over the tensor.
  f64: port in float64 vs reference float64          < 1e-9
  f32: port in float32 vs reference float64          < 1e-4
  fix: port float64 vs the stored F32 fixture        < 1e-5 (the fixture itself is f64 rounded to f32)
Checks: engine preprocessing (no-resize path), vision output per image, every hidden state, DiT velocity at the
fixture taus, a 4-row batch of different lengths/image counts equal to the unbatched rows (VLM and DiT, with
key-padding masks and per-row h_e, tau and state / no state), the GDN over two chunks against the recurrent
reference, padding never leaking into a row's gradient, and the state_dict <-> model.safetensors round trip.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads crawl on shared, busy cores

import json
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_train import REPO  # noqa: E402
from qvla_train.model import QVLAModel, delta_rule_chunked_batched, time_bucket  # noqa: E402
from qvla_train.data import frames_to_pixel_values, Seq  # noqa: E402
from qvla_train.checkpoint import load_weights_into, export_safetensors  # noqa: E402
from qvla_ref import safetensors_io as st  # noqa: E402
from qvla_ref.model import QVLA  # noqa: E402
from qvla_ref.preprocess import preprocess_image  # noqa: E402
from qvla_ref.text import delta_rule_recurrent  # noqa: E402
from qvla_ref.dit import encode_state, dit_velocity  # noqa: E402

TOL = {"f64": 1e-9, "f32": 1e-4, "fix": 1e-5}
FAIL = []
WORST = {}


def rel(a, b):
    a = torch.as_tensor(a).to(torch.float64)
    b = torch.as_tensor(b).to(torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    d = float((a - b).abs().max()) if a.numel() else 0.0
    s = float(b.abs().max()) if b.numel() else 1.0
    return d / max(s, 1e-300)


def check(name, a, b, kind):
    r = rel(a, b)
    WORST[kind] = max(WORST.get(kind, 0.0), r)
    ok = r < TOL[kind]
    if not ok:
        FAIL.append(f"{name} [{kind}] rel {r:.3g}")
    print(f"  {'ok ' if ok else 'BAD'} {kind} {r:9.2e}  {name}")
    return ok


def port(ckpt, dtype):
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    m = QVLAModel(cfg, dtype)
    load_weights_into(m, ckpt)
    return m


def fixture(name):
    T, _, meta = st.load_file(os.path.join(REPO, "test/fixtures", f"{name}.safetensors"))
    return {k: torch.from_numpy(np.asarray(v)) for k, v in T.items()}, json.loads(meta["case"])


def one_row_seq(ref, ids, grids, keys):
    ids = np.asarray(ids, np.int64)
    _, pos3, _ = ref.positions(ids.tolist(), grids)
    return Seq([(ids, pos3.numpy(), keys)], ref.image_token_id, 0)


def check_case(name, ref, ports):
    print(f"{name}:")
    F, meta = fixture(name)
    ids = F["input.input_ids"].long().tolist()
    n_img = len(meta["images"])
    pvs, grids = [], []
    for i in range(n_img):
        pv, g, _ = ref.preprocess(F[f"input.image.{i}"].numpy())
        pvs.append(pv)
        grids.append(g)
    out = ref.run_vlm(pvs, grids, ids)
    res = {}
    for kind, m in ports.items():
        W = m.weights()
        with torch.no_grad():
            vis = [m.vision(W, pv[None].to(m.dtype), g)[0] for pv, g in zip(pvs, grids)]
            for i, v in enumerate(vis):
                check(f"vision.output.{i}", v, out["vision"][i], kind)
                if kind == "f64":
                    check(f"vision.output.{i} (fixture)", v, F[f"vision.output.{i}"], "fix")
            seq = one_row_seq(ref, ids, grids, [(0, i) for i in range(n_img)])
            h = m.embed(W, seq.ids, seq.img_index, torch.cat(vis) if vis else None)
            hs = m.text(W, h, seq.pos3)
            for k, hk in enumerate(hs):
                check(f"text.hidden_states.{k}", hk[0], out["hidden_states"][k], kind)
                if kind == "f64":
                    check(f"text.hidden_states.{k} (fixture)", hk[0], F[f"text.hidden_states.{k}"], "fix")
            lg = m.logits(W, hs[-1])[0, -4:]
            check("logits_last4", lg, out["logits"][-4:], kind)
            res[kind] = hs
            if "dit.vlm_hidden" in F:
                dc = m.dc
                vlm = F["dit.vlm_hidden"].to(torch.float64)
                h_e = int(F["dit.h_e"][0])
                state = F["dit.state"].to(torch.float64) if "dit.state" in F else None
                st_ref = encode_state(ref.W, ref.dc, state)
                taus = [float(t) for t in F["dit.vel.tau"]]
                y = F["dit.vel.y"].to(torch.float64)
                kv = m.dit_cross(W, vlm[None].to(m.dtype))
                has = torch.tensor([state is not None])
                st_p = m.dit_state(W, (state if state is not None else torch.zeros(dc.s_max))[None], has)
                tau_t = torch.tensor([taus], dtype=torch.float64)
                bucket = time_bucket(tau_t, dc.num_buckets)
                check("dit.state_token", st_p[0], st_ref, kind)
                v = m.dit_velocity(W, y[None, None].expand(1, 3, *y.shape), bucket, st_p,
                                   torch.tensor([h_e]), kv, torch.ones(1, vlm.shape[0], dtype=torch.bool))
                for j, tau in enumerate(taus):
                    vr = dit_velocity(ref.W, ref.dc, y, tau, st_ref, h_e, vlm_hidden=vlm)
                    check(f"dit.vel.out.{j} (tau {tau:.2f})", v[0, j], vr, kind)
                    if kind == "f64":
                        check(f"dit.vel.out.{j} (fixture)", v[0, j], F[f"dit.vel.out.{j}"], "fix")
    return F, meta, pvs, grids, ids, out


def check_batch(ref, m, cases, kind):
    """Rows of different lengths / image counts / states in one right-padded batch == the single rows."""
    print(f"batch of {len(cases)} rows ({kind}):")
    W = m.weights()
    rows, vis_all, refs = [], {}, []
    for b, (F, meta, pvs, grids, ids, out) in enumerate(cases):
        _, pos3, _ = ref.positions(ids, grids)
        rows.append((np.asarray(ids, np.int64), pos3.numpy(), [(b, i) for i in range(len(pvs))]))
        for i, pv in enumerate(pvs):
            vis_all[(b, i)] = (pv, grids[i])
        refs.append(out)
    seq = Seq(rows, ref.image_token_id, 0)
    with torch.no_grad():
        groups = {}
        for k, (pv, g) in vis_all.items():
            groups.setdefault(g, []).append(k)
        vis = {}
        for g, keys in groups.items():
            y = m.vision(W, torch.stack([vis_all[k][0] for k in keys]).to(m.dtype), g)
            for j, k in enumerate(keys):
                vis[k] = y[j]
        h = m.embed(W, seq.ids, seq.img_index, torch.cat([vis[k] for k in seq.img_keys]))
        hs = m.text(W, h, seq.pos3)
        for b, out in enumerate(refs):
            L = int(seq.lens[b])
            for k in range(len(hs)):
                check(f"row {b} (L={L}) hidden_states.{k}", hs[k][b, :L], out["hidden_states"][k], kind)
        # DiT over the padded batch: per-row vlm hidden (padded, key mask), h_e, state/no state, 3 taus each
        dc = m.dc
        vl = ref.dc.vlm_layer
        S = max(int(x) for x in seq.lens)
        ctx = hs[vl]
        cmask = seq.mask
        taus = torch.tensor([[1.0, 0.73, 0.25], [0.9, 0.5, 0.01], [0.6, 0.3, 0.0], [0.999, 0.42, 0.11]],
                            dtype=torch.float64)[:len(cases)]
        g = torch.Generator().manual_seed(5)
        h_es = [3, 16, 7, 1][:len(cases)]
        y = torch.randn(len(cases), 3, dc.h_max, dc.k_max, generator=g, dtype=torch.float64)
        states = torch.randn(len(cases), dc.s_max, generator=g, dtype=torch.float64)
        has = torch.tensor([True, False, True, False][:len(cases)])
        kv = m.dit_cross(W, ctx)
        stt = m.dit_state(W, states.to(m.dtype), has)
        v = m.dit_velocity(W, y.to(m.dtype), time_bucket(taus, dc.num_buckets), stt, torch.tensor(h_es), kv, cmask)
        for b, out in enumerate(refs):
            L = int(seq.lens[b])
            vlm = out["hidden_states"][vl]
            st_ref = encode_state(ref.W, ref.dc, states[b] if has[b] else None)
            for r in range(3):
                vr = dit_velocity(ref.W, ref.dc, y[b, r], float(taus[b, r]), st_ref, h_es[b], vlm_hidden=vlm)
                check(f"row {b} (S={L}/{S}, h_e={h_es[b]}, tau={float(taus[b, r]):.2f}) velocity", v[b, r], vr, kind)


def check_gdn_long():
    print("GDN, two chunks (L=150, 97) vs the recurrent reference, batched over B=2:")
    g = torch.Generator().manual_seed(1)
    H, dk, dv = 3, 8, 6
    for Ls in ([150, 97],):
        Lm = max(Ls)
        q = torch.nn.functional.normalize(torch.randn(2, H, Lm, dk, generator=g, dtype=torch.float64), dim=-1) / dk ** 0.5
        k = torch.nn.functional.normalize(torch.randn(2, H, Lm, dk, generator=g, dtype=torch.float64), dim=-1)
        v = torch.randn(2, H, Lm, dv, generator=g, dtype=torch.float64)
        beta = torch.rand(2, H, Lm, generator=g, dtype=torch.float64)
        gg = -torch.rand(2, H, Lm, generator=g, dtype=torch.float64) * 0.3
        o = delta_rule_chunked_batched(q, k, v, beta, gg, C=64)
        o1 = delta_rule_chunked_batched(q, k, v, beta, gg, C=256)
        for b, L in enumerate(Ls):
            orf, _ = delta_rule_recurrent(q[b, :, :L].transpose(0, 1), k[b, :, :L].transpose(0, 1),
                                          v[b, :, :L].transpose(0, 1), beta[b, :, :L].T, gg[b, :, :L].T)
            check(f"row {b} L={L} C=64", o[b, :, :L].transpose(0, 1), orf, "f64")
            check(f"row {b} L={L} one chunk", o1[b, :, :L].transpose(0, 1), orf, "f64")


def check_grad_padding(ref, m, case):
    """The gradient of a loss on row 0 alone equals that of the same loss with row 0 inside a padded batch."""
    print("gradient: row 0 alone == row 0 inside a padded batch with a longer row:")
    F, meta, pvs, grids, ids, out = case
    W = m.weights()
    _, pos3, _ = ref.positions(ids, grids)
    long_ids = list(ids) + [17] * 23
    long_pos = np.concatenate([pos3.numpy(), pos3.numpy()[:, -1:] + 1 + np.arange(23)[None]], 1)
    grads = []
    for rows in ([(np.asarray(ids), pos3.numpy(), [(0, 0)])],
                 [(np.asarray(ids), pos3.numpy(), [(0, 0)]), (np.asarray(long_ids), long_pos, [(1, 0)])]):
        m.zero_grad()
        seq = Seq(rows, ref.image_token_id, 0)
        pv = torch.stack([pvs[0]] * len(rows)).to(m.dtype)
        vis = m.vision(W, pv, grids[0])
        h = m.embed(W, seq.ids, seq.img_index, torch.cat([vis[j] for j in range(len(rows))]))
        hs = m.text(W, h, seq.pos3)
        ctx = hs[m.dc.vlm_layer]
        kv = m.dit_cross(W, ctx)
        B = len(rows)
        stt = m.dit_state(W, torch.zeros(B, m.dc.s_max, dtype=m.dtype), torch.tensor([True] * B))
        y = torch.ones(B, 1, m.dc.h_max, m.dc.k_max, dtype=m.dtype) * 0.3
        v = m.dit_velocity(W, y, torch.full((B, 1), 500), stt, torch.tensor([5] * B), kv, seq.mask)
        loss = (v[0] ** 2).sum() + hs[-1][0, :len(ids)].pow(2).mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    # per tensor max|g_batch - g_alone| / max|g_alone|, floored at 1e-6 of the largest gradient (the key biases'
    # exact gradient is 0: softmax ignores a bias shared by all keys, so both runs hold only rounding noise there)
    G = max(float(g.abs().max()) for g in grads[0].values())
    worst = 0.0
    for n in grads[0]:
        d = float((grads[1][n] - grads[0][n]).abs().max())
        worst = max(worst, d / max(float(grads[0][n].abs().max()), 1e-6 * G))
    WORST["f64"] = max(WORST.get("f64", 0), worst)
    ok = worst < TOL["f64"]
    if not ok:
        FAIL.append(f"padding gradient rel {worst:.3g}")
    print(f"  {'ok ' if ok else 'BAD'} f64 {worst:9.2e}  all {len(grads[0])} parameter gradients")
    nan = [n for n, g in grads[1].items() if not torch.isfinite(g).all()]
    if nan:
        FAIL.append(f"non-finite gradients {nan[:3]}")


def check_preprocess():
    print("engine preprocessing (no resize: min_pixels 4096, max_pixels 16384):")
    pp = {"min_pixels": 4096, "max_pixels": 16384, "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
          "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    rng = np.random.RandomState(3)
    for H, W in ((128, 128), (96, 128), (64, 64)):
        img = rng.randint(0, 256, (2, H, W, 3)).astype(np.uint8)
        pv = frames_to_pixel_values(img, dtype=torch.float64)
        for b in range(2):
            ref_pv, grid, rs = preprocess_image(img[b], pp)
            assert rs.shape[:2] == (H, W)
            ok = torch.equal(pv[b], torch.from_numpy(ref_pv))
            if not ok:
                FAIL.append(f"preprocess {H}x{W}")
            print(f"  {'ok ' if ok else 'BAD'} exact     pixel_values {H}x{W} grid {grid}")
        fold = frames_to_pixel_values(img, fold=True, dtype=torch.float64)
        ok = torch.equal(pv.reshape(2, -1, 3, 2, 256)[:, :, :, 0], fold.reshape(2, -1, 3, 256))
        if not ok:
            FAIL.append("folded pixel values")
        print(f"  {'ok ' if ok else 'BAD'} exact     folded (one temporal frame) layout {H}x{W}")


def check_fold(ref, m, case):
    print("vision with the temporal frames folded into the patch embedding == unfolded:")
    F, meta, pvs, grids, ids, out = case
    W = m.weights()
    pv = pvs[0]
    with torch.no_grad():
        folded = pv.reshape(pv.shape[0], 3, 2, 256)[:, :, 0].reshape(pv.shape[0], 768)
        check("vision output (folded)", m.vision(W, folded[None].to(m.dtype), grids[0])[0], out["vision"][0],
              "f64" if m.dtype == torch.float64 else "f32")


def check_roundtrip(m, ckpt):
    print("state_dict -> model.safetensors (F32) -> reference loader:")
    d = tempfile.mkdtemp()
    try:
        for f in ("config.json", "preprocessor_config.json"):
            shutil.copy(os.path.join(ckpt, f), d)
        export_safetensors(m, os.path.join(d, "model.safetensors"))
        raw, dts = st.load_checkpoint_dir(d, as_float64=False)
        sd = m.state_dict()
        ok = set(raw) == set(sd) and all(dts[k] == "F32" for k in raw) and all(
            torch.equal(torch.from_numpy(raw[k]), sd[k].to(torch.float32)) for k in raw)
        r = QVLA(d)
        ok = ok and set(r.W) == set(sd)
        if not ok:
            FAIL.append("round trip")
        print(f"  {'ok ' if ok else 'BAD'} {len(raw)} tensors, names == checkpoint names, values bit-equal")
    finally:
        shutil.rmtree(d)


def main():
    torch.set_num_threads(2)
    tiny = os.path.join(REPO, "weights/tiny")
    fb = os.path.join(REPO, "test/fixtures/fixture_b")
    check_preprocess()
    ref = QVLA(tiny)
    ports = {"f64": port(tiny, torch.float64), "f32": port(tiny, torch.float32)}
    cases = [check_case(n, ref, ports) for n in
             ("case_a_tiny_widowx", "case_c_t2a_nav", "case_d_tiny_aloha", "case_e_tiny_chat")]
    for kind, m in ports.items():
        check_batch(ref, m, cases, kind)
    check_fold(ref, ports["f64"], cases[0])
    check_fold(ref, ports["f32"], cases[0])
    check_gdn_long()
    check_grad_padding(ref, ports["f64"], cases[0])
    check_roundtrip(ports["f32"], tiny)
    refb = QVLA(fb)
    portsb = {"f64": port(fb, torch.float64), "f32": port(fb, torch.float32)}
    check_case("case_b_two_images", refb, portsb)
    print("worst relative errors: " + ", ".join(f"{k} {v:.2e} (tol {TOL[k]:g})" for k, v in sorted(WORST.items())))
    if FAIL:
        print(f"FAILED ({len(FAIL)}):\n  " + "\n  ".join(FAIL))
        sys.exit(1)
    print("check_port: all OK")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Self-checks of the reference (exit status 1 on any failure). Run: /usr/bin/python3 tools/reference/selfcheck.py"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../.."))
sys.path.insert(0, HERE)
from qvla_ref import safetensors_io as st  # noqa: E402
from qvla_ref.model import QVLA  # noqa: E402
from qvla_ref.params import all_shapes, numel, dit_param_count_formula, vlm_param_count_formula, text_shapes, vision_shapes, dit_shapes  # noqa: E402
from qvla_ref.preprocess import selfcheck_resize, smart_resize, preprocess_image  # noqa: E402
from qvla_ref.rope_index import rope_index  # noqa: E402
from qvla_ref.text import delta_rule_recurrent, delta_rule_chunked, l2norm, text_forward, embed  # noqa: E402
from qvla_ref.dit import CrossKV, encode_state, dit_velocity, action_mask  # noqa: E402
from qvla_ref.sampling import sample  # noqa: E402
from qvla_ref.png import scene  # noqa: E402

FAIL = []


def check(name, ok, detail=""):
    print(f"[{'ok' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))
    if not ok:
        FAIL.append(name)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)

    # 1. preprocessing
    worst = selfcheck_resize(verbose=True)
    check("bicubic resize vs torch interpolate(bicubic, antialias=True)", worst < 1e-9, f"max abs {worst:.3g} (0..255 scale)")
    check("smart_resize examples", smart_resize(480, 640) == (480, 640) and smart_resize(224, 224) == (256, 256)
          and smart_resize(1080, 1920) == (1088, 1920))
    img = scene(120, 160, 3)
    pp = {"min_pixels": 16384, "max_pixels": 65536, "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
          "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    pv, (gt, gh, gw), rs = preprocess_image(img, pp)
    x = pv.reshape(gh // 2, gw // 2, 2, 2, 3, 2, 16, 16)
    ref = (rs.astype(np.float64) / 255.0 * 2 - 1)  # [h, w, 3]
    blk = ref.reshape(gh // 2, 2, 16, gw // 2, 2, 16, 3).transpose(0, 3, 1, 4, 6, 2, 5)
    check("pixel_values merge-block layout and temporal duplication",
          np.array_equal(x[:, :, :, :, :, 0], blk) and np.array_equal(x[:, :, :, :, :, 1], blk))

    # 2. rope index worked example (256x256 image -> rope_delta -56)
    mm = [0] * 4 + [1] * 64 + [0] * 10
    pos, delta = rope_index(mm, [(1, 16, 16)])
    check("rope_index 256x256 example", delta == -56 and tuple(pos[:, 4]) == (4, 4, 4) and tuple(pos[:, 67]) == (4, 11, 11)
          and pos[0, 68] == 12, f"rope_delta {delta}")

    # 3. chunked vs recurrent gated delta rule (L=300 -> padded to 320, C=64), with and without initial state
    L, H, dk, dv = 300, 4, 32, 24
    g = torch.Generator().manual_seed(1)
    q = l2norm(torch.randn(L, H, dk, generator=g, dtype=torch.float64)) / dk ** 0.5
    k = l2norm(torch.randn(L, H, dk, generator=g, dtype=torch.float64))
    v = torch.randn(L, H, dv, generator=g, dtype=torch.float64)
    beta = torch.sigmoid(torch.randn(L, H, generator=g, dtype=torch.float64))
    gg = -torch.exp(torch.randn(H, dtype=torch.float64, generator=g)) * torch.nn.functional.softplus(torch.randn(L, H, generator=g, dtype=torch.float64))
    S0 = torch.randn(H, dk, dv, generator=g, dtype=torch.float64) * 0.3
    for s0 in (None, S0):
        o1, s1 = delta_rule_recurrent(q, k, v, beta, gg, s0)
        o2, s2 = delta_rule_chunked(q, k, v, beta, gg, s0)
        d = max(float((o1 - o2).abs().max()), float((s1 - s2).abs().max()))
        check(f"DeltaNet chunked == recurrent (L=300, C=64, S0={'rand' if s0 is not None else 'zero'})", d < 1e-10, f"max abs {d:.3g}")

    # 4. whole-model checks on the tiny checkpoint and the fixture_b checkpoint
    for ck in ("weights/tiny", "test/fixtures/fixture_b"):
        path = os.path.join(REPO, ck)
        if not os.path.exists(os.path.join(path, "config.json")):
            print(f"(skip {ck}: not generated)")
            continue
        m = QVLA(path)
        cfg = m.cfg
        shapes = all_shapes(cfg)
        check(f"{ck}: tensor names/shapes == config-derived listing",
              set(shapes) == set(m.W) and all(tuple(m.W[n].shape) == tuple(shapes[n]) for n in shapes),
              f"{len(m.W)} tensors, {sum(t.numel() for t in m.W.values())} params")
        f32_ok = all(m.dtypes[n] == "F32" for n in m.dtypes if n.endswith("A_log") or n.endswith("linear_attn.norm.weight"))
        check(f"{ck}: A_log and linear_attn.norm.weight stored F32", f32_ok)
        imgs = [scene(120, 160, 5), scene(97, 131, 6)]
        pvs, grids = [], []
        for im in imgs:
            a, b, _ = m.preprocess(im)
            pvs.append(a)
            grids.append(b)
        n = [gr[1] * gr[2] // 4 for gr in grids]
        vs, ve, ip = cfg["vision_start_token_id"], cfg["vision_end_token_id"], cfg["image_token_id"]
        ids = [5, 6, vs] + [ip] * n[0] + [ve, 7, 8, vs] + [ip] * n[1] + [ve] + list(range(100, 160))
        out = m.run_vlm(pvs, grids, ids)
        rms = [float(h.pow(2).mean().sqrt()) for h in out["hidden_states"]]
        mx = max(float(h.abs().max()) for h in out["hidden_states"])
        check(f"{ck}: activations finite and O(1)", all(np.isfinite(rms)) and max(rms) < 10 and min(rms) > 0.05,
              "per-layer rms " + " ".join(f"{r:.2f}" for r in rms) + f", max abs {mx:.2f}, vision rms "
              + " ".join(f"{float(v.pow(2).mean().sqrt()):.2f}" for v in out["vision"]))
        out_r = m.run_vlm(pvs, grids, ids, gdn_mode="recurrent")
        d = max(float((a - b).abs().max()) for a, b in zip(out["hidden_states"], out_r["hidden_states"]))
        check(f"{ck}: prefill chunked GDN == recurrent GDN", d < 1e-10, f"max abs {d:.3g}")
        toks, dl, _ = m.greedy_decode(pvs, grids, ids, 8)
        rl = m.recompute_decode(pvs, grids, ids, toks)
        d = float((dl - rl).abs().max())
        check(f"{ck}: decode with cache == full recompute (8 tokens)", d < 1e-9 and rl.argmax(-1).tolist() == toks, f"max abs logits {d:.3g}")
        dc = m.dc
        vlm = out["hidden_states"][dc.vlm_layer]
        cross = CrossKV(m.W, dc, vlm)
        h_e, k_e = max(1, dc.h_max - 3), max(1, dc.k_max - 5)
        stt = encode_state(m.W, dc, torch.linspace(-1, 1, dc.s_max, dtype=torch.float64))
        y = torch.randn(dc.h_max, dc.k_max, dtype=torch.float64)
        same = all(torch.equal(dit_velocity(m.W, dc, y, t, stt, h_e, cross=cross),
                               dit_velocity(m.W, dc, y, t, stt, h_e, vlm_hidden=vlm)) for t in (1.0, 0.5, 0.01))
        check(f"{ck}: DiT cached cross K/V == uncached (bit-exact)", same)
        vel = dit_velocity(m.W, dc, y, 0.6, stt, h_e, cross=cross)
        check(f"{ck}: DiT velocity finite and O(1)", bool(torch.isfinite(vel).all()) and float(vel.abs().max()) < 50,
              f"rms {float(vel.pow(2).mean().sqrt()):.3f}")
        mask = action_mask(dc, h_e, k_e)
        fn = lambda yy, t: dit_velocity(m.W, dc, yy, t, stt, h_e, cross=cross)  # noqa: E731
        zero = True
        for solver, grid in (("euler", "uniform"), ("heun", "uniform"), ("midpoint", "cosine"), ("rk4", "shift")):
            yy = sample(fn, torch.randn(dc.h_max, dc.k_max, dtype=torch.float64), mask, 3, solver, grid)
            zero = zero and float((yy * (1 - mask)).abs().max()) == 0.0 and bool(torch.isfinite(yy).all())
        check(f"{ck}: masked action channels/rows exactly zero (euler, heun, midpoint, rk4)", zero)
        # padded horizon rows are not keys: changing them does not change valid outputs
        y2 = y.clone()
        y2[h_e:] = torch.randn(dc.h_max - h_e, dc.k_max, dtype=torch.float64) * 5
        v2 = dit_velocity(m.W, dc, y2, 0.6, stt, h_e, cross=cross)
        check(f"{ck}: padded horizon rows do not influence valid rows", torch.allclose(vel[:h_e], v2[:h_e], atol=1e-12, rtol=0))

    # 5. N=1 Euler with a constant velocity field is closed form
    mask = torch.ones(4, 3, dtype=torch.float64)
    mask[3:] = 0
    A = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    e = torch.randn(4, 3, dtype=torch.float64)
    yy = sample(lambda y, t: A, e, mask, 1, "euler")
    check("Euler N=1, constant field: Y = (eps - A) * m", torch.equal(yy, (e * mask) - A * mask))

    # 6. parameter counts
    full_dec = {"d_vlm": 2560, "hidden_size": 1536, "num_heads": 32, "head_dim": 48, "num_layers": 32, "cross_every": 2,
                "ff_inner": 6144, "d_out": 1024, "mlp_hidden": 1024, "state_hidden": 1024, "k_max": 80, "s_max": 80,
                "h_max": 50, "max_seq_len": 1024, "timestep_channels": 256, "num_buckets": 1000}
    tiny_dec = dict(full_dec, d_vlm=512, hidden_size=256, num_heads=4, head_dim=64, num_layers=4, ff_inner=1024,
                    d_out=256, mlp_hidden=256, state_hidden=256, k_max=16, s_max=16, h_max=8, max_seq_len=64)
    for name, dec, expect in (("full QVLA-DiT (docs/action-decoder.md §2.3)", full_dec, 1128461904),
                              ("spec tiny QVLA-DiT", tiny_dec, 4631568)):
        fm = dit_param_count_formula(dec)
        sh = dit_shapes({"action_expert": dec})
        meta = sum(torch.empty(s, device="meta").numel() for s in sh.values())   # instantiated on the meta device
        check(f"{name}: formula == listing == expected", fm["total"] == meta == expect,
              f"formula {fm['total']:,}, meta-instantiated {meta:,}, expected {expect:,}; cross block {fm['cross_block']:,}, "
              f"self block {fm['self_block']:,}, core {fm['core']:,}, rest {fm['rest']:,}; {len(sh)} tensors")
    with open(os.path.join(REPO, "src/model/presets/qwen35_4b.json")) as f:   # the one 4B preset (src/model/config.ts)
        c4 = json.load(f)
    f4 = vlm_param_count_formula(c4)
    ts, vs_ = text_shapes(c4), vision_shapes(c4)
    nt = sum(torch.empty(s, device="meta").numel() for s in ts.values())
    nv = sum(torch.empty(s, device="meta").numel() for s in vs_.values())
    check("Qwen3.5-4B: tensor counts 426 text + 297 vision", len(ts) == 426 == f4["text_tensors"] and len(vs_) == 297 == f4["vision_tensors"],
          f"text {len(ts)}, vision {len(vs_)}")
    check("Qwen3.5-4B: formula == listing", nt == f4["text"] and nv == f4["vision"],
          f"text {nt:,} + vision {nv:,} = {nt + nv:,} (tied head); + QVLA-DiT {1128461904:,} = {nt + nv + 1128461904:,}")
    for ck in ("weights/tiny", "test/fixtures/fixture_b"):
        p = os.path.join(REPO, ck, "config.json")
        if os.path.exists(p):
            with open(p) as f:
                c = json.load(f)
            ft, fd = vlm_param_count_formula(c), dit_param_count_formula(c["action_expert"])
            W, _ = st.load_checkpoint_dir(os.path.join(REPO, ck), as_float64=False)
            got = sum(a.size for a in W.values())
            check(f"{ck}: formula count == file count", got == ft["text"] + ft["vision"] + fd["total"],
                  f"{got:,} (text {ft['text']:,}, vision {ft['vision']:,}, decoder {fd['total']:,})")

    print("SELFCHECK", "FAILED: " + ", ".join(FAIL) if FAIL else "PASSED")
    return 1 if FAIL else 0


if __name__ == "__main__":
    sys.exit(main())

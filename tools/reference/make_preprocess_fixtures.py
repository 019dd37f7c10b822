#!/usr/bin/python3
"""Generate test/fixtures/preprocess.safetensors: small odd-sized images run through qvla_ref/preprocess.py, for
test/preprocess/image.test.ts (bit-exact resize and pixel_values).

usage: /usr/bin/python3 tools/reference/make_preprocess_fixtures.py [--repo ROOT] [--out PATH]

Deterministic (numpy RandomState + float64 maths). Per case k (metadata "cases" lists them in order):
  case.k.input        U8  [H, W, 3]
  case.k.resized      U8  [h_bar, w_bar, 3]      resize_bicubic_u8
  case.k.pixel_values F32 [gh*gw, 3*T*P*P]       float64 reference rounded to float32 (only where "pv" is true)
The metadata also carries each case's processor values and a list of smart_resize examples.
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_ref import safetensors_io as st  # noqa: E402
from qvla_ref.png import scene  # noqa: E402
from qvla_ref.preprocess import preprocess_image, smart_resize  # noqa: E402

DEFAULT_PP = {"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
CLIP = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}


def checker(h, w, seed):
    """High-contrast blocks + noise: drives the bicubic overshoot into the clip and exercises every tap."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.where(((yy // 3) + (xx // 4)) % 2 == 0, 250, 5)[..., None].repeat(3, axis=2)
    noise = rng.randint(-5, 6, size=(h, w, 3))
    img = np.clip(base + noise, 0, 255)
    img[:, :, 1] = np.clip(img[:, :, 1] // 2 + rng.randint(0, 128, size=(h, w)), 0, 255)
    return img.astype(np.uint8)


def flat(h, w):
    """Flat colours and a hard vertical edge: sums land exactly on integers and .5 ties."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:, :, 0] = 37
    img[:, :, 1] = 200
    img[:, w // 2:, 2] = 255
    img[h // 3:, :, 0] = 38
    return img


CASES = [
    # (name, image fn, min_pixels, max_pixels, extra pp, store pixel_values)
    ("upscale_45x70", lambda: scene(45, 70, 5, "table"), 4096, 16384, {}, False),
    ("downscale_131x97", lambda: scene(131, 97, 6, "floor"), 1024, 4096, {}, True),
    ("mixed_20x200_clip", lambda: checker(20, 200, 7), 1024, 8192, CLIP, True),
    ("vertical_only_64x75", lambda: checker(64, 75, 8), 1024, 8192, {}, False),
    ("strong_down_160x100", lambda: scene(160, 100, 9, "table"), 1024, 4096, {}, False),
    ("flat_33x47_up", lambda: flat(33, 47), 9000, 16384, {}, False),
    ("patch8_merge1_t1_27x35", lambda: checker(27, 35, 10), 512, 2048,
     {"patch_size": 8, "merge_size": 1, "temporal_patch_size": 1}, True),
]

SMART_RESIZE = [  # (h, w, factor, min, max)
    (480, 640, 32, 65536, 16777216), (224, 224, 32, 65536, 16777216), (1080, 1920, 32, 65536, 16777216),
    (48, 48, 32, 65536, 16777216), (80, 80, 32, 0, 16777216), (16, 16, 32, 0, 16777216),
    (112, 112, 32, 0, 16777216), (144, 144, 32, 0, 16777216), (120, 160, 32, 16384, 65536),
    (97, 131, 32, 16384, 32768), (250, 170, 32, 16384, 32768), (3000, 4000, 32, 65536, 1048576),
    (10, 2000, 32, 65536, 16777216), (2000, 10, 32, 4096, 65536), (1, 200, 32, 1024, 65536),
    (4095, 4097, 32, 65536, 16777216), (4096, 4096, 32, 65536, 16777216), (17, 15, 28, 3136, 12845056),
    (700, 500, 28, 3136, 200000), (33, 17, 32, 8192, 16384), (1, 201, 32, 65536, 16777216),
    (1500, 5, 32, 65536, 16777216), (16, 48, 32, 1024, 16777216), (48, 80, 32, 1024, 16777216),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.abspath(os.path.join(HERE, "..", "..")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out_path = a.out or os.path.join(a.repo, "test/fixtures/preprocess.safetensors")
    T, dt, meta_cases = {}, {}, []
    for k, (name, fn, mn, mx, extra, keep_pv) in enumerate(CASES):
        img = fn()
        pp = dict(DEFAULT_PP, min_pixels=mn, max_pixels=mx, **extra)
        pv, grid, rs = preprocess_image(img, pp)
        T[f"case.{k}.input"] = img
        T[f"case.{k}.resized"] = rs
        dt[f"case.{k}.input"] = dt[f"case.{k}.resized"] = "U8"
        if keep_pv:
            T[f"case.{k}.pixel_values"] = pv.astype(np.float32)
            dt[f"case.{k}.pixel_values"] = "F32"
        meta_cases.append({"name": name, "height": int(img.shape[0]), "width": int(img.shape[1]),
                           "resized": [int(rs.shape[0]), int(rs.shape[1])], "grid_thw": [int(g) for g in grid],
                           "pp": pp, "pv": keep_pv})
    examples = []
    for h, w, f, mn, mx in SMART_RESIZE:
        try:
            hb, wb = smart_resize(h, w, f, mn, mx)
            examples.append({"h": h, "w": w, "factor": f, "min": mn, "max": mx, "out": [hb, wb]})
        except ValueError as e:
            examples.append({"h": h, "w": w, "factor": f, "min": mn, "max": mx, "error": str(e)})
    meta = {"generator": "tools/reference/make_preprocess_fixtures.py",
            "cases": json.dumps(meta_cases, sort_keys=True), "smart_resize": json.dumps(examples, sort_keys=True)}
    n = st.save_file(T, out_path, dtypes=dt, metadata=meta)
    print(f"{len(CASES)} cases, {len(examples)} smart_resize examples, {n} bytes -> {out_path}")
    for c in meta_cases:
        print(f"  {c['name']}: {c['height']}x{c['width']} -> {c['resized']} grid {c['grid_thw']} pv={c['pv']}")


if __name__ == "__main__":
    main()

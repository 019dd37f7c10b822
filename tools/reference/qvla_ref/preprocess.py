"""Image preprocessing of the Qwen3.5 processor (docs/architecture.md §3), made bit-exact.

Steps for one RGB uint8 image img[H][W][3]:

1. smart_resize(H, W, factor=32, min_pixels, max_pixels) -> (h_bar, w_bar):
     h_bar = round(H/32)*32, w_bar = round(W/32)*32      (Python round: half to EVEN)
     if h_bar*w_bar > max_pixels:  b = sqrt(H*W/max_pixels)
                                   h_bar = max(32, floor(H/b/32)*32); w_bar = max(32, floor(W/b/32)*32)
     elif h_bar*w_bar < min_pixels: b = sqrt(min_pixels/(H*W))
                                   h_bar = ceil(H*b/32)*32;  w_bar = ceil(W*b/32)*32
   All in IEEE float64 (H/32 etc. are float64 divisions; sqrt is the correctly rounded float64 sqrt).
   Raises if max(H,W)/min(H,W) > 200.

2. resize_bicubic_u8(img, h_bar, w_bar): the resize algorithm, defined exactly:
   * Separable. FIRST the horizontal pass (W -> w_bar) over every input row, THEN the vertical
     pass (H -> h_bar) over the float64 intermediate. No rounding between the passes.
     A pass whose in_size == out_size is skipped (it would be the identity anyway).
   * For one pass with in_size n_in and out_size n_out (all float64):
       scale   = n_in / n_out
       fscale  = max(scale, 1.0)            # filter stretched when downsampling (antialias)
       support = 2.0 * fscale               # bicubic support radius 2 (in output-filter units)
       for output index i = 0..n_out-1:
         center = (i + 0.5) * scale
         xmin   = max(trunc(center - support + 0.5), 0)       # int; trunc toward zero (C cast)
         xmax   = min(trunc(center + support + 0.5), n_in)    # exclusive
         for x in xmin..xmax-1:  w[x] = cubic((x - center + 0.5) / fscale)
             (evaluated exactly in this order: t = x - center; t = t + 0.5; t = t / fscale)
         ww = sum of w[x] accumulated left to right starting from 0.0
         if ww != 0: w[x] = w[x] / ww   (each weight divided by the sum)
       cubic(t), a = -0.5:  t = |t|
         t < 1: ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0       (evaluated as (((a+2)*t-(a+3))*t)*t+1)
         t < 2: (((t - 5.0) * t + 8.0) * t - 4.0) * a
         else 0
       out[i] = sum over x = xmin..xmax-1 (ascending) of w[x] * in[x], accumulated from 0.0
     This is PIL's ImagingResample BICUBIC geometry (window clipped to the image = "clamped edge",
     weights renormalised per output pixel), but computed in float64 with no intermediate rounding.
   * Finally every value is rounded half-to-even (numpy.rint) and clipped to [0, 255] -> uint8.
   A TypeScript port using JS doubles with the same operation order reproduces the uint8 image
   bit-exactly.

3. x = p / 255 * 2 - 1   (float64 here: (p/255)*2 - 1; mean = std = 0.5).
4. Two identical temporal frames.
5. Patch flattening into merge-block order: [2(t), 3, h_bar, w_bar] -> reshape
   [1, 2, 3, gh/2, 2, 16, gw/2, 2, 16] -> permute (gt, bh, bw, ih, iw, c, t, py, px) ->
   pixel_values [gh*gw, 3*2*16*16]; grid = (1, gh, gw), gh = h_bar/16, gw = w_bar/16.
"""
import math

import numpy as np


def py_round(x):
    return int(round(x))  # Python 3 round: half to even


def smart_resize(h, w, factor=32, min_pixels=65536, max_pixels=16777216):
    if max(h, w) / min(h, w) > 200:
        raise ValueError("absolute aspect ratio must be smaller than 200")
    h_bar = py_round(h / factor) * factor
    w_bar = py_round(w / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((h * w) / max_pixels)
        h_bar = max(factor, math.floor(h / beta / factor) * factor)
        w_bar = max(factor, math.floor(w / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar = math.ceil(h * beta / factor) * factor
        w_bar = math.ceil(w * beta / factor) * factor
    return int(h_bar), int(w_bar)


def cubic(t, a=-0.5):
    t = abs(t)
    if t < 1.0:
        return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    if t < 2.0:
        return (((t - 5.0) * t + 8.0) * t - 4.0) * a
    return 0.0


def resample_weights(n_in, n_out):
    """Returns a list of (xmin, [w...]) per output index, exactly as documented above."""
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support = 2.0 * fscale
    out = []
    for i in range(n_out):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)   # int() truncates toward zero like a C cast
        xmax = min(int(center + support + 0.5), n_in)
        ws = []
        for x in range(xmin, xmax):
            t = x - center
            t = t + 0.5
            t = t / fscale
            ws.append(cubic(t))
        ww = 0.0
        for v in ws:
            ww += v
        if ww != 0.0:
            ws = [v / ww for v in ws]
        out.append((xmin, ws))
    return out


def _resample_axis(arr, n_out, axis):
    """arr float64 with the resampled axis at `axis`. Sequential accumulation over taps."""
    n_in = arr.shape[axis]
    if n_in == n_out:
        return arr
    a = np.moveaxis(arr, axis, 0)
    table = resample_weights(n_in, n_out)
    ntap = max(len(ws) for _, ws in table)
    res = np.zeros((n_out,) + a.shape[1:], dtype=np.float64)
    # tap-major loop: out[i] accumulates w_k*in[xmin+k] for k = 0,1,... in order; padded taps
    # carry weight exactly 0.0 (adding +0.0 leaves the sum unchanged).
    idx = np.zeros((n_out, ntap), dtype=np.int64)
    wt = np.zeros((n_out, ntap), dtype=np.float64)
    for i, (xmin, ws) in enumerate(table):
        for k, w in enumerate(ws):
            idx[i, k] = xmin + k
            wt[i, k] = w
        for k in range(len(ws), ntap):
            idx[i, k] = xmin
    extra = (1,) * (a.ndim - 1)
    for k in range(ntap):
        res = res + wt[:, k].reshape((n_out,) + extra) * a[idx[:, k]]
    return np.moveaxis(res, 0, axis)


def resize_bicubic_float(img, out_h, out_w):
    """img uint8/float [H, W, C] -> float64 [out_h, out_w, C] before rounding."""
    x = np.asarray(img, dtype=np.float64)
    x = _resample_axis(x, out_w, 1)  # horizontal first
    x = _resample_axis(x, out_h, 0)  # then vertical
    return x


def resize_bicubic_u8(img, out_h, out_w):
    return np.clip(np.rint(resize_bicubic_float(img, out_h, out_w)), 0, 255).astype(np.uint8)


def patchify(frames, patch=16, temporal=2, merge=2):
    """frames float [T=temporal, C, H, W] -> pixel_values [gh*gw, C*T*patch*patch] (merge-block order)."""
    t, c, h, w = frames.shape
    gh, gw = h // patch, w // patch
    x = frames.reshape(1, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
    # axes: 0 gt, 1 t, 2 c, 3 bh, 4 ih, 5 py, 6 bw, 7 iw, 8 px -> (gt, bh, bw, ih, iw, c, t, py, px)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return np.ascontiguousarray(x.reshape(gh * gw, c * temporal * patch * patch)), (1, gh, gw)


def preprocess_image(img_u8, pp):
    """img_u8 [H, W, 3] uint8 -> (pixel_values float64 [Np, 1536], grid (1, gh, gw), resized uint8)."""
    h, w = img_u8.shape[:2]
    factor = pp["patch_size"] * pp["merge_size"]
    hb, wb = smart_resize(h, w, factor, pp["min_pixels"], pp["max_pixels"])
    rs = resize_bicubic_u8(img_u8, hb, wb)
    mean = np.asarray(pp["image_mean"], dtype=np.float64)
    std = np.asarray(pp["image_std"], dtype=np.float64)
    x = rs.astype(np.float64) / 255.0
    x = (x - mean) / std   # = p/255*2-1 for mean=std=0.5 ((p/255-0.5)/0.5 is exact the same double)
    chw = x.transpose(2, 0, 1)
    frames = np.stack([chw] * pp["temporal_patch_size"], axis=0)
    pv, grid = patchify(frames, pp["patch_size"], pp["temporal_patch_size"], pp["merge_size"])
    return pv, grid, rs


def selfcheck_resize(verbose=True):
    """Compares the float64 resize against torch interpolate(bicubic, antialias) and PIL (close, not exact)."""
    import torch
    import torch.nn.functional as F
    rng = np.random.RandomState(0)
    worst = 0.0
    for (h, w, oh, ow) in [(120, 160, 128, 160), (97, 131, 128, 160), (250, 170, 192, 128),
                           (240, 320, 192, 288), (64, 48, 96, 64)]:
        img = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        # smooth it a little so the comparison is meaningful
        img = np.clip(np.rint((img.astype(np.float64) + np.roll(img, 1, 0) + np.roll(img, 1, 1)) / 3), 0, 255).astype(np.uint8)
        ours = resize_bicubic_float(img, oh, ow)
        t = torch.from_numpy(img.astype(np.float64)).permute(2, 0, 1)[None]
        ref = F.interpolate(t, size=(oh, ow), mode="bicubic", antialias=True, align_corners=False)[0].permute(1, 2, 0).numpy()
        d = np.abs(ours - ref).max()
        worst = max(worst, d)
        msg = f"resize {h}x{w}->{oh}x{ow}: max|ours-torch| = {d:.3g}"
        try:
            from PIL import Image
            pil = np.asarray(Image.fromarray(img).resize((ow, oh), Image.BICUBIC)).astype(np.float64)
            msg += f", max|u8(ours)-PIL| = {np.abs(resize_bicubic_u8(img, oh, ow).astype(np.float64) - pil).max():.0f}"
        except Exception:
            pass
        if verbose:
            print(msg)
    return worst

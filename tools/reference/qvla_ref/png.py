"""Minimal deterministic PNG writer (8-bit RGB, filter 0, zlib level 9) and procedural sample scenes."""
import struct
import zlib

import numpy as np


def write_png(path, img):
    img = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    h, w, c = img.shape
    assert c == 3
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def read_png(path):
    """Reads what write_png writes (8-bit RGB, non-interlaced; all five filter types supported)."""
    with open(path, "rb") as f:
        buf = f.read()
    assert buf[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat, w = 8, b"", None
    while i < len(buf):
        (n,) = struct.unpack(">I", buf[i:i + 4])
        tag, data = buf[i + 4:i + 8], buf[i + 8:i + 8 + n]
        if tag == b"IHDR":
            w, h, bd, ct, _, _, il = struct.unpack(">IIBBBBB", data)
            assert bd == 8 and ct == 2 and il == 0
        elif tag == b"IDAT":
            idat += data
        i += 12 + n
    raw = zlib.decompress(idat)
    stride = w * 3
    out = np.zeros((h, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = np.frombuffer(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)], dtype=np.uint8).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for x in range(stride):
            a = cur[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if ft == 0:
                p = 0
            elif ft == 1:
                p = a
            elif ft == 2:
                p = b
            elif ft == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, 3).astype(np.uint8)


def scene(h, w, seed, kind="table"):
    """A deterministic procedural camera-like image: gradient background, a textured 'table' or 'floor',
    coloured rectangles and discs, soft shading. Integer/float64 math only."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    top = rng.randint(60, 200, size=3).astype(np.float64)
    bot = rng.randint(40, 160, size=3).astype(np.float64)
    t = yy / max(h - 1, 1)
    img = top[None, None] * (1 - t[..., None]) + bot[None, None] * t[..., None]
    horizon = int(h * (0.45 if kind == "floor" else 0.55))
    surf = rng.randint(90, 220, size=3).astype(np.float64)
    tex = 12.0 * np.sin(xx * 0.37 + yy * 0.11) * np.cos(yy * 0.23)
    m = yy >= horizon
    img[m] = surf[None] + tex[m][:, None]
    if kind == "floor":  # perspective floor lines for the nav camera
        den = np.maximum(yy - horizon, 0.0) + 8.0
        lines = (np.abs(((xx - w / 2) / den) * 6.0 % 2.0 - 1.0) < 0.08) & m
        img[lines] = img[lines] * 0.6
    for _ in range(rng.randint(3, 6)):
        col = rng.randint(0, 256, size=3).astype(np.float64)
        cy, cx = rng.randint(horizon - h // 6, h), rng.randint(0, w)
        if rng.rand() < 0.5:
            hh, ww = rng.randint(6, h // 4), rng.randint(6, w // 4)
            r = (np.abs(yy - cy) <= hh) & (np.abs(xx - cx) <= ww)
        else:
            rad = rng.randint(5, h // 5)
            r = (yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad
        shade = 0.75 + 0.25 * (1.0 - (yy - cy) / h)
        img[r] = col[None] * shade[r][:, None]
    vign = 1.0 - 0.25 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2)
    img = img * vign[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)

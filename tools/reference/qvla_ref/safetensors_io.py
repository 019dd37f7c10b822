"""A small, dependency-free safetensors writer and reader (numpy based).

Format: 8-byte little-endian header length N, then N bytes of JSON header, then the raw
little-endian tensor data. The header maps tensor name -> {dtype, shape, data_offsets=[begin,end)}
relative to the start of the data section, plus an optional "__metadata__" {str: str} entry.

Determinism: tensors are written in sorted-name order, the JSON is written with sorted keys and
compact separators, and the header is padded with spaces to a multiple of 8 bytes.
"""
import json
import struct

import numpy as np

# dtype name -> (numpy dtype used for storage, bytes per element)
_NP = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # stored as raw uint16 bit patterns
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}


def f32_to_bf16_bits(x):
    """float array -> uint16 bf16 bit patterns, round-to-nearest-even (NaN not expected)."""
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32)).view(np.uint32).astype(np.uint64)
    rounding = ((a >> 16) & 1) + 0x7FFF
    return ((a + rounding) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def _to_numpy(t):
    try:
        import torch
        if isinstance(t, torch.Tensor):
            return t.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(t)


def encode(tensors, dtypes=None, metadata=None):
    """tensors: {name: array-like}. dtypes: {name: "F32"|"BF16"|...} (default: from the array:
    float -> F32, int -> I32/I64 as is, uint8 -> U8). Returns the file bytes."""
    dtypes = dtypes or {}
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        arr = _to_numpy(tensors[name])
        dt = dtypes.get(name)
        if dt is None:
            if arr.dtype.kind == "f":
                dt = "F32"
            elif arr.dtype == np.uint8:
                dt = "U8"
            elif arr.dtype == np.int64:
                dt = "I64"
            elif arr.dtype.kind in "iu":
                dt = "I32"
            elif arr.dtype == np.bool_:
                dt = "BOOL"
            else:
                raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        if dt == "BF16":
            data = f32_to_bf16_bits(arr)
        else:
            data = np.asarray(arr).astype(_NP[dt])
        raw = np.ascontiguousarray(data).tobytes()
        header[name] = {"dtype": dt, "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(chunks)


def save_file(tensors, path, dtypes=None, metadata=None):
    data = encode(tensors, dtypes, metadata)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def load_file(path, as_float64=False):
    """Returns ({name: np.ndarray}, {name: dtype string}, metadata dict). BF16 is decoded to float32
    (exactly). With as_float64 every float tensor is widened (exactly) to float64."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out, dts = {}, {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = info["dtype"]
        arr = np.frombuffer(buf[base + b: base + e], dtype=_NP[dt]).reshape(info["shape"])
        if dt == "BF16":
            arr = bf16_bits_to_f32(arr).reshape(info["shape"])
        if dt == "BOOL":
            arr = arr.astype(np.bool_)
        if as_float64 and arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
        out[name] = np.array(arr)  # own the memory
        dts[name] = dt
    return out, dts, meta


def load_checkpoint_dir(path, as_float64=True):
    """Loads model.safetensors or the shards listed in model.safetensors.index.json."""
    import os
    idx = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        tensors, dts = {}, {}
        for shard in sorted(set(wm.values())):
            t, d, _ = load_file(os.path.join(path, shard), as_float64)
            tensors.update(t)
            dts.update(d)
        return tensors, dts
    t, d, _ = load_file(os.path.join(path, "model.safetensors"), as_float64)
    return t, d

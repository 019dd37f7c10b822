"""Normalisation maps of embodiments.json (weights/README.md). y is the normalised value.
  q01_q99 / min_max:  x = (clip(y, -1, 1) + 1) / 2 * (hi - lo) + lo ;  inverse y = (x - lo) / (hi - lo) * 2 - 1
  mean_std:           x = y * std + mean                             ;  inverse y = (x - mean) / std
"""
import numpy as np


def _stats(norm, part):
    m = norm["method"]
    s = norm[part]
    if m == "q01_q99":
        return m, np.asarray(s["q01"], np.float64), np.asarray(s["q99"], np.float64)
    if m == "min_max":
        return m, np.asarray(s["min"], np.float64), np.asarray(s["max"], np.float64)
    if m == "mean_std":
        return m, np.asarray(s["mean"], np.float64), np.asarray(s["std"], np.float64)
    raise ValueError(m)


def unnormalize(entry, part, y):
    m, a, b = _stats(entry["normalization"], part)
    y = np.asarray(y, np.float64)
    if m == "mean_std":
        return y * b + a
    return (np.clip(y, -1.0, 1.0) + 1.0) / 2.0 * (b - a) + a


def normalize(entry, part, x):
    m, a, b = _stats(entry["normalization"], part)
    x = np.asarray(x, np.float64)
    if m == "mean_std":
        return (x - a) / b
    return (x - a) / (b - a) * 2.0 - 1.0

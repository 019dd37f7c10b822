"""3-D rope position ids for a mixed text/image sequence (docs/architecture.md §6.2)."""
import numpy as np


def mm_token_type_ids(input_ids, image_token_id, video_token_id=None):
    ids = np.asarray(input_ids)
    t = np.zeros(len(ids), dtype=np.int32)
    t[ids == image_token_id] = 1
    if video_token_id is not None:
        t[ids == video_token_id] = 2
    return t


def rope_index(mm_types, grids, merge=2):
    """mm_types [L] (0 text, 1 image); grids: list of (gt, gh, gw) in image order.
    Returns pos3 int64 [3, L] (rows t, h, w) and rope_delta (int).
    Text tokens: p+k on all axes. Image run (gt,gh,gw): (p+tt, p+r, p+c) over merged H=gh/2, W=gw/2;
    then p += max(gh, gw) // 2."""
    mm = np.asarray(mm_types)
    L = len(mm)
    pos = np.zeros((3, L), dtype=np.int64)
    p = 0
    i = 0
    gi = 0
    while i < L:
        j = i
        while j < L and mm[j] == mm[i]:
            j += 1
        n = j - i
        if mm[i] == 0:
            pos[:, i:j] = p + np.arange(n)[None, :]
            p += n
        else:
            gt, gh, gw = grids[gi]
            gi += 1
            H, W = gh // merge, gw // merge
            assert n == gt * H * W, f"image run length {n} != {gt}*{H}*{W}"
            k = i
            for tt in range(gt):
                for r in range(H):
                    for c in range(W):
                        pos[:, k] = (p + tt, p + r, p + c)
                        k += 1
            p += max(gh, gw) // merge
        i = j
    assert gi == len(grids), "more grids than image runs"
    rope_delta = int(pos.max()) + 1 - L if L else 0
    return pos, rope_delta

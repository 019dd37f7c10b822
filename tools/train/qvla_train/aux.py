"""Auxiliary localisation loss (training only; its head is not part of the checkpoint).

Why: with the flow-matching loss alone (plus the VQA text loss) the tabletop and ball policies of runs/toy-A never
used the image (held-out MSE identical with and without images for 4,500 steps) although the nav policy did: the
objects there are small (a 9-px block, a 8-px ball in a 128-px frame) and the gradient that reaches the vision
tokens through the DiT's cross-attention is weak and noisy. This loss tells the VLM directly where things are.

Targets come from the recorded frames themselves (no world state is needed, the shards are unchanged): the worlds'
renderer uses exact palette colours with no anti-aliasing (src/worlds/canvas.ts), so

- tabletop: obj = centroid of the red pixels (Level A has one red block), aux = centroid of the end effector's dark
  ring (35, 35, 55);
- ball: obj = centroid of the pixels of exactly one palette colour (the current ball, drawn last at full alpha),
  aux = centroid of the remaining non-background pixels (the fading trail: where it came from); with
  `trail=True` (stage 4) dims 4..9 hold each earlier trail dot separately (oldest first), read as the centroid of
  the pixels of that dot's exact blend colour over the background (src/worlds/ball.ts render(): alphas 0.22,
  0.40, 0.65): the four observed positions are what the future depends on (tools/train/ball_ceiling.py);
- nav and anything else: no target (masked).

Coordinates are world-frame (x right, y up) in [0, 1], mapped to [-1, 1]. A target is masked when fewer than
`MIN_PIXELS` pixels were found (occluded by the arm, or the trail hidden under the ball).

Losses on hidden_states[vlm_layer] (what the DiT reads) at the image tokens of camera 0, for the rows that have a
target and were not T2A rows:
- cell: per-token logit, cross-entropy over the image tokens against the merged cell (32 x 32 px) holding obj;
- local: per-token linear regression of (obj, aux) read at that true cell (the token holding the object must
  carry its absolute position in its content, which is what cross-attention retrieves);
- pooled: a small MLP on the mean of the image tokens regressing (obj, aux) (mean = uniform attention);
- dit: a linear head on the DiT's state token after the last block (every noise draw) regressing (obj, aux): the
  DiT's cross-attention has to fetch the position from the VLM tokens, which the action tokens then read.
aux_loss = cell + local + pooled + dit (the last three masked MSE; with `scale` > 1 the targets are multiplied
by it and the three become smooth-L1 with beta 1, so sub-pixel errors still pull while a fresh head's large
errors do not swamp the flow-matching gradient under the global norm clip).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PALETTE = np.array([[220, 45, 45], [40, 165, 70], [45, 90, 225], [235, 200, 35], [150, 65, 195]], np.int16)
RED = (220, 45, 45)
EE_DARK = (35, 35, 55)
BALL_BG = (24, 26, 34)
BALL_BORDER = (120, 120, 130)
MIN_PIXELS = 3
NT_BASE = 4    # target dims: obj x, y, aux x, y
NT_TRAIL = 10  # with trail targets: then the three earlier ball dots' x, y
BALL_YELLOW = (235, 200, 35)
TRAIL_ALPHA = (0.22, 0.4, 0.65)


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    if len(xs) < MIN_PIXELS:
        return None
    H, W = mask.shape
    x = (xs.mean() + 0.5) / W
    y = 1.0 - (ys.mean() + 0.5) / H
    return 2 * x - 1, 2 * y - 1


def _eq(img, c):
    return (img[..., 0] == c[0]) & (img[..., 1] == c[1]) & (img[..., 2] == c[2])


def _blend(c, a):
    """The renderer's blend of colour c over the ball background (src/worlds/canvas.ts blend: rounded)."""
    return tuple(int(np.floor(b * (1 - a) + v * a + 0.5)) for b, v in zip(BALL_BG, c))


def n_targets(trail):
    """Target dims (and aux head outputs): without trail targets the head is the one earlier runs had."""
    return NT_TRAIL if trail else NT_BASE


def frame_targets(world, img, trail=False):
    """img: [H, W, 3] uint8 as recorded. Returns (target [n_targets(trail)] float32, mask of the same shape)."""
    t = np.zeros(n_targets(trail), np.float32)
    m = np.zeros(n_targets(trail), bool)
    if world == "ball" and trail:
        for k, a in enumerate(TRAIL_ALPHA):
            c = _centroid(_eq(img, _blend(BALL_YELLOW, a)))
            if c is not None:
                t[4 + 2 * k:6 + 2 * k], m[4 + 2 * k:6 + 2 * k] = c, True
    if world == "tabletop":
        a, b = _centroid(_eq(img, RED)), _centroid(_eq(img, EE_DARK))
    elif world == "ball":
        cur = np.zeros(img.shape[:2], bool)
        for c in PALETTE:
            cur |= _eq(img, c)
        other = ~cur & ~_eq(img, BALL_BG) & ~_eq(img, BALL_BORDER)
        a, b = _centroid(cur), _centroid(other)
    else:
        return t, m
    if a is not None:
        t[0:2], m[0:2] = a, True
    if b is not None:
        t[2:4], m[2:4] = b, True
    return t, m


def shard_targets(shard, trail=False):
    """Per sample: targets [N, nt], mask [N, nt] (camera 0 of the frames as the network sees them)."""
    n = shard.n
    T = np.zeros((n, n_targets(trail)), np.float32)
    M = np.zeros((n, n_targets(trail)), bool)
    if shard.world in ("tabletop", "ball") and shard.level == "A":
        for i in range(n):
            T[i], M[i] = frame_targets(shard.world, shard.frames[i, 0], trail)
    return T, M


class AuxHead(nn.Module):
    def __init__(self, d, d_dit, nt=NT_BASE, hidden=128):
        super().__init__()
        self.dit = nn.Linear(d_dit, nt)
        self.cell = nn.Linear(d, 1)
        self.local = nn.Linear(d, nt)
        self.pool = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, nt))


def _reg(pred, tg, mk, scale):
    if scale > 1:
        e = F.smooth_l1_loss(pred * scale, tg.expand_as(pred) * scale, reduction="none", beta=1.0)
    else:
        e = (pred - tg) ** 2
    return e * mk


def aux_loss(head, ctx, bt, dit_state=None, scale=1.0):
    """ctx: [B, L, D] hidden states; rows' targets bt.aux_t/aux_m, merged grid width of camera 0 bt.aux_gw."""
    bi, li = bt.act.img_index
    rows = [b for b in range(ctx.shape[0]) if bt.aux_m[b].any() and not bt.t2a[b]]
    if not rows:
        return None, {}
    gw = bt.aux_gw[rows[0]]
    if any(bt.aux_gw[b] != gw for b in rows):
        raise ValueError("aux targets on cameras of different widths in one batch")
    toks, tg, mk = [], [], []
    for b in rows:
        idx = li[bi == b]
        toks.append(ctx[b, idx])                   # [n, D] (camera 0 only: these worlds have one camera)
        tg.append(bt.aux_t[b])
        mk.append(bt.aux_m[b])
    n = len(toks[0])
    if any(len(t) != n for t in toks):
        raise ValueError("aux targets on frames with different token counts in one batch")
    tok = torch.stack(toks)                        # [R, n, D]
    tg = torch.from_numpy(np.stack(tg))
    mk = torch.from_numpy(np.stack(mk)).float()
    # merged cell of obj (row-major over the merged grid; y up -> row 0 is the top)
    x01 = (tg[:, 0] + 1) / 2
    y01 = (tg[:, 1] + 1) / 2
    gh = n // gw
    col = torch.clamp((x01 * gw).long(), 0, gw - 1)
    row = torch.clamp(((1 - y01) * gh).long(), 0, gh - 1)
    cell = row * gw + col
    has = mk[:, 0] > 0
    out = {}
    loss = tok.new_zeros(())
    if has.any():
        logits = head.cell(tok).squeeze(-1)        # [R, n]
        lc = F.cross_entropy(logits[has], cell[has])
        out["cell"] = lc
        out["cell_acc"] = (logits[has].argmax(-1) == cell[has]).float().mean()
        loc = head.local(tok[torch.arange(len(rows)), cell])          # [R, nt]
        ll = _reg(loc, tg, mk, scale)[has].sum() / mk[has].sum().clamp(min=1)
        out["local"] = ll
        loss = loss + lc + ll
    pooled = head.pool(tok.mean(1))
    lp = _reg(pooled, tg, mk, scale).sum() / mk.sum().clamp(min=1)
    out["pooled"] = lp
    loss = loss + lp
    if dit_state is not None:                       # [B, R, D_dit]: every draw's state token must know it too
        ri = torch.tensor(rows)
        pd = head.dit(dit_state[ri])                # [R_rows, draws, nt]
        ld = _reg(pd, tg[:, None], mk[:, None], scale).sum() / (mk.sum() * pd.shape[1]).clamp(min=1)
        out["dit"] = ld
        loss = loss + ld
    return loss, out

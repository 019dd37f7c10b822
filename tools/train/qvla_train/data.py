"""Recorded shards (src/worlds/README.md, "Recorded shards"): loading into RAM, engine-exact preprocessing,
text-only (T2A) prompts, balanced sampling and batch assembly.

Preprocessing: frames are RGB uint8 [H, W, 3]. The checkpoint we write has preprocessor min_pixels 4096 /
max_pixels 16384, so smart_resize(H, W) == (H, W) for the worlds' 128x128 and 128x96 cameras: no resize, only
x = p/255*2-1 (mean = std = 0.5), two identical temporal frames, merge-block patch order (qvla_ref/preprocess.py).
A shard whose frames would need a resize is resized once at load time with the reference bicubic resize.

T2A prompt: the stored action prompt with every image span `{camera}: <|vision_start|><|image_pad|>xN<|vision_end|>\n`
removed. The camera label is the run of tokens after the last token containing a newline before
<|vision_start|>; the token after <|vision_end|> must be exactly "\n". Because the BPE pre-tokenizer never merges
a newline with the letters that follow it, this equals what act() encodes for the same embodiment/instruction
with no images (checked against the tokenizer in tools/train/selftest.py).
"""
import json
import os

import numpy as np
import torch

from . import REF  # noqa: F401
from qvla_ref import safetensors_io as st
from qvla_ref.preprocess import smart_resize, resize_bicubic_u8
from qvla_ref.rope_index import rope_index
from qvla_ref.tokenizer import BYTE_DECODER

SHARD_KEYS = ("frames", "input_ids", "input_len", "state", "has_state", "actions", "h_e", "k_e")
VQA_KEYS = ("vqa_ids", "vqa_len", "vqa_answer_start")


# ----------------------------------------------------------------------------- preprocessing
def frames_to_pixel_values(frames, patch=16, temporal=2, merge=2, fold=False, dtype=torch.float32):
    """frames uint8 [n, H, W, 3] (numpy or torch) -> pixel_values [n, gh*gw, 3*temporal*patch*patch]
    in merge-block order (exactly qvla_ref.preprocess.preprocess_image when no resize is needed).
    fold=True leaves out the duplicated temporal frame: [n, gh*gw, 3*patch*patch] (QVLAModel.vision then sums
    the two temporal halves of the patch-embed weight)."""
    f = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    n, H, W, c = f.shape
    x = (f.to(dtype) / 255.0 - 0.5) / 0.5
    x = x.permute(0, 3, 1, 2)                                     # [n, c, H, W]
    gh, gw = H // patch, W // patch
    tt = 1 if fold else temporal
    x = x[:, None].expand(n, tt, c, H, W)
    x = x.reshape(n, tt, c, gh // merge, merge, patch, gw // merge, merge, patch)
    # axes: 0 n, 1 t, 2 c, 3 bh, 4 ih, 5 py, 6 bw, 7 iw, 8 px -> (n, bh, bw, ih, iw, c, t, py, px)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(n, gh * gw, c * tt * patch * patch)


# ----------------------------------------------------------------------------- tokenizer strings
class TokenTable:
    """id -> decoded text of one token (byte-level BPE), from tokenizer.json (the reference's byte table)."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tok = json.load(f)
        dec = BYTE_DECODER
        self.text = {}
        for s, i in tok["model"]["vocab"].items():
            self.text[i] = bytes(dec.get(ch, 0x3F) for ch in s).decode("utf-8", errors="replace")
        self.ids = {}
        for a in tok.get("added_tokens", []):
            self.text[a["id"]] = a["content"]
            self.ids[a["content"]] = a["id"]

    def id(self, s):
        return self.ids[s]


def drop_vision_spans(ids, tt):
    """ids: list of int (one action prompt, pads expanded). Returns the T2A prompt ids, or raises ValueError."""
    vs, ve, img = tt.id("<|vision_start|>"), tt.id("<|vision_end|>"), tt.id("<|image_pad|>")
    out = []
    i = 0
    n = len(ids)
    starts = [j for j, t in enumerate(ids) if t == vs]
    last = 0
    for s in starts:
        j = s - 1
        while j >= last and "\n" not in tt.text.get(ids[j], ""):
            j -= 1
        if j >= last:
            if not tt.text[ids[j]].endswith("\n"):
                raise ValueError(f"token {ids[j]} before the camera label does not end with a newline")
            label_start = j + 1
        elif last > 0:
            label_start = last            # right after the previous span's closing newline
        else:
            raise ValueError("no newline before a camera label")
        e = s + 1
        while e < n and ids[e] == img:
            e += 1
        if e >= n or ids[e] != ve:
            raise ValueError("<|vision_start|> without <|vision_end|>")
        if e + 1 >= n or tt.text.get(ids[e + 1]) != "\n":
            raise ValueError("<|vision_end|> not followed by a lone newline token")
        if any(t in (vs, ve, img) for t in ids[label_start:s]):
            raise ValueError("special token inside a camera label")
        out.extend(ids[last:label_start])
        last = e + 2
        i += 1
    out.extend(ids[last:])
    return out


# ----------------------------------------------------------------------------- shards
class Shard:
    def __init__(self, path, pp, merge=2, patch=16):
        T, _, meta = st.load_file(path)
        self.path = path
        self.meta = meta
        for k in SHARD_KEYS:
            if k not in T:
                raise ValueError(f"{path}: missing tensor {k}")
        self.world = meta.get("world", "?")
        self.embodiment = meta.get("embodiment", "?")
        self.level = meta.get("level", "?")
        self.grids = [tuple(int(v) for v in g) for g in json.loads(meta["image_grids"])]
        self.instructions = json.loads(meta["instructions"]) if "instructions" in meta else None
        fr = T["frames"]
        if fr.dtype != np.uint8 or fr.ndim != 5 or fr.shape[-1] != 3:
            raise ValueError(f"{path}: frames must be U8 [N, C, H, W, 3], got {fr.dtype} {fr.shape}")
        self.n = fr.shape[0]
        C, H, W = fr.shape[1:4]
        if C != len(self.grids):
            raise ValueError(f"{path}: {C} cameras but {len(self.grids)} image_grids")
        factor = patch * merge
        want = smart_resize(H, W, factor, pp["min_pixels"], pp["max_pixels"])
        self.resized = want != (H, W)
        if self.resized:
            print(f"[data] {os.path.basename(path)}: resizing {H}x{W} -> {want[0]}x{want[1]} (bicubic, once)")
            out = np.empty((self.n, C, want[0], want[1], 3), np.uint8)
            for i in range(self.n):
                for c in range(C):
                    out[i, c] = resize_bicubic_u8(fr[i, c], want[0], want[1])
            fr = out
        for c, g in enumerate(self.grids):
            if (g[1] * patch, g[2] * patch) != tuple(fr.shape[2:4]) or g[0] != 1:
                raise ValueError(f"{path}: camera {c} grid {g} does not match frames {fr.shape[2:4]}")
        self.frames = fr                                            # [N, C, H, W, 3] uint8
        self.input_ids = T["input_ids"].astype(np.int64)
        self.input_len = T["input_len"].astype(np.int64)
        self.state = T["state"].astype(np.float32)
        self.has_state = T["has_state"].astype(bool)
        self.actions = T["actions"].astype(np.float32)
        self.h_e = T["h_e"].astype(np.int64)
        self.k_e = T["k_e"].astype(np.int64)
        self.has_vqa = all(k in T for k in VQA_KEYS)
        if self.has_vqa:
            self.vqa_ids = T["vqa_ids"].astype(np.int64)
            self.vqa_len = T["vqa_len"].astype(np.int64)
            self.vqa_answer_start = T["vqa_answer_start"].astype(np.int64)
        self._pos = {}
        self._t2a = {}

    def check(self, image_token_id, merge, dims, vocab=None, im_start=None):
        """dims: (h_max, k_max, s_max) of the model config; vocab: vocab_size; im_start: the <|im_start|> id."""
        h_max, k_max, s_max = dims
        if self.actions.shape[1:] != (h_max, k_max):
            raise ValueError(f"{self.path}: actions {self.actions.shape[1:]} != (h_max, k_max) {(h_max, k_max)}")
        if self.state.shape[1] != s_max:
            raise ValueError(f"{self.path}: state width {self.state.shape[1]} != s_max {s_max}")
        if not ((self.h_e >= 1) & (self.h_e <= h_max) & (self.k_e >= 1) & (self.k_e <= k_max)).all():
            raise ValueError(f"{self.path}: h_e/k_e out of range")
        for name, ids, lens in (("input_ids", self.input_ids, self.input_len),) + (
                (("vqa_ids", self.vqa_ids, self.vqa_len),) if self.has_vqa else ()):
            valid = np.arange(ids.shape[1])[None] < lens[:, None]
            if (lens > ids.shape[1]).any() or (ids[valid] < 0).any() or (vocab and (ids[valid] >= vocab).any()):
                raise ValueError(f"{self.path}: {name} holds ids outside the vocabulary (or a bad length)")
            if im_start is not None and (lens > 0).any() and (ids[lens > 0, 0] != im_start).any():
                raise ValueError(f"{self.path}: {name} do not start with <|im_start|>: recorded with another tokenizer?")
        n_img = sum(g[0] * g[1] * g[2] // merge ** 2 for g in self.grids)
        for i in range(self.n):
            L = int(self.input_len[i])
            if int((self.input_ids[i, :L] == image_token_id).sum()) != n_img:
                raise ValueError(f"{self.path}: sample {i} has the wrong number of image pads (want {n_img})")
        if not np.isfinite(self.actions).all() or not np.isfinite(self.state).all():
            raise ValueError(f"{self.path}: non-finite actions/state")
        if self.has_vqa:
            n0 = self.grids[0][1] * self.grids[0][2] // merge ** 2
            for i in range(self.n):
                L, a = int(self.vqa_len[i]), int(self.vqa_answer_start[i])
                if L == 0:
                    continue
                if not 0 < a < L:
                    raise ValueError(f"{self.path}: sample {i}: vqa_answer_start {a} not inside (0, {L})")
                if int((self.vqa_ids[i, :L] == image_token_id).sum()) != n0:
                    raise ValueError(f"{self.path}: sample {i}: vqa prompt must hold frame 0's {n0} image pads")

    def action_ids(self, i):
        return self.input_ids[i, :int(self.input_len[i])]

    def t2a_ids(self, i, tt):
        v = self._t2a.get(i)
        if v is None:
            v = np.asarray(drop_vision_spans([int(t) for t in self.action_ids(i)], tt), np.int64)
            self._t2a[i] = v
        return v

    def positions(self, kind, i, ids, grids, image_token_id, merge):
        key = (kind, i)
        v = self._pos.get(key)
        if v is None:
            mm = (np.asarray(ids) == image_token_id).astype(np.int32)
            v, _ = rope_index(mm, grids, merge)
            self._pos[key] = v
        return v


def load_shards(dirs, pp, merge=2, patch=16, log=print):
    shards = []
    for d in dirs:
        files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
        if not files:
            raise ValueError(f"{d}: no .safetensors shards")
        for f in files:
            s = Shard(os.path.join(d, f), pp, merge, patch)
            log(f"[data] {os.path.join(d, f)}: {s.n} samples, {s.world}/{s.embodiment}/{s.level}, "
                f"cameras {[g[1:] for g in s.grids]}, vqa {'yes' if s.has_vqa else 'no'}")
            shards.append(s)
    return shards


def merge_embodiments(dirs):
    """Union of the data dirs' embodiments.json registries; an embodiment present twice must be identical."""
    reg = None
    for d in dirs:
        p = os.path.join(d, "embodiments.json")
        if not os.path.exists(p):
            raise ValueError(f"{d}: no embodiments.json")
        with open(p) as f:
            j = json.load(f)
        if reg is None:
            reg = j
            continue
        for k, v in j["embodiments"].items():
            if k in reg["embodiments"] and reg["embodiments"][k] != v:
                raise ValueError(f"embodiment {k} differs between data dirs (normalisation stats must agree)")
            reg["embodiments"][k] = v
    return reg


# ----------------------------------------------------------------------------- sampling
class Sampler:
    """Draws (shard, sample) pairs. balance='group': uniform over (world, embodiment, level) groups, then
    uniform over the group's samples; 'shard': uniform over shards; 'sample': uniform over all samples."""

    def __init__(self, shards, balance="group", world_weights=None):
        self.shards = shards
        self.balance = balance
        keys = {}
        for si, s in enumerate(shards):
            k = (s.world, s.embodiment, s.level) if balance == "group" else (si if balance == "shard" else 0)
            keys.setdefault(k, []).append(si)
        order = sorted(keys, key=str)
        self.groups = [keys[k] for k in order]
        self.group_sizes = [np.cumsum([shards[si].n for si in g]) for g in self.groups]
        ww = world_weights or {}
        if ww and balance != "group":
            raise ValueError("group weights need balance='group'")
        worlds = {k[0] for k in order} if balance == "group" else set()
        for w in ww:
            if w not in worlds:
                raise ValueError(f"group weights: no world {w!r} in the data (have {sorted(worlds)})")
        p = np.array([ww.get(k[0], 1.0) if balance == "group" else 1.0 for k in order])
        # None keeps the unweighted draw (and so the random stream of runs made before weights existed)
        self.p = None if not ww else p / p.sum()

    def draw(self, rng, B):
        gs = rng.integers(len(self.groups), size=B) if self.p is None else rng.choice(len(self.groups), size=B, p=self.p)
        out = []
        for g in gs:
            cs = self.group_sizes[g]
            j = int(rng.integers(int(cs[-1])))
            k = int(np.searchsorted(cs, j, side="right"))
            si = self.groups[g][k]
            out.append((si, j - (int(cs[k - 1]) if k else 0)))
        return out


# ----------------------------------------------------------------------------- batches
class Seq:
    """A right-padded batch of token sequences with their image slots."""

    def __init__(self, rows, image_token_id, pad_id):
        """rows: list of (ids np.int64 [L_i], pos3 [3, L_i], image keys in order)."""
        B = len(rows)
        L = max(len(r[0]) for r in rows)
        ids = np.full((B, L), pad_id, np.int64)
        pos = np.zeros((B, 3, L), np.int64)
        lens = np.zeros(B, np.int64)
        keys = []
        for b, (r, p, k) in enumerate(rows):
            ids[b, :len(r)] = r
            pos[b, :, :len(r)] = p
            lens[b] = len(r)
            keys.extend(k)
        bi, li = np.nonzero(ids == image_token_id)
        self.ids = torch.from_numpy(ids)
        self.pos3 = torch.from_numpy(pos)
        self.lens = torch.from_numpy(lens)
        self.img_index = (torch.from_numpy(bi), torch.from_numpy(li))
        self.img_keys = keys
        self.mask = torch.arange(L)[None] < self.lens[:, None]


class Batch:
    pass


def build_batch(shards, picks, t2a, vqa_rows, tt, image_token_id, pad_id, merge=2):
    """picks: list of (shard, sample); t2a: bool per row; vqa_rows: row indices that also get a VQA sequence."""
    bt = Batch()
    need = {}                                    # (row, cam) -> frame
    act_rows = []
    for b, (si, i) in enumerate(picks):
        s = shards[si]
        if t2a[b]:
            ids = s.t2a_ids(i, tt)
            pos = s.positions("t2a", i, ids, [], image_token_id, merge)
            act_rows.append((ids, pos, []))
        else:
            ids = s.action_ids(i)
            pos = s.positions("act", i, ids, s.grids, image_token_id, merge)
            keys = [(b, c) for c in range(len(s.grids))]
            for c in range(len(s.grids)):
                need[(b, c)] = (si, i, c)
            act_rows.append((ids, pos, keys))
    bt.act = Seq(act_rows, image_token_id, pad_id)
    q_rows, tgt_b, tgt_l, tgt = [], [], [], []
    for r, b in enumerate(vqa_rows):
        si, i = picks[b]
        s = shards[si]
        L, a = int(s.vqa_len[i]), int(s.vqa_answer_start[i])
        ids = s.vqa_ids[i, :L]
        pos = s.positions("vqa", i, ids, [s.grids[0]], image_token_id, merge)
        q_rows.append((ids, pos, [(b, 0)]))
        need[(b, 0)] = (si, i, 0)
        for t in range(a, L):                     # logits at t-1 predict token t
            tgt_b.append(r)
            tgt_l.append(t - 1)
            tgt.append(int(ids[t]))
    bt.vqa = None
    if q_rows:
        bt.vqa = Seq(q_rows, image_token_id, pad_id)
        bt.vqa.tgt_index = (torch.tensor(tgt_b), torch.tensor(tgt_l))
        bt.vqa.targets = torch.tensor(tgt)
    groups = {}
    for key in sorted(need):
        si, i, c = need[key]
        s = shards[si]
        g = s.grids[c]
        groups.setdefault(g, ([], []))
        groups[g][0].append(key)
        groups[g][1].append(s.frames[i, c])
    bt.groups = [(g, keys, np.stack(fr)) for g, (keys, fr) in sorted(groups.items())]
    bt.state = torch.from_numpy(np.stack([shards[si].state[i] for si, i in picks]))
    bt.has_state = torch.from_numpy(np.array([shards[si].has_state[i] for si, i in picks]))
    bt.actions = torch.from_numpy(np.stack([shards[si].actions[i] for si, i in picks]))
    bt.h_e = torch.from_numpy(np.array([shards[si].h_e[i] for si, i in picks]))
    bt.k_e = torch.from_numpy(np.array([shards[si].k_e[i] for si, i in picks]))
    if all(getattr(shards[si], "aux_T", None) is not None for si, _ in picks):
        bt.aux_t = np.stack([shards[si].aux_T[i] for si, i in picks])
        bt.aux_m = np.stack([shards[si].aux_M[i] for si, i in picks])
        bt.aux_gw = [shards[si].grids[0][2] // merge for si, _ in picks]
    bt.picks = picks
    bt.t2a = list(t2a)
    return bt


def vision_tokens(model, W, bt, fold=True):
    """Runs the vision tower once per grid group; returns {(row, cam): tokens [n, D]}."""
    vc = model.vc
    out = {}
    for g, keys, frames in bt.groups:
        pv = frames_to_pixel_values(frames, vc.patch, vc.temporal, vc.merge, fold=fold, dtype=model.dtype)
        y = model.vision(W, pv, g)
        for j, k in enumerate(keys):
            out[k] = y[j]
    return out


def seq_vis(seq, vis):
    if not seq.img_keys:
        return None
    return torch.cat([vis[k] for k in seq.img_keys], 0)


def tau_beta(gen, shape, s=0.999, alpha=1.5):
    """tau (tau = 1 noise) = 1 - s*(1 - b), b ~ Beta(alpha, 1) (= U^(1/alpha)): the pi0/GR00T density
    Beta((s - t)/s; 1.5, 1) on t = 1 - tau, i.e. biased toward tau = 1 (noise), tau in [1 - s, 1]."""
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    b = u ** (1.0 / alpha)
    return 1.0 - s * (1.0 - b)

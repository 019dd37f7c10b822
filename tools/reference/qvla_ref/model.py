"""Ties the reference together: load a checkpoint directory, run the VLM, decode greedily, act()."""
import numpy as np
import torch

from . import safetensors_io as st
from .config import load_config, load_preprocessor, text_cfg, vision_cfg, dit_cfg
from .preprocess import preprocess_image
from .rope_index import mm_token_type_ids, rope_index
from .text import text_forward, new_cache, embed, lm_head
from .vision import vision_forward
from .dit import CrossKV, encode_state, dit_velocity, action_mask
from .sampling import sample


class QVLA:
    def __init__(self, ckpt_dir, dtype=torch.float64):
        self.dir = ckpt_dir
        self.cfg = load_config(ckpt_dir)
        self.pp = load_preprocessor(ckpt_dir)
        self.tc = text_cfg(self.cfg)
        self.vc = vision_cfg(self.cfg)
        self.dc = dit_cfg(self.cfg) if "action_expert" in self.cfg else None
        raw, self.dtypes = st.load_checkpoint_dir(ckpt_dir, as_float64=True)
        self.W = {k: torch.from_numpy(v).to(dtype) for k, v in raw.items()}
        self.image_token_id = self.cfg["image_token_id"]
        self.video_token_id = self.cfg.get("video_token_id")

    # ------------------------------------------------------------------ vision
    def preprocess(self, img_u8):
        pv, grid, resized = preprocess_image(np.asarray(img_u8, dtype=np.uint8), self.pp)
        return torch.from_numpy(pv), grid, resized

    def vision(self, pixel_values, grid):
        return vision_forward(self.W, self.vc, pixel_values, grid)

    # ------------------------------------------------------------------ VLM
    def embed_inputs(self, input_ids, vision_tokens):
        h = embed(self.W, input_ids).clone()
        ids = torch.as_tensor(input_ids, dtype=torch.long)
        pos = torch.nonzero(ids == self.image_token_id).flatten()
        v = torch.cat(vision_tokens, 0) if vision_tokens else torch.zeros(0, h.shape[1], dtype=h.dtype)
        assert v.shape[0] == pos.shape[0], f"{pos.shape[0]} image pads but {v.shape[0]} vision tokens"
        h[pos] = v
        return h

    def positions(self, input_ids, grids):
        mm = mm_token_type_ids(input_ids, self.image_token_id, self.video_token_id)
        pos3, delta = rope_index(mm, grids, self.vc.merge)
        return mm, torch.from_numpy(pos3), delta

    def run_vlm(self, pixel_values, grids, input_ids, cache=None, gdn_mode="chunked"):
        """pixel_values: list of [Np, 1536] tensors; grids: list of (1, gh, gw); input_ids: list[int]
        (image pads already expanded). Returns a dict."""
        vis = [self.vision(pv, g) for pv, g in zip(pixel_values, grids)]
        h = self.embed_inputs(input_ids, vis)
        mm, pos3, delta = self.positions(input_ids, grids)
        hs, last, final = text_forward(self.W, self.tc, h, pos3, cache, gdn_mode)
        return {"vision": vis, "hidden_states": hs, "last_layer_output": last, "final": final,
                "logits": lm_head(self.W, self.tc, final), "mm_token_type_ids": mm, "pos3": pos3,
                "rope_delta": delta}

    def greedy_decode(self, pixel_values, grids, input_ids, n_new):
        """Prefill with cache, then n_new greedy steps with the cache. Returns tokens and per-step logits."""
        cache = new_cache(self.tc)
        out = self.run_vlm(pixel_values, grids, input_ids, cache)
        delta = out["rope_delta"]
        logits = out["logits"][-1]
        toks, all_logits = [], []
        L = len(input_ids)
        for step in range(n_new):
            all_logits.append(logits)
            t = int(torch.argmax(logits))
            toks.append(t)
            if step == n_new - 1:
                break
            n = L + step                      # absolute index of the token being fed
            pos3 = torch.full((3, 1), n + delta, dtype=torch.long)
            h = embed(self.W, [t])
            _, _, final = text_forward(self.W, self.tc, h, pos3, cache)
            logits = lm_head(self.W, self.tc, final)[-1]
        return toks, torch.stack(all_logits), out

    def recompute_decode(self, pixel_values, grids, input_ids, toks):
        """No-cache check: run the full sequence prompt+toks[:-1] and return the logits that predict each tok."""
        ids = list(input_ids) + list(toks[:-1])
        vis = [self.vision(pv, g) for pv, g in zip(pixel_values, grids)]
        h = self.embed_inputs(ids, vis)
        _, pos_prompt, delta = self.positions(input_ids, grids)
        L = len(input_ids)
        gen = torch.arange(L, len(ids), dtype=torch.long) + delta
        pos3 = torch.cat([pos_prompt, gen[None].expand(3, -1)], 1)
        _, _, final = text_forward(self.W, self.tc, h, pos3, None)
        return lm_head(self.W, self.tc, final)[L - 1:]

    # ------------------------------------------------------------------ action
    def vlm_features(self, out):
        return out["hidden_states"][self.dc.vlm_layer]

    def act(self, vlm_hidden, noise, h_e, k_e, state=None, steps=10, solver="euler", grid="uniform",
            return_all=False):
        dc = self.dc
        cross = CrossKV(self.W, dc, vlm_hidden)
        st_tok = encode_state(self.W, dc, state)
        mask = action_mask(dc, h_e, k_e, vlm_hidden.dtype)
        fn = lambda y, tau: dit_velocity(self.W, dc, y, tau, st_tok, h_e, cross=cross)  # noqa: E731
        return sample(fn, torch.as_tensor(noise, dtype=vlm_hidden.dtype), mask, steps, solver, grid,
                      dc.time_shift, return_all)

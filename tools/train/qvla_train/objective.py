"""The training loss of one batch (see tools/train/README.md, "What is trained").

fm:   flow matching under time_convention tau1_noise. For every VLM context R draws (noise, tau):
      y_tau = (tau*noise + (1 - tau)*x) * m, target velocity u = noise - x, m = (row < h_e) & (col < k_e);
      loss = mean over rows and draws of  sum(m * (v(y_tau, bucket(tau)) - u)^2) / sum(m).
      The chunk is masked before the network exactly as the sampler does at inference (Y_0 = noise * m and every
      velocity masked, so padded entries of Y are always 0).
text: cross entropy on the VQA answer tokens (and the closing <|im_end|>), next-token, mean over tokens.
total = fm + text_weight * text (text only on batches that carry VQA rows).
"""
import torch
import torch.nn.functional as F

from .data import vision_tokens, seq_vis, tau_beta
from .model import time_bucket
from .aux import aux_loss


def batch_loss(model, bt, gen, draws=4, text_weight=0.2, tau_s=0.999, tau_alpha=1.5, aux_head=None, aux_weight=0.0, aux_scale=1.0):
    W = model.weights()
    dc = model.dc
    vis = vision_tokens(model, W, bt)
    a = bt.act
    h = model.embed(W, a.ids, a.img_index, seq_vis(a, vis))
    hs = model.text(W, h, a.pos3, upto=dc.vlm_layer)
    ctx = hs[dc.vlm_layer]
    kv = model.dit_cross(W, ctx)
    B = ctx.shape[0]
    stt = model.dit_state(W, bt.state, bt.has_state)
    x = bt.actions.to(model.dtype)[:, None]                                            # [B, 1, h, k]
    rows = torch.arange(dc.h_max)[None, :, None] < bt.h_e[:, None, None]
    cols = torch.arange(dc.k_max)[None, None, :] < bt.k_e[:, None, None]
    m = (rows & cols).to(model.dtype)[:, None]                                         # [B, 1, h, k]
    noise = torch.randn((B, draws, dc.h_max, dc.k_max), generator=gen, dtype=model.dtype)
    tau64 = tau_beta(gen, (B, draws), tau_s, tau_alpha)
    tau = tau64.to(model.dtype)[..., None, None]
    y = (tau * noise + (1.0 - tau) * x) * m
    tap = [] if (aux_head is not None and aux_weight > 0) else None
    v = model.dit_velocity(W, y, time_bucket(tau64, dc.num_buckets), stt, bt.h_e, kv, a.mask, tap=tap)
    err = ((v - (noise - x)) ** 2 * m).sum((2, 3)) / m.sum((2, 3))                    # [B, R]
    fm = err.mean()
    out = {"fm": fm, "fm_rows": err.detach().mean(1)}
    loss = fm
    if aux_head is not None and aux_weight > 0 and getattr(bt, "aux_t", None) is not None:
        la, parts = aux_loss(aux_head, ctx, bt, dit_state=tap[0], scale=aux_scale)
        if la is not None:
            out["aux"] = la
            out.update({"aux_" + k: v for k, v in parts.items()})
            loss = loss + aux_weight * la
    if bt.vqa is not None:
        q = bt.vqa
        hq = model.embed(W, q.ids, q.img_index, seq_vis(q, vis))
        final = model.text(W, hq, q.pos3)[-1]
        logits = model.logits(W, final[q.tgt_index])
        text = F.cross_entropy(logits, q.targets)
        out["text"] = text
        loss = loss + text_weight * text
    out["loss"] = loss
    return out

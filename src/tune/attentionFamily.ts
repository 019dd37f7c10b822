// The `attention` tuning family (src/tune/tune.ts): which prefill kernel attention() runs ('tiles' or 'rows', see
// src/tune/attentionPrefill.ts), one shape class per (head dim, GQA group). The prefill-style calls a checkpoint's
// model makes, each timed the way the policy runs it (one segment; src/model/*):
//   text full attention: causal self-attention over --prefill-rows tokens, GQA, with the output gate;
//   vision: bidirectional self-attention over the patches of one 448×448 image;
//   DiT self-attention: 1 + hMax rows; DiT cross-attention: 1 + hMax queries against --prefill-rows context keys.
// A class shared by several of these is timed at the one with the most score work (Lq·Lk·heads), where the choice
// costs the most.
import type { Gpu } from '../gpu/device.js';
import type { QvlaConfig } from '../model/config.js';
import { attention, attentionConfig } from '../ops/attention.js';
import { Tensor } from '../tensor.js';
import { ATTENTION_FAMILY, ATTENTION_PREFILL_CANDIDATES, attentionShapeClass } from './attentionPrefill.js';
import { registerTuneFamily, timedRun, type TuneFamily, type TuneShape } from './tune.js';

interface AttentionTuneShape { what: string; Lq: number; Lk: number; H: number; Hkv: number; hd: number; causal: boolean; gate: boolean }

export function attentionTuneShapes(cfg: QvlaConfig, opts: { prefillRows: number }): TuneShape[] {
  const uses: AttentionTuneShape[] = [];
  const t = cfg.text;
  const L = opts.prefillRows;
  if (t.layerTypes.includes('full_attention')) {
    uses.push({ what: 'text', Lq: L, Lk: L, H: t.numAttentionHeads, Hkv: t.numKeyValueHeads, hd: t.headDim, causal: true, gate: true });
  }
  if (cfg.vision) {
    const n = Math.round((448 / cfg.vision.patchSize) ** 2);
    uses.push({ what: 'vision', Lq: n, Lk: n, H: cfg.vision.numHeads, Hkv: cfg.vision.numHeads, hd: cfg.vision.headDim, causal: false, gate: false });
  }
  const ae = cfg.actionExpert;
  if (ae) {
    const T = 1 + ae.hMax;
    uses.push({ what: 'DiT self', Lq: T, Lk: T, H: ae.numHeads, Hkv: ae.numHeads, hd: ae.headDim, causal: false, gate: false });
    uses.push({ what: 'DiT cross', Lq: T, Lk: L, H: ae.numHeads, Hkv: ae.numHeads, hd: ae.headDim, causal: false, gate: false });
  }
  const byClass = new Map<string, { s: AttentionTuneShape; users: string[] }>();
  const work = (s: AttentionTuneShape) => s.Lq * s.Lk * s.H;
  for (const s of uses) {
    const c = attentionShapeClass(s.hd, s.H / s.Hkv);
    const cur = byClass.get(c);
    if (!cur) byClass.set(c, { s, users: [s.what] });
    else {
      cur.users.push(s.what);
      if (work(s) > work(cur.s)) cur.s = s;
    }
  }
  return [...byClass.entries()].map(([shapeClass, { s, users }]) => ({
    shapeClass,
    label: `${s.what} Lq=${s.Lq} Lk=${s.Lk} ${s.H}/${s.Hkv} heads d=${s.hd}${s.causal ? ' causal' : ''}${users.length > 1 ? ` (serves ${users.join(', ')})` : ''}`,
    shape: { ...s },
    bytes: 4 * ((s.Lq * s.H * (s.gate ? 3 : 2) + 2 * s.Lk * s.Hkv) * s.hd),
  }));
}

export const attentionFamily: TuneFamily = {
  name: ATTENTION_FAMILY,
  shapes: attentionTuneShapes,
  candidates: () => ATTENTION_PREFILL_CANDIDATES.map((prefill) => ({ prefill })),
  prepare(gpu: Gpu, ts: TuneShape) {
    const s = ts.shape as unknown as AttentionTuneShape;
    const fill = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => (((i * k) % 97) / 97 - 0.5) * 0.5);
    // q (and the output gate) as strided views of one projection output, k|v of another, as the model lays them out
    const qg = Tensor.from(gpu, fill(s.Lq * s.H * s.hd * (s.gate ? 2 : 1), 31), [s.Lq, s.H * s.hd * (s.gate ? 2 : 1)]);
    const kv = Tensor.from(gpu, fill(s.Lk * 2 * s.Hkv * s.hd, 17), [s.Lk, 2 * s.Hkv * s.hd]);
    const out = Tensor.empty(gpu, [s.Lq, s.H * s.hd]);
    const qRow = s.H * s.hd * (s.gate ? 2 : 1);
    const segments = Int32Array.from([0, s.Lq]);
    const keyRanges = s.Lq !== s.Lk ? Int32Array.from([0, s.Lk]) : undefined;
    return {
      instance(config: Record<string, unknown>) {
        const variant = config.prefill as 'tiles' | 'rows';
        const args = {
          q: { tensor: qg, rowStride: qRow, offset: 0 },
          gate: s.gate ? { tensor: qg, rowStride: qRow, offset: s.H * s.hd } : undefined,
          k: { tensor: kv, rowStride: 2 * s.Hkv * s.hd, offset: 0 },
          v: { tensor: kv, rowStride: 2 * s.Hkv * s.hd, offset: s.Hkv * s.hd },
          Lq: s.Lq, Lk: s.Lk, numHeads: s.H, numKvHeads: s.Hkv, headDim: s.hd, scale: 1 / Math.sqrt(s.hd),
          causal: s.causal, segments, keyRanges, out,
        };
        // attentionConfig.prefill forces the variant for this one (synchronous) encode only.
        const run = () => timedRun(gpu, () => {
          const was = attentionConfig.prefill;
          attentionConfig.prefill = variant;
          try {
            attention(args);
          } finally {
            attentionConfig.prefill = was;
          }
        });
        return { run, dispose() {} };
      },
      dispose() { qg.release(); kv.release(); out.release(); },
    };
  },
  configName: (c) => String(c.prefill),
};

registerTuneFamily(attentionFamily);

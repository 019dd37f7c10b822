// The `linear` tuning family (src/tune/tune.ts): the linear calls a checkpoint's model makes (linearUses: its
// weights, src/model/expectedTensors.ts, plus the matrices the model stacks or splits, at the row counts and with
// the row-stable flag each caller uses), one timed shape per shape class of src/ops/linear.ts (linearShapeClass).
// A row-stable `rows:` class is timed at the largest M that uses it (linearTuneShapes).
// Candidates: the GEMM variants (plain, tiled, gemm_sg) and tile shapes below, the GEMV variants (gemv, gemv_sg where the
// adapter has fixed-size subgroups; for f16 weights each also with `wide` loads), each filtered by
// linearConfigProblem for this adapter. The lists include both default sets of src/ops/linear.ts, so a tuned entry
// is never worse than the default it replaces (as measured).
import type { Gpu } from '../gpu/device.js';
import { expectedTensors } from '../model/expectedTensors.js';
import type { QvlaConfig } from '../model/config.js';
import {
  GEMV_MAX_ROWS, LINEAR_FAMILY, linear, linearConfigName, linearConfigProblem, linearShapeClass, type LinearConfig, type LinearShape,
} from '../ops/linear.js';
import { Tensor } from '../tensor.js';
import { registerTuneFamily, timedRun, type TuneFamily, type TuneShape, type TuneShapeOptions } from './tune.js';

export const GEMM_CANDIDATES: LinearConfig[] = [
  { kernel: 'plain', tm: 4, tn: 4, wg: [8, 8] },
  { kernel: 'plain', tm: 8, tn: 4, wg: [8, 1] },
  { kernel: 'plain', tm: 4, tn: 8, wg: [8, 1] },
  { kernel: 'plain', tm: 4, tn: 4, wg: [16, 16] },
  { kernel: 'tiled', tm: 4, tn: 4, wg: [16, 16], bk: 16 },
  { kernel: 'tiled', tm: 8, tn: 8, wg: [16, 16], bk: 8 },
  { kernel: 'tiled', tm: 4, tn: 8, wg: [16, 8], bk: 16 },
  { kernel: 'tiled', tm: 8, tn: 4, wg: [8, 4], bk: 16 },
  // subgroup GEMM (fixed-size subgroups only; filtered out elsewhere); groups > 1 for GPUs' wider workgroups
  { kernel: 'gemm_sg', tm: 8, tn: 4, groups: 1 },
  { kernel: 'gemm_sg', tm: 16, tn: 1, groups: 1 },
  { kernel: 'gemm_sg', tm: 16, tn: 2, groups: 1 },
  { kernel: 'gemm_sg', tm: 16, tn: 4, groups: 1 },
  { kernel: 'gemm_sg', tm: 4, tn: 4, groups: 4 },
  { kernel: 'gemm_sg', tm: 8, tn: 4, groups: 4 },
];

export const GEMV_CANDIDATES: LinearConfig[] = [
  { kernel: 'gemv', wg: 8, rows: 4 },
  { kernel: 'gemv', wg: 8, rows: 8 },
  { kernel: 'gemv', wg: 64, rows: 4 },
  { kernel: 'gemv', wg: 128, rows: 2 },
  { kernel: 'gemv', wg: 256, rows: 4 },
  { kernel: 'gemv_sg', groups: 1, rows: 4 },
  { kernel: 'gemv_sg', groups: 1, rows: 8 },
  { kernel: 'gemv_sg', groups: 4, rows: 2 },
  { kernel: 'gemv_sg', groups: 8, rows: 1 },
  { kernel: 'gemv_sg', groups: 8, rows: 2 },
];

interface LinearUse { N: number; K: number; M: number; rowStable: boolean; group: string }

/**
 * The linear calls a model with this config makes, as (weight shape, rows, row-stable) uses (src/model/*):
 *   text: decode (M = 1, GEMV), the KV-cache prefill (M = --prefill-rows, `gemm:`), and the policy's ragged prefill
 *     (TextDecoder.prefillRows: `tiled: true`, `rows:` at M = --prefill-rows); besides the checkpoint tensors, the
 *     matrices the model builds: q_proj split into q and gate halves, gate_proj + up_proj stacked ([2I, D]);
 *   lm_head: decode only (logits of the last position);
 *   vision: every linear `tiled: true`, at the patches of one 448×448 image (M = (448 / patch)²), the merger at
 *     M / merge²;
 *   action expert (DiT): every linear `tiled: true`, at M = 1 + hMax (state + chunk rows); the cross-attention
 *     K/V projections at the VLM context (M = --prefill-rows); the fused self-attention q|k|v ([3D, D]) and the
 *     stacked modulation projections (every block's norm1 + proj_out_1, one row per action chunk).
 */
export function linearUses(cfg: QvlaConfig, prefillRows: number): LinearUse[] {
  const uses: LinearUse[] = [];
  const use = (N: number, K: number, M: number, rowStable: boolean, group: string) => {
    if (N >= 2 && K >= 2 && M >= 1) uses.push({ N, K, M, rowStable, group });
  };
  const text = (N: number, K: number) => {
    use(N, K, 1, false, 'text');
    use(N, K, prefillRows, false, 'text');
    use(N, K, prefillRows, true, 'text');
  };
  const vis = cfg.vision;
  const visionTokens = vis ? Math.round((448 / vis.patchSize) ** 2) : 0;
  const ae = cfg.actionExpert;
  const ditRows = ae ? 1 + ae.hMax : 0;
  let modsN = 0;
  for (const t of expectedTensors(cfg)) {
    if (!t.name.endsWith('.weight') || /embed_tokens|position_embedding|pos_embed|norm\.weight$|norm\d?\.weight$/.test(t.name)) continue;
    const patch = /patch_embed/.test(t.name);
    if (t.shape.length !== 2 && !patch) continue;
    const N = t.shape[0], K = t.shape.slice(1).reduce((a, b) => a * b, 1);
    if (t.group === 'text') {
      text(N, K);
      if (/self_attn\.q_proj/.test(t.name)) text(N / 2, K); // split into q and gate
    } else if (t.group === 'lm_head') {
      use(N, K, 1, false, 'lm_head');
    } else if (t.group === 'vision' && vis) {
      const merger = /merger/.test(t.name);
      use(N, K, merger ? Math.max(1, Math.round(visionTokens / vis.spatialMergeSize ** 2)) : visionTokens, true, 'vision');
    } else if (t.group === 'action_expert' && ae) {
      const blk = /\.blocks\.(\d+)\.attn\.to_[kv]\./.exec(t.name);
      const cross = blk !== null && Number(blk[1]) % ae.crossEvery === 0;
      use(N, K, cross ? prefillRows : ditRows, true, cross ? 'action_expert cross K/V' : 'action_expert');
      if (/\.blocks\.\d+\.attn\.to_q\./.test(t.name)) use(3 * N, K, ditRows, true, 'action_expert self q|k|v');
      if (/\.blocks\.\d+\.norm1\.linear\.|proj_out_1\./.test(t.name)) modsN += N;
    }
  }
  if (ae && modsN) use(modsN, ae.hiddenSize, 1, true, 'action_expert modulations'); // every block's norm1 + proj_out_1, stacked, one row per call
  const I = cfg.text.intermediateSize, D = cfg.text.hiddenSize;
  text(2 * I, D); // stacked gate_proj + up_proj
  return uses;
}

/**
 * The linear shapes of a model config, one per shape class. `gemv:` / `gemm:` classes carry M (bucketed), so the
 * first use of a class is timed. A `rows:` class is M-free and serves callers with very different M (the DiT's 17
 * rows, a 600-row prefill): it is timed at the LARGEST M any caller uses it with, where a slow choice costs the most
 * (a 17-row call of the same weight costs ~M/17× less, so its share of the total is small); the label lists every
 * (group, M) that class serves.
 */
export function linearTuneShapes(cfg: QvlaConfig, opts: TuneShapeOptions): TuneShape[] {
  const f16 = opts.weightDtype === 'f16';
  const byClass = new Map<string, { use: LinearUse; users: Set<string> }>();
  const extra = (opts.linearShapes ?? []).map((s) => ({ ...s, rowStable: !!s.rowStable, group: 'given shape' }));
  for (const u of [...extra, ...linearUses(cfg, opts.prefillRows)]) {
    const M = u.M;
    const shapeClass = linearShapeClass({ M, N: u.N, K: u.K, f16, rowStable: u.rowStable });
    const cur = byClass.get(shapeClass);
    const who = `${u.group} M=${u.M}`;
    if (!cur) byClass.set(shapeClass, { use: { ...u, M }, users: new Set([who]) });
    else {
      cur.users.add(who);
      if (u.rowStable && M > cur.use.M) cur.use = { ...u, M };
    }
  }
  return [...byClass.entries()].map(([shapeClass, { use: u, users }]) => {
    const users_ = [...users];
    const label = `${u.rowStable ? 'rows ' : ''}M=${u.M} N=${u.N} K=${u.K} ${f16 ? 'f16' : 'f32'} (${u.rowStable && users_.length > 1 ? `serves ${users_.join(', ')}` : u.group})`;
    const bytes = 4 * (u.M * u.K + u.M * u.N) + u.N * u.K * (f16 ? 2 : 4);
    const shape: LinearShape = { M: u.M, N: u.N, K: u.K, f16, rowStable: u.rowStable };
    return { shapeClass, label, shape: { ...shape }, bytes };
  });
}

export const linearFamily: TuneFamily = {
  name: LINEAR_FAMILY,
  shapes: linearTuneShapes,
  candidates(gpu: Gpu, s: TuneShape) {
    const sh = s.shape as unknown as LinearShape;
    const gemv = !sh.rowStable && sh.M <= GEMV_MAX_ROWS;
    // f16 weights: every GEMV candidate also with `wide` (8-half) loads.
    const gemvs = sh.f16 ? GEMV_CANDIDATES.flatMap((c) => [c, { ...c, wide: true } as LinearConfig]) : GEMV_CANDIDATES;
    return (gemv ? gemvs : GEMM_CANDIDATES).filter((c) => linearConfigProblem(gpu, c, gemv) === null) as unknown as Record<string, unknown>[];
  },
  prepare(gpu: Gpu, s: TuneShape) {
    const { M, N, K, f16, rowStable } = s.shape as unknown as LinearShape;
    // Values do not matter for timing; small ones keep every result finite.
    const x = Tensor.from(gpu, new Float32Array(M * K).fill(0.01), [M, K]);
    const w = f16 ? Tensor.from(gpu, new Uint16Array(N * K).fill(0x2000), [N, K], 'f16') : Tensor.from(gpu, new Float32Array(N * K).fill(0.01), [N, K]);
    const y = Tensor.empty(gpu, [M, N]);
    return {
      instance(config: Record<string, unknown>) {
        const c = config as unknown as LinearConfig;
        return { run: () => timedRun(gpu, () => linear(x, w, { out: y, config: c, tiled: rowStable })), dispose() {} };
      },
      dispose() { x.release(); w.release(); y.release(); },
    };
  },
  configName: (c) => linearConfigName(c as unknown as LinearConfig),
};

registerTuneFamily(linearFamily);

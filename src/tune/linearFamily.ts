// The `linear` tuning family (src/tune/tune.ts): the Linear weights of a checkpoint (src/model/expectedTensors.ts)
// at the row counts they run with, one timed shape per shape class of src/ops/linear.ts (linearShapeClass):
//   text weights: decode (M = 1, GEMV) and prefill (M = --prefill-rows, GEMM); lm_head: decode only;
//   vision weights: prefill GEMM at the vision tokens of one 448×448 image (M = (448 / patch)², before merging);
//   action-expert (DiT) weights: GEMM at M = 1 + hMax (state + chunk rows), and the row-stable `rows:` class (tiled: true, the
//   batched-inference path) at the same M.
// Candidates: the GEMM variants (plain, tiled) and tile shapes below, the GEMV variants (gemv, gemv_sg where the
// adapter has fixed-size subgroups), each filtered by linearConfigProblem for this adapter. The lists include
// both default sets of src/ops/linear.ts, so a tuned entry is never worse than the default it replaces (as
// measured).
import type { Gpu } from '../gpu/device.js';
import { expectedTensors } from '../model/expectedTensors.js';
import type { QvlaConfig } from '../model/config.js';
import {
  GEMV_MAX_ROWS, LINEAR_FAMILY, linear, linearConfigName, linearConfigProblem, linearShapeClass, type LinearConfig, type LinearShape,
} from '../ops/linear.js';
import { Tensor } from '../tensor.js';
import { registerTuneFamily, timedRun, type TuneFamily, type TuneShape } from './tune.js';

export const GEMM_CANDIDATES: LinearConfig[] = [
  { kernel: 'plain', tm: 4, tn: 4, wg: [8, 8] },
  { kernel: 'plain', tm: 8, tn: 4, wg: [8, 1] },
  { kernel: 'plain', tm: 4, tn: 8, wg: [8, 1] },
  { kernel: 'plain', tm: 4, tn: 4, wg: [16, 16] },
  { kernel: 'tiled', tm: 4, tn: 4, wg: [16, 16], bk: 16 },
  { kernel: 'tiled', tm: 8, tn: 8, wg: [16, 16], bk: 8 },
  { kernel: 'tiled', tm: 4, tn: 8, wg: [16, 8], bk: 16 },
  { kernel: 'tiled', tm: 8, tn: 4, wg: [8, 4], bk: 16 },
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

interface LinearTuneShape extends LinearShape { group: string }

/** The linear shapes of a model config, one per shape class (first weight of a class is the timed one). */
export function linearTuneShapes(cfg: QvlaConfig, opts: { prefillRows: number; weightDtype: 'f32' | 'f16' }): TuneShape[] {
  const f16 = opts.weightDtype === 'f16';
  const out = new Map<string, TuneShape>();
  const add = (s: LinearTuneShape) => {
    const shapeClass = linearShapeClass(s);
    if (out.has(shapeClass)) return;
    const label = `${s.rowStable ? 'rows ' : ''}M=${s.M} N=${s.N} K=${s.K} ${f16 ? 'f16' : 'f32'} (${s.group})`;
    const bytes = 4 * (s.M * s.K + s.M * s.N) + s.N * s.K * (f16 ? 2 : 4);
    out.set(shapeClass, { shapeClass, label, shape: { ...s }, bytes });
  };
  const visionTokens = cfg.vision ? Math.round((448 / cfg.vision.patchSize) ** 2) : 0;
  const ditRows = cfg.actionExpert ? 1 + cfg.actionExpert.hMax : 0; // state row + padded chunk rows
  for (const t of expectedTensors(cfg)) {
    if (t.shape.length !== 2 || !t.name.endsWith('.weight') || /embed|norm/.test(t.name)) continue;
    const [N, K] = t.shape;
    if (N < 2 || K < 2) continue;
    const base = { N, K, f16, group: t.group };
    if (t.group === 'text') {
      add({ ...base, M: 1 });
      add({ ...base, M: opts.prefillRows });
    } else if (t.group === 'lm_head') {
      add({ ...base, M: 1 }); // logits of the last position only
    } else if (t.group === 'vision' && visionTokens > GEMV_MAX_ROWS) {
      add({ ...base, M: visionTokens });
    } else if (t.group === 'action_expert' && ditRows > 0) {
      add({ ...base, M: Math.max(ditRows, GEMV_MAX_ROWS + 1) });
      add({ ...base, M: Math.max(ditRows, GEMV_MAX_ROWS + 1), rowStable: true });
    }
  }
  return [...out.values()];
}

export const linearFamily: TuneFamily = {
  name: LINEAR_FAMILY,
  shapes: linearTuneShapes,
  candidates(gpu: Gpu, s: TuneShape) {
    const sh = s.shape as unknown as LinearShape;
    const gemv = !sh.rowStable && sh.M <= GEMV_MAX_ROWS;
    return (gemv ? GEMV_CANDIDATES : GEMM_CANDIDATES).filter((c) => linearConfigProblem(gpu, c, gemv) === null) as unknown as Record<string, unknown>[];
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

// The `gated_delta_net` tuning family (src/tune/tune.ts): the chunk size of the chunked Gated DeltaNet kernels
// (src/ops/gatedDeltaNet.ts gatedDeltaRuleChunked), one shape class per (dk, dv) (src/tune/deltaRuleChunk.ts says
// why not per L). Timed the way the policy runs it: the ragged prefill (one segment of --prefill-rows tokens, no
// state kept: TextDecoder.prefillRows), q|k|v as strided views of one conv output, the checkpoint's head counts.
import type { Gpu } from '../gpu/device.js';
import type { QvlaConfig } from '../model/config.js';
import { gatedDeltaRuleChunked } from '../ops/gatedDeltaNet.js';
import { Tensor } from '../tensor.js';
import { DELTA_RULE_CHUNK_CANDIDATES, DELTA_RULE_FAMILY, deltaRuleShapeClass } from './deltaRuleChunk.js';
import { registerTuneFamily, timedRun, type TuneFamily, type TuneShape } from './tune.js';

interface DeltaRuleTuneShape { L: number; Hk: number; Hv: number; dk: number; dv: number }

export const deltaRuleFamily: TuneFamily = {
  name: DELTA_RULE_FAMILY,
  shapes(cfg: QvlaConfig, opts) {
    const t = cfg.text;
    if (!t.layerTypes.includes('linear_attention')) return [];
    const s: DeltaRuleTuneShape = { L: opts.prefillRows, Hk: t.linearNumKeyHeads, Hv: t.linearNumValueHeads, dk: t.linearKeyHeadDim, dv: t.linearValueHeadDim };
    const convDim = 2 * s.Hk * s.dk + s.Hv * s.dv;
    return [{
      shapeClass: deltaRuleShapeClass(s.dk, s.dv),
      label: `L=${s.L} Hk=${s.Hk} Hv=${s.Hv} dk=${s.dk} dv=${s.dv}`,
      shape: { ...s },
      // inputs + output + the largest candidate's T / P scratch
      bytes: 4 * (s.L * (convDim + 2 * s.Hv + s.Hv * s.dv) + 2 * s.Hv * Math.ceil(s.L / 16) * 64 * 64),
    }];
  },
  candidates: () => DELTA_RULE_CHUNK_CANDIDATES.map((chunk) => ({ chunk })),
  prepare(gpu: Gpu, ts: TuneShape) {
    const { L, Hk, Hv, dk, dv } = ts.shape as unknown as DeltaRuleTuneShape;
    const convDim = 2 * Hk * dk + Hv * dv;
    // Values only need to keep every result finite: decays in (0, 1), β in (0, 1), small q/k/v.
    const mixed = Tensor.from(gpu, Float32Array.from({ length: L * convDim }, (_, i) => ((i * 37) % 101) / 101 - 0.5), [L, convDim]);
    const g = Tensor.from(gpu, new Float32Array(L * Hv).fill(-0.1), [L, Hv]);
    const beta = Tensor.from(gpu, new Float32Array(L * Hv).fill(0.5), [L, Hv]);
    const out = Tensor.empty(gpu, [L, Hv, dv]);
    const segments = Int32Array.from([0, L]);
    return {
      instance(config: Record<string, unknown>) {
        const chunkSize = config.chunk as number;
        const run = () => timedRun(gpu, () => gatedDeltaRuleChunked({
          q: { tensor: mixed, rowStride: convDim, offset: 0 },
          k: { tensor: mixed, rowStride: convDim, offset: Hk * dk },
          v: { tensor: mixed, rowStride: convDim, offset: 2 * Hk * dk },
          g, beta, state: null, segments, out, L, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv, chunkSize,
        }));
        return { run, dispose() {} };
      },
      dispose() { mixed.release(); g.release(); beta.release(); out.release(); },
    };
  },
  configName: (c) => `chunk ${String(c.chunk)}`,
};

registerTuneFamily(deltaRuleFamily);

// Op cases for the resampled vision position embedding (src/ops/posEmbed.ts): odd grids, several images,
// video-like t = 2, S = 48 (Qwen3.5) and S = 8 (tiny), f32 and f16 tables, x as an unaligned row view.
import { addInterpolatedPosEmbed } from '../../ops/posEmbed.js';
import { posEmbedRef } from '../../ref/posEmbed.js';
import { Tensor, f32ToF16Array, f16ToF32Array } from '../../tensor.js';
import { TOL, type OpCase } from '../opHarness.js';

interface PosShape {
  grids: { t: number; h: number; w: number }[];
  S: number;
  C: number;
  f16?: boolean;
  /** x is rows [rowOffset, rowOffset + Np) of a larger buffer */
  rowOffset?: number;
  perf?: boolean;
  tag?: string;
}

export function posEmbedCase(s: PosShape): OpCase {
  const Np = s.grids.reduce((a, g) => a + g.t * g.h * g.w, 0);
  const r0 = s.rowOffset ?? 0;
  const name = `posEmbed ${s.f16 ? 'f16' : 'f32'} S=${s.S} C=${s.C} grids=${s.grids.map((g) => `${g.t}×${g.h}×${g.w}`).join('+')}` +
    `${r0 ? ` rows+${r0}` : ''}${s.tag ? ` [${s.tag}]` : ''}`;
  return {
    name,
    op: 'posEmbed',
    perf: s.perf,
    tol: TOL.f32, // the reference sees the f16-rounded table, so the math is f32 either way
    setup(gpu, rng) {
      const x0 = rng.normals((r0 + Np) * s.C);
      let tab = rng.normals(s.S * s.S * s.C, 0.5);
      const tabData = s.f16 ? f32ToF16Array(tab) : tab;
      if (s.f16) tab = f16ToF32Array(tabData as Uint16Array);
      const base = Tensor.from(gpu, x0, [r0 + Np, s.C]);
      const x = base.rows(r0, Np);
      const table = Tensor.from(gpu, tabData, [s.S * s.S, s.C], s.f16 ? 'f16' : 'f32');
      const encode = () => addInterpolatedPosEmbed(x, table, s.grids, 2);
      return {
        encode,
        async run() { base.write(x0); encode(); return base.read() as Promise<Float32Array>; },
        reference: () => {
          const ref = posEmbedRef(x0.subarray(r0 * s.C), tab, s.C, s.S, s.grids, 2);
          const out = Float64Array.from(x0);
          out.set(ref, r0 * s.C);
          return out;
        },
        flops: Np * s.C * 8,
        bytes: Np * s.C * 8 + Math.min(Np * 4, s.S * s.S) * s.C * (s.f16 ? 2 : 4),
        dispose() { base.release(); table.release(); },
      };
    },
  };
}

export const posEmbedCases: OpCase[] = [
  posEmbedCase({ grids: [{ t: 1, h: 6, w: 10 }], S: 48, C: 64 }),
  posEmbedCase({ grids: [{ t: 1, h: 2, w: 2 }], S: 48, C: 37 }),
  posEmbedCase({ grids: [{ t: 1, h: 14, w: 22 }], S: 48, C: 32, f16: true }),
  posEmbedCase({ grids: [{ t: 1, h: 6, w: 10 }, { t: 1, h: 14, w: 22 }], S: 48, C: 67, rowOffset: 3 }),
  posEmbedCase({ grids: [{ t: 2, h: 4, w: 6 }, { t: 1, h: 2, w: 2 }], S: 48, C: 16, f16: true }),
  posEmbedCase({ grids: [{ t: 1, h: 96, w: 64 }], S: 48, C: 8 }),
  posEmbedCase({ grids: [{ t: 1, h: 6, w: 10 }], S: 8, C: 64 }),
  posEmbedCase({ grids: [{ t: 1, h: 2, w: 2 }, { t: 1, h: 14, w: 22 }], S: 8, C: 64, f16: true }),
  posEmbedCase({ grids: [{ t: 1, h: 16, w: 16 }], S: 8, C: 129 }),
];

export const posEmbedPerfCases: OpCase[] = [
  posEmbedCase({ grids: [{ t: 1, h: 40, w: 60 }], S: 48, C: 1024, perf: true, tag: '4B 2400 patches' }),
  posEmbedCase({ grids: [{ t: 1, h: 40, w: 60 }], S: 48, C: 1024, f16: true, perf: true, tag: '4B 2400 patches' }),
  posEmbedCase({ grids: [{ t: 1, h: 16, w: 16 }], S: 8, C: 64, perf: true, tag: 'tiny 256²' }),
];

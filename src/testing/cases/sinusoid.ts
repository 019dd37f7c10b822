// Op cases for the sinusoidal embedding (src/ops/sinusoid.ts): the DiT timestep features (256, [cos, sin],
// shift 1), the action-encoder τ features (1536 / tiny 128, [sin, cos], shift 0), more values than one dispatch
// holds, and output into a view of a larger buffer.
import { sinusoidalEmbedding } from '../../ops/sinusoid.js';
import { sinusoidRef } from '../../ref/sinusoid.js';
import { Tensor } from '../../tensor.js';
import { TOL, type OpCase } from '../opHarness.js';

interface SinShape {
  values: number[];
  dim: number;
  flip: boolean;
  shift: number;
  /** write into rows [rowOffset, rowOffset + n) of a larger [rowOffset + n + 1, dim] tensor */
  rowOffset?: number;
  perf?: boolean;
  tag?: string;
}

export function sinusoidCase(s: SinShape): OpCase {
  const n = s.values.length;
  const r0 = s.rowOffset;
  const vs = n <= 6 ? `{${s.values}}` : `${n} values`;
  const name = `sinusoid dim=${s.dim} ${s.flip ? '[cos,sin]' : '[sin,cos]'} shift=${s.shift} ${vs}${r0 !== undefined ? ` out rows+${r0}` : ''}${s.tag ? ` [${s.tag}]` : ''}`;
  const opts = { flipSinToCos: s.flip, downscaleFreqShift: s.shift };
  return {
    name,
    op: 'sinusoid',
    perf: s.perf,
    tol: TOL.f32,
    setup(gpu) {
      const sentinel = new Float32Array(((r0 ?? 0) + n + 1) * s.dim).fill(7);
      const base = r0 !== undefined ? Tensor.from(gpu, sentinel, [r0 + n + 1, s.dim]) : undefined;
      const out = base ? base.rows(r0!, n) : Tensor.empty(gpu, [n, s.dim]);
      const encode = () => { sinusoidalEmbedding(s.values, s.dim, { ...opts, out }, gpu); };
      return {
        encode,
        async run() {
          if (base) base.write(sentinel);
          encode();
          return (base ?? out).read() as Promise<Float32Array>;
        },
        reference: () => {
          const ref = sinusoidRef(s.values, s.dim, opts);
          if (!base) return ref;
          const full = Float64Array.from(sentinel);
          full.set(ref, r0! * s.dim);
          return full;
        },
        flops: n * s.dim * 10,
        bytes: n * s.dim * 4 + s.dim * 2,
        dispose() { (base ?? out).release(); },
      };
    },
  };
}

const BUCKETS = [0, 1, 499, 999];
const many = Array.from({ length: 53 }, (_, k) => (k * 389) % 1000);

export const sinusoidCases: OpCase[] = [
  sinusoidCase({ values: BUCKETS, dim: 256, flip: true, shift: 1 }),
  sinusoidCase({ values: BUCKETS, dim: 1536, flip: false, shift: 0 }),
  sinusoidCase({ values: BUCKETS, dim: 128, flip: false, shift: 0 }),
  sinusoidCase({ values: [999], dim: 256, flip: false, shift: 1 }),
  sinusoidCase({ values: many, dim: 256, flip: true, shift: 1 }),
  sinusoidCase({ values: [3, 998], dim: 6, flip: true, shift: 1, rowOffset: 5 }),
  sinusoidCase({ values: [0.25, 12345.5, -7], dim: 34, flip: false, shift: 0 }),
];

export const sinusoidPerfCases: OpCase[] = [
  sinusoidCase({ values: [499], dim: 256, flip: true, shift: 1, perf: true, tag: 'DiT timestep' }),
  sinusoidCase({ values: [499], dim: 1536, flip: false, shift: 0, perf: true, tag: 'action encoder τ' }),
  sinusoidCase({ values: [499], dim: 128, flip: false, shift: 0, perf: true, tag: 'tiny action encoder τ' }),
];

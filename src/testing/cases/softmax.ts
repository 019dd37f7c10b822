// Op cases for softmax (src/ops/softmax.ts): awkward rows / dims, scales, large logits, -inf masks, in place,
// and the attention-score shapes for perf.
import { softmax } from '../../ops/softmax.js';
import { softmaxRef } from '../../ref/softmax.js';
import { Tensor } from '../../tensor.js';
import type { OpCase } from '../opHarness.js';
import { simpleCase } from './elementwise.js';

interface SmOpts { scale?: number; spread?: number; mask?: boolean; inplace?: boolean; dimOpt?: boolean; perf?: boolean; tag?: string }

function smCase(rows: number, dim: number, o: SmOpts = {}): OpCase {
  const name = `softmax rows=${rows} dim=${dim}${o.scale !== undefined ? ` scale=${o.scale}` : ''}${o.spread ? ` spread=${o.spread}` : ''}` +
    `${o.mask ? ' masked' : ''}${o.inplace ? ' in-place' : ''}${o.tag ? ` [${o.tag}]` : ''}`;
  return simpleCase(name, 'softmax', (gpu, rng) => {
    const xs = rng.normals(rows * dim, o.spread ?? 2);
    // causal-style mask: row r keeps its first (r mod dim) + 1 entries
    if (o.mask) for (let r = 0; r < rows; r++) for (let j = (r % dim) + 1; j < dim; j++) xs[r * dim + j] = -Infinity;
    // dimOpt: x is laid out [rows/…, …] flat and the row length comes from opts.dim
    const shape = o.dimOpt ? [rows * dim] : [rows, dim];
    const x = Tensor.from(gpu, xs, shape);
    const out = o.inplace ? x : Tensor.empty(gpu, shape);
    return {
      encode() { if (o.inplace) x.write(xs); softmax(x, { scale: o.scale, dim: o.dimOpt ? dim : undefined, out }); },
      outs: [out],
      reference: () => softmaxRef(xs, dim, o.scale ?? 1),
      tensors: o.inplace ? [x] : [x, out],
      flops: 5 * xs.length,
      bytes: 2 * xs.length * 4,
    };
  }, { perf: o.perf });
}

export const softmaxCases: OpCase[] = [
  ...[1, 3, 48, 64, 257, 600, 4096].map((d) => smCase(7, d)),
  smCase(1, 1),
  smCase(257, 1),
  smCase(1, 2560),
  smCase(257, 64, { scale: 0.125 }),
  smCase(257, 300, { scale: 1 / 16 }),
  smCase(7, 257, { spread: 40 }),
  smCase(9, 48, { mask: true }),
  smCase(9, 600, { mask: true, scale: 0.0625 }),
  smCase(7, 128, { inplace: true }),
  smCase(7, 1000, { inplace: true, scale: 0.5 }),
  smCase(6, 51, { dimOpt: true }),
];

export const softmaxPerfCases: OpCase[] = [
  smCase(16 * 600, 600, { scale: 1 / 16, perf: true, tag: '4B attention 16 heads × 600²' }),
  smCase(32 * 51, 600, { scale: 1 / Math.sqrt(48), perf: true, tag: 'DiT cross 32 heads × 51 × 600' }),
  smCase(4 * 64, 64, { scale: 0.125, perf: true, tag: 'tiny 4 heads × 64²' }),
];

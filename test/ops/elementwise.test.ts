// Behaviour of the elementwise / norm / gather wrappers beyond single-op comparisons: shape
// validation errors and the aliasing rules (exact in place is fine, a shifted overlap is rejected).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { Tensor } from '../../src/tensor.js';
import { add, axpy, copyInto, fill, swiglu } from '../../src/ops/elementwise.js';
import { modulatedLayerNorm, rmsNorm, rmsNormGated } from '../../src/ops/norm.js';
import { gatherRows } from '../../src/ops/gather.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

const view = (p: Tensor, off: number, shape: number[]) => new Tensor(gpu, p.buffer, shape, p.dtype, p.offset + off * 4, false);

describe('elementwise wrappers', () => {
  it('reject shapes that neither match nor broadcast, naming the op and shapes', () => {
    const a = Tensor.empty(gpu, [4, 6]);
    const b = Tensor.empty(gpu, [5]);
    expect(() => add(a, b)).toThrow(/add: b \[5\].*\[4, 6\]/);
    expect(() => swiglu(a, b)).toThrow(/swiglu/);
    expect(() => axpy(a, a, 1, b)).toThrow(/axpy: mask/);
    a.release(); b.release();
  });

  it('reject a shifted overlap between input and output but run exact in place', async () => {
    const p = Tensor.from(gpu, Float32Array.from({ length: 20 }, (_, k) => k), [20]);
    expect(() => add(view(p, 0, [10]), view(p, 10, [10]), view(p, 3, [10]))).toThrow(/overlaps/);
    expect(() => copyInto(view(p, 0, [10]), view(p, 5, [10]))).toThrow(/overlap/);
    add(view(p, 0, [10]), view(p, 10, [10]), view(p, 0, [10])); // in place over a, b beside it
    const got = await p.read();
    expect(Array.from(got.slice(0, 3))).toEqual([10, 12, 14]);
    p.release();
  });

  it('fill writes only the view', async () => {
    const p = Tensor.from(gpu, new Float32Array(8).fill(7), [8]);
    fill(view(p, 1, [5]), -2);
    expect(Array.from(await p.read())).toEqual([7, -2, -2, -2, -2, -2, 7, 7]);
    p.release();
  });
});

describe('norm / gather validation', () => {
  it('names the op and shapes', () => {
    const x = Tensor.empty(gpu, [3, 10]);
    const w = Tensor.empty(gpu, [4]);
    expect(() => rmsNorm(x, w, { eps: 1e-6 })).toThrow(/rmsNorm: x \[3, 10\] is not a whole number of rows of 4/);
    expect(() => rmsNormGated(x, Tensor.empty(gpu, [3]), Tensor.empty(gpu, [10]), { eps: 1e-6 })).toThrow(/rmsNormGated: z/);
    expect(() => modulatedLayerNorm(x, Tensor.empty(gpu, [10]), { eps: 1e-5, order: 'scale-shift' })).toThrow(/2·D = 20/);
    expect(() => gatherRows(x, Tensor.empty(gpu, [2], 'f32'))).toThrow(/gatherRows: ids must be i32/);
  });
});

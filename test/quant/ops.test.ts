// The int8 / int4 linear kernels against the f64 reference (op harness), and misuse of a quantised weight.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { linearQCases } from '../../src/quant/cases.js';
import { checkCase } from '../../src/testing/opHarness.js';
import { QuantizedTensor } from '../../src/quant/tensor.js';
import { quantizeWeight } from '../../src/quant/quantize.js';
import { linear } from '../../src/ops/linear.js';
import { Tensor } from '../../src/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { bind } from '../../src/ops/views.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

describe('linear with quantised weights', () => {
  for (const c of linearQCases) {
    it(c.name, async () => {
      const r = await checkCase(gpu, c);
      expect(r.ok, r.report).toBe(true);
    });
  }

  it('a column window that splits a group is refused, naming the weight', () => {
    const w = QuantizedTensor.fromHost(gpu, quantizeWeight(new Rng(1).normals(8 * 64), 8, 64, { bits: 4, group: 32, zeroPoint: false }), 'blk.fc.weight');
    const x = Tensor.from(gpu, new Rng(2).normals(2 * 16), [2, 16]);
    try {
      expect(() => linear(x, w, { wCols: { offset: 16 } })).toThrow(/int4 weight blk\.fc\.weight.*group of 32/);
      expect(() => bind('rmsNorm', 'weight', w)).toThrow(/blk\.fc\.weight is int4-quantised.*binding it to rmsNorm/);
    } finally {
      x.release();
      w.destroy();
    }
  });

  it('readF32 returns the dequantised weight', async () => {
    const ws = new Rng(3).normals(5 * 32, 0.1);
    const host = quantizeWeight(ws, 5, 32, { bits: 8, group: 0, zeroPoint: false });
    const w = QuantizedTensor.fromHost(gpu, host, 'w');
    const got = await w.readF32();
    for (let i = 0; i < ws.length; i++) expect(Math.abs(got[i]! - ws[i]!)).toBeLessThan(0.1 * 4 / 127);
    w.destroy();
  });
});

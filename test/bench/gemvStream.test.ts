// The prepared benchmark passes of src/bench/roofline.ts: the GEMV stream (gemvStream, kernels/bench_gemv_stream.wgsl)
// sums exactly the words / halves the decode kernels' streaming loop would read, the read pass (readPass) its
// known block sums; each check rejects a pass that did not run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { gemvStream, readPass } from '../../src/bench/roofline.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

describe('gemvStream', () => {
  // K = 40: f32 rows of 10 loads, f16 rows of 5 (neither a multiple of the 8 lanes: lanes read 2, 1 or 0 loads)
  for (const [f16, widen] of [[false, false], [true, false], [true, true]] as const) {
    it(`${f16 ? 'f16' : 'f32'} W, ${widen ? 'widened' : 'raw words'}: every lane's sum is the known one`, async () => {
      const s = gemvStream(gpu, { N: 9, K: 40, f16, widen, rows: 3, wg: 8 });
      try {
        await expect(s.check()).rejects.toThrow(/expected .*did not run/); // nothing ran yet: zeros
        s.encode();
        await s.check();
        expect(s.bytes).toBe(9 * 40 * (f16 ? 2 : 4) + 3 * 8 * 4);
      } finally {
        s.release();
      }
    });
  }
  it('rejects shapes it cannot stream exactly', () => {
    expect(() => gemvStream(gpu, { N: 9, K: 40, f16: false, widen: true, rows: 3, wg: 8 })).toThrow(/widen applies to f16/);
    expect(() => gemvStream(gpu, { N: 9, K: 6, f16: true, widen: false, rows: 3, wg: 8 })).toThrow(/16-byte loads/);
    expect(() => gemvStream(gpu, { N: 10, K: 40, f16: false, widen: false, rows: 3, wg: 8 })).toThrow(/multiple of rows/);
  });
  it('readPass: a prepared read pass of a given size checks its sums', async () => {
    const p = readPass(gpu, { readBytes: 2 << 20, readInvocations: 256 });
    try {
      await expect(p.check()).rejects.toThrow(/did not run/);
      p.encode();
      await p.check();
      expect(p.bytes).toBe((2 << 20) + 256 * 16);
    } finally {
      p.release();
    }
  });
});

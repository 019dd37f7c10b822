// Behavioural checks of the rope / position-embedding / sinusoid ops beyond the op-case comparisons:
// the resampled position embedding against the Python reference fixtures (real tiny tables, real grids),
// the vision rope coordinates in the pipeline order, and the wrappers' argument validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { Gpu } from '../../src/gpu/device.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { bf16ToF32 } from '../../src/io/dtypes.js';
import { addInterpolatedPosEmbed } from '../../src/ops/posEmbed.js';
import { ropeText, ropeVision } from '../../src/ops/rope.js';
import { sinusoidalEmbedding } from '../../src/ops/sinusoid.js';
import { sinusoidRef } from '../../src/ref/sinusoid.js';
import { Tensor } from '../../src/tensor.js';
import { compare, TOL } from '../../src/testing/opHarness.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

async function readF32(file: string, name: string): Promise<{ data: Float32Array; shape: number[] }> {
  const f = await openSafetensors(file);
  try {
    const info = f.info(name);
    const bytes = (await f.readTensor(name)).slice();
    if (info.dtype === 'F32') return { data: new Float32Array(bytes.buffer), shape: [...info.shape] };
    if (info.dtype === 'BF16') {
      const src = new Uint16Array(bytes.buffer);
      const out = new Float32Array(src.length);
      bf16ToF32(src, out);
      return { data: out, shape: [...info.shape] };
    }
    if (info.dtype === 'I32') return { data: Float32Array.from(new Int32Array(bytes.buffer)), shape: [...info.shape] };
    throw new Error(`unexpected dtype ${info.dtype}`);
  } finally {
    await f.close();
  }
}

describe('addInterpolatedPosEmbed vs the Python reference fixtures', () => {
  const cases = [
    { fixture: 'case_a_tiny_widowx', weights: 'weights/tiny/model.safetensors' },
    { fixture: 'case_e_tiny_chat', weights: 'weights/tiny/model.safetensors' },
    { fixture: 'case_b_two_images', weights: 'test/fixtures/fixture_b/model-00002-of-00002.safetensors' },
  ];
  for (const c of cases) {
    const fx = `test/fixtures/${c.fixture}.safetensors`;
    it.skipIf(!existsSync(fx) || !existsSync(c.weights))(c.fixture, async () => {
      const table = await readF32(c.weights, 'model.visual.pos_embed.weight');
      const g = (await readF32(fx, 'input.image_grid_thw')).data;
      const grids = [];
      for (let k = 0; k < g.length; k += 3) grids.push({ t: g[k], h: g[k + 1], w: g[k + 2] });
      const C = table.shape[1];
      const refs = await Promise.all(grids.map((_, i) => readF32(fx, `vision.pos_embed.${i}`)));
      const ref = new Float32Array(refs.reduce((a, r) => a + r.data.length, 0));
      let o = 0;
      for (const r of refs) { ref.set(r.data, o); o += r.data.length; }
      const Np = ref.length / C;
      const x = Tensor.from(gpu, new Float32Array(Np * C), [Np, C]);
      const t = Tensor.from(gpu, table.data, table.shape);
      // all images in one call: exercises the concatenation in order
      addInterpolatedPosEmbed(x, t, grids, 2);
      const got = await x.read();
      const r = compare(got, ref, TOL.f32, c.fixture);
      expect(r.ok, r.report).toBe(true);
      x.release();
      t.release();
    });
  }
});

describe('argument validation', () => {
  it('ropeText rejects out-of-range views, bad sections and short positions', () => {
    const x = Tensor.empty(gpu, [4, 2 * 64]);
    const pos = Tensor.from(gpu, new Int32Array(3 * 4), [3, 4], 'i32');
    const base = { L: 4, numHeads: 2, headDim: 64, rotaryDim: 16, theta: 1e7, mropeSection: [3, 3, 2] as [number, number, number], interleaved: true };
    expect(() => ropeText({ tensor: x, rowStride: 128, headStride: 128 }, pos, base)).toThrow(/reaches element/);
    expect(() => ropeText({ tensor: x, rowStride: 128 }, pos, { ...base, mropeSection: [3, 3, 3] })).toThrow(/sum to/);
    expect(() => ropeText({ tensor: x, rowStride: 128 }, pos, { ...base, positionOffset: 1 })).toThrow(/columns/);
    expect(() => ropeText({ tensor: x, rowStride: 128 }, x, base)).toThrow(/i32/);
    expect(() => ropeVision({ tensor: x, rowStride: 128 }, pos, { L: 4, numHeads: 2, headDim: 64, theta: 1e4 })).toThrow(/\[2, n\]/);
    x.release();
    pos.release();
  });

  it('addInterpolatedPosEmbed rejects grids that do not cover x and non-square tables', () => {
    const x = Tensor.empty(gpu, [8, 4]);
    const t = Tensor.empty(gpu, [64, 4]);
    expect(() => addInterpolatedPosEmbed(x, t, [{ t: 1, h: 2, w: 2 }], 2)).toThrow(/hold 4 patches/);
    const t60 = Tensor.empty(gpu, [60, 4]);
    expect(() => addInterpolatedPosEmbed(x, t60, [{ t: 2, h: 2, w: 2 }], 2)).toThrow(/square/);
    x.release();
    t.release();
    t60.release();
  });

  it('sinusoidalEmbedding allocates [n, dim] when no out is given and rejects odd dims', async () => {
    const vals = [0, 1, 499, 999];
    const out = sinusoidalEmbedding(vals, 256, { flipSinToCos: true, downscaleFreqShift: 1 }, gpu);
    expect(out.shape).toEqual([4, 256]);
    const r = compare(await out.read(), sinusoidRef(vals, 256, { flipSinToCos: true, downscaleFreqShift: 1 }), TOL.f32, 'sinusoid');
    expect(r.ok, r.report).toBe(true);
    // bucket 0: [cos 0, sin 0] = [1…, 0…]
    const v = await out.read();
    expect(v[0]).toBe(1);
    expect(v[128]).toBe(0);
    out.release();
    expect(() => sinusoidalEmbedding([1], 7, { flipSinToCos: false, downscaleFreqShift: 0 }, gpu)).toThrow(/even/);
  });
});

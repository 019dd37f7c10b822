// The op harness must catch wrong results: a real kernel run checked against deliberately wrong references
// fails with a report naming the first mismatching index; `compare` itself passes equal data and rejects NaN.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { linearCase } from '../../src/testing/cases/linear.js';
import { TOL, checkCase, compare } from '../../src/testing/opHarness.js';
import { Tensor } from '../../src/tensor.js';
import { linearRef } from '../../src/ref/linear.js';
import { Rng } from '../../src/util/rng.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

describe('op harness catches errors', () => {
  it('flags a linear result checked against a reference with one element perturbed by 1e-2', async () => {
    const c = linearCase({ M: 7, N: 13, K: 67, bias: true });
    const inst = c.setup(gpu, new Rng(7));
    try {
      const got = await inst.run();
      const ref = Float64Array.from(inst.reference());
      expect(compare(got, ref, c.tol, c.name).ok, 'the true reference must pass').toBe(true);
      const bad = 29;
      ref[bad] += 1e-2;
      const r = compare(got, ref, c.tol, c.name);
      expect(r.ok).toBe(false);
      expect(r.mismatches).toBe(1);
      expect(r.report).toContain('first mismatches');
      expect(r.report).toMatch(new RegExp(`\\[${bad}\\] got `));
      expect(r.maxAbs).toBeGreaterThan(9e-3);
    } finally {
      inst.dispose();
    }
  });

  it('flags a linear result checked against a reference that drops the bias', async () => {
    const M = 5, N = 11, K = 19;
    const c = linearCase({ M, N, K, bias: true });
    const inst = c.setup(gpu, new Rng(3));
    try {
      const got = await inst.run();
      // Rebuild the inputs the case drew (same seed, same order: x, then w) and compute the bias-less reference.
      const rng = new Rng(3);
      const xs = rng.normals(M * K);
      const ws = rng.normals(N * K, 1 / Math.sqrt(K));
      const bs = rng.normals(N);
      expect(compare(got, linearRef(xs, ws, 1, M, N, K, { bias: bs }), c.tol).ok, 'reconstructed reference must pass').toBe(true);
      const noBias = linearRef(xs, ws, 1, M, N, K);
      const r = compare(got, noBias, c.tol, c.name);
      expect(r.ok).toBe(false);
      expect(r.mismatches).toBeGreaterThan(M * N / 2);
      expect(r.report).toMatch(/\[0\] got /); // every element is off, the first reported is index 0
    } finally {
      inst.dispose();
    }
  });
});

describe('compare', () => {
  const ref = Float64Array.from({ length: 100 }, (_, k) => Math.sin(k) * 3);

  it('fails a case whose op or dispose leaves a pooled tensor alive, naming it', async () => {
    const c = linearCase({ M: 3, N: 5, K: 7 });
    expect((await checkCase(gpu, c)).ok, 'the case as written leaks nothing').toBe(true);
    let stray: Tensor | null = null;
    const leaky = { ...c, setup: (g: Gpu, rng: Rng) => {
      const inst = c.setup(g, rng);
      return { ...inst, run() { stray ??= Tensor.empty(g, [2, 2], 'f32', 'linear.stray'); return inst.run(); } };
    } };
    const r = await checkCase(gpu, leaky);
    expect(r.ok).toBe(false);
    expect(r.report).toContain('leaked tensors: linear.stray [2, 2] f32');
    stray!.release();
  });

  it('passes equal arrays (f32-rounded too)', () => {
    expect(compare(ref, ref, TOL.f32).ok).toBe(true);
    const r = compare(Float32Array.from(ref), ref, TOL.f32, 'f32 copy');
    expect(r.ok, r.report).toBe(true);
    expect(r.mismatches).toBe(0);
  });

  it('fails on NaN in the output and names its index', () => {
    const got = Float32Array.from(ref);
    got[42] = NaN;
    const r = compare(got, ref, TOL.f32, 'nan');
    expect(r.ok).toBe(false);
    expect(r.mismatches).toBe(1);
    expect(r.report).toMatch(/\[42\] got NaN/);
  });

  it('fails on Infinity and on a length mismatch', () => {
    const got = Float32Array.from(ref);
    got[7] = Infinity;
    expect(compare(got, ref, TOL.f32).ok).toBe(false);
    expect(compare(ref.subarray(1), ref, TOL.f32).ok).toBe(false);
  });

  it('fails when all elements are inside atol/rtol but the nmse bound is exceeded', () => {
    const got = Float64Array.from(ref, (v) => v * (1 + 5e-5)); // within rtol 1e-4, nmse 2.5e-9 > 1e-9
    const r = compare(got, ref, TOL.f32);
    expect(r.mismatches).toBe(0);
    expect(r.ok).toBe(false);
    expect(r.report).toContain('nmse above');
  });
});

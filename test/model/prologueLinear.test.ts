// normLinear / swigluLinear (kernels/prologue_linear.wgsl: LayerNorm + optional adaLN modulation, or SwiGLU,
// folded into a linear) against a
// plain float64 reference on odd shapes (K not a multiple of 4, M and N not multiples of the 4×4 tile, a large
// row offset so the statistics matter), every epilogue option, f16 weights, unaligned views; and a row's bits
// do not depend on the other rows of the call.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { Tensor } from '../../src/tensor.js';
import { normLinear, swigluLinear, prologueConfig } from '../../src/model/prologueLinear.js';
import { Rng } from '../../src/util/rng.js';

let gpu: Gpu;
// the kernel itself, whatever the adapter (software adapters run the unfolded path by default: prologueConfig)
beforeAll(async () => { gpu = await Gpu.create(); prologueConfig.fold = true; });
afterAll(() => { prologueConfig.fold = 'auto'; gpu?.destroy(); });

type Act = 'none' | 'gelu_tanh' | 'silu';
function reference(x: Float32Array, w: Float32Array, M: number, N: number, K: number, o: {
  eps: number; bias?: Float32Array; mod?: Float32Array; order?: 'scale-shift' | 'shift-scale'; act?: Act; acc?: Float32Array;
}): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    let mu = 0;
    for (let k = 0; k < K; k++) mu += x[m * K + k];
    mu /= K;
    let v = 0;
    for (let k = 0; k < K; k++) v += (x[m * K + k] - mu) ** 2;
    const r = 1 / Math.sqrt(v / K + o.eps);
    const xn = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      xn[k] = (x[m * K + k] - mu) * r;
      if (o.mod) {
        const [sc, sh] = o.order === 'shift-scale' ? [o.mod[K + k], o.mod[k]] : [o.mod[k], o.mod[K + k]];
        xn[k] = xn[k] * (1 + sc) + sh;
      }
    }
    for (let n = 0; n < N; n++) {
      let s = o.bias ? o.bias[n] : 0;
      for (let k = 0; k < K; k++) s += xn[k] * w[n * K + k];
      if (o.act === 'silu') s = s / (1 + Math.exp(-s));
      if (o.act === 'gelu_tanh') s = 0.5 * s * (1 + Math.tanh(0.7978845608028654 * (s + 0.044715 * s ** 3)));
      y[m * N + n] = (o.acc ? o.acc[m * N + n] : 0) + s;
    }
  }
  return y;
}

function maxErr(got: Float32Array, want: Float64Array): number {
  let scale = 1e-30, err = 0;
  for (let k = 0; k < want.length; k++) {
    scale = Math.max(scale, Math.abs(want[k]));
    err = Math.max(err, Math.abs(got[k] - want[k]));
  }
  return err / scale;
}

describe('normLinear', () => {
  const cases = [
    { M: 7, N: 10, K: 13 },
    { M: 33, N: 37, K: 64 },
    { M: 1, N: 5, K: 3 },
  ];
  for (const { M, N, K } of cases) {
    it(`matches the f64 reference: M=${M} N=${N} K=${K}, every option`, async () => {
      const rng = new Rng(M * 1000 + N * 10 + K);
      // rows far from zero mean with a spread: a wrong mean or variance shows
      const x = Float32Array.from(rng.normals(M * K), (v, i) => 5 + 3 * v + (i % K));
      const w = Float32Array.from(rng.normals(N * K), (v) => v * 0.3);
      const bias = Float32Array.from(rng.normals(N));
      const mod = Float32Array.from(rng.normals(2 * K), (v) => 0.5 * v);
      const acc = Float32Array.from(rng.normals(M * N));
      const X = Tensor.from(gpu, x, [M, K]);
      const W = Tensor.from(gpu, w, [N, K]);
      const B = Tensor.from(gpu, bias, [N]);
      // the modulation as an unaligned view in a larger buffer (as the DiT's per-τ table rows are)
      const modBuf = Tensor.from(gpu, Float32Array.from([9, 9, 9, ...mod]), [3 + 2 * K]);
      const Mod = new Tensor(gpu, modBuf.buffer, [2 * K], 'f32', modBuf.offset + 12);
      try {
        // the DiT's variants (norm1 → Q/K/V, output norm → proj_out_2, norm2 → fc1), one compiled pipeline each
        for (const order of ['scale-shift', 'shift-scale'] as const) {
          const y = normLinear(X, W, { eps: 1e-5, bias: B, mod: { tensor: Mod, order } });
          expect(maxErr(await y.readF32(), reference(x, w, M, N, K, { eps: 1e-5, bias, mod, order })), order).toBeLessThan(2e-5);
          y.release();
        }
        const g = normLinear(X, W, { eps: 1e-6, bias: B, act: 'gelu_tanh' });
        expect(maxErr(await g.readF32(), reference(x, w, M, N, K, { eps: 1e-6, bias, act: 'gelu_tanh' })), 'no mod, gelu').toBeLessThan(2e-5);
        g.release();
        const Y = Tensor.from(gpu, acc, [M, N]);
        normLinear(X, W, { eps: 1e-5, bias: B, accumulate: true, out: Y });
        expect(maxErr((await Y.readF32()), reference(x, w, M, N, K, { eps: 1e-5, bias, acc })), 'accumulate').toBeLessThan(2e-5);
        Y.release();
        if (K % 2 === 0) {
          const h = new Uint16Array(N * K);
          const w16 = new Float32Array(N * K);
          for (let k = 0; k < h.length; k++) {
            const half = toHalf(w[k]);
            h[k] = half;
            w16[k] = fromHalf(half);
          }
          const W16 = Tensor.from(gpu, h, [N, K], 'f16');
          const y = normLinear(X, W16, { eps: 1e-5, bias: B, mod: { tensor: Mod, order: 'scale-shift' } });
          expect(maxErr((await y.readF32()), reference(x, w16, M, N, K, { eps: 1e-5, bias, mod })), 'f16 weights').toBeLessThan(2e-5);
          y.release();
          W16.release();
        }
      } finally {
        for (const t of [X, W, B, modBuf]) t.release();
      }
    });
  }

  it("a row's result does not depend on the other rows of the call (bit for bit)", async () => {
    const K = 24, N = 20, M = 11;
    const rng = new Rng(5);
    const x = Float32Array.from(rng.normals(M * K));
    const w = Float32Array.from(rng.normals(N * K));
    const X = Tensor.from(gpu, x, [M, K]);
    const X1 = Tensor.from(gpu, x.slice(6 * K, 7 * K), [1, K]);
    const W = Tensor.from(gpu, w, [N, K]);
    const all = normLinear(X, W, { eps: 1e-5, act: 'gelu_tanh' });
    const one = normLinear(X1, W, { eps: 1e-5, act: 'gelu_tanh' });
    const a = new Uint32Array(((await all.readF32())).buffer);
    const b = new Uint32Array(((await one.readF32())).buffer);
    expect(Array.from(b)).toEqual(Array.from(a.slice(6 * N, 7 * N)));
    for (const t of [X, X1, W, all, one]) t.release();
  });

  it('swigluLinear matches silu(gate)·up then the linear (f64), odd K, accumulate', async () => {
    for (const [M, N, K] of [[5, 9, 11], [40, 33, 64]]) {
      const rng = new Rng(M + N + K);
      const x = Float32Array.from(rng.normals(M * 2 * K), (v) => 2 * v);
      const w = Float32Array.from(rng.normals(N * K), (v) => v * 0.3);
      const acc = Float32Array.from(rng.normals(M * N));
      const want = new Float64Array(M * N);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let t = 0;
          for (let k = 0; k < K; k++) {
            const g = x[m * 2 * K + k];
            t += (g / (1 + Math.exp(-g))) * x[m * 2 * K + K + k] * w[n * K + k];
          }
          want[m * N + n] = acc[m * N + n] + t;
        }
      }
      const X = Tensor.from(gpu, x, [M, 2 * K]);
      const W = Tensor.from(gpu, w, [N, K]);
      const Y = Tensor.from(gpu, acc, [M, N]);
      swigluLinear(X, W, { accumulate: true, out: Y });
      expect(maxErr(await Y.readF32(), want), `M=${M} N=${N} K=${K}`).toBeLessThan(2e-5);
      for (const t of [X, W, Y]) t.release();
    }
    const X = Tensor.empty(gpu, [3, 8]);
    expect(() => swigluLinear(X, Tensor.empty(gpu, [4, 8]))).toThrow(/swigluLinear: .*2·K wide/);
  });

  it('refuses bad shapes naming the operand', () => {
    const X = Tensor.empty(gpu, [3, 8]);
    const W = Tensor.empty(gpu, [4, 6]);
    expect(() => normLinear(X, W, { eps: 1e-5, label: 'probe' })).toThrow(/normLinear \(probe\).*disagree on K/);
    const W8 = Tensor.empty(gpu, [4, 8]);
    expect(() => normLinear(X, W8, { eps: 1e-5, mod: { tensor: Tensor.empty(gpu, [8]), order: 'scale-shift' } })).toThrow(/mod must be f32 with 2·K = 16/);
    expect(() => normLinear(X, W8, { eps: 1e-5, accumulate: true })).toThrow(/accumulate needs out/);
  });
});

function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  let e = ((u >>> 23) & 0xff) - 127 + 15;
  let m = u & 0x7fffff;
  if (e <= 0) return sign; // tiny values flush to zero (the test's weights are far from f16's subnormals)
  if (e >= 31) return sign | 0x7c00;
  // round to nearest even on the 13 dropped bits
  const rest = m & 0x1fff;
  m >>>= 13;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) { m = 0; e++; }
  }
  return sign | (e << 10) | m;
}

function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

describe('the DiT with and without folded norms', () => {
  it('one network evaluation on the tiny fixture agrees within f32 rounding (folded on GPUs, unfolded on lavapipe)', async () => {
    const { Fixture, errors } = await import('../../src/testing/fixtures.js');
    const { openCheckpoint } = await import('../../src/io/checkpoint.js');
    const { loadWeights } = await import('../../src/model/load.js');
    const { ActionDecoder } = await import('../../src/model/actionDecoder.js');
    const fx = await Fixture.load('case_b_two_images');
    const ckpt = await openCheckpoint(fx.checkpointDir);
    const weights = await loadWeights(gpu, ckpt, { vision: false });
    const ae = ckpt.config.actionExpert!;
    const dec = new ActionDecoder(gpu, ae, weights);
    try {
      const vlm = fx.get('dit.vlm_hidden');
      const C = Tensor.from(gpu, vlm.data as Float32Array, vlm.shape);
      const ctx = dec.prepareContext(C);
      const rows = Tensor.from(gpu, new Float32Array(1 + ae.hMax).fill(1), [1 + ae.hMax]);
      const y = Tensor.from(gpu, fx.f32('dit.vel.y'), [ae.hMax, ae.kMax]);
      const out = Tensor.empty(gpu, [ae.hMax, ae.kMax]);
      const run = async (fold: boolean) => {
        prologueConfig.fold = fold;
        dec.velocity(y, 0.6, ctx, dec.stateToken(null), rows, out);
        return out.readF32();
      };
      const folded = await run(true);
      const unfolded = await run(false);
      expect(errors(folded, unfolded).rel).toBeLessThan(1e-5);
      expect(Array.from(folded).some((v) => v !== 0)).toBe(true);
      for (const t of [C, rows, y, out]) t.release();
      ctx.release();
    } finally {
      prologueConfig.fold = true;
      dec.destroy();
      weights.destroy();
      await ckpt.close();
    }
  });
});

// Ragged batches at the op level: every op that mixes tokens gives a segment of a batch the same bits as the
// segment run alone (the property Policy.actBatch's bit-identity rests on), and the tiled linear gives a row the
// same bits whatever the row count. Values are checked against the f64 references elsewhere (test/ops.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { Tensor } from '../../src/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { linear } from '../../src/ops/linear.js';
import { attention } from '../../src/ops/attention.js';
import { causalConv1dSilu, gatedDeltaRule, gatedDeltaRuleChunked } from '../../src/ops/gatedDeltaNet.js';
import { gatedDeltaRuleRecurrentRef } from '../../src/ref/gatedDeltaNet.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const read = async (t: Tensor) => (await t.read()) as Float32Array;
const f32 = (data: Float32Array, shape: number[]) => Tensor.from(gpu, data, shape, 'f32');

describe('ragged ops: a segment of a batch = the segment alone, bit for bit', () => {
  it('linear with tiled: true gives a row the same bits for any row count (1 … 37 rows)', async () => {
    const rng = new Rng(1);
    const K = 45, N = 33;
    const X = rng.normals(37 * K);
    const w = f32(rng.normals(N * K), [N, K]);
    const b = f32(rng.normals(N), [N]);
    const all = await read(linear(f32(X, [37, K]), w, { bias: b, tiled: true }));
    for (const [r0, n] of [[0, 1], [5, 3], [20, 17], [36, 1]]) {
      const part = await read(linear(f32(X.slice(r0 * K, (r0 + n) * K), [n, K]), w, { bias: b, tiled: true }));
      expect(bits(part), `rows ${r0}+${n}`).toEqual(bits(all.subarray(r0 * N, (r0 + n) * N)));
    }
    // the `rows` blocks form: rows 1..3 of every 5-row block, into rows 1..3 of 6-row blocks
    const out = f32(new Float32Array(4 * 6 * N), [24, N]);
    linear(f32(X.slice(0, 20 * K), [20, K]), w, { bias: b, tiled: true, xRows: { offset: 1, count: 3 }, rows: { count: 4, xStride: 5, outStride: 6 }, out, outRowOffset: 1 });
    const got = await read(out);
    for (let blk = 0; blk < 4; blk++) {
      for (let r = 0; r < 3; r++) {
        const src = blk * 5 + 1 + r;
        expect(bits(got.subarray((blk * 6 + 1 + r) * N, (blk * 6 + 2 + r) * N))).toEqual(bits(all.subarray(src * N, (src + 1) * N)));
      }
      expect(Array.from(got.subarray(blk * 6 * N, (blk * 6 + 1) * N)).every((v) => v === 0)).toBe(true);
    }
  });

  it('attention: causal self-attention segments and cross-attention key ranges', async () => {
    const rng = new Rng(2);
    const H = 4, Hkv = 2, d = 32;
    const segs = [0, 17, 17, 60, 77, 120];
    const L = 120;
    const q = rng.normals(L * H * d), k = rng.normals(L * Hkv * d), v = rng.normals(L * Hkv * d), g = rng.normals(L * H * d);
    const mask = Float32Array.from({ length: L }, (_, j) => (j % 7 === 3 ? 0 : 1));
    const view = (a: Float32Array, heads: number) => ({ tensor: f32(a, [a.length / (heads * d), heads * d]), rowStride: heads * d });
    const common = { numHeads: H, numKvHeads: Hkv, headDim: d, scale: 1 / Math.sqrt(d) };
    const batched = await read(attention({
      q: view(q, H), k: view(k, Hkv), v: view(v, Hkv), gate: view(g, H), Lq: L, Lk: L, causal: true,
      segments: Int32Array.from(segs), keyMask: f32(mask, [L]), ...common,
    }));
    for (let s = 0; s + 1 < segs.length; s++) {
      const [a, e] = [segs[s], segs[s + 1]];
      if (a === e) continue;
      const alone = await read(attention({
        q: view(q.slice(a * H * d, e * H * d), H), k: view(k.slice(a * Hkv * d, e * Hkv * d), Hkv), v: view(v.slice(a * Hkv * d, e * Hkv * d), Hkv),
        gate: view(g.slice(a * H * d, e * H * d), H), Lq: e - a, Lk: e - a, causal: true, segments: Int32Array.of(0, e - a),
        keyMask: f32(mask.slice(a, e), [e - a]), ...common,
      }));
      expect(bits(alone), `segment ${s}`).toEqual(bits(batched.subarray(a * H * d, e * H * d)));
    }
    // cross: 3 rows of 17 queries, each with its own key range of a 90-key context
    const Lq = 51, Lk = 90, kr = [0, 40, 40, 90, 10, 45];
    const cq = rng.normals(Lq * H * d), ck = rng.normals(Lk * Hkv * d), cv = rng.normals(Lk * Hkv * d);
    const cross = await read(attention({
      q: view(cq, H), k: view(ck, Hkv), v: view(cv, Hkv), Lq, Lk, segments: Int32Array.of(0, 17, 34, 51), keyRanges: Int32Array.from(kr), ...common,
    }));
    for (let s = 0; s < 3; s++) {
      const [lo, hi] = [kr[2 * s], kr[2 * s + 1]];
      const alone = await read(attention({
        q: view(cq.slice(s * 17 * H * d, (s + 1) * 17 * H * d), H), k: view(ck.slice(lo * Hkv * d, hi * Hkv * d), Hkv),
        v: view(cv.slice(lo * Hkv * d, hi * Hkv * d), Hkv), Lq: 17, Lk: hi - lo, segments: Int32Array.of(0, 17), keyRanges: Int32Array.of(0, hi - lo), ...common,
      }));
      expect(bits(alone), `cross row ${s}`).toEqual(bits(cross.subarray(s * 17 * H * d, (s + 1) * 17 * H * d)));
    }
  });

  it('Gated DeltaNet conv and chunked delta rule: segments start from a zero state', async () => {
    const rng = new Rng(3);
    const segs = [0, 5, 5, 70, 71, 200];
    const L = 200;
    // conv over a strided view (rowStride > C), kernel 4
    const C = 40, S = 48, KS = 4;
    const x = rng.normals(L * S);
    const w = f32(rng.normals(C * KS), [C, 1, KS]);
    const conv = await read(causalConv1dSilu({ tensor: f32(x, [L, S]), rowStride: S, offset: 3 }, w, null, { L, channels: C, kernel: KS, segments: Int32Array.from(segs) }));
    // delta rule
    const Hk = 2, Hv = 4, dk = 32, dv = 36;
    const q = rng.normals(L * Hk * dk), k = rng.normals(L * Hk * dk), v = rng.normals(L * Hv * dv);
    const gg = Float32Array.from(rng.normals(L * Hv), (z) => -Math.abs(z) * 0.3), beta = Float32Array.from(rng.normals(L * Hv), (z) => 1 / (1 + Math.exp(-z)));
    const rule = (a: number, e: number, segments?: Int32Array) => gatedDeltaRule({
      q: { tensor: f32(q.slice(a * Hk * dk, e * Hk * dk), [e - a, Hk * dk]), rowStride: Hk * dk },
      k: { tensor: f32(k.slice(a * Hk * dk, e * Hk * dk), [e - a, Hk * dk]), rowStride: Hk * dk },
      v: { tensor: f32(v.slice(a * Hv * dv, e * Hv * dv), [e - a, Hv * dv]), rowStride: Hv * dv },
      g: f32(gg.slice(a * Hv, e * Hv), [e - a, Hv]), beta: f32(beta.slice(a * Hv, e * Hv), [e - a, Hv]),
      state: segments ? null : f32(new Float32Array(Hv * dk * dv), [Hv, dk, dv]), segments,
      L: e - a, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
    });
    const delta = await read(rule(0, L, Int32Array.from(segs)));
    for (let s = 0; s + 1 < segs.length; s++) {
      const [a, e] = [segs[s], segs[s + 1]];
      if (a === e) continue;
      const state = f32(new Float32Array((KS - 1) * C), [KS - 1, C]);
      const alone = await read(causalConv1dSilu({ tensor: f32(x.slice(a * S, e * S), [e - a, S]), rowStride: S, offset: 3 }, w, state, { L: e - a, channels: C, kernel: KS }));
      expect(bits(alone), `conv segment ${s}`).toEqual(bits(conv.subarray(a * C, e * C)));
      // alone through the chunked kernel (what segments always use) from a zero state
      const st = f32(new Float32Array(Hv * dk * dv), [Hv, dk, dv]);
      const one = await read(gatedDeltaRuleChunked({
        q: { tensor: f32(q.slice(a * Hk * dk, e * Hk * dk), [e - a, Hk * dk]), rowStride: Hk * dk },
        k: { tensor: f32(k.slice(a * Hk * dk, e * Hk * dk), [e - a, Hk * dk]), rowStride: Hk * dk },
        v: { tensor: f32(v.slice(a * Hv * dv, e * Hv * dv), [e - a, Hv * dv]), rowStride: Hv * dv },
        g: f32(gg.slice(a * Hv, e * Hv), [e - a, Hv]), beta: f32(beta.slice(a * Hv, e * Hv), [e - a, Hv]), state: st,
        L: e - a, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
      }));
      expect(bits(one), `delta segment ${s}`).toEqual(bits(delta.subarray(a * Hv * dv, e * Hv * dv)));
      // and the values are the delta rule's (f64 reference, zero state)
      const ref = gatedDeltaRuleRecurrentRef({
        q: q.slice(a * Hk * dk, e * Hk * dk), k: k.slice(a * Hk * dk, e * Hk * dk), v: v.slice(a * Hv * dv, e * Hv * dv),
        g: gg.slice(a * Hv, e * Hv), beta: beta.slice(a * Hv, e * Hv), state: new Float32Array(Hv * dk * dv), L: e - a, Hk, Hv, dk, dv,
      });
      let err = 0, mx = 0;
      ref.out.forEach((r: number, i: number) => { err = Math.max(err, Math.abs(r - one[i])); mx = Math.max(mx, Math.abs(r)); });
      expect(err / mx, `delta segment ${s} vs reference`).toBeLessThan(1e-4);
    }
  });
});

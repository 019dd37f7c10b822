// Behavioural tests of attention beyond single-op comparisons: KV-cache prefill + token-by-token flash-decoding
// equals one causal prefill over the whole sequence; causalOffset semantics; routing; fully masked rows;
// argument validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { Tensor } from '../../src/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { attention, attentionConfig, attentionDecode, KVCache, type AttentionArgs, type HeadView } from '../../src/ops/attention.js';
import { attentionRef } from '../../src/ref/attention.js';
import { checkCase, compare, TOL } from '../../src/testing/opHarness.js';
import { attentionCase, type AttentionShape } from '../../src/testing/cases/attention.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

const read = async (t: Tensor) => (await t.read()) as Float32Array;

function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, label: string) {
  const r = compare(got, ref, TOL.f32, label);
  expect(r.ok, r.report).toBe(true);
}

/** rows [r0, r0+n) of a [rows, W] view as a HeadView (element offset), for q/k/v living in one fused buffer. */
const rowsOf = (v: HeadView, r0: number): HeadView => ({ ...v, offset: (v.offset ?? 0) + r0 * v.rowStride });

describe('KV cache + flash-decoding', () => {
  for (const { H, Hkv, d, L, gated } of [
    { H: 8, Hkv: 2, d: 256, L: 37, gated: true },
    { H: 4, Hkv: 1, d: 64, L: 150, gated: false },
  ]) {
    it(`prefill ${L} via KVCache then 5 decode steps == causal prefill over ${L + 5} (H=${H}/${Hkv} d=${d}${gated ? ' gated' : ''})`, async () => {
      const rng = new Rng(7);
      const T = L + 5;
      // Qwen3.5 layouts: q_proj output with q and gate interleaved per head; k and v side by side in one buffer.
      const qW = gated ? H * 2 * d : H * d;
      const qData = rng.normals(T * qW, 1.5);
      const kvW = 2 * Hkv * d;
      const kvData = rng.normals(T * kvW);
      const qT = Tensor.from(gpu, qData, [T, qW]);
      const kvT = Tensor.from(gpu, kvData, [T, kvW]);
      const q: HeadView = { tensor: qT, rowStride: qW, headStride: gated ? 2 * d : d };
      const gate: HeadView | undefined = gated ? { tensor: qT, rowStride: qW, headStride: 2 * d, offset: d } : undefined;
      const k: HeadView = { tensor: kvT, rowStride: kvW };
      const v: HeadView = { tensor: kvT, rowStride: kvW, offset: Hkv * d };
      const common = { numHeads: H, numKvHeads: Hkv, headDim: d, scale: 1 / Math.sqrt(d), causal: true };

      const full = await read(attention({ q, k, v, gate, Lq: T, Lk: T, ...common }));
      // f64 reference for the whole sequence
      const g = (view: HeadView, heads: number) => {
        const o = new Float32Array(T * heads * d);
        for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) for (let e = 0; e < d; e++) {
          o[(t * heads + h) * d + e] = (view === k || view === v ? kvData : qData)[(view.offset ?? 0) + t * view.rowStride + h * (view.headStride ?? d) + e];
        }
        return o;
      };
      const ref = attentionRef({ q: g(q, H), k: g(k, Hkv), v: g(v, Hkv), gate: gate && g(gate, H), Lq: T, Lk: T, H, Hkv, d, scale: common.scale, causal: true });
      expectClose(full, ref, 'full prefill vs reference');

      const cache = new KVCache(gpu, T + 3, Hkv, d);
      cache.append(k, v, L);
      expect(cache.length).toBe(L);
      const pre = await read(attention({ q, gate, ...cache.view(), Lq: L, ...common }));
      expectClose(pre, full.subarray(0, L * H * d), 'cached prefill vs full prefill');

      const W = H * d;
      for (let step = 0; step < 5; step++) {
        const pos = L + step;
        cache.append(rowsOf(k, pos), rowsOf(v, pos), 1);
        const view = cache.view();
        expect(view.Lk).toBe(pos + 1);
        const out = await read(attentionDecode({ q: rowsOf(q, pos), gate: gate && rowsOf(gate, pos), ...view, Lq: 1, ...common }));
        expectClose(out, full.subarray(pos * W, (pos + 1) * W), `decode step ${step} vs full prefill row ${pos}`);
        expectClose(out, ref.subarray(pos * W, (pos + 1) * W), `decode step ${step} vs reference`);
      }
      expect(cache.length).toBe(T);
      expect(() => cache.append(k, v, 4)).toThrow(/overflow/);
      cache.reset();
      expect(cache.length).toBe(0);
      cache.release();
      qT.release();
      kvT.release();
    });
  }

  it('several queries per decode call (Lq = 3) equal the prefill kernel', async () => {
    const rng = new Rng(3);
    const H = 4, Hkv = 1, d = 64, Lk = 300, Lq = 3;
    const q = Tensor.from(gpu, rng.normals(Lq * H * d), [Lq, H * d]);
    const k = Tensor.from(gpu, rng.normals(Lk * Hkv * d), [Lk, Hkv * d]);
    const v = Tensor.from(gpu, rng.normals(Lk * Hkv * d), [Lk, Hkv * d]);
    const a: AttentionArgs = {
      q: { tensor: q, rowStride: H * d }, k: { tensor: k, rowStride: Hkv * d }, v: { tensor: v, rowStride: Hkv * d },
      Lq, Lk, numHeads: H, numKvHeads: Hkv, headDim: d, scale: 0.125, causal: true,
    };
    // Lq ≤ 4 and Lk ≥ 128: attention() itself routes to flash-decoding (partials + reduce = 2 dispatches)
    const before = gpu.stream.stats.dispatches;
    const routed = await read(attention(a));
    expect(gpu.stream.stats.dispatches - before).toBe(2);
    const dec = await read(attentionDecode(a));
    expectClose(routed, dec, 'routed vs direct decode');
    const b0 = gpu.stream.stats.dispatches;
    const short = attention({ ...a, Lk: 100 });
    expect(gpu.stream.stats.dispatches - b0).toBe(1); // Lk < 128: prefill kernel
    short.release();
    // the prefill kernel on the same problem (Lq > 4 forces it: the last 3 of 5 rows are the same queries, same default offset Lk − Lq per row)
    const q5 = Tensor.from(gpu, new Float32Array([...rng.normals(2 * H * d), ...((await q.read()) as Float32Array)]), [5, H * d]);
    const pre = await read(attention({ ...a, q: { tensor: q5, rowStride: H * d }, Lq: 5 }));
    expectClose(dec, pre.subarray(2 * H * d), 'decode vs prefill kernel');
    for (const t of [q, k, v, q5]) t.release();
  });
});

describe('causalOffset semantics', () => {
  it('query i sees keys j ≤ i + causalOffset; default Lk − Lq; an empty row is zero', async () => {
    const rng = new Rng(11);
    const H = 1, d = 32, Lq = 3, Lk = 10;
    const qd = rng.normals(Lq * d), kd = rng.normals(Lk * d), vd = rng.normals(Lk * d);
    const q = Tensor.from(gpu, qd, [Lq, d]);
    const k = Tensor.from(gpu, kd, [Lk, d]);
    const v = Tensor.from(gpu, vd, [Lk, d]);
    const base: AttentionArgs = {
      q: { tensor: q, rowStride: d }, k: { tensor: k, rowStride: d }, v: { tensor: v, rowStride: d },
      Lq, Lk, numHeads: H, numKvHeads: H, headDim: d, scale: 1 / Math.sqrt(d), causal: true,
    };
    for (const fn of [attention, attentionDecode]) {
      const dflt = await read(fn(base));
      const explicit = await read(fn({ ...base, causalOffset: Lk - Lq }));
      expect(Array.from(dflt)).toEqual(Array.from(explicit));
      expectClose(dflt, attentionRef({ q: qd, k: kd, v: vd, Lq, Lk, H, Hkv: H, d, scale: base.scale, causal: true }), `${fn.name} default offset`);
      // offset 0: query 0 sees only key 0, so its output is v[0] exactly (up to f32 rounding of p = 1)
      const zero = await read(fn({ ...base, causalOffset: 0 }));
      expectClose(zero.subarray(0, d), vd.subarray(0, d), `${fn.name} offset 0 row 0 = v[0]`);
      expectClose(zero, attentionRef({ q: qd, k: kd, v: vd, Lq, Lk, H, Hkv: H, d, scale: base.scale, causal: true, causalOffset: 0 }), `${fn.name} offset 0`);
      // offset −2: rows 0 and 1 see no key → zeros (no NaN); row 2 sees key 0 only
      const neg = await read(fn({ ...base, causalOffset: -2 }));
      expect(Array.from(neg.subarray(0, 2 * d)).every((x) => x === 0)).toBe(true);
      expectClose(neg.subarray(2 * d), vd.subarray(0, d), `${fn.name} offset −2 row 2 = v[0]`);
    }
    for (const t of [q, k, v]) t.release();
  });
});

describe('masks', () => {
  it('fully masked rows output zeros, never NaN (prefill and decode, u32 and f32 masks)', async () => {
    const rng = new Rng(5);
    const H = 2, d = 48, Lk = 200;
    const q = Tensor.from(gpu, rng.normals(6 * H * d, 50), [6, H * d]); // large scores: exp overflow would show
    const k = Tensor.from(gpu, rng.normals(Lk * H * d, 50), [Lk, H * d]);
    const v = Tensor.from(gpu, rng.normals(Lk * H * d), [Lk, H * d]);
    for (const mask of [Tensor.from(gpu, new Uint32Array(Lk), [Lk]), Tensor.from(gpu, new Float32Array(Lk).fill(-0), [Lk])]) {
      for (const [fn, Lq] of [[attention, 6], [attentionDecode, 2]] as const) {
        const out = await read(fn({
          q: { tensor: q, rowStride: H * d }, k: { tensor: k, rowStride: H * d }, v: { tensor: v, rowStride: H * d },
          Lq, Lk, numHeads: H, numKvHeads: H, headDim: d, scale: 1, keyMask: mask,
        }));
        expect(Array.from(out).every((x) => x === 0), `${fn.name} ${mask.dtype}`).toBe(true);
      }
      mask.release();
    }
    for (const t of [q, k, v]) t.release();
  });
});

describe('unrolled (GPU) variants', () => {
  // On lavapipe the kernels are compiled with ROLLED (runtime trip counts); this runs the constant-trip code that
  // GPUs get, on one head dim (each unrolled variant costs seconds of LLVM time when not in Mesa's shader cache).
  it('prefill and decode with ROLLED = false match the reference (d = 256, GQA 4, gated, masked)', async () => {
    const rng = new Rng(21);
    const H = 4, Hkv = 1, d = 256, Lk = 150;
    const qd = rng.normals(20 * H * d, 1.5), gd = rng.normals(20 * H * d), kd = rng.normals(Lk * d), vd = rng.normals(Lk * d);
    const md = Float32Array.from({ length: Lk }, () => (rng.uniform() < 0.3 ? 0 : 1));
    const q = Tensor.from(gpu, qd, [20, H * d]);
    const g = Tensor.from(gpu, gd, [20, H * d]);
    const k = Tensor.from(gpu, kd, [Lk, d]);
    const v = Tensor.from(gpu, vd, [Lk, d]);
    const mask = Tensor.from(gpu, md, [Lk]);
    attentionConfig.rolled = false;
    attentionConfig.prefill = 'tiles';
    try {
      for (const [fn, Lq] of [[attention, 20], [attentionDecode, 1]] as const) {
        const args = {
          q: { tensor: q, rowStride: H * d }, gate: { tensor: g, rowStride: H * d }, k: { tensor: k, rowStride: d }, v: { tensor: v, rowStride: d },
          Lq, Lk, numHeads: H, numKvHeads: Hkv, headDim: d, scale: 1 / 16, causal: true, keyMask: mask,
        };
        const out = await read(fn(args));
        const ref = attentionRef({ q: qd.subarray(0, Lq * H * d), gate: gd.subarray(0, Lq * H * d), k: kd, v: vd, Lq, Lk, H, Hkv, d, scale: 1 / 16, causal: true, keyMask: md });
        expectClose(out, ref, `${fn.name} unrolled`);
      }
    } finally {
      attentionConfig.rolled = 'auto';
      attentionConfig.prefill = 'auto';
    }
    for (const t of [q, g, k, v, mask]) t.release();
  });
});

// The op harness (test/ops.test.ts) runs every attention case with the adapter's default prefill variant; these
// run the prefill cases that stress tiling through the other variant and through odd 'rows' shapes (3 rows per
// lane, 8 lanes: partial tiles, padding rows; 8 keys per step), against the same f64 reference. One head dim
// (36: not a multiple of 8) keeps the pipeline count, hence lavapipe's compile time, small.
const variantShapes: AttentionShape[] = [
  { Lq: 45, Lk: 45, H: 6, Hkv: 2, d: 36, causal: true, layout: 'qgate', kvPad: 1 },
  { Lq: 30, Lk: 23, H: 2, Hkv: 2, d: 36 },
  { Lq: 12, Lk: 40, H: 2, Hkv: 2, d: 36, causal: true, causalOffset: -2 },
  { Lq: 75, Lk: 75, H: 2, Hkv: 2, d: 36, segments: [0, 3, 3, 70, 75], causal: true },
  { Lq: 51, Lk: 51, H: 2, Hkv: 2, d: 36, segments: [0, 17, 34, 51], mask: 'random', maskDtype: 'f32' },
  { Lq: 70, Lk: 33, H: 2, Hkv: 2, d: 36, segments: [0, 5, 70], keyRanges: [3, 33, 0, 7], gate: true },
  // query / key cu_seqlens, causal per segment bottom right (prompt suffixes after cached prefixes)
  { Lq: 45, Lk: 104, H: 2, Hkv: 1, d: 36, segments: [0, 1, 1, 45], keySegments: [0, 30, 50, 104], causal: true, gate: true },
  { Lq: 17, Lk: 301, H: 2, Hkv: 2, d: 36, mask: 'random', kvPad: 3 },
  { Lq: 17, Lk: 41, H: 2, Hkv: 2, d: 36, mask: 'all0' },
];
const variants: [string, Partial<typeof attentionConfig>][] = [
  ['tiles', { prefill: 'tiles' }],
  ['rows 8 lanes × 8 keys × 3 rows', { prefill: 'rows', rowsTiles: { lanes: 8, keys: 8, rowsPerLane: 3 } }],
  ['rows 32 lanes × 4 keys × 1 row', { prefill: 'rows', rowsTiles: { lanes: 32, keys: 4, rowsPerLane: 1 } }],
];

describe('prefill variants through the op harness', () => {
  for (const [name, cfg] of variants) {
    it(`${name}: odd shapes, GQA, segments, key ranges, masks, strided views`, async () => {
      const saved = { ...attentionConfig };
      Object.assign(attentionConfig, cfg);
      try {
        for (const shape of variantShapes) {
          const r = await checkCase(gpu, attentionCase(shape));
          expect(r.ok, `${name}: ${r.report}`).toBe(true);
        }
      } finally {
        Object.assign(attentionConfig, saved);
      }
    });
  }
});

describe('ragged batches', () => {
  // Batched inference relies on it: a segment's output bits do not depend on the other segments of the call or
  // on its position in the batch (self-attention with a key mask, cross-attention with key ranges, causal).
  for (const [name, cfg] of [['tiles', { prefill: 'tiles' }], ['rows', { prefill: 'rows' }]] as const) {
    it(`${name}: each segment is bit-identical to the same rows run alone`, async () => {
      const saved = { ...attentionConfig };
      Object.assign(attentionConfig, cfg);
      const rng = new Rng(33);
      const H = 4, Hkv = 2, d = 48;
      const segs = [0, 23, 24, 61, 96];
      const n = segs.length - 1;
      const L = segs[n];
      const Lk = 130; // cross: each segment has its own key range (overlapping, one long)
      const kr = [0, 40, 40, 41, 10, 130, 60, 100];
      const ks = [0, 30, 31, 90, 130]; // key cu_seqlens: each segment's [prefix ++ own] keys
      const qd = rng.normals(L * H * d), kd = rng.normals(Lk * Hkv * d), vd = rng.normals(Lk * Hkv * d);
      const q = Tensor.from(gpu, qd, [L, H * d]);
      const k = Tensor.from(gpu, kd, [Lk, Hkv * d]);
      const v = Tensor.from(gpu, vd, [Lk, Hkv * d]);
      const mask = Tensor.from(gpu, Uint32Array.from({ length: Lk }, () => (rng.uniform() < 0.2 ? 0 : 1)), [Lk], 'u32');
      const common = { numHeads: H, numKvHeads: Hkv, headDim: d, scale: 1 / Math.sqrt(d) };
      const qv = (r0: number): HeadView => ({ tensor: q, rowStride: H * d, offset: r0 * H * d });
      const kv = (t: Tensor, r0: number): HeadView => ({ tensor: t, rowStride: Hkv * d, offset: r0 * Hkv * d });
      try {
        const modes = [
          { tag: 'self, causal', causal: true, keys: (s: number) => [segs[s], segs[s + 1]] },
          { tag: 'cross, key mask', causal: false, keys: (s: number) => [kr[2 * s], kr[2 * s + 1]], mask: true },
          // prompt suffixes after cached prefixes: key cu_seqlens, causal aligned to each segment's bottom right
          { tag: 'suffix, key segments', causal: true, keys: (s: number) => [ks[s], ks[s + 1]] },
        ];
        for (const m of modes) {
          const keyRanges = m.tag.startsWith('cross') ? Int32Array.from(kr) : undefined;
          const keySegments = m.tag.startsWith('suffix') ? Int32Array.from(ks) : undefined;
          const batch = await read(attention({
            q: qv(0), k: kv(k, 0), v: kv(v, 0), Lq: L, Lk: keyRanges || keySegments ? Lk : L, ...common, causal: m.causal,
            segments: Int32Array.from(segs), keyRanges, keySegments, keyMask: m.mask ? mask : undefined,
          }));
          for (let s = 0; s < n; s++) {
            const [lo, hi] = m.keys(s);
            const len = segs[s + 1] - segs[s];
            if (len === 0) continue;
            // Alone: the segment's rows against its own keys (the mask sliced alike), as a one-segment call.
            const mk = m.mask ? Tensor.from(gpu, (await mask.read() as Uint32Array).slice(lo, Math.max(hi, lo + 1)), [Math.max(hi - lo, 1)], 'u32') : undefined;
            const one = keySegments ? { keySegments: Int32Array.from([0, hi - lo]) } : { keyRanges: Int32Array.from([0, hi - lo]) };
            const alone = await read(attention({
              q: qv(segs[s]), k: kv(k, lo), v: kv(v, lo), Lq: len, Lk: hi - lo, ...common, causal: m.causal,
              segments: Int32Array.from([0, len]), ...one, keyMask: mk,
            }));
            mk?.release();
            const part = batch.subarray(segs[s] * H * d, segs[s + 1] * H * d);
            expect(Array.from(alone), `${name} ${m.tag}: segment ${s}`).toEqual(Array.from(part));
          }
        }
      } finally {
        Object.assign(attentionConfig, saved);
        for (const t of [q, k, v, mask]) t.release();
      }
    });
  }
});

describe('validation', () => {
  it('rejects bad arguments with clear errors', () => {
    const t = Tensor.empty(gpu, [8, 64]);
    const o = Tensor.empty(gpu, [8, 64]);
    const a: AttentionArgs = {
      q: { tensor: t, rowStride: 64 }, k: { tensor: t, rowStride: 64 }, v: { tensor: t, rowStride: 64 },
      Lq: 8, Lk: 8, numHeads: 1, numKvHeads: 1, headDim: 64, scale: 0.125, out: o,
    };
    expect(() => attention({ ...a, headDim: 30, numHeads: 2 })).toThrow(/headDim 30/);
    expect(() => attention({ ...a, numKvHeads: 3 })).toThrow(/numKvHeads/);
    expect(() => attention({ ...a, out: t })).toThrow(/alias/);
    expect(() => attention({ ...a, Lq: 9 })).toThrow(/q view/);
    expect(() => attention({ ...a, Lk: 4, segments: Int32Array.from([0, 4]) })).toThrow(/Lq == Lk/);
    expect(() => attention({ ...a, segments: Int32Array.from([0, 5, 7]) })).toThrow(/cu_seqlens/);
    expect(() => attentionDecode({ ...a, Lq: 5, Lk: 5, out: undefined })).toThrow(/Lq=5/);
    t.release();
    o.release();
  });
});

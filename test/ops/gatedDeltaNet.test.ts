// Gated DeltaNet behaviour beyond single-op comparisons: the chunked algorithm against the recurrence (CPU and
// GPU, with a carried-in state), prefill-then-decode against one long prefill through the whole
// conv → gates → delta-rule chain, conv state semantics for L < K−1, and the softplus threshold of the gates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { Tensor } from '../../src/tensor.js';
import { Rng } from '../../src/util/rng.js';
import {
  causalConv1dSilu, gatedDeltaRule, gatedDeltaRuleChunked, gatedDeltaRuleRecurrent, gatedDeltaNetConfig, gatedDeltaNetGates, RECURRENT_MAX_L,
  type DeltaRuleArgs,
} from '../../src/ops/gatedDeltaNet.js';
import {
  causalConv1dSiluRef, gatedDeltaRuleChunkedRef, gatedDeltaRuleRecurrentRef, gatedDeltaNetGatesRef,
} from '../../src/ref/gatedDeltaNet.js';
import { deltaInputs, deltaSegCase } from '../../src/testing/cases/gatedDeltaNet.js';
import { checkCase } from '../../src/testing/opHarness.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

/** max |a − b| / max |b|: the "relative" agreement of two whole tensors. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0, m = 0;
  for (let k = 0; k < b.length; k++) {
    d = Math.max(d, Math.abs(a[k] - b[k]));
    m = Math.max(m, Math.abs(b[k]));
    if (!Number.isFinite(a[k])) return Infinity;
  }
  return d / m;
}

const TINY = { Hk: 2, Hv: 4, dk: 32, dv: 32 };
const SAME_HEADS = { Hk: 2, Hv: 2, dk: 32, dv: 32 };

/** Chunked vs recurrent (and f64) over 300 tokens, the state carried in from a previous 37-token call. */
async function chunkedMatchesRecurrent(heads: { Hk: number; Hv: number; dk: number; dv: number }): Promise<void> {
  const L0 = 37, L = 300; // the second call starts mid-sequence and is not a multiple of 64
  const s = { L: L0 + L, ...heads };
  const { Hk, Hv, dk, dv } = heads;
  const d = deltaInputs(new Rng(11), s);
  const mixed = Tensor.from(gpu, d.mixed, [s.L, d.convDim]);
  const g = Tensor.from(gpu, d.g, [s.L, Hv]);
  const beta = Tensor.from(gpu, d.beta, [s.L, Hv]);
  const view = (t0: number, part: 'q' | 'k' | 'v') => ({
    tensor: mixed, rowStride: d.convDim, offset: t0 * d.convDim + (part === 'q' ? 0 : part === 'k' ? Hk * dk : 2 * Hk * dk),
  });
  const call = (state: Tensor, t0: number, n: number, chunked: boolean) => {
    const a: DeltaRuleArgs = {
      q: view(t0, 'q'), k: view(t0, 'k'), v: view(t0, 'v'),
      g: g.rows(t0, n), beta: beta.rows(t0, n), state, L: n, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
    };
    return chunked ? gatedDeltaRuleChunked(a) : gatedDeltaRuleRecurrent(a);
  };
  // First call (chunked) from a random state, then copy its state into two runs of the second call.
  const s0 = Tensor.from(gpu, d.state, [Hv, dk, dv]);
  call(s0, 0, L0, true).release();
  const carried = await s0.read();
  const sRec = Tensor.from(gpu, carried as Float32Array, [Hv, dk, dv]);
  const sChk = Tensor.from(gpu, carried as Float32Array, [Hv, dk, dv]);
  const oRec = call(sRec, L0, L, false);
  const oChk = call(sChk, L0, L, true);
  const [or, oc, sr, sc] = [await oRec.read(), await oChk.read(), await sRec.read(), await sChk.read()];
  expect(relErr(oc, or)).toBeLessThan(1e-5);
  expect(relErr(sc, sr)).toBeLessThan(1e-5);
  // and both against the f64 recurrence over the whole sequence
  const ref = gatedDeltaRuleRecurrentRef({ q: d.q, k: d.k, v: d.v, g: d.g, beta: d.beta, state: d.state, L: s.L, Hk, Hv, dk, dv });
  expect(relErr(oc, ref.out.subarray(L0 * Hv * dv))).toBeLessThan(1e-5);
  expect(relErr(sc, ref.state)).toBeLessThan(1e-5);
  for (const t of [mixed, g, beta, s0, sRec, sChk, oRec, oChk]) t.release();
}

describe('gated delta rule: chunked form = recurrence', () => {
  it('CPU: the literal chunked algorithm reproduces the recurrence (f64), with padding and a carried state', () => {
    const rng = new Rng(7);
    for (const [L, C] of [[150, 64], [37, 16], [5, 64]] as const) {
      const s = { L, ...TINY, dk: 8, dv: 12 };
      const d = deltaInputs(rng, s);
      const args = { q: d.q, k: d.k, v: d.v, g: d.g, beta: d.beta, state: d.state, L, Hk: s.Hk, Hv: s.Hv, dk: s.dk, dv: s.dv };
      const rec = gatedDeltaRuleRecurrentRef(args);
      const chk = gatedDeltaRuleChunkedRef({ ...args, chunkSize: C });
      expect(relErr(chk.out, rec.out)).toBeLessThan(1e-12);
      expect(relErr(chk.state, rec.state)).toBeLessThan(1e-12);
    }
  });

  for (const [label, heads] of [['Hv = 2·Hk', TINY], ['Hv = Hk', SAME_HEADS]] as const) {
    it(`GPU: chunked vs recurrent over 300 tokens after a previous call (${label})`, () => chunkedMatchesRecurrent(heads));
  }

  it('GPU: the same with the unrolled (GPU) loop variants, which software adapters do not use by default', async () => {
    gatedDeltaNetConfig.rolled = false;
    try {
      await chunkedMatchesRecurrent(TINY);
      // per-segment initial states (a prompt suffix after its cached prefix) in the unrolled variant too
      const r = await checkCase(gpu, deltaSegCase({ segments: [0, 1, 1, 70, 99], ...TINY }));
      expect(r.ok, r.report).toBe(true);
    } finally {
      gatedDeltaNetConfig.rolled = 'auto';
    }
  });
});

describe('GDN chain: prefill then decode = one longer prefill', () => {
  for (const [label, heads] of [['Hv = 2·Hk', TINY], ['Hv = Hk', SAME_HEADS]] as const) {
    it(`prefill 70 (chunked) + 5 decode steps (recurrent, conv state carried) = prefill 75 (${label})`, async () => {
      const { Hk, Hv, dk, dv } = heads;
      const L = 70, extra = 5, N = L + extra, K = 4;
      const convDim = 2 * Hk * dk + Hv * dv;
      const rng = new Rng(3);
      const mixedData = rng.normals(N * convDim);
      const abStride = 2 * Hv + 1; // a | b | one stray column, like a fused projection output
      const abData = rng.normals(N * abStride, 2);
      const wData = rng.normals(convDim * K, 0.5);
      const aLogData = rng.normals(Hv, 0.5);
      const dtData = rng.normals(Hv, 1);
      const mixed = Tensor.from(gpu, mixedData, [N, convDim]);
      const ab = Tensor.from(gpu, abData, [N, abStride]);
      const w = Tensor.from(gpu, wData, [convDim, 1, K]);
      const aLog = Tensor.from(gpu, aLogData, [Hv]);
      const dtBias = Tensor.from(gpu, dtData, [Hv]);

      /** One GDN step over tokens [t0, t0+n): conv → gates → delta rule; returns o [n, Hv, dv]. */
      const step = (convState: Tensor, S: Tensor, t0: number, n: number, prefill: boolean): Tensor => {
        const u = causalConv1dSilu({ tensor: mixed, rowStride: convDim, offset: t0 * convDim }, w, convState, { L: n, channels: convDim, kernel: K });
        const { g, beta } = gatedDeltaNetGates(
          { tensor: ab, rowStride: abStride, offset: t0 * abStride }, { tensor: ab, rowStride: abStride, offset: t0 * abStride + Hv },
          aLog, dtBias, { L: n, numValueHeads: Hv },
        );
        const a: DeltaRuleArgs = {
          q: { tensor: u, rowStride: convDim }, k: { tensor: u, rowStride: convDim, offset: Hk * dk }, v: { tensor: u, rowStride: convDim, offset: 2 * Hk * dk },
          g, beta, state: S, L: n, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
        };
        const o = prefill ? gatedDeltaRuleChunked(a) : gatedDeltaRule(a);
        u.release(); g.release(); beta.release();
        return o;
      };

      // A: one prefill over N tokens.
      const convA = Tensor.from(gpu, new Float32Array((K - 1) * convDim), [K - 1, convDim]);
      const SA = Tensor.from(gpu, new Float32Array(Hv * dk * dv), [Hv, dk, dv]);
      const oA = await step(convA, SA, 0, N, true).read();
      // B: prefill L, then decode one token at a time.
      const convB = Tensor.from(gpu, new Float32Array((K - 1) * convDim), [K - 1, convDim]);
      const SB = Tensor.from(gpu, new Float32Array(Hv * dk * dv), [Hv, dk, dv]);
      step(convB, SB, 0, L, true).release();
      const decoded: Float32Array[] = [];
      for (let s = 0; s < extra; s++) decoded.push(await step(convB, SB, L + s, 1, false).read() as Float32Array);

      const row = Hv * dv;
      for (let s = 0; s < extra; s++) expect(relErr(decoded[s], oA.subarray((L + s) * row, (L + s + 1) * row))).toBeLessThan(1e-5);
      expect(relErr(await SB.read(), await SA.read())).toBeLessThan(1e-5);
      expect(relErr(await convB.read(), await convA.read())).toBe(0); // the conv state is a copy of inputs

      // And against the f64 chain.
      const conv = causalConv1dSiluRef(mixedData, wData, new Float32Array((K - 1) * convDim), N, convDim, K);
      const aIn = new Float64Array(N * Hv), bIn = new Float64Array(N * Hv);
      for (let t = 0; t < N; t++) for (let j = 0; j < Hv; j++) { aIn[t * Hv + j] = abData[t * abStride + j]; bIn[t * Hv + j] = abData[t * abStride + Hv + j]; }
      const gates = gatedDeltaNetGatesRef(aIn, bIn, aLogData, dtData, N, Hv);
      const q = new Float64Array(N * Hk * dk), k = new Float64Array(N * Hk * dk), v = new Float64Array(N * Hv * dv);
      for (let t = 0; t < N; t++) {
        q.set(conv.y.subarray(t * convDim, t * convDim + Hk * dk), t * Hk * dk);
        k.set(conv.y.subarray(t * convDim + Hk * dk, t * convDim + 2 * Hk * dk), t * Hk * dk);
        v.set(conv.y.subarray(t * convDim + 2 * Hk * dk, (t + 1) * convDim), t * Hv * dv);
      }
      const ref = gatedDeltaRuleRecurrentRef({ q, k, v, g: gates.g, beta: gates.beta, L: N, Hk, Hv, dk, dv });
      expect(relErr(oA, ref.out)).toBeLessThan(1e-5);
      expect(relErr(await SB.read(), ref.state)).toBeLessThan(1e-5);
      for (const t of [mixed, ab, w, aLog, dtBias, convA, SA, convB, SB]) t.release();
    });
  }

  it(`gatedDeltaRule picks recurrent up to L = ${RECURRENT_MAX_L}`, () => {
    expect(RECURRENT_MAX_L).toBeGreaterThanOrEqual(1);
    expect(RECURRENT_MAX_L).toBeLessThan(64);
  });
});

describe('causalConv1dSilu state', () => {
  it('calls with L < K−1 (and longer ones) chain exactly like one call over the concatenation', async () => {
    const C = 19, K = 4, lens = [1, 2, 1, 5, 1, 20, 2];
    const N = lens.reduce((a, b) => a + b, 0);
    const rng = new Rng(5);
    const xs = rng.normals(N * C);
    const ws = rng.normals(C * K, 0.5);
    const s0 = rng.normals((K - 1) * C); // history from an earlier call
    const x = Tensor.from(gpu, xs, [N, C]);
    const w = Tensor.from(gpu, ws, [C, 1, K]);
    const state = Tensor.from(gpu, s0, [K - 1, C]);
    const full = causalConv1dSiluRef(xs, ws, s0, N, C, K);
    let t0 = 0;
    for (const n of lens) {
      const y = causalConv1dSilu({ tensor: x, rowStride: C, offset: t0 * C }, w, state, { L: n, channels: C, kernel: K });
      expect(relErr(await y.read(), full.y.subarray(t0 * C, (t0 + n) * C))).toBeLessThan(1e-6);
      // The state after the call = the K−1 inputs before t0+n, reaching back into the old history.
      const prefix = causalConv1dSiluRef(xs, ws, s0, t0 + n, C, K);
      expect(Array.from(await state.read())).toEqual(Array.from(Float32Array.from(prefix.state)));
      y.release();
      t0 += n;
    }
    // Spelled out for L = 1 from a known state: [s0, s1, s2] → [s1, s2, x0].
    const st = Tensor.from(gpu, Float32Array.from({ length: 3 }, (_, r) => 10 + r), [3, 1]);
    const one = Tensor.from(gpu, Float32Array.of(7), [1, 1]);
    const w1 = Tensor.from(gpu, Float32Array.of(0, 0, 0, 1), [1, 1, 4]);
    causalConv1dSilu({ tensor: one, rowStride: 1 }, w1, st, { L: 1, channels: 1, kernel: 4 }).release();
    expect(Array.from(await st.read())).toEqual([11, 12, 7]);
    for (const t of [x, w, state, st, one, w1]) t.release();
  });
});

describe('gatedDeltaNetGates', () => {
  it('follows the PyTorch softplus threshold (x > 20 → x) without overflow, and saturates sigmoid cleanly', async () => {
    const Hv = 6;
    const aVals = [19.5, 20.5, 21, 50, 88, 100, 1000, -1000, -100, -30, -10, 0, 3, -3, 1e6, -1e6];
    const L = aVals.length;
    const dt = Float32Array.of(0, 0.25, -0.75, 1, -2, 0.5);
    const aLogV = Float32Array.of(0, 1, -1, 2, 0.5, -3);
    const as = new Float32Array(L * Hv), bs = new Float32Array(L * Hv);
    for (let t = 0; t < L; t++) for (let j = 0; j < Hv; j++) { as[t * Hv + j] = aVals[t]; bs[t * Hv + j] = aVals[(t + j) % L] / 10; }
    const a = Tensor.from(gpu, as, [L, Hv]), b = Tensor.from(gpu, bs, [L, Hv]);
    const aLog = Tensor.from(gpu, aLogV, [Hv]), dtBias = Tensor.from(gpu, dt, [Hv]);
    const { g, beta } = gatedDeltaNetGates({ tensor: a, rowStride: Hv }, { tensor: b, rowStride: Hv }, aLog, dtBias, { L, numValueHeads: Hv });
    const [gg, bb] = [await g.read(), await beta.read()];
    const ref = gatedDeltaNetGatesRef(as, bs, aLogV, dt, L, Hv);
    for (let n = 0; n < L * Hv; n++) {
      expect(Number.isFinite(gg[n]) && Number.isFinite(bb[n])).toBe(true);
      expect(Math.abs(gg[n] - ref.g[n])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(ref.g[n])));
      expect(Math.abs(bb[n] - ref.beta[n])).toBeLessThanOrEqual(1e-6);
      expect(gg[n]).toBeLessThanOrEqual(0);
    }
    // Above the threshold softplus is the identity: g = −exp(A_log)·(a + dt_bias) exactly as PyTorch computes it.
    const t50 = aVals.indexOf(50);
    for (let j = 0; j < Hv; j++) expect(gg[t50 * Hv + j]).toBeCloseTo(-Math.exp(aLogV[j]) * (50 + dt[j]), 3);
    // Deep negative inputs give tiny but non-zero decays (accurate log1p), as in f64.
    const tm30 = aVals.indexOf(-30);
    expect(gg[tm30 * Hv]).toBeLessThan(0);
    for (const t of [a, b, aLog, dtBias, g, beta]) t.release();
  });
});

describe('argument checks', () => {
  it('rejects inconsistent head counts and views that run past their tensor', () => {
    const x = Tensor.empty(gpu, [4, 64]);
    const g = Tensor.empty(gpu, [4, 3]);
    const S = Tensor.empty(gpu, [3, 8, 8]);
    const base = { g, beta: g, state: S, L: 4, numKeyHeads: 2, numValueHeads: 3, keyDim: 8, valueDim: 8 };
    const v = (offset: number) => ({ tensor: x, rowStride: 64, offset });
    expect(() => gatedDeltaRuleRecurrent({ ...base, q: v(0), k: v(16), v: v(32) })).toThrow(/multiple of numKeyHeads/);
    expect(() => gatedDeltaRuleChunked({ ...base, numKeyHeads: 1, q: v(0), k: v(8), v: v(50) })).toThrow(/past tensor/);
    expect(() => causalConv1dSilu(v(0), g, S, { L: 4, channels: 64, kernel: 4 })).toThrow(/weight/);
    for (const t of [x, g, S]) t.release();
  });
});

describe('ragged batches with per-segment initial states (prompt suffixes after cached prefixes)', () => {
  it('conv and chunked rule: a segment of a batch = the segment alone from the same state, bit for bit; states are read only', async () => {
    const { Hk, Hv, dk, dv } = TINY;
    const segs = [0, 1, 1, 70, 99];
    const n = segs.length - 1, L = segs[n], K = 4;
    const rng = new Rng(21);
    const d = deltaInputs(rng, { L, ...TINY });
    const C = d.convDim, S = Hv * dk * dv;
    const convStates = rng.normals(n * (K - 1) * C), ruleStates = rng.normals(n * S, 0.5);
    const w = Tensor.from(gpu, rng.normals(C * K, 0.5), [C, 1, K]);
    const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
    const run = async (t0: number, t1: number, seg: number[], cs: Float32Array, rs: Float32Array) => {
      const m = t1 - t0;
      const x = Tensor.from(gpu, d.mixed.slice(t0 * C, t1 * C), [m, C]);
      const g = Tensor.from(gpu, d.g.slice(t0 * Hv, t1 * Hv), [m, Hv]);
      const beta = Tensor.from(gpu, d.beta.slice(t0 * Hv, t1 * Hv), [m, Hv]);
      const cst = Tensor.from(gpu, cs, [seg.length - 1, K - 1, C]);
      const rst = Tensor.from(gpu, rs, [seg.length - 1, Hv, dk, dv]);
      const segments = Int32Array.from(seg);
      const y = causalConv1dSilu({ tensor: x, rowStride: C }, w, cst, { L: m, channels: C, kernel: K, segments });
      const o = gatedDeltaRuleChunked({
        q: { tensor: x, rowStride: C, offset: 0 }, k: { tensor: x, rowStride: C, offset: Hk * dk }, v: { tensor: x, rowStride: C, offset: 2 * Hk * dk },
        g, beta, state: rst, segments, L: m, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
      });
      const out = { y: (await y.read()) as Float32Array, o: (await o.read()) as Float32Array, cs: (await cst.read()) as Float32Array, rs: (await rst.read()) as Float32Array };
      for (const t of [x, g, beta, cst, rst, y, o]) t.release();
      return out;
    };
    const batch = await run(0, L, segs, convStates, ruleStates);
    expect(bits(batch.cs)).toEqual(bits(convStates));
    expect(bits(batch.rs)).toEqual(bits(ruleStates));
    for (let s = 0; s < n; s++) {
      const [a, b] = [segs[s], segs[s + 1]];
      if (a === b) continue;
      const alone = await run(a, b, [0, b - a], convStates.slice(s * (K - 1) * C, (s + 1) * (K - 1) * C), ruleStates.slice(s * S, (s + 1) * S));
      expect(bits(alone.y), `conv, segment ${s}`).toEqual(bits(batch.y.subarray(a * C, b * C)));
      expect(bits(alone.o), `delta rule, segment ${s}`).toEqual(bits(batch.o.subarray(a * Hv * dv, b * Hv * dv)));
    }
    w.release();
  });
});

// Op cases for the Gated DeltaNet pieces (src/ops/gatedDeltaNet.ts): conv + SiLU, gates, and the delta rule
// (recurrent and chunked, both checked against the token-by-token f64 reference). Inputs are strided views at
// unaligned element offsets, as in the model (q/k/v are slices of the conv output, a/b of a fused projection).
// Every stateful op returns `out ++ final state`, so the state update is checked too.
import { causalConv1dSilu, gatedDeltaRuleChunked, gatedDeltaRuleRecurrent, gatedDeltaNetGates } from '../../ops/gatedDeltaNet.js';
import { causalConv1dSiluRef, gatedDeltaRuleRecurrentRef, gatedDeltaNetGatesRef } from '../../ref/gatedDeltaNet.js';
import { Tensor, f16ToF32Array, f32ToF16Array } from '../../tensor.js';
import type { Rng } from '../../util/rng.js';
import { TOL, type OpCase } from '../opHarness.js';

function concat(...parts: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    for (let k = 0; k < p.length; k++) out[o + k] = p[k];
    o += p.length;
  }
  return out;
}

/** Rows of `cols` values placed at `offset` inside rows of `stride` (the rest is noise). */
function strided(rng: Rng, L: number, cols: number, stride: number, offset: number, vals: Float32Array): Float32Array {
  const buf = rng.normals(offset + Math.max(L, 1) * stride);
  for (let t = 0; t < L; t++) buf.set(vals.subarray(t * cols, (t + 1) * cols), offset + t * stride);
  return buf;
}

// ---------------------------------------------------------------------------------------------------------

interface ConvShape { L: number; C: number; K?: number; f16?: boolean; fresh?: boolean; perf?: boolean; tag?: string }

export function convCase(s: ConvShape): OpCase {
  const K = s.K ?? 4;
  const wt = s.f16 ? 'f16' : 'f32';
  return {
    name: `causalConv1dSilu ${wt} L=${s.L} C=${s.C} K=${K}${s.fresh ? ' zero-state' : ''}${s.tag ? ` [${s.tag}]` : ''}`,
    op: 'causalConv1dSilu',
    perf: s.perf,
    tol: s.f16 ? TOL.f16 : TOL.f32,
    setup(gpu, rng) {
      const { L, C } = s;
      const stride = C + 5, off = 3; // x is a row view at an unaligned offset
      const xs = rng.normals(L * C);
      let ws = rng.normals(C * K, 0.5);
      const wData = s.f16 ? f32ToF16Array(ws) : ws;
      if (s.f16) ws = f16ToF32Array(wData as Uint16Array);
      const s0 = s.fresh ? new Float32Array((K - 1) * C) : rng.normals((K - 1) * C);
      const x = Tensor.from(gpu, strided(rng, L, C, stride, off, xs), [off + Math.max(L, 1) * stride]);
      const w = Tensor.from(gpu, wData, [C, 1, K], wt);
      const state = Tensor.from(gpu, s0, [K - 1, C]);
      const out = Tensor.empty(gpu, [L, C]);
      const encode = () => { causalConv1dSilu({ tensor: x, rowStride: stride, offset: off }, w, state, { L, channels: C, kernel: K, out }); };
      return {
        encode,
        async run() {
          state.write(s0);
          encode();
          return concat(await out.read(), await state.read());
        },
        reference: () => { const r = causalConv1dSiluRef(xs, ws, s0, L, C, K); return concat(r.y, r.state); },
        flops: (2 * K + 4) * L * C,
        bytes: (2 * L * C + 2 * (K - 1) * C) * 4 + C * K * (s.f16 ? 2 : 4),
        dispose() { x.release(); w.release(); state.release(); out.release(); },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

interface GatesShape { L: number; Hv: number; f16?: boolean; perf?: boolean; tag?: string }

export function gatesCase(s: GatesShape): OpCase {
  return {
    name: `gatedDeltaNetGates ${s.f16 ? 'f16' : 'f32'} L=${s.L} Hv=${s.Hv}${s.tag ? ` [${s.tag}]` : ''}`,
    op: 'gatedDeltaNetGates',
    perf: s.perf,
    tol: TOL.f32,
    setup(gpu, rng) {
      const { L, Hv } = s;
      // a and b side by side in one [L, 2·Hv + 3] projection output, a after one stray column.
      const stride = 2 * Hv + 3, aOff = 1, bOff = 1 + Hv + 1;
      const as = rng.uniforms(L * Hv, -30, 30); // both sides of the softplus threshold and deep negatives
      const bs = rng.normals(L * Hv, 3);
      const buf = rng.normals(Math.max(L, 1) * stride);
      for (let t = 0; t < L; t++) {
        buf.set(as.subarray(t * Hv, (t + 1) * Hv), t * stride + aOff);
        buf.set(bs.subarray(t * Hv, (t + 1) * Hv), t * stride + bOff);
      }
      let al = rng.normals(Hv, 1);
      let dt = rng.normals(Hv, 2);
      const alData = s.f16 ? f32ToF16Array(al) : al;
      const dtData = s.f16 ? f32ToF16Array(dt) : dt;
      if (s.f16) { al = f16ToF32Array(alData as Uint16Array); dt = f16ToF32Array(dtData as Uint16Array); }
      const proj = Tensor.from(gpu, buf, [Math.max(L, 1), stride]);
      const aLog = Tensor.from(gpu, alData, [Hv], s.f16 ? 'f16' : 'f32');
      const dtBias = Tensor.from(gpu, dtData, [Hv], s.f16 ? 'f16' : 'f32');
      let res: { g: Tensor; beta: Tensor } | undefined;
      const encode = () => {
        res?.g.release(); res?.beta.release();
        res = gatedDeltaNetGates({ tensor: proj, rowStride: stride, offset: aOff }, { tensor: proj, rowStride: stride, offset: bOff }, aLog, dtBias, { L, numValueHeads: Hv });
      };
      return {
        encode,
        async run() { encode(); return concat(await res!.g.read(), await res!.beta.read()); },
        reference: () => { const r = gatedDeltaNetGatesRef(as, bs, al, dt, L, Hv); return concat(r.g, r.beta); },
        flops: 12 * L * Hv,
        bytes: 4 * L * Hv * 4,
        dispose() { proj.release(); aLog.release(); dtBias.release(); res?.g.release(); res?.beta.release(); },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

export interface DeltaShape {
  L: number; Hk: number; Hv: number; dk: number; dv: number;
  chunked?: boolean; chunkSize?: number; perf?: boolean; tag?: string;
}

/** Random delta-rule inputs laid out like the model's: q|k|v slices of one conv output [L, 2·Hk·dk + Hv·dv]. */
export function deltaInputs(rng: Rng, s: DeltaShape) {
  const { L, Hk, Hv, dk, dv } = s;
  const convDim = 2 * Hk * dk + Hv * dv;
  const mixed = rng.normals(Math.max(L, 1) * convDim);
  const q = new Float32Array(L * Hk * dk), k = new Float32Array(L * Hk * dk), v = new Float32Array(L * Hv * dv);
  for (let t = 0; t < L; t++) {
    q.set(mixed.subarray(t * convDim, t * convDim + Hk * dk), t * Hk * dk);
    k.set(mixed.subarray(t * convDim + Hk * dk, t * convDim + 2 * Hk * dk), t * Hk * dk);
    v.set(mixed.subarray(t * convDim + 2 * Hk * dk, (t + 1) * convDim), t * Hv * dv);
  }
  // Decays e^g from ~0.5 to ~1 and a few strong ones; β across (0, 1).
  const g = rng.uniforms(L * Hv, -0.7, -0.002);
  for (let n = 0; n < g.length; n += 17) g[n] = -4;
  const beta = rng.uniforms(L * Hv, 0.02, 0.98);
  const state = rng.normals(Hv * dk * dv, 0.5);
  return { convDim, mixed, q, k, v, g, beta, state };
}

export function deltaCase(s: DeltaShape): OpCase {
  const kind = s.chunked ? 'gatedDeltaRuleChunked' : 'gatedDeltaRuleRecurrent';
  return {
    name: `${kind} L=${s.L} Hk=${s.Hk} Hv=${s.Hv} dk=${s.dk} dv=${s.dv}${s.chunkSize ? ` C=${s.chunkSize}` : ''}${s.tag ? ` [${s.tag}]` : ''}`,
    op: kind,
    perf: s.perf,
    // Long f32 recurrences: the state carries rounding from every step; relative error stays ~1e-6.
    tol: TOL.f32,
    setup(gpu, rng) {
      const { L, Hk, Hv, dk, dv } = s;
      const d = deltaInputs(rng, s);
      const mixed = Tensor.from(gpu, d.mixed, [Math.max(L, 1), d.convDim]);
      const g = Tensor.from(gpu, d.g, [L, Hv]);
      const beta = Tensor.from(gpu, d.beta, [L, Hv]);
      const state = Tensor.from(gpu, d.state, [Hv, dk, dv]);
      const out = Tensor.empty(gpu, [L, Hv, dv]);
      const args = {
        q: { tensor: mixed, rowStride: d.convDim, offset: 0 },
        k: { tensor: mixed, rowStride: d.convDim, offset: Hk * dk },
        v: { tensor: mixed, rowStride: d.convDim, offset: 2 * Hk * dk },
        g, beta, state, out, L, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
      };
      const encode = () => { if (s.chunked) gatedDeltaRuleChunked({ ...args, chunkSize: s.chunkSize }); else gatedDeltaRuleRecurrent(args); };
      const C = s.chunkSize ?? 64;
      const nC = Math.ceil(L / C);
      const flops = s.chunked
        ? Hv * nC * (6 * C * dk * dv + 2 * C * C * dv + 2 * C * C * dk + C * C * C / 3)
        : Hv * L * (8 * dk * dv);
      const qkvBytes = L * (2 * Hk * dk + Hv * dv) * 4;
      const stateBytes = 2 * Hv * dk * dv * 4;
      return {
        encode,
        async run() {
          state.write(d.state);
          encode();
          return concat(await out.read(), await state.read());
        },
        reference: () => {
          const r = gatedDeltaRuleRecurrentRef({ q: d.q, k: d.k, v: d.v, g: d.g, beta: d.beta, state: d.state, L, Hk, Hv, dk, dv });
          return concat(r.out, r.state);
        },
        flops,
        bytes: qkvBytes + stateBytes + L * Hv * (dv + 2) * 4 + (s.chunked ? Hv * nC * 3 * C * C * 4 : 0),
        dispose() { mixed.release(); g.release(); beta.release(); state.release(); out.release(); },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Ragged batches (cu_seqlens) with per-segment initial states (a prompt suffix after its cached prefix): the conv
// and the chunked rule against the f64 references run segment by segment from that segment's state. `zero`
// segments start from zeros (no state given at all when every segment is zero); empty segments included.

interface SegShape { segments: number[]; zero?: boolean; tag?: string }

function segRows<T extends ArrayLike<number>>(a: T, segs: number[], k: number, width: number): T {
  return (a as unknown as Float32Array).subarray(segs[k] * width, segs[k + 1] * width) as unknown as T;
}

export function convSegCase(s: SegShape & { C: number; K?: number }): OpCase {
  const K = s.K ?? 4;
  const segs = s.segments;
  const n = segs.length - 1;
  const L = segs[n];
  return {
    name: `causalConv1dSilu segments[${segs.join(',')}] C=${s.C} K=${K}${s.zero ? ' zero-states' : ' per-segment states'}${s.tag ? ` [${s.tag}]` : ''}`,
    op: 'causalConv1dSilu',
    tol: TOL.f32,
    setup(gpu, rng) {
      const { C } = s;
      const stride = C + 3, off = 5;
      const xs = rng.normals(L * C);
      const ws = rng.normals(C * K, 0.5);
      const s0 = s.zero ? new Float32Array(n * (K - 1) * C) : rng.normals(n * (K - 1) * C);
      const x = Tensor.from(gpu, strided(rng, L, C, stride, off, xs), [off + Math.max(L, 1) * stride]);
      const w = Tensor.from(gpu, ws, [C, 1, K]);
      const state = s.zero ? null : Tensor.from(gpu, s0, [n, K - 1, C]);
      const out = Tensor.empty(gpu, [L, C]);
      const encode = () => {
        causalConv1dSilu({ tensor: x, rowStride: stride, offset: off }, w, state, { L, channels: C, kernel: K, out, segments: Int32Array.from(segs) });
      };
      return {
        encode,
        // the states must come back unchanged (read only)
        async run() { encode(); return concat(await out.read(), state ? await state.read() : s0); },
        reference: () => {
          const ys = [];
          for (let k = 0; k < n; k++) {
            ys.push(causalConv1dSiluRef(segRows(xs, segs, k, C), ws, s0.subarray(k * (K - 1) * C, (k + 1) * (K - 1) * C), segs[k + 1] - segs[k], C, K).y);
          }
          return concat(...ys, s0);
        },
        flops: (2 * K + 4) * L * C,
        bytes: (2 * L * C + n * (K - 1) * C + C * K) * 4,
        dispose() { x.release(); w.release(); state?.release(); out.release(); },
      };
    },
  };
}

export function deltaSegCase(s: SegShape & { Hk: number; Hv: number; dk: number; dv: number; chunkSize?: number }): OpCase {
  const segs = s.segments;
  const n = segs.length - 1;
  const L = segs[n];
  const { Hk, Hv, dk, dv } = s;
  return {
    name: `gatedDeltaRuleChunked segments[${segs.join(',')}] Hk=${Hk} Hv=${Hv} dk=${dk} dv=${dv}${s.chunkSize ? ` C=${s.chunkSize}` : ''}${s.zero ? ' zero-states' : ' per-segment states'}${s.tag ? ` [${s.tag}]` : ''}`,
    op: 'gatedDeltaRuleChunked',
    tol: TOL.f32,
    setup(gpu, rng) {
      const d = deltaInputs(rng, { L, Hk, Hv, dk, dv });
      const S = Hv * dk * dv;
      const s0 = s.zero ? new Float32Array(n * S) : rng.normals(n * S, 0.5);
      const mixed = Tensor.from(gpu, d.mixed, [Math.max(L, 1), d.convDim]);
      const g = Tensor.from(gpu, d.g, [L, Hv]);
      const beta = Tensor.from(gpu, d.beta, [L, Hv]);
      const state = s.zero ? null : Tensor.from(gpu, s0, [n, Hv, dk, dv]);
      const out = Tensor.empty(gpu, [L, Hv, dv]);
      const encode = () => {
        gatedDeltaRuleChunked({
          q: { tensor: mixed, rowStride: d.convDim, offset: 0 },
          k: { tensor: mixed, rowStride: d.convDim, offset: Hk * dk },
          v: { tensor: mixed, rowStride: d.convDim, offset: 2 * Hk * dk },
          g, beta, state, out, segments: Int32Array.from(segs), chunkSize: s.chunkSize,
          L, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
        });
      };
      return {
        encode,
        async run() { encode(); return concat(await out.read(), state ? await state.read() : s0); },
        reference: () => {
          const outs = [];
          for (let k = 0; k < n; k++) {
            outs.push(gatedDeltaRuleRecurrentRef({
              q: segRows(d.q, segs, k, Hk * dk), k: segRows(d.k, segs, k, Hk * dk), v: segRows(d.v, segs, k, Hv * dv),
              g: segRows(d.g, segs, k, Hv), beta: segRows(d.beta, segs, k, Hv), state: s0.subarray(k * S, (k + 1) * S),
              L: segs[k + 1] - segs[k], Hk, Hv, dk, dv,
            }).out);
          }
          return concat(...outs, s0);
        },
        flops: Hv * L * 8 * dk * dv,
        bytes: (L * (2 * Hk * dk + 2 * Hv * dv) + n * S) * 4,
        dispose() { mixed.release(); g.release(); beta.release(); state?.release(); out.release(); },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

const TINY = { Hk: 2, Hv: 4, dk: 32, dv: 32 };

export const gatedDeltaNetCases: OpCase[] = [
  ...[1, 7, 64, 257].flatMap((L) => [convCase({ L, C: 13 }), convCase({ L, C: 192, f16: true })]),
  convCase({ L: 2, C: 13, fresh: true }),
  convCase({ L: 33, C: 40, K: 3 }),
  ...[1, 7, 64, 257].map((L) => gatesCase({ L, Hv: L === 64 ? 5 : 4, f16: L === 7 })),
  // recurrent: tiny config (ratio 2), ratio 1 with dims not multiples of 8 (masked rows/columns),
  // 4B head dims, dk = 256 (the 16-column layout), dv spanning two column blocks
  ...[1, 7, 64, 257].map((L) => deltaCase({ L, ...TINY })),
  deltaCase({ L: 9, Hk: 3, Hv: 3, dk: 12, dv: 20 }),
  deltaCase({ L: 7, Hk: 1, Hv: 2, dk: 128, dv: 128 }),
  deltaCase({ L: 5, Hk: 1, Hv: 1, dk: 256, dv: 36 }),
  deltaCase({ L: 3, Hk: 2, Hv: 2, dk: 4, dv: 44 }),
  // chunked: the same spread plus L not a multiple of the chunk, a small chunk, and one long sequence
  ...[1, 7, 64, 257].map((L) => deltaCase({ L, ...TINY, chunked: true })),
  deltaCase({ L: 100, Hk: 3, Hv: 3, dk: 12, dv: 20, chunked: true }),
  deltaCase({ L: 130, Hk: 1, Hv: 2, dk: 128, dv: 128, chunked: true }),
  deltaCase({ L: 70, Hk: 1, Hv: 1, dk: 256, dv: 36, chunked: true }),
  deltaCase({ L: 50, Hk: 2, Hv: 4, dk: 16, dv: 8, chunked: true, chunkSize: 16 }),
  deltaCase({ L: 1000, Hk: 1, Hv: 2, dk: 16, dv: 16, chunked: true }),
  // ragged batches, per-segment initial states (prompt suffixes after cached prefixes) or zeros
  convSegCase({ segments: [0, 1, 1, 38, 94], C: 13 }),
  convSegCase({ segments: [0, 2, 19], C: 40, K: 3 }),
  convSegCase({ segments: [0, 17, 30], C: 13, zero: true }),
  deltaSegCase({ segments: [0, 1, 1, 70, 99], ...TINY }),
  deltaSegCase({ segments: [0, 37, 45], Hk: 3, Hv: 3, dk: 12, dv: 20, chunkSize: 16 }),
  deltaSegCase({ segments: [0, 5, 135], Hk: 1, Hv: 2, dk: 128, dv: 36 }),
  deltaSegCase({ segments: [0, 20, 33], ...TINY, zero: true }),
];

export const gatedDeltaNetPerfCases: OpCase[] = [
  // Qwen3.5-4B: conv_dim 8192, Hv 32, Hk 16, dk = dv = 128; ~600 prefill tokens, decode L = 1.
  convCase({ L: 600, C: 8192, f16: true, perf: true, tag: '4B prefill' }),
  convCase({ L: 600, C: 8192, perf: true, tag: '4B prefill' }),
  convCase({ L: 1, C: 8192, f16: true, perf: true, tag: '4B decode' }),
  gatesCase({ L: 600, Hv: 32, perf: true, tag: '4B prefill' }),
  deltaCase({ L: 600, Hk: 16, Hv: 32, dk: 128, dv: 128, chunked: true, perf: true, tag: '4B prefill' }),
  deltaCase({ L: 1, Hk: 16, Hv: 32, dk: 128, dv: 128, perf: true, tag: '4B decode' }),
  // tiny config: conv_dim 256
  convCase({ L: 600, C: 256, perf: true, tag: 'tiny prefill' }),
  deltaCase({ L: 600, ...TINY, chunked: true, perf: true, tag: 'tiny prefill' }),
  deltaCase({ L: 1, ...TINY, perf: true, tag: 'tiny decode' }),
];

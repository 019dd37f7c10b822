// Op cases for linear (src/ops/linear.ts): odd shapes, both weight dtypes, every kernel variant (plain, tiled,
// gemm_sg, gemv, gemv_sg, and the `wide` f16 GEMV loads) with aligned (vec4) and unaligned (scalar) operands,
// strided views, and the row-stability contract of `tiled: true`.
import { linear, linearConfigName, type LinearConfig } from '../../ops/linear.js';
import { linearRef } from '../../ref/linear.js';
import { Tensor, f32ToF16Array, f16ToF32Array } from '../../tensor.js';
import type { Activation } from '../../ops/activations.js';
import { TOL, type OpCase } from '../opHarness.js';

interface LinearShape {
  M: number; N: number; K: number; B?: number; wBatched?: boolean;
  f16?: boolean; bias?: boolean; act?: Activation; accumulate?: boolean; perf?: boolean; tag?: string;
  /** Pin a variant (default: whatever the op picks). */
  config?: LinearConfig;
  /** f16 arithmetic (LinearOptions.f16Math; needs shader-f16, which the test adapter has). */
  f16Math?: boolean;
}

export function linearCase(s: LinearShape): OpCase {
  const B = s.B ?? 1;
  const wt = s.f16 ? 'f16' : 'f32';
  const name = `linear ${wt} B=${B}${s.wBatched ? '(w)' : ''} M=${s.M} N=${s.N} K=${s.K}` +
    `${s.bias ? ' +bias' : ''}${s.act && s.act !== 'none' ? ` ${s.act}` : ''}${s.accumulate ? ' +=' : ''}${s.tag ? ` [${s.tag}]` : ''}` +
    `${s.config ? ` {${linearConfigName(s.config)}}` : ''}${s.f16Math ? ' f16-math' : ''}`;
  return {
    name,
    op: 'linear',
    perf: s.perf,
    // f16 arithmetic: the error bound documented at LinearOptions.f16Math (unit-variance x, w ~ N(0, 1/K)).
    tol: s.f16Math ? { atol: 4e-3, rtol: 1e-2, nmse: 2e-5 } : s.f16 ? TOL.f16 : { ...TOL.f32, atol: 1e-5 * Math.sqrt(s.K), rtol: 1e-4 },
    setup(gpu, rng) {
      const xs = rng.normals(B * s.M * s.K);
      let ws = rng.normals((s.wBatched ? B : 1) * s.N * s.K, 1 / Math.sqrt(s.K));
      const wData = s.f16 ? f32ToF16Array(ws) : ws;
      if (s.f16) ws = f16ToF32Array(wData as Uint16Array); // the reference sees the rounded weights
      const bs = s.bias ? rng.normals(s.N) : undefined;
      const acc0 = s.accumulate ? rng.normals(B * s.M * s.N) : undefined;
      const x = Tensor.from(gpu, xs, s.wBatched ? [B, s.M, s.K] : [B * s.M, s.K]);
      const w = Tensor.from(gpu, wData, s.wBatched ? [B, s.N, s.K] : [s.N, s.K], wt);
      const bias = bs ? Tensor.from(gpu, bs, [s.N]) : undefined;
      const out = Tensor.empty(gpu, s.wBatched ? [B, s.M, s.N] : [B * s.M, s.N]);
      const reset = () => { if (acc0) out.write(acc0); };
      const encode = () => { reset(); linear(x, w, { bias, act: s.act, accumulate: s.accumulate, out, config: s.config, f16Math: s.f16Math }); };
      return {
        encode,
        async run() { encode(); return out.read() as Promise<Float32Array>; },
        reference: () => linearRef(xs, ws, s.wBatched ? B : 1, s.wBatched ? s.M : B * s.M, s.N, s.K, { bias: bs, act: s.act, wBatched: s.wBatched, accumulate: acc0 }),
        flops: 2 * B * s.M * s.N * s.K,
        bytes: (B * s.M * s.K + (s.wBatched ? B : 1) * s.N * s.K * (s.f16 ? 0.5 : 1) + B * s.M * s.N) * 4,
        dispose() { x.release(); w.release(); bias?.release(); out.release(); },
      };
    },
  };
}

export const linearCases: OpCase[] = [
  ...[1, 2, 3, 4, 5, 7, 64, 257].flatMap((M) => [
    linearCase({ M, N: 13, K: 67 }),
    linearCase({ M, N: 37, K: 128, f16: true, bias: true }),
  ]),
  linearCase({ M: 1, N: 1, K: 1 }),
  linearCase({ M: 31, N: 1, K: 3 }),
  linearCase({ M: 100, N: 97, K: 1031, bias: true }),
  linearCase({ M: 2, N: 300, K: 4099, f16: true }),
  linearCase({ M: 33, N: 65, K: 96, act: 'silu', bias: true }),
  linearCase({ M: 9, N: 40, K: 50, act: 'gelu_tanh' }),
  linearCase({ M: 9, N: 40, K: 50, act: 'gelu_erf', f16: true }),
  linearCase({ M: 3, N: 40, K: 50, act: 'relu', bias: true }),
  linearCase({ M: 17, N: 23, K: 29, accumulate: true }),
  linearCase({ M: 1, N: 23, K: 29, accumulate: true, bias: true }),
  linearCase({ M: 5, N: 11, K: 19, B: 3, wBatched: true }),
  linearCase({ M: 1, N: 11, K: 19, B: 4, wBatched: true, f16: true }),
  linearCase({ M: 7, N: 9, K: 33, B: 3 }),
];

export const linearPerfCases: OpCase[] = [
  linearCase({ M: 1024, N: 1024, K: 1024, perf: true, tag: '1024³' }),
  linearCase({ M: 600, N: 2560, K: 2560, perf: true, tag: 'prefill 600×2560×2560' }),
  linearCase({ M: 1, N: 4096, K: 4096, perf: true, tag: 'decode 1×4096·4096ᵀ' }),
  linearCase({ M: 1, N: 4096, K: 4096, f16: true, perf: true, tag: 'decode 1×4096·4096ᵀ' }),
];

/** Strided forms: rows of X, a column block of W, output into a column block of a wider matrix. */
function stridedCase(f16: boolean, M: number): OpCase {
  const [rowsTotal, K, Kw, N, Nout] = [M + 5, 19, 40, 11, 30];
  const [xo, wo, yo, ro] = [3, 7, 13, 2];
  return {
    name: `linear ${f16 ? 'f16' : 'f32'} strided M=${M} (x rows +${xo}, w cols +${wo}, out cols +${yo}, out rows +${ro})`,
    op: 'linear',
    tol: f16 ? TOL.f16 : TOL.f32,
    setup(gpu, rng) {
      const xs = rng.normals(rowsTotal * K);
      let ws = rng.normals(N * Kw, 0.2);
      const wData = f16 ? f32ToF16Array(ws) : ws;
      if (f16) ws = f16ToF32Array(wData as Uint16Array);
      const y0 = rng.normals((M + ro) * Nout);
      const x = Tensor.from(gpu, xs, [rowsTotal, K]);
      const w = Tensor.from(gpu, wData, [N, Kw], f16 ? 'f16' : 'f32');
      const out = Tensor.from(gpu, y0, [M + ro, Nout]);
      const encode = () => { out.write(y0); linear(x, w, { xRows: { offset: xo, count: M }, wCols: { offset: wo }, outCols: { offset: yo }, outRowOffset: ro, out }); };
      return {
        encode,
        async run() { encode(); return out.read() as Promise<Float32Array>; },
        reference() {
          const y = Float64Array.from(y0);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += xs[(xo + m) * K + k] * ws[n * Kw + wo + k];
            y[(ro + m) * Nout + yo + n] = s;
          }
          return y;
        },
        dispose() { x.release(); w.release(); out.release(); },
      };
    },
  };
}
linearCases.push(stridedCase(false, 3), stridedCase(true, 9));

// Every variant on its own (not only the one the op would pick here), on odd shapes: K = 67 (scalar loads, a
// K % 4 tail), K = 68 (vec4 loads), tiles that do not divide M / N, f16 weights, the full epilogue.
const GEMM_VARIANTS: LinearConfig[] = [
  { kernel: 'plain', tm: 4, tn: 4, wg: [8, 8] },
  { kernel: 'plain', tm: 3, tn: 2, wg: [8, 1] },
  { kernel: 'tiled', tm: 4, tn: 4, wg: [16, 16], bk: 16 },
  { kernel: 'tiled', tm: 3, tn: 2, wg: [4, 8], bk: 8 },
  { kernel: 'gemm_sg', tm: 8, tn: 4, groups: 1 },
  { kernel: 'gemm_sg', tm: 11, tn: 3, groups: 2 }, // more rows than lanes (8 on lavapipe): two X loads per lane
];
const GEMV_VARIANTS: LinearConfig[] = [
  { kernel: 'gemv', wg: 64, rows: 4 },
  { kernel: 'gemv', wg: 8, rows: 3 },
  { kernel: 'gemv_sg', groups: 1, rows: 4 },
  { kernel: 'gemv_sg', groups: 2, rows: 3 },
];
for (const config of GEMM_VARIANTS) {
  linearCases.push(
    linearCase({ M: 37, N: 29, K: 67, config }),
    linearCase({ M: 5, N: 41, K: 68, f16: true, bias: true, act: 'silu', config }),
    linearCase({ M: 19, N: 13, K: 36, B: 2, wBatched: true, accumulate: true, config }),
  );
}
for (const config of GEMV_VARIANTS) {
  linearCases.push(linearCase({ M: 1, N: 29, K: 67, config }), linearCase({ M: 3, N: 27, K: 132, f16: true, bias: true, config }));
  linearCases.push(linearCase({ M: 2, N: 13, K: 20, B: 2, wBatched: true, accumulate: true, act: 'gelu_tanh', config }));
}

// `wide` GEMV (f16 weights 8 halves per load where W is 8-aligned): K = 136 (octets only), K = 132 (not 8-aligned:
// the 4-wide path), batched W, and below a W column view at +8 with K = 20 (octets + a K % 8 tail), one at +4
// (fallback) and an unaligned row view whose remainder keeps the 8-alignment.
const GEMV_WIDE: LinearConfig[] = [
  { kernel: 'gemv', wg: 8, rows: 3, wide: true },
  { kernel: 'gemv_sg', groups: 2, rows: 3, wide: true },
];
for (const config of GEMV_WIDE) {
  linearCases.push(
    linearCase({ M: 3, N: 27, K: 136, f16: true, bias: true, config }),
    linearCase({ M: 1, N: 29, K: 132, f16: true, config }),
    linearCase({ M: 2, N: 13, K: 24, B: 2, wBatched: true, f16: true, accumulate: true, act: 'gelu_tanh', config }),
  );
}

// f16 arithmetic (shader-f16 adapters; lavapipe has it): GEMM and few-row shapes, f32 and f16 weights, odd K.
linearCases.push(
  linearCase({ M: 37, N: 29, K: 67, f16Math: true }),
  linearCase({ M: 2, N: 41, K: 260, f16: true, bias: true, act: 'silu', f16Math: true }),
);

/**
 * Strided views that keep (K = 20, offsets multiple of 4: vec4 loads) or break (w cols +7: scalar loads) the
 * 4-alignment, for a GEMM and a GEMV variant, both weight dtypes.
 */
function alignedStridedCase(f16: boolean, M: number, wo: number, config?: LinearConfig): OpCase {
  const [K, Kw, N, Nout, xo] = [20, 40, 11, 30, 4];
  return {
    name: `linear ${f16 ? 'f16' : 'f32'} strided M=${M} K=${K} (x rows +${xo}, w cols +${wo}, out cols +5)${config ? ` {${linearConfigName(config)}}` : ''}`,
    op: 'linear',
    tol: f16 ? TOL.f16 : TOL.f32,
    setup(gpu, rng) {
      const xs = rng.normals((M + xo) * K);
      let ws = rng.normals(N * Kw, 0.2);
      const wData = f16 ? f32ToF16Array(ws) : ws;
      if (f16) ws = f16ToF32Array(wData as Uint16Array);
      const x = Tensor.from(gpu, xs, [M + xo, K]);
      const w = Tensor.from(gpu, wData, [N, Kw], f16 ? 'f16' : 'f32');
      const out = Tensor.from(gpu, new Float32Array(M * Nout), [M, Nout]);
      const encode = () => { linear(x, w, { xRows: { offset: xo, count: M }, wCols: { offset: wo }, outCols: { offset: 5 }, out, config }); };
      return {
        encode,
        async run() { encode(); return out.read() as Promise<Float32Array>; },
        reference() {
          const y = new Float64Array(M * Nout);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += xs[(xo + m) * K + k] * ws[n * Kw + wo + k];
            y[m * Nout + 5 + n] = s;
          }
          return y;
        },
        dispose() { x.release(); w.release(); out.release(); },
      };
    },
  };
}
for (const f16 of [false, true]) {
  for (const wo of [4, 7]) {
    linearCases.push(alignedStridedCase(f16, 9, wo, GEMM_VARIANTS[2]), alignedStridedCase(f16, 2, wo, GEMV_VARIANTS[1]), alignedStridedCase(f16, 9, wo, GEMM_VARIANTS[5]));
  }
}
for (const wo of [4, 8]) linearCases.push(alignedStridedCase(true, 2, wo, GEMV_WIDE[0]), alignedStridedCase(true, 3, wo, GEMV_WIDE[1]));

/**
 * The `tiled: true` contract (Policy.actBatch): a row's bits do not depend on how many rows the call has. Runs
 * M = 37 rows in one call, then rows 0, 17 and 36 each alone (M = 1, which would take GEMV without `tiled`) and
 * two rows (M = 2); any row whose bits differ from the 37-row call comes back as NaN, so the case fails. Under
 * the op's own choice of variant and under each GEMM variant pinned.
 */
function rowStableCase(f16: boolean, config?: LinearConfig): OpCase {
  const [M, N, K] = [37, 21, 68];
  return {
    name: `linear ${f16 ? 'f16' : 'f32'} row-stable (tiled: true) M=${M} vs M=1, 2${config ? ` {${linearConfigName(config)}}` : ''}`,
    op: 'linear',
    tol: f16 ? TOL.f16 : TOL.f32,
    setup(gpu, rng) {
      const xs = rng.normals(M * K);
      let ws = rng.normals(N * K, 0.2);
      const wData = f16 ? f32ToF16Array(ws) : ws;
      if (f16) ws = f16ToF32Array(wData as Uint16Array);
      const bs = rng.normals(N);
      const x = Tensor.from(gpu, xs, [M, K]);
      const w = Tensor.from(gpu, wData, [N, K], f16 ? 'f16' : 'f32');
      const bias = Tensor.from(gpu, bs, [N]);
      const encode = () => linear(x, w, { bias, act: 'silu', tiled: true, config });
      return {
        encode() { encode().release(); },
        async run() {
          const whole = encode();
          const all = await whole.readF32();
          whole.release();
          for (const [offset, count] of [[0, 1], [17, 1], [36, 1], [20, 2]]) {
            const part = linear(x, w, { bias, act: 'silu', tiled: true, config, xRows: { offset, count } });
            const got = await part.readF32();
            part.release();
            const a = new Uint32Array(all.buffer), g = new Uint32Array(got.buffer);
            for (let r = 0; r < count; r++) {
              let same = true;
              for (let n = 0; n < N; n++) same &&= a[(offset + r) * N + n] === g[r * N + n];
              if (!same) all.fill(NaN, (offset + r) * N, (offset + r + 1) * N);
            }
          }
          return all;
        },
        reference: () => linearRef(xs, ws, 1, M, N, K, { bias: bs, act: 'silu' }),
        dispose() { x.release(); w.release(); bias.release(); },
      };
    },
  };
}
linearCases.push(rowStableCase(false), rowStableCase(true), rowStableCase(false, GEMM_VARIANTS[1]), rowStableCase(true, GEMM_VARIANTS[3]));
linearCases.push(rowStableCase(false, GEMM_VARIANTS[4]), rowStableCase(true, GEMM_VARIANTS[5]));

/**
 * Tensor views that start anywhere (Tensor.rows at byte offsets that are not 256-aligned, src/ops/views.ts binds
 * them aligned-down with an element remainder): x, w and out are row windows of larger tensors; K = 12 keeps the
 * vec4 path where the remainder allows it (x rows +1 → 48-byte offset) and K = 13 forces scalar loads.
 */
function rowViewCase(f16: boolean, M: number, K: number, config?: LinearConfig): OpCase {
  const [N, xr, wr, yr] = [7, 1, 3, 5];
  return {
    name: `linear ${f16 ? 'f16' : 'f32'} unaligned views M=${M} K=${K} (x.rows(${xr}), w.rows(${wr}), out.rows(${yr}))${config ? ` {${linearConfigName(config)}}` : ''}`,
    op: 'linear',
    tol: f16 ? TOL.f16 : TOL.f32,
    setup(gpu, rng) {
      const xs = rng.normals((M + xr + 2) * K);
      let ws = rng.normals((N + wr + 1) * K, 0.3);
      const wData = f16 ? f32ToF16Array(ws) : ws;
      if (f16) ws = f16ToF32Array(wData as Uint16Array);
      const y0 = rng.normals((M + yr + 1) * N);
      const xp = Tensor.from(gpu, xs, [M + xr + 2, K]);
      const wp = Tensor.from(gpu, wData, [N + wr + 1, K], f16 ? 'f16' : 'f32');
      const yp = Tensor.from(gpu, y0, [M + yr + 1, N]);
      const encode = () => { yp.write(y0); linear(xp.rows(xr, M), wp.rows(wr, N), { out: yp.rows(yr, M), config }); };
      return {
        encode,
        async run() { encode(); return yp.read() as Promise<Float32Array>; },
        reference() {
          const y = Float64Array.from(y0);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += xs[(xr + m) * K + k] * ws[(wr + n) * K + k];
            y[(yr + m) * N + n] = s;
          }
          return y;
        },
        dispose() { xp.release(); wp.release(); yp.release(); },
      };
    },
  };
}
linearCases.push(
  rowViewCase(false, 9, 12), rowViewCase(true, 9, 13, GEMM_VARIANTS[2]), rowViewCase(true, 2, 12), rowViewCase(false, 3, 13, GEMV_VARIANTS[2]),
  rowViewCase(true, 2, 16, GEMV_WIDE[0]), rowViewCase(true, 1, 16, GEMV_WIDE[1]),
  rowViewCase(false, 9, 12, GEMM_VARIANTS[5]), rowViewCase(true, 10, 13, GEMM_VARIANTS[4]),
);

// Op cases for linear (src/ops/linear.ts): odd shapes, both weight dtypes, both kernel variants.
import { linear } from '../../ops/linear.js';
import { linearRef } from '../../ref/linear.js';
import { Tensor, f32ToF16Array, f16ToF32Array } from '../../tensor.js';
import type { Activation } from '../../ops/activations.js';
import { TOL, type OpCase } from '../opHarness.js';

interface LinearShape {
  M: number; N: number; K: number; B?: number; wBatched?: boolean;
  f16?: boolean; bias?: boolean; act?: Activation; accumulate?: boolean; perf?: boolean; tag?: string;
}

export function linearCase(s: LinearShape): OpCase {
  const B = s.B ?? 1;
  const wt = s.f16 ? 'f16' : 'f32';
  const name = `linear ${wt} B=${B}${s.wBatched ? '(w)' : ''} M=${s.M} N=${s.N} K=${s.K}` +
    `${s.bias ? ' +bias' : ''}${s.act && s.act !== 'none' ? ` ${s.act}` : ''}${s.accumulate ? ' +=' : ''}${s.tag ? ` [${s.tag}]` : ''}`;
  return {
    name,
    op: 'linear',
    perf: s.perf,
    tol: s.f16 ? TOL.f16 : { ...TOL.f32, atol: 1e-5 * Math.sqrt(s.K), rtol: 1e-4 },
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
      const encode = () => { reset(); linear(x, w, { bias, act: s.act, accumulate: s.accumulate, out }); };
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

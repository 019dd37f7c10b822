// Op cases for linear with int8 / int4 weights (src/quant/linear.ts), checked against the plain f64 reference:
// the weights dequantised exactly as the format defines (dequantize in src/quant/tensor.ts) times X in f64.
// Shapes: odd N and M, K a multiple of the group but not of the kernels' K tiles (the GEMV walks 64 words =
// 512 int4 / 256 int8 elements per pass), every epilogue, the strided views the model uses, GEMV and tiled.
import { linear } from '../ops/linear.js';
import { linearRef } from '../ref/linear.js';
import { Tensor } from '../tensor.js';
import type { Activation } from '../ops/activations.js';
import type { OpCase, Tolerance } from '../testing/opHarness.js';
import { QuantizedTensor, dequantize } from './tensor.js';
import { quantizeWeight, type QuantScheme } from './quantize.js';

interface QShape {
  M: number; N: number; K: number; bits: 8 | 4; group?: number; zero?: boolean;
  bias?: boolean; act?: Activation; accumulate?: boolean; tiled?: boolean; perf?: boolean; tag?: string;
}

// The kernels see exactly the dequantised weights the reference sees; what differs is f32 accumulation order.
const tolFor = (K: number): Tolerance => ({ atol: 2e-5 * Math.sqrt(K), rtol: 2e-4, nmse: 1e-8 });

export const schemeName = (s: { bits: 8 | 4; group?: number; zero?: boolean }): string =>
  s.bits === 8 ? 'q8' : `q4g${s.group ?? 32}${s.zero ? 'z' : ''}`;

export function linearQCase(s: QShape): OpCase {
  const scheme: QuantScheme = { bits: s.bits, group: s.group ?? 32, zeroPoint: !!s.zero };
  const name = `linear ${schemeName(s)} M=${s.M} N=${s.N} K=${s.K}${s.tiled ? ' tiled' : ''}` +
    `${s.bias ? ' +bias' : ''}${s.act && s.act !== 'none' ? ` ${s.act}` : ''}${s.accumulate ? ' +=' : ''}${s.tag ? ` [${s.tag}]` : ''}`;
  return {
    name,
    op: 'linear',
    perf: s.perf,
    tol: tolFor(s.K),
    setup(gpu, rng) {
      const xs = rng.normals(s.M * s.K);
      const ws = rng.normals(s.N * s.K, 1 / Math.sqrt(s.K));
      const host = quantizeWeight(ws, s.N, s.K, scheme);
      const wq = dequantize(host, new Float64Array(s.N * s.K));
      const bs = s.bias ? rng.normals(s.N) : undefined;
      const acc0 = s.accumulate ? rng.normals(s.M * s.N) : undefined;
      const x = Tensor.from(gpu, xs, [s.M, s.K]);
      const w = QuantizedTensor.fromHost(gpu, host, `w.${schemeName(s)}`);
      const bias = bs ? Tensor.from(gpu, bs, [s.N]) : undefined;
      const out = Tensor.empty(gpu, [s.M, s.N]);
      const encode = () => {
        if (acc0) out.write(acc0);
        linear(x, w, { bias, act: s.act, accumulate: s.accumulate, out, tiled: s.tiled });
      };
      return {
        encode,
        async run() { encode(); return out.read() as Promise<Float32Array>; },
        reference: () => linearRef(xs, wq, 1, s.M, s.N, s.K, { bias: bs, act: s.act, accumulate: acc0 }),
        flops: 2 * s.M * s.N * s.K,
        bytes: (s.M * s.K + s.M * s.N) * 4 + w.byteLength,
        dispose() { x.release(); w.destroy(); bias?.release(); out.release(); },
      };
    },
  };
}

/**
 * The strided forms the model uses with a quantised weight: rows of X from an offset, a column window of W
 * (action_encoder.w2), output into a column/row block of a wider matrix, and `rows` blocks (a ragged batch).
 */
function stridedQCase(bits: 8 | 4, M: number, tiled: boolean): OpCase {
  const g = 32;
  const [K, Kw, N, Nout] = [64, 128, 11, 30];
  const [xo, wo, yo, ro] = [3, 64, 13, 2];
  const blocks = 2, xStride = M + 4, outStride = M + ro + 1;
  const rowsTotal = xo + (blocks - 1) * xStride + M;
  const scheme: QuantScheme = { bits, group: g, zeroPoint: bits === 4 };
  return {
    name: `linear ${schemeName({ bits, group: g, zero: bits === 4 })} strided M=${M}${tiled ? ' tiled' : ''} (x rows +${xo}, w cols +${wo}, out cols +${yo}, out rows +${ro}, ${blocks} row blocks) +bias +=`,
    op: 'linear',
    tol: tolFor(K),
    setup(gpu, rng) {
      const xs = rng.normals(rowsTotal * K);
      const ws = rng.normals(N * Kw, 0.2);
      const host = quantizeWeight(ws, N, Kw, scheme);
      const wq = dequantize(host, new Float64Array(N * Kw));
      const bs = rng.normals(N);
      const outRows = ro + (blocks - 1) * outStride + M;
      const y0 = rng.normals(outRows * Nout);
      const x = Tensor.from(gpu, xs, [rowsTotal, K]);
      const w = QuantizedTensor.fromHost(gpu, host, 'w.strided');
      const bias = Tensor.from(gpu, bs, [N]);
      const out = Tensor.from(gpu, y0, [outRows, Nout]);
      const encode = () => {
        out.write(y0);
        linear(x, w, {
          xRows: { offset: xo, count: M }, wCols: { offset: wo }, outCols: { offset: yo }, outRowOffset: ro, out,
          rows: { count: blocks, xStride, outStride }, bias, accumulate: true, tiled,
        });
      };
      return {
        encode,
        async run() { encode(); return out.read() as Promise<Float32Array>; },
        reference() {
          const y = Float64Array.from(y0);
          for (let b = 0; b < blocks; b++) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let s = bs[n]!;
            for (let k = 0; k < K; k++) s += xs[(xo + b * xStride + m) * K + k]! * wq[n * Kw + wo + k]!;
            y[(ro + b * outStride + m) * Nout + yo + n] += s;
          }
          return y;
        },
        dispose() { x.release(); w.destroy(); bias.release(); out.release(); },
      };
    },
  };
}

// Few distinct kernel variants (each is a pipeline compile, slow on lavapipe), many shapes per variant.
export const linearQCases: OpCase[] = [
  linearQCase({ M: 1, N: 13, K: 96, bits: 8 }),
  linearQCase({ M: 1, N: 13, K: 96, bits: 4, group: 32 }),
  linearQCase({ M: 1, N: 1, K: 32, bits: 4, group: 32 }),
  linearQCase({ M: 1, N: 301, K: 640, bits: 4, group: 128 }),
  linearQCase({ M: 1, N: 1, K: 4, bits: 8 }),
  linearQCase({ M: 1, N: 23, K: 64, bits: 4, group: 32, zero: true, accumulate: true, bias: true, act: 'relu' }),
  linearQCase({ M: 3, N: 37, K: 192, bits: 4, group: 64, zero: true, bias: true }),
  linearQCase({ M: 3, N: 301, K: 1284, bits: 8, bias: true, act: 'silu' }),
  linearQCase({ M: 5, N: 13, K: 96, bits: 4, group: 32 }),
  linearQCase({ M: 3, N: 23, K: 160, bits: 4, group: 32, tiled: true }),
  linearQCase({ M: 33, N: 13, K: 96, bits: 8 }),
  linearQCase({ M: 70, N: 29, K: 384, bits: 4, group: 128, zero: true, act: 'gelu_tanh', bias: true }),
  linearQCase({ M: 9, N: 41, K: 260, bits: 8, act: 'gelu_erf', accumulate: true }),
  stridedQCase(8, 3, false), stridedQCase(4, 6, true),
];

/** Decode GEMV 1×4096·4096ᵀ with int8 and int4 weights (src/testing/cases/linear.ts has the f32 and f16 ones). */
export const linearQPerfCases: OpCase[] = [
  linearQCase({ M: 1, N: 4096, K: 4096, bits: 8, perf: true, tag: 'decode 1×4096·4096ᵀ' }),
  linearQCase({ M: 1, N: 4096, K: 4096, bits: 4, group: 32, perf: true, tag: 'decode 1×4096·4096ᵀ' }),
  linearQCase({ M: 1, N: 4096, K: 4096, bits: 4, group: 128, perf: true, tag: 'decode 1×4096·4096ᵀ' }),
  linearQCase({ M: 1, N: 4096, K: 4096, bits: 4, group: 64, zero: true, perf: true, tag: 'decode 1×4096·4096ᵀ' }),
];

// linear: Y = act(X·Wᵀ + b), PyTorch Linear layout W = [N, K].
//
// Dispatch decision lives here, next to the two kernel variants it picks between:
// - few rows of X (decode, M ≤ GEMV_MAX_ROWS): `linear_gemv`, bandwidth-bound, each W element read once;
// - otherwise `linear`: register-blocked TM×TN outputs per invocation.
// Shapes go in the uniform; the pipeline key only carries what changes code (weight dtype, bias, act, accum).
//
// Strided forms (all in elements) let callers use views without copies: a column block of W (`wCols`), rows of
// X starting anywhere (`xRows`), and an output written into a column block of a wider matrix (`outCols`).
// `rows` repeats that row window over a batch of equal blocks (grid z, one shared W): e.g. rows 1..H of every
// (1+H)-row block of a ragged DiT batch, in one dispatch.
//
// Bit-stability: the tiled kernel computes every output from its X row and W alone (one invocation walks K in
// order), so a row gets the same bits whatever other rows the call has; the GEMV kernel reduces in another
// order. `tiled: true` pins the tiled kernel, so the result of a row never depends on how many rows the call
// has (batched inference relies on it: see Policy.actBatch).
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { ACT, type Activation } from './activations.js';
import { isQuantized, linearQuantized } from '../quant/index.js'; // int8/int4 weights: docs/quantization.md

export const GEMV_MAX_ROWS = 4;

// What both linear kernels may touch: X rows (f32), W (WT: f32 or f16), the bias and Y. Element strides/offsets
// let every operand be a view; the batch strides walk grid z (w_batch 0: one shared W).
const LINEAR_IO = {
  params: {
    M: 'u32', N: 'u32', K: 'u32',
    x_batch: 'u32', w_batch: 'u32', y_batch: 'u32',
    x_off: 'u32', w_off: 'u32', y_off: 'u32', b_off: 'u32',
    ldx: 'u32', ldw: 'u32', ldy: 'u32',
  },
  bindings: { X: 'read f32', W: 'read WT', Bias: 'read f32', Y: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

export interface LinearOptions {
  bias?: Tensor;
  act?: Activation;
  /** Add into `out` instead of overwriting it (fused residual). Requires `out`. */
  accumulate?: boolean;
  out?: Tensor;
  /** Use rows [offset, offset+count) of X (default: all rows). */
  xRows?: { offset: number; count: number };
  /** Use columns [offset, offset+count) of W as the K range (W row stride stays W's last dim). X's K must equal count. */
  wCols?: { offset: number };
  /** Write Y into columns [offset, offset+N) of `out`, whose rows are `out`'s last dim wide. */
  outCols?: { offset: number };
  /** Write Y starting at row `offset` of `out`. */
  outRowOffset?: number;
  /**
   * Repeat the row window over `count` blocks (2-D W only): block b reads rows xRows.offset + b·xStride … of X and
   * writes rows outRowOffset + b·outStride … of out (outStride default: the window's row count).
   */
  rows?: { count: number; xStride: number; outStride?: number };
  /** Always the tiled kernel (never GEMV), so each row's result is independent of the number of rows. */
  tiled?: boolean;
  label?: string;
}

/**
 * x: [M, K] or [B, M, K]; w: [N, Kw] (shared) or [B, N, Kw]. Returns [M, N] / [B, M, N] f32.
 * Leading dims of a 2-D-weight call are flattened into M.
 */
export function linear(x: Tensor, w: Tensor, opts: LinearOptions = {}): Tensor {
  const gpu = x.gpu;
  const what = `linear${opts.label ? ` (${opts.label})` : ''}`;
  const K = x.shape[x.shape.length - 1];
  const batched = w.shape.length === 3;
  const N = w.shape[w.shape.length - 2];
  const ldw = w.shape[w.shape.length - 1];
  const wOff = opts.wCols?.offset ?? 0;
  if (wOff + K > ldw) throw new Error(`${what}: x [${x.shape}] needs K=${K} columns of w [${w.shape}] from ${wOff}`);
  if (!opts.wCols && ldw !== K) throw new Error(`${what}: x [${x.shape}] and w [${w.shape}] disagree on K`);
  if (x.dtype !== 'f32') throw new Error(`${what}: activations must be f32`);
  const rb = opts.rows;
  if (rb && batched) throw new Error(`${what}: rows blocks need a 2-D (shared) w`);
  if (rb && !(Number.isInteger(rb.count) && rb.count >= 1 && Number.isInteger(rb.xStride) && rb.xStride >= 0 && (rb.outStride === undefined || (Number.isInteger(rb.outStride) && rb.outStride >= 0)))) {
    throw new Error(`${what}: bad rows ${JSON.stringify(rb)}`);
  }
  const B = batched ? w.shape[0] : rb ? rb.count : 1;
  if (batched && (x.shape.length !== 3 || x.shape[0] !== B)) throw new Error(`${what}: batched w [${w.shape}] needs x [${B}, M, K], got [${x.shape}]`);
  const totalRows = batched ? x.shape[1] : x.size / K;
  const xOff = opts.xRows ? opts.xRows.offset : 0;
  const M = opts.xRows ? opts.xRows.count : totalRows;
  const xLast = xOff + M + (rb ? (B - 1) * rb.xStride : 0);
  if (xLast > totalRows) throw new Error(`${what}: rows [${xOff}, ${xLast}) out of x [${x.shape}]`);
  if (opts.bias && opts.bias.size !== N) throw new Error(`${what}: bias has ${opts.bias.size} values, expected ${N}`);
  if (opts.accumulate && !opts.out) throw new Error(`${what}: accumulate needs out`);
  const outStride = rb ? (rb.outStride ?? M) : M;
  const outShape = batched ? [B, M, N] : rb ? [(B - 1) * outStride + M, N] : opts.xRows ? [M, N] : [...x.shape.slice(0, -1), N];
  const out = opts.out ?? Tensor.empty(gpu, outShape, 'f32', opts.label);
  const ldy = opts.outCols ? out.shape[out.shape.length - 1] : N;
  const yOff = (opts.outCols?.offset ?? 0) + (opts.outRowOffset ?? 0) * ldy;
  if (opts.outCols && opts.outCols.offset + N > ldy) throw new Error(`${what}: out columns [${opts.outCols.offset}, +${N}) exceed out [${out.shape}]`);
  const yBatch = batched ? M * N : rb ? outStride * ldy : 0;
  if (yOff + (M - 1) * ldy + N + (B - 1) * yBatch > out.size) throw new Error(`${what}: out [${out.shape}] too small for [${outShape}] at offset ${yOff}`);

  const gemv = M <= GEMV_MAX_ROWS && !opts.tiled;
  const flags = { HAS_BIAS: !!opts.bias, ACCUM: !!opts.accumulate, ACT: ACT[opts.act ?? 'none'] };
  const xBatch = batched ? totalRows * K : rb ? rb.xStride * K : 0;
  const params = {
    M, N, K, x_batch: xBatch, w_batch: batched ? N * ldw : 0, y_batch: yBatch,
    x_off: xOff * K, w_off: wOff, y_off: yOff, b_off: 0, ldx: K, ldw, ldy,
  };
  if (isQuantized(w)) return linearQuantized(x, w, out, opts, { params, gemv, flags, B }); // same checks and geometry, quantised kernels
  const buffers = { X: x.binding(), W: w.binding(), Bias: opts.bias ? opts.bias.binding() : { buffer: gpu.dummy }, Y: out.binding() };
  const base = {
    ...LINEAR_IO,
    aliases: { WT: w.dtype === 'f16' ? 'f16' : 'f32' },
    includes: ['activations'],
  };
  if (gemv) {
    const ROWS = 4;
    const spec: KernelSpec = {
      file: 'linear_gemv', ...base, params: { ...LINEAR_IO.params, groups_x: 'u32' },
      consts: { ...flags, ROWS, MROWS: GEMV_MAX_ROWS }, workgroup: [64],
    };
    const groups = Math.ceil(N / ROWS);
    const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
    const gy = Math.ceil(groups / gx);
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, { ...params, groups_x: gx }, [gx, gy, B], opts.label);
  } else {
    // 4×4 outputs per invocation, 8×8 invocations: a 32×32 tile of Y per workgroup. Not tuned on lavapipe on purpose.
    const TM = 4, TN = 4, wg = [8, 8] as const;
    const spec: KernelSpec = { file: 'linear', ...base, consts: { ...flags, TM, TN }, workgroup: [wg[0], wg[1]] };
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [Math.ceil(N / (TN * wg[0])), Math.ceil(M / (TM * wg[1])), B], opts.label);
  }
  return out;
}

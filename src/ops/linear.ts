// linear: Y = act(X·Wᵀ + b), PyTorch Linear layout W = [N, K].
//
// Dispatch decision lives here, next to the two kernel variants it picks between:
// - few rows of X (decode, M ≤ GEMV_MAX_ROWS): `linear_gemv`, bandwidth-bound, each W element read once;
// - otherwise `linear`: register-blocked TM×TN outputs per invocation.
// Shapes go in the uniform; the pipeline key only carries what changes code (weight dtype, bias, act, accum).
import type { Gpu } from '../gpu/device.js';
import { u } from '../gpu/stream.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { ACT, type Activation } from './activations.js';

export const GEMV_MAX_ROWS = 4;

export interface LinearOptions {
  bias?: Tensor;
  act?: Activation;
  /** Add into `out` instead of overwriting it (fused residual). Requires `out`. */
  accumulate?: boolean;
  out?: Tensor;
  /** Element offsets for views (x rows, w rows, out rows, bias). */
  xOffset?: number;
  label?: string;
}

function tile(gpu: Gpu): { TM: number; TN: number; wg: [number, number] } {
  // 4×4 per invocation, 8×8 invocations: a 32×32 tile of Y per workgroup. Not tuned on lavapipe on purpose.
  void gpu;
  return { TM: 4, TN: 4, wg: [8, 8] };
}

/**
 * x: [M, K] or [B, M, K]; w: [N, K] (shared) or [B, N, K]. Returns [M, N] / [B, M, N] f32.
 * Leading dims of a 2-D-weight call are flattened into M.
 */
export function linear(x: Tensor, w: Tensor, opts: LinearOptions = {}): Tensor {
  const gpu = x.gpu;
  const K = x.shape[x.shape.length - 1];
  const batched = w.shape.length === 3;
  const N = w.shape[w.shape.length - 2];
  if (w.shape[w.shape.length - 1] !== K) {
    throw new Error(`linear${opts.label ? ` ${opts.label}` : ''}: x [${x.shape}] and w [${w.shape}] disagree on K`);
  }
  if (x.dtype !== 'f32') throw new Error('linear: activations must be f32');
  const B = batched ? w.shape[0] : 1;
  if (batched && (x.shape.length !== 3 || x.shape[0] !== B)) throw new Error(`linear: batched w [${w.shape}] needs x [${B}, M, K], got [${x.shape}]`);
  const M = batched ? x.shape[1] : x.size / K;
  if (opts.bias && opts.bias.size !== N) throw new Error(`linear: bias has ${opts.bias.size} values, expected ${N}`);
  const outShape = batched ? [B, M, N] : [...x.shape.slice(0, -1), N];
  if (opts.accumulate && !opts.out) throw new Error('linear: accumulate needs out');
  const out = opts.out ?? Tensor.empty(gpu, outShape, 'f32', opts.label);
  if (out.size !== B * M * N) throw new Error(`linear: out [${out.shape}] does not hold [${outShape}]`);

  const gemv = M <= GEMV_MAX_ROWS;
  const common = {
    bindings: ['read', 'read', 'read', 'write'] as const,
    aliases: { WT: w.dtype === 'f16' ? 'f16' : 'f32' },
    includes: ['activations'],
  };
  const flags = { HAS_BIAS: !!opts.bias, ACCUM: !!opts.accumulate, ACT: ACT[opts.act ?? 'none'] };
  const params = [u(M), u(N), u(K), u(batched ? M * K : 0), u(batched ? N * K : 0), u(batched ? M * N : 0), u(opts.xOffset ?? 0), u(0), u(0), u(0)];
  const buffers = [x.binding(), w.binding(), opts.bias ? opts.bias.binding() : { buffer: gpu.dummy }, out.binding()];
  if (gemv) {
    const ROWS = 4;
    const WG = 64;
    const spec: KernelSpec = { file: 'linear_gemv', ...common, bindings: [...common.bindings], consts: { ...flags, ROWS, MROWS: GEMV_MAX_ROWS }, workgroup: [WG] };
    const groups = Math.ceil(N / ROWS);
    const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
    const gy = Math.ceil(groups / gx);
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, [...params, u(gx)], [gx, gy, B], opts.label);
  } else {
    const { TM, TN, wg } = tile(gpu);
    const spec: KernelSpec = { file: 'linear', ...common, bindings: [...common.bindings], consts: { ...flags, TM, TN }, workgroup: [wg[0], wg[1]] };
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [Math.ceil(N / (TN * wg[0])), Math.ceil(M / (TM * wg[1])), B], opts.label);
  }
  return out;
}

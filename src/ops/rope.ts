// Rotary position embeddings, in place on strided per-head views (kernels/rope.wgsl):
// - ropeText: Qwen3.5 partial multimodal RoPE (docs/architecture.md §5.9), interleaved or Qwen2-VL chunked;
// - ropeVision: the vision tower's 2-D (row, col) rope (§4.3).
//
// Both become one kernel: each rotated pair j of a head uses frequency inv_j and one position axis. The
// wrapper builds that (inv_j, axis_j) table once per configuration on the CPU and caches it on the Gpu.
//
// Precision (matching PyTorch, which computes everything here in fp32):
// - inv_freq is the f32 value `1.0 / (theta ** (arange(0, dim, 2).float() / dim))`: each step rounded to f32.
//   It is computed on the CPU: one ulp of error in inv_freq would move the angle at position 10^4 by ~1e-3.
// - the angle is f32(pos)·inv_j rounded to f32 (PyTorch's f32 freqs tensor);
// - cos/sin are taken of that angle after an exact Cody–Waite reduction to [−π, π] (kernels/lib/sincos.wgsl),
//   because WGSL only bounds sin/cos error on [−π, π] and positions reach 10^4–10^5 with inv_0 = 1.
//   Result: |GPU − f64 cos/sin of the same f32 angle| ≲ 1e-6.
import type { Gpu } from '../gpu/device.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { bind, bindHeads, type HeadView } from './views.js';

// Positions (i32, one row per axis), the (inv_j, axis_j) table, X rotated in place. `zero` is a runtime 0 the
// kernel uses to keep the compiler from fusing the f32 angle rounding (kernels/lib/sincos.wgsl round_barrier).
const ROPE_IO = {
  params: {
    total: 'u32', half: 'u32', num_heads: 'u32', row_stride: 'u32', head_stride: 'u32',
    x_off: 'u32', pos_cols: 'u32', pos_off: 'u32', groups_x: 'u32', zero: 'u32',
  },
  bindings: { Pos: 'read i32', Tab: 'read f32', X: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

export interface RopeTextOptions {
  L: number;
  numHeads: number;
  headDim: number;
  rotaryDim: number;
  theta: number;
  mropeSection: [number, number, number];
  interleaved: boolean;
  /** column offset into positions */
  positionOffset?: number;
}

export interface RopeVisionOptions {
  L: number;
  numHeads: number;
  headDim: number;
  theta: number;
}

const WG = 256;

/** f32 inv_freq[j] = 1 / theta^(2j/dim), j < dim/2, rounded step by step like PyTorch's fp32 expression. */
export function ropeInvFreqF32(theta: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  const th = Math.fround(theta);
  for (let j = 0; j < dim / 2; j++) out[j] = Math.fround(1 / Math.fround(Math.pow(th, Math.fround((2 * j) / dim))));
  return out;
}

/** Axis (0 = T, 1 = H, 2 = W) of each of the `half` text frequencies (docs/architecture.md §5.9). */
export function mropeAxes(half: number, sec: readonly [number, number, number], interleaved: boolean): Uint8Array {
  const axes = new Uint8Array(half);
  for (let j = 0; j < half; j++) {
    if (interleaved) axes[j] = j % 3 === 1 && j < 3 * sec[1] ? 1 : j % 3 === 2 && j < 3 * sec[2] ? 2 : 0;
    else axes[j] = j < sec[0] ? 0 : j < sec[0] + sec[1] ? 1 : 2;
  }
  return axes;
}

// Per-Gpu cache of the constant (inv_j, axis_j) tables: built and uploaded on first use, kept for the Gpu's life.
const tables = new WeakMap<Gpu, Map<string, Tensor>>();
function ropeTable(gpu: Gpu, key: string, build: () => { inv: Float32Array; axes: Uint8Array }): Tensor {
  let m = tables.get(gpu);
  if (!m) tables.set(gpu, (m = new Map()));
  let t = m.get(key);
  if (!t) {
    const { inv, axes } = build();
    const half = inv.length;
    const data = new Float32Array(2 * half);
    data.set(inv);
    for (let j = 0; j < half; j++) data[half + j] = axes[j];
    t = gpu.lifetimes.cached(Tensor.from(gpu, data, [2, half], 'f32', `rope table ${key}`)); // outlives any scope
    m.set(key, t);
  }
  return t;
}

function checkPositions(op: string, p: Tensor, rows: number, cols: number, what: string): void {
  if (p.dtype !== 'i32') throw new Error(`${op}: ${what} must be i32, got ${p.dtype}`);
  if (p.shape.length !== 2 || p.shape[0] !== rows) throw new Error(`${op}: ${what} must be [${rows}, n], got [${p.shape}]`);
  if (p.shape[1] < cols) throw new Error(`${op}: ${what} [${p.shape}] has fewer than the ${cols} columns needed`);
}

function dispatchRope(op: string, xb: ReturnType<typeof bindHeads>, pos: Tensor, posColOffset: number, table: Tensor, L: number, numHeads: number, half: number): void {
  const gpu = table.gpu;
  const total = L * numHeads * half;
  if (total === 0) return;
  const spec: KernelSpec = { file: 'rope', ...ROPE_IO, includes: ['sincos'], workgroup: [WG] };
  const groups = Math.ceil(total / WG);
  const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  const gy = Math.ceil(groups / gx);
  const pb = bind(op, 'positions', pos);
  const tb = bind(op, 'table', table);
  const params = {
    total, half, num_heads: numHeads, row_stride: xb.row, head_stride: xb.head,
    x_off: xb.off, pos_cols: pos.shape[1], pos_off: pb.off + posColOffset, groups_x: gx, zero: 0,
  };
  gpu.stream.dispatch(gpu.pipelines.get(spec), { Pos: pb.range, Tab: tb.range, X: xb.range }, params, [gx, gy], op);
}

/**
 * Text M-RoPE, in place on the first `rotaryDim` dims of each head of `x` (rotate_half pairs (e, e + rotaryDim/2)).
 * positions: i32 [3, ≥ positionOffset + L] (rows t, h, w); token t uses column positionOffset + t.
 * interleaved: frequency j uses H if j%3==1 && j<3·sec[1], W if j%3==2 && j<3·sec[2], else T (Qwen3.5).
 * Not interleaved: Qwen2-VL chunks (T for the first sec[0] frequencies, then H, then W).
 */
export function ropeText(x: HeadView, positions: Tensor, opts: RopeTextOptions): void {
  const { L, numHeads, headDim, rotaryDim, theta, mropeSection: sec, interleaved } = opts;
  const off = opts.positionOffset ?? 0;
  const xb = bindHeads('ropeText', 'x', x, L, numHeads, headDim);
  if (!(rotaryDim > 0 && rotaryDim % 2 === 0 && rotaryDim <= headDim)) throw new Error(`ropeText: rotaryDim ${rotaryDim} must be even and in (0, headDim=${headDim}]`);
  const half = rotaryDim / 2;
  if (sec.length !== 3 || sec[0] + sec[1] + sec[2] !== half) throw new Error(`ropeText: mropeSection [${sec}] must sum to rotaryDim/2 = ${half}`);
  if (!(theta > 0)) throw new Error(`ropeText: theta ${theta} must be positive`);
  if (!Number.isInteger(off) || off < 0) throw new Error(`ropeText: positionOffset ${off} must be a non-negative integer`);
  checkPositions('ropeText', positions, 3, off + L, 'positions');
  const table = ropeTable(x.tensor.gpu, `text ${theta} ${rotaryDim} ${sec.join(',')} ${interleaved ? 'i' : 'c'}`, () => ({
    inv: ropeInvFreqF32(theta, rotaryDim),
    axes: mropeAxes(half, sec, interleaved),
  }));
  dispatchRope('ropeText', xb, positions, off, table, L, numHeads, half);
}

/**
 * Vision 2-D rope (docs/architecture.md §4.3), in place on all headDim dims of each head. coords: i32 [2, ≥ L] (patch rows, then
 * patch cols, in merge-block order). Pair (e, e + d/2) uses r·inv[e] for e < d/4 and c·inv[e − d/4] otherwise,
 * inv[j] = theta^(−2j/(d/2)).
 */
export function ropeVision(x: HeadView, coords: Tensor, opts: RopeVisionOptions): void {
  const { L, numHeads, headDim, theta } = opts;
  const xb = bindHeads('ropeVision', 'x', x, L, numHeads, headDim);
  if (!(headDim > 0 && headDim % 4 === 0)) throw new Error(`ropeVision: headDim ${headDim} must be a positive multiple of 4`);
  if (!(theta > 0)) throw new Error(`ropeVision: theta ${theta} must be positive`);
  checkPositions('ropeVision', coords, 2, L, 'coords');
  const quarter = headDim / 4;
  const table = ropeTable(x.tensor.gpu, `vision ${theta} ${headDim}`, () => {
    const inv4 = ropeInvFreqF32(theta, headDim / 2);
    const inv = new Float32Array(2 * quarter);
    const axes = new Uint8Array(2 * quarter);
    for (let e = 0; e < 2 * quarter; e++) {
      inv[e] = inv4[e % quarter];
      axes[e] = e < quarter ? 0 : 1;
    }
    return { inv, axes };
  });
  dispatchRope('ropeVision', xb, coords, 0, table, L, numHeads, headDim / 2);
}

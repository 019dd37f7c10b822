// Row norms (kernels/norm.wgsl): RMSNorm (plain / Qwen zero-centred / no weight), Qwen3.5 RMSNormGated,
// LayerNorm and the DiT's modulated LayerNorm (adaLN).
//
// Every norm works over rows of length `dim` (default: the weight's size, else x's last dim); rows = x.size/dim.
// Activations f32, weights (and LayerNorm bias) f32 or f16, statistics f32.
// Dispatch decision (here, next to the specs): rows of ≤ 256 values get 8 rows per workgroup with 32
// invocations each (e.g. the 128-wide GDN heads, 48/64-wide heads); longer rows get one 256-invocation
// workgroup each. `out` may equal x (in place).
import type { Gpu } from '../gpu/device.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { bindOptional, bindShared, checkSameIndexAlias, overlaps, shapeStr } from './views.js';

// X rows, the second input Z (RMSNormGated's gate, adaLN's [scale | shift]; row r at z_off + r·z_stride), weight
// W and bias Bv (WT / BT: f32 or f16), output Y. Offsets are elements into each binding.
const NORM_IO = {
  params: {
    rows: 'u32', dim: 'u32', x_off: 'u32',
    z_off: 'u32', z_stride: 'u32', sc_off: 'u32', sh_off: 'u32',
    w_off: 'u32', b_off: 'u32', y_off: 'u32', eps: 'f32', groups_x: 'u32',
  },
  bindings: { X: 'read f32', Z: 'read f32', W: 'read WT', Bv: 'read BT', Y: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

/** Workgroup shape [invocations per row, rows per workgroup] for rows of `dim` values. */
export function normWorkgroup(dim: number): [number, number] {
  return dim <= 256 ? [32, 8] : [256, 1];
}

/** Workgroup grid for `rows` rows, folded into y past maxComputeWorkgroupsPerDimension. */
function rowGrid(gpu: Gpu, rows: number, perGroup: number): { grid: [number, number]; gx: number } {
  const groups = Math.ceil(rows / perGroup);
  const gx = Math.max(1, Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension));
  return { grid: [gx, Math.ceil(groups / gx)], gx };
}

function wtype(op: string, t: Tensor | null, what: string): 'f32' | 'f16' {
  if (!t) return 'f32';
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new Error(`${op}: ${what} must be f32 or f16, got ${shapeStr(t)}`);
  return t.dtype;
}

function rowsOf(op: string, x: Tensor, dim: number): number {
  if (x.dtype !== 'f32') throw new Error(`${op}: x must be f32, got ${shapeStr(x)}`);
  if (!Number.isInteger(dim) || dim <= 0 || x.size % dim !== 0) throw new Error(`${op}: x ${shapeStr(x)} is not a whole number of rows of ${dim}`);
  return x.size / dim;
}

function outFor(op: string, x: Tensor, out?: Tensor): Tensor {
  if (!out) return Tensor.empty(x.gpu, x.shape, 'f32', op);
  if (out.dtype !== 'f32' || out.size !== x.size) throw new Error(`${op}: out ${shapeStr(out)} does not hold x ${shapeStr(x)}`);
  return out;
}

function checkWeight(op: string, w: Tensor | null, dim: number, what = 'weight'): void {
  if (w && w.size !== dim) throw new Error(`${op}: ${what} ${shapeStr(w)} does not have dim = ${dim} values`);
}

interface NormLaunch {
  op: string;
  mode: 0 | 1 | 2 | 3;
  x: Tensor;
  z?: Tensor;
  zStride?: number;
  scOff?: number;
  shOff?: number;
  w: Tensor | null;
  b: Tensor | null;
  y: Tensor;
  rows: number;
  dim: number;
  eps: number;
  addOne?: boolean;
}

function launchNorm(L: NormLaunch): void {
  const { x, y, z } = L;
  const gpu = x.gpu;
  if (L.rows === 0) return;
  for (const t of [L.w, L.b]) if (t && t.buffer === y.buffer) throw new Error(`${L.op}: a weight shares the output's buffer`);
  const xViaY = x.buffer === y.buffer;
  const zViaY = !!z && z.buffer === y.buffer;
  const ySpan = bindShared(L.op, y, ...(xViaY ? [x] : []), ...(zViaY ? [z!] : []));
  const xs = bindOptional(gpu, L.op, 'x', xViaY ? null : x);
  const zs = bindOptional(gpu, L.op, 'z', zViaY ? null : z);
  const ws = bindOptional(gpu, L.op, 'weight', L.w);
  const bs = bindOptional(gpu, L.op, 'bias', L.b);
  const [wx, wy] = normWorkgroup(L.dim);
  const spec: KernelSpec = {
    file: 'norm',
    ...NORM_IO,
    consts: {
      MODE: L.mode,
      HAS_W: !!L.w,
      HAS_B: !!L.b,
      ADD_ONE: !!L.addOne,
      X_IS_Y: xViaY,
      Z_IS_Y: zViaY,
    },
    aliases: { WT: wtype(L.op, L.w, 'weight'), BT: wtype(L.op, L.b, 'bias') },
    includes: ['activations', 'row_reduce'],
    workgroup: [wx, wy],
  };
  const { grid, gx } = rowGrid(gpu, L.rows, wy);
  const params = {
    rows: L.rows, dim: L.dim,
    x_off: xViaY ? ySpan.offs[1] : xs.off,
    z_off: !z ? 0 : zViaY ? ySpan.offs[xViaY ? 2 : 1] : zs.off,
    z_stride: L.zStride ?? 0, sc_off: L.scOff ?? 0, sh_off: L.shOff ?? 0,
    w_off: ws.off, b_off: bs.off, y_off: ySpan.offs[0],
    eps: L.eps, groups_x: gx,
  };
  gpu.stream.dispatch(gpu.pipelines.get(spec), { X: xs.range, Z: zs.range, W: ws.range, Bv: bs.range, Y: ySpan.range }, params, grid, L.op);
}

/**
 * RMSNorm over rows of `dim` (default w.size, else x's last dim): y = x̂·w, x̂ = x·rsqrt(mean(x²) + eps).
 * addOne: y = x̂·(1 + w) (Qwen3.5 `Qwen3_5RMSNorm`, whose stored weight is the offset from 1). w null: y = x̂.
 */
export function rmsNorm(x: Tensor, w: Tensor | null, opts: { eps: number; addOne?: boolean; dim?: number; out?: Tensor }): Tensor {
  const op = 'rmsNorm';
  const dim = opts.dim ?? w?.size ?? x.shape[x.shape.length - 1];
  const rows = rowsOf(op, x, dim);
  checkWeight(op, w, dim);
  const y = outFor(op, x, opts.out);
  checkSameIndexAlias(op, 'x', x, y);
  launchNorm({ op, mode: 0, x, w, b: null, y, rows, dim, eps: opts.eps, addOne: opts.addOne });
  return y;
}

/**
 * Qwen3.5 `Qwen3_5RMSNormGated`, per row of dim = w.size: y = (x̂·w)·silu(z), with a plain weight (not 1 + w).
 * z has x's size.
 */
export function rmsNormGated(x: Tensor, z: Tensor, w: Tensor, opts: { eps: number; out?: Tensor }): Tensor {
  const op = 'rmsNormGated';
  const dim = w.size;
  const rows = rowsOf(op, x, dim);
  if (z.dtype !== 'f32' || z.size !== x.size) throw new Error(`${op}: z ${shapeStr(z)} must be f32 with x's size ${shapeStr(x)}`);
  const y = outFor(op, x, opts.out);
  checkSameIndexAlias(op, 'x', x, y);
  checkSameIndexAlias(op, 'z', z, y);
  launchNorm({ op, mode: 1, x, z, zStride: dim, w, b: null, y, rows, dim, eps: opts.eps });
  return y;
}

/** LayerNorm over rows of `dim` (default w.size, else b.size, else x's last dim): y = (x − μ)·rsqrt(var + eps)·w + b. */
export function layerNorm(x: Tensor, w: Tensor | null, b: Tensor | null, opts: { eps: number; dim?: number; out?: Tensor }): Tensor {
  const op = 'layerNorm';
  const dim = opts.dim ?? w?.size ?? b?.size ?? x.shape[x.shape.length - 1];
  const rows = rowsOf(op, x, dim);
  checkWeight(op, w, dim);
  checkWeight(op, b, dim, 'bias');
  const y = outFor(op, x, opts.out);
  checkSameIndexAlias(op, 'x', x, y);
  launchNorm({ op, mode: 2, x, w, b, y, rows, dim, eps: opts.eps });
  return y;
}

/**
 * DiT adaLN over rows of x's last dim D: y = LN(x; no affine)·(1 + scale) + shift.
 * mod holds 2D values, [scale | shift] ('scale-shift', GR00T AdaLayerNorm) or [shift | scale] ('shift-scale',
 * GR00T's output layer), one vector for every row; a mod of rows × 2D values gives each row its own.
 */
export function modulatedLayerNorm(x: Tensor, mod: Tensor, opts: { eps: number; order: 'scale-shift' | 'shift-scale'; out?: Tensor }): Tensor {
  const op = 'modulatedLayerNorm';
  const dim = x.shape[x.shape.length - 1];
  const rows = rowsOf(op, x, dim);
  if (mod.dtype !== 'f32') throw new Error(`${op}: mod must be f32, got ${shapeStr(mod)}`);
  let zStride: number;
  if (mod.size === 2 * dim) zStride = 0;
  else if (mod.size === rows * 2 * dim) zStride = 2 * dim;
  else throw new Error(`${op}: mod ${shapeStr(mod)} must hold 2·D = ${2 * dim} values (or rows·2·D = ${rows * 2 * dim}) for x ${shapeStr(x)}`);
  if (opts.order !== 'scale-shift' && opts.order !== 'shift-scale') throw new Error(`${op}: unknown order '${String(opts.order)}'`);
  const y = outFor(op, x, opts.out);
  checkSameIndexAlias(op, 'x', x, y);
  if (overlaps(mod, 0, mod.size, y, 0, y.size)) throw new Error(`${op}: mod ${shapeStr(mod)} overlaps the output`);
  const scaleFirst = opts.order === 'scale-shift';
  launchNorm({ op, mode: 3, x, z: mod, zStride, scOff: scaleFirst ? 0 : dim, shOff: scaleFirst ? dim : 0, w: null, b: null, y, rows, dim, eps: opts.eps });
  return y;
}

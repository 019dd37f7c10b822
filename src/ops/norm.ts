// Row norms (kernels/norm.wgsl, kernels/norm_add.wgsl): RMSNorm (plain / Qwen zero-centred / no weight),
// Qwen3.5 RMSNormGated, LayerNorm, the DiT's modulated LayerNorm (adaLN) and fused residual-add + RMSNorm.
//
// Every norm works over rows of length `dim` (default: the weight's size, else x's last dim); rows = x.size/dim.
// Activations f32, weights (and LayerNorm bias) f32 or f16, statistics f32.
// Dispatch decision (here, next to the specs): rows of ≤ 256 values get 8 rows per workgroup with 32
// invocations each (e.g. the 128-wide GDN heads, 48/64-wide heads); longer rows get one 256-invocation
// workgroup each. `out` may equal x (in place).
import type { Gpu } from '../gpu/device.js';
import { f, u } from '../gpu/stream.js';
import type { BufferRange, Param } from '../gpu/stream.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { checkSameIndexAlias, overlaps, rwDummy, shapeStr, span } from './bind.js';

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
  const ySpan = span(L.op, y, ...(xViaY ? [x] : []), ...(zViaY ? [z!] : []));
  const dummy: BufferRange = { buffer: gpu.dummy };
  const xs = xViaY ? null : span(L.op, x);
  const xOff = xs ? xs.offs[0] : ySpan.offs[1];
  const zs = z && !zViaY ? span(L.op, z) : null;
  const zOff = !z ? 0 : zs ? zs.offs[0] : ySpan.offs[xViaY ? 2 : 1];
  const ws = L.w ? span(L.op, L.w) : null;
  const bs = L.b ? span(L.op, L.b) : null;
  const [wx, wy] = normWorkgroup(L.dim);
  const spec: KernelSpec = {
    file: 'norm',
    bindings: ['read', 'read', 'read', 'read', 'write'],
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
  const params: Param[] = [
    u(L.rows), u(L.dim),
    u(xOff),
    u(zOff), u(L.zStride ?? 0), u(L.scOff ?? 0), u(L.shOff ?? 0),
    u(ws ? ws.offs[0] : 0), u(bs ? bs.offs[0] : 0),
    u(ySpan.offs[0]),
    f(L.eps),
    u(gx),
  ];
  const buffers: BufferRange[] = [xs ? xs.range : dummy, zs ? zs.range : dummy, ws ? ws.range : dummy, bs ? bs.range : dummy, ySpan.range];
  gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, grid, L.op);
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

/**
 * Fused residual add + RMSNorm over rows of dim = w.size: residual += x (in place; it becomes the new stream),
 * out = rmsNorm(residual) (addOne as in `rmsNorm`). out may be x; it must not overlap residual.
 */
export function addRmsNorm(x: Tensor, residual: Tensor, w: Tensor, opts: { eps: number; addOne?: boolean; out: Tensor }): void {
  const op = 'addRmsNorm';
  const gpu = x.gpu;
  const dim = w.size;
  const rows = rowsOf(op, x, dim);
  wtype(op, w, 'weight');
  const out = opts.out;
  if (!out) throw new Error(`${op}: out is required`);
  if (residual.dtype !== 'f32' || residual.size !== x.size) throw new Error(`${op}: residual ${shapeStr(residual)} must be f32 with x's size ${shapeStr(x)}`);
  if (out.dtype !== 'f32' || out.size !== x.size) throw new Error(`${op}: out ${shapeStr(out)} does not hold x ${shapeStr(x)}`);
  if (overlaps(residual, 0, residual.size, out, 0, out.size)) throw new Error(`${op}: out overlaps residual (the residual must survive)`);
  if (overlaps(x, 0, x.size, residual, 0, residual.size)) throw new Error(`${op}: x overlaps residual`);
  checkSameIndexAlias(op, 'x', x, out);
  if (w.buffer === out.buffer || w.buffer === residual.buffer) throw new Error(`${op}: the weight shares a buffer with an output`);
  if (rows === 0) return;
  // Tensors sharing a GPUBuffer go through one binding (see norm_add.wgsl): residual through out's when they
  // share one, x through out's or the residual's.
  const rViaY = residual.buffer === out.buffer;
  const xViaY = x.buffer === out.buffer;
  const xViaR = !xViaY && x.buffer === residual.buffer;
  const ySpan = span(op, out, ...(rViaY ? [residual] : []), ...(xViaY ? [x] : []));
  const rSpan = rViaY ? null : span(op, residual, ...(xViaR ? [x] : []));
  const xs = xViaY || xViaR ? null : span(op, x);
  const rOff = rSpan ? rSpan.offs[0] : ySpan.offs[1];
  const xOff = xViaY ? ySpan.offs[rViaY ? 2 : 1] : xViaR ? rSpan!.offs[1] : xs!.offs[0];
  const ws = span(op, w);
  const [wx, wy] = normWorkgroup(dim);
  const spec: KernelSpec = {
    file: 'norm_add',
    bindings: ['read', 'read', 'write', 'write'],
    consts: { ADD_ONE: !!opts.addOne, X_IS_Y: xViaY, X_IS_R: xViaR, R_IS_Y: rViaY },
    aliases: { WT: w.dtype === 'f16' ? 'f16' : 'f32' },
    includes: ['row_reduce'],
    workgroup: [wx, wy],
  };
  const { grid, gx } = rowGrid(gpu, rows, wy);
  const params: Param[] = [u(rows), u(dim), u(xOff), u(ws.offs[0]), u(rOff), u(ySpan.offs[0]), f(opts.eps), u(gx)];
  const dummy: BufferRange = { buffer: gpu.dummy };
  const buffers: BufferRange[] = [xs ? xs.range : dummy, ws.range, rSpan ? rSpan.range : { buffer: rwDummy(gpu) }, ySpan.range];
  gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, grid, op);
}

// linear: Y = act(X·Wᵀ + b), PyTorch Linear layout W = [N, K].
//
// The dispatch decision lives here, next to the kernel variants it picks between (a LinearConfig each):
// - few rows of X (decode, M ≤ GEMV_MAX_ROWS): bandwidth-bound GEMV, every W element read once —
//   `gemv` (kernels/linear_gemv.wgsl, shared-memory tree) or `gemv_sg` (linear_gemv_sg.wgsl, subgroupAdd; only
//   where the adapter has subgroups of one fixed size); with f16 weights either may be `wide` (8 halves, 16 bytes
//   per load: lib/linear_load_vec8_f16.wgsl, the same loop lib/linear_gemv_partial.wgsl) where W is 8-aligned;
// - otherwise GEMM: `tiled` (kernels/linear_tiled.wgsl: shared-memory slabs, TM×TN register blocks), `gemm_sg`
//   (kernels/linear_sg.wgsl: X shared within a subgroup by subgroupShuffle; fixed-size subgroups only) or `plain`
//   (kernels/linear.wgsl: no shared memory; the reference variant the others are checked against).
// Which variant and tile shape: an explicit `config`, else the tuning table for this adapter and shape class
// (src/tune/table.ts, written by `qvla tune`), else LINEAR_DEFAULTS (chosen for GPUs, see there) or, on a
// software adapter, LINEAR_SOFTWARE_DEFAULTS (the pre-variant shapes, untuned).
// Operands load 4 elements at a time; when every operand is 4-aligned (K, strides, offsets) they bind as vec4
// arrays (kernels/lib/linear_load_vec4.wgsl), else as scalars (linear_load_scalar.wgsl), same kernel code.
// Shapes go in the uniform; the pipeline key only carries what changes code (weight dtype, bias, act, accum,
// variant, tile shape, alignment).
//
// Strided forms (all in elements) let callers use views without copies: a column block of W (`wCols`), rows of
// X starting anywhere (`xRows`), and an output written into a column block of a wider matrix (`outCols`).
// `rows` repeats that row window over a batch of equal blocks (grid z, one shared W): e.g. rows 1..H of every
// (1+H)-row block of a ragged DiT batch, in one dispatch.
//
// Bit-stability (`tiled: true`, relied on by Policy.actBatch): every GEMM variant computes each output from its
// X row and W alone with one reduction order fixed by K (plain, tiled and gemm_sg alike: a single fma chain,
// k = 0…K−1 in order), so a row gets the same bits whatever other rows the call has. GEMV reduces in another
// order (split over invocations, then a tree). So `tiled: true` never takes GEMV, and its variant comes from the
// M-independent shape class `rows:…` (tuned once for all M) rather than the M-bucketed `gemm:…` classes: the
// guarantee must not rest on different variants agreeing bit for bit.
import type { Gpu } from '../gpu/device.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { pow2Bucket, tunedConfig } from '../tune/table.js';
import { ACT, type Activation } from './activations.js';
import { bind, bindOptional, checkDistinct } from './views.js';
import { isQuantized, linearQuantized } from '../quant/index.js'; // int8/int4 weights: docs/quantization.md

export const GEMV_MAX_ROWS = 4;

// What every linear kernel may touch: X rows (f32), W (f32 or f16), the bias and Y. Element strides/offsets
// let every operand be a view; the batch strides walk grid z (w_batch 0: one shared W). XT / WT are f32 / f16
// scalars, or vec4f / vec4<f16> in the aligned (vectorised) pipelines.
const LINEAR_IO = {
  params: {
    M: 'u32', N: 'u32', K: 'u32',
    x_batch: 'u32', w_batch: 'u32', y_batch: 'u32',
    x_off: 'u32', w_off: 'u32', y_off: 'u32', b_off: 'u32',
    ldx: 'u32', ldw: 'u32', ldy: 'u32',
  },
  bindings: { X: 'read XT', W: 'read WT', Bias: 'read f32', Y: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

/** The tuning family name of linear (src/tune/table.ts). */
export const LINEAR_FAMILY = 'linear';

/** One variant and its tile shape. */
export type LinearConfig =
  /** TM×TN outputs per invocation, wg[0]×wg[1] invocations, no shared memory. */
  | { kernel: 'plain'; tm: number; tn: number; wg: [number, number] }
  /** A (wg[1]·tm)×(wg[0]·tn) tile of Y per workgroup, K in shared-memory slabs of bk (multiple of 4). */
  | { kernel: 'tiled'; tm: number; tn: number; wg: [number, number]; bk: number }
  /**
   * `groups` subgroups per workgroup, each a tm × (subgroup size · tn) tile of Y, X shared by subgroupShuffle
   * (kernels/linear_sg.wgsl; adapters with one fixed subgroup size).
   */
  | { kernel: 'gemm_sg'; tm: number; tn: number; groups: number }
  /**
   * `rows` outputs per workgroup of `wg` invocations (a power of two), shared-memory tree reduction. `wide`: f16
   * weights stream 8 halves (16 bytes) per lane and step instead of 4 where W is 8-aligned (ignored otherwise).
   */
  | { kernel: 'gemv'; wg: number; rows: number; wide?: boolean }
  /** `groups` subgroups per workgroup, each owning `rows` outputs, subgroupAdd reduction; `wide` as for gemv. */
  | { kernel: 'gemv_sg'; groups: number; rows: number; wide?: boolean };

/**
 * Defaults when no tuning table entry applies. Chosen for discrete / integrated GPUs by the usual reasoning,
 * NOT from lavapipe timings (software adapters get their tile shapes from `qvla tune` only):
 * - GEMM: 64×64 output tile per 256-invocation workgroup, 4×4 register block, K slabs of 16 (8 KiB of
 *   workgroup memory): 16 FMAs per 8 shared loads, enough workgroups for 600×2560 (400) to fill a GPU;
 * - row-stable GEMM (`tiled: true`): the same;
 * - GEMV: 4 outputs per 256-invocation workgroup (each row streamed in 4 KiB runs), or with fixed-size
 *   subgroups 8 subgroups × 2 outputs and no shared memory.
 */
export const LINEAR_DEFAULTS = {
  gemm: { kernel: 'tiled', tm: 4, tn: 4, wg: [16, 16], bk: 16 } as LinearConfig,
  gemv: { kernel: 'gemv', wg: 256, rows: 4 } as LinearConfig,
  gemvSubgroups: { kernel: 'gemv_sg', groups: 8, rows: 2 } as LinearConfig,
};

/**
 * Defaults on software adapters (lavapipe, SwiftShader) with no table: the shapes this op had before variants
 * existed (plain 4×4 blocks in 8×8 workgroups; GEMV 64 invocations × 4 outputs), kept so that an untuned CPU
 * run (the test suite) costs what it did. Not tuned: a software adapter gets faster shapes only from
 * `qvla tune` (the GPU defaults above are a poor fit for a CPU: barriers and shared memory cost there).
 */
export const LINEAR_SOFTWARE_DEFAULTS = {
  gemm: { kernel: 'plain', tm: 4, tn: 4, wg: [8, 8] } as LinearConfig,
  gemv: { kernel: 'gemv', wg: 64, rows: 4 } as LinearConfig,
};

/** The plain variant's shape for f16 arithmetic when the tuned / default config is another variant. */
const F16_MATH_CONFIG: LinearConfig = { kernel: 'plain', tm: 4, tn: 4, wg: [8, 8] };

/** What a linear call is, for picking a config: its class in the tuning table and whether GEMV applies. */
export interface LinearShape {
  M: number; N: number; K: number;
  f16: boolean;
  /** `tiled: true` (row-stable): M-independent class, GEMM only. */
  rowStable?: boolean;
}

/**
 * Shape class: `gemv:<wt>:m<M>:n<N>:k<K>` (decode), `gemm:<wt>:m<M>:n<N>:k<K>` or the M-free `rows:<wt>:n<N>:k<K>`,
 * sizes as power-of-two buckets (pow2Bucket), M exact for GEMV (it is a pipeline constant there).
 */
export function linearShapeClass(s: LinearShape): string {
  const wt = s.f16 ? 'f16' : 'f32';
  const nk = `n${pow2Bucket(s.N)}:k${pow2Bucket(s.K)}`;
  if (s.rowStable) return `rows:${wt}:${nk}`;
  if (s.M <= GEMV_MAX_ROWS) return `gemv:${wt}:m${s.M}:${nk}`;
  return `gemm:${wt}:m${pow2Bucket(s.M)}:${nk}`;
}

const isPow2 = (n: number) => Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
const posInt = (n: unknown, max = 64): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= max;

/** Fixed subgroup size of the adapter (min = max), or 0 when it has no subgroups or a varying size. */
export function fixedSubgroupSize(gpu: Gpu): number {
  if (!gpu.features.subgroups) return 0;
  const info = gpu.adapterInfo as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const lo = info.subgroupMinSize ?? 0, hi = info.subgroupMaxSize ?? 0;
  return lo > 0 && lo === hi ? lo : 0;
}

/**
 * Why `c` cannot run for a `gemv` (few-row) or GEMM call on this adapter, or null when it can. Checks the
 * variant's kind against the call, tile sizes, workgroup limits and workgroup memory.
 */
export function linearConfigProblem(gpu: Gpu, c: unknown, gemv: boolean): string | null {
  if (typeof c !== 'object' || c === null) return 'not an object';
  const o = c as Record<string, unknown>;
  const L = gpu.limits;
  const maxInv = L.maxComputeInvocationsPerWorkgroup;
  if (o.kernel === 'plain' || o.kernel === 'tiled') {
    if (gemv) return `${o.kernel} is a GEMM variant; this call takes gemv / gemv_sg`;
    const wg = o.wg as unknown;
    if (!posInt(o.tm, 16) || !posInt(o.tn, 16)) return 'tm / tn must be integers in 1…16';
    if (!Array.isArray(wg) || wg.length !== 2 || !posInt(wg[0], 1024) || !posInt(wg[1], 1024)) return 'wg must be [x, y]';
    if (wg[0] * wg[1] > maxInv || wg[0] > L.maxComputeWorkgroupSizeX || wg[1] > L.maxComputeWorkgroupSizeY) return `workgroup ${wg[0]}×${wg[1]} exceeds the adapter's limits`;
    if (o.kernel === 'tiled') {
      if (!posInt(o.bk, 128) || o.bk % 4 !== 0) return 'bk must be a multiple of 4 in 4…128';
      const bytes = 4 * o.bk * (wg[1] * o.tm + wg[0] * o.tn);
      if (bytes > L.maxComputeWorkgroupStorageSize) return `tiles need ${bytes} B of workgroup memory, the adapter has ${L.maxComputeWorkgroupStorageSize}`;
    }
    return null;
  }
  if (o.kernel === 'gemm_sg') {
    if (gemv) return 'gemm_sg is a GEMM variant; this call takes gemv / gemv_sg';
    if (!posInt(o.tm, 16) || !posInt(o.tn, 16)) return 'tm / tn must be integers in 1…16';
    const sg = fixedSubgroupSize(gpu);
    if (!sg) return 'gemm_sg needs the subgroups feature with a fixed subgroup size';
    if (!posInt(o.groups, 64) || (o.groups as number) * sg > Math.min(maxInv, L.maxComputeWorkgroupSizeX)) return 'groups × subgroup size exceeds the workgroup limit';
    return null;
  }
  if (o.kernel === 'gemv' || o.kernel === 'gemv_sg') {
    if (!gemv) return `${o.kernel} is a few-row variant; this call takes plain / tiled / gemm_sg`;
    if (!posInt(o.rows, 16)) return 'rows must be an integer in 1…16';
    if (o.wide !== undefined && typeof o.wide !== 'boolean') return 'wide must be true or false';
    if (o.kernel === 'gemv') {
      if (!isPow2(o.wg as number) || (o.wg as number) > Math.min(maxInv, L.maxComputeWorkgroupSizeX)) return 'wg must be a power of two within the adapter limits';
      const bytes = 4 * (o.wg as number) * o.rows * GEMV_MAX_ROWS;
      if (bytes > L.maxComputeWorkgroupStorageSize) return `reduction needs ${bytes} B of workgroup memory, the adapter has ${L.maxComputeWorkgroupStorageSize}`;
      return null;
    }
    const sg = fixedSubgroupSize(gpu);
    if (!sg) return 'gemv_sg needs the subgroups feature with a fixed subgroup size';
    if (!posInt(o.groups, 64) || (o.groups as number) * sg > Math.min(maxInv, L.maxComputeWorkgroupSizeX)) return 'groups × subgroup size exceeds the workgroup limit';
    return null;
  }
  return `unknown kernel '${String(o.kernel)}'`;
}

/** The config a call gets: tuned entry for its shape class when valid here, else the defaults. */
export function chooseLinearConfig(gpu: Gpu, s: LinearShape): LinearConfig {
  const gemv = !s.rowStable && s.M <= GEMV_MAX_ROWS;
  const tuned = tunedConfig(gpu, LINEAR_FAMILY, linearShapeClass(s));
  if (tuned && linearConfigProblem(gpu, tuned, gemv) === null) return tuned as unknown as LinearConfig;
  if (gpu.isSoftware) return gemv ? LINEAR_SOFTWARE_DEFAULTS.gemv : LINEAR_SOFTWARE_DEFAULTS.gemm;
  if (!gemv) return LINEAR_DEFAULTS.gemm;
  return fixedSubgroupSize(gpu) ? LINEAR_DEFAULTS.gemvSubgroups : LINEAR_DEFAULTS.gemv;
}

/** Short name of a config, for logs and bench tables: `tiled 4×4 wg16×16 bk16`. */
export function linearConfigName(c: LinearConfig): string {
  switch (c.kernel) {
    case 'plain': return `plain ${c.tm}×${c.tn} wg${c.wg[0]}×${c.wg[1]}`;
    case 'tiled': return `tiled ${c.tm}×${c.tn} wg${c.wg[0]}×${c.wg[1]} bk${c.bk}`;
    case 'gemm_sg': return `gemm_sg ${c.tm}×${c.tn} groups${c.groups}`;
    case 'gemv': return `gemv wg${c.wg} rows${c.rows}${c.wide ? ' wide' : ''}`;
    case 'gemv_sg': return `gemv_sg groups${c.groups} rows${c.rows}${c.wide ? ' wide' : ''}`;
  }
}

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
  /**
   * Row-stable: always a GEMM variant (never GEMV), picked from the M-independent `rows:` shape class, so each
   * row's result bits are independent of the number of rows in the call (Policy.actBatch relies on it).
   */
  tiled?: boolean;
  /** Run this variant / tile shape (tuning, benchmarks, tests); it must suit the call (GEMV vs GEMM). */
  config?: LinearConfig;
  /**
   * f16 arithmetic (adapters with shader-f16 only; an error elsewhere): X and W are rounded to f16 four
   * elements at a time, each 4-term dot product is computed in f16 and accumulated in f32. Error: each input
   * rounding is ≤ 2⁻¹¹ relative and each f16 product / partial sum adds another ≤ 2⁻¹¹, so an output is off by
   * about 1e-3 · Σ_k |x_k·w_k| at worst (≈ 5e-4 absolute for unit-variance x and w ~ N(0, 1/K), random-walk
   * growth with K); |x| or a 4-term partial sum above 65504 overflows to ±inf. Runs the plain GEMM variant (its
   * tile shape when tuned, else 4×4 / 8×8), also for M ≤ 4; the row-stable contract holds (fixed order).
   */
  f16Math?: boolean;
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

  const xBatch = batched ? totalRows * K : rb ? rb.xStride * K : 0;
  const wBatch = batched ? N * ldw : 0;
  // Views bind from the aligned-down start of their bytes; the remainder is part of each element offset
  // (src/ops/views.ts).
  const params = {
    M, N, K, x_batch: xBatch, w_batch: wBatch, y_batch: yBatch,
    x_off: xOff * K, w_off: wOff, y_off: yOff, b_off: 0, ldx: K, ldw, ldy,
  };
  const flags = { HAS_BIAS: !!opts.bias, ACCUM: !!opts.accumulate, ACT: ACT[opts.act ?? 'none'] };
  if (isQuantized(w)) return linearQuantized(x, w, out, opts, { params, gemv: M <= GEMV_MAX_ROWS && !opts.tiled, flags, B }); // same checks and geometry, quantised kernels
  checkDistinct(what, [['x', x], ['w', w], ['bias', opts.bias]], [['out', out]]);
  const xb = bind(what, 'x', x), wb = bind(what, 'w', w), bb = bindOptional(gpu, what, 'bias', opts.bias), yb = bind(what, 'out', out);
  params.x_off += xb.off;
  params.w_off += wb.off;
  params.y_off += yb.off;
  params.b_off = bb.off;
  const f16 = w.dtype === 'f16';
  const shape: LinearShape = { M, N, K, f16, rowStable: !!opts.tiled };
  if (opts.f16Math && !gpu.features.f16) throw new Error(`${what}: f16Math needs the shader-f16 feature, which this adapter (${gpu.description}) lacks`);
  const gemv = !opts.tiled && !opts.f16Math && M <= GEMV_MAX_ROWS;
  let cfg = opts.config ?? chooseLinearConfig(gpu, { ...shape, rowStable: shape.rowStable || !!opts.f16Math });
  if (opts.f16Math && cfg.kernel !== 'plain') {
    if (opts.config) throw new Error(`${what}: f16Math runs the plain variant only, got config ${JSON.stringify(cfg)}`);
    cfg = F16_MATH_CONFIG;
  }
  if (opts.config) {
    const problem = linearConfigProblem(gpu, cfg, gemv);
    if (problem) throw new Error(`${what}: config ${JSON.stringify(cfg)}: ${problem}`);
  }
  // Vectorised binding: every element offset and stride a multiple of 4, and each binding whole vec4s.
  const vec4 = K % 4 === 0 && ldw % 4 === 0 && xBatch % 4 === 0 && wBatch % 4 === 0 && params.x_off % 4 === 0 && params.w_off % 4 === 0 &&
    (xb.range.size ?? 0) % 16 === 0 && (wb.range.size ?? 0) % (f16 ? 8 : 16) === 0;
  const buffers = { X: xb.range, W: wb.range, Bias: bb.range, Y: yb.range };
  // A `wide` GEMV config with f16 weights: W as vec4u, 8 halves per load, where W is 8-aligned and whole vec4u.
  const wide = f16 && vec4 && (cfg.kernel === 'gemv' || cfg.kernel === 'gemv_sg') && !!cfg.wide &&
    ldw % 8 === 0 && wBatch % 8 === 0 && params.w_off % 8 === 0 && (wb.range.size ?? 0) % 16 === 0;
  // f16 weights bind as packed u32 words and are widened with integer ops (kernels/lib/linear_half.wgsl): no
  // shader-f16 needed, and several times faster than f16 loads on lavapipe.
  const load = wide ? 'linear_load_vec8_f16' : `linear_load_${vec4 ? 'vec4' : 'scalar'}${f16 ? '_f16' : ''}`;
  const base = {
    ...LINEAR_IO,
    // HT (f16 arithmetic) also makes the prelude `enable f16;`.
    aliases: { XT: vec4 ? 'vec4f' : 'f32', WT: f16 ? (wide ? 'vec4u' : vec4 ? 'vec2u' : 'u32') : vec4 ? 'vec4f' : 'f32', ...(opts.f16Math ? { HT: 'f16' } : {}) },
    includes: ['activations', ...(f16 ? ['linear_half'] : []), load, 'linear_epilogue', opts.f16Math ? 'linear_quad_f16' : 'linear_quad_f32'],
  };
  if (cfg.kernel === 'gemv' || cfg.kernel === 'gemv_sg') {
    const sg = cfg.kernel === 'gemv_sg' ? fixedSubgroupSize(gpu) : 0;
    const perGroup = cfg.kernel === 'gemv_sg' ? cfg.groups : 1; // subgroups (each `rows` outputs) per workgroup
    const wgSize = cfg.kernel === 'gemv_sg' ? sg * cfg.groups : cfg.wg;
    const spec: KernelSpec = {
      file: sg ? 'linear_gemv_sg' : 'linear_gemv', ...base, params: { ...LINEAR_IO.params, groups_x: 'u32' },
      includes: [...base.includes, ...(wide ? [] : ['linear_load_w_quad']), 'linear_gemv_partial', ...(sg ? [] : ['gemv_tree_reduce'])],
      consts: { ...flags, ROWS: cfg.rows, MROWS: M, ...(sg ? { SG_SIZE: sg } : {}) }, workgroup: [wgSize], subgroups: !!sg,
    };
    const groups = Math.ceil(N / (cfg.rows * perGroup));
    const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
    const gy = Math.ceil(groups / gx);
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, { ...params, groups_x: gx }, [gx, gy, B], opts.label);
  } else if (cfg.kernel === 'gemm_sg') {
    const sg = fixedSubgroupSize(gpu);
    const spec: KernelSpec = {
      file: 'linear_sg', ...base, consts: { ...flags, TM: cfg.tm, TN: cfg.tn, SG_SIZE: sg }, workgroup: [sg * cfg.groups], subgroups: true,
    };
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [Math.ceil(N / (sg * cfg.tn)), Math.ceil(M / (cfg.tm * cfg.groups)), B], opts.label);
  } else {
    const { tm, tn, wg } = cfg;
    const spec: KernelSpec = {
      file: cfg.kernel === 'tiled' ? 'linear_tiled' : 'linear', ...base,
      consts: { ...flags, TM: tm, TN: tn, ...(cfg.kernel === 'tiled' ? { BK: cfg.bk } : {}) }, workgroup: [wg[0], wg[1]],
    };
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [Math.ceil(N / (tn * wg[0])), Math.ceil(M / (tm * wg[1])), B], opts.label);
  }
  return out;
}

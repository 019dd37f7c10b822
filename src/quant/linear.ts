// linear() with a quantised weight (src/quant/tensor.ts): the same Y = act(X·Wᵀ + b) with the same options,
// W dequantised in registers by kernels/linear_q_gemv.wgsl (few rows, bandwidth-bound) or kernels/linear_q.wgsl
// (tiled). linear() (src/ops/linear.ts) validates the shapes and strided views and computes the geometry, then
// delegates here, so both paths agree on every option; this file adds what quantisation constrains:
// - W is 2-D (one shared weight); a column window (`wCols`) must start and end on a group boundary (int4) or a
//   32-bit word (int8), because scales and packed words cover whole groups / words;
// - the dispatch decision is linear()'s (GEMV for ≤ GEMV_MAX_ROWS rows unless `tiled`); the GEMV's row count
//   is a compile-time constant (1..4 variants), so a decode step does no work for absent rows.
import type { KernelSpec } from '../gpu/pipelines.js';
import type { Tensor } from '../tensor.js';
import { ACT } from '../ops/activations.js';
import type { LinearOptions } from '../ops/linear.js';
import type { QuantizedTensor } from './tensor.js';
import { bind, bindOptional } from '../ops/views.js';

const LINEAR_Q_IO = {
  params: {
    M: 'u32', N: 'u32', K: 'u32',
    x_batch: 'u32', y_batch: 'u32', x_off: 'u32', w_off: 'u32', y_off: 'u32', b_off: 'u32',
    ldx: 'u32', ldw: 'u32', ldy: 'u32',
    group: 'u32', sgroup: 'u32', groups_row: 'u32', groups_x: 'u32',
  },
  bindings: { X: 'read f32', Q: 'read u32', S: 'read u32', Z: 'read u32', Bias: 'read f32', Y: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

/** What linear() computed for the call (its uniform values and decisions). */
export interface LinearGeometry {
  params: {
    M: number; N: number; K: number; x_batch: number; w_batch: number; y_batch: number;
    x_off: number; w_off: number; y_off: number; b_off: number; ldx: number; ldw: number; ldy: number;
  };
  gemv: boolean;
  flags: { HAS_BIAS: boolean; ACCUM: boolean; ACT: number };
  /** Grid z: row blocks (`rows`) or 1. */
  B: number;
}

export function linearQuantized(x: Tensor, w: QuantizedTensor, out: Tensor, opts: LinearOptions, geo: LinearGeometry): Tensor {
  const gpu = x.gpu;
  const what = `linear${opts.label ? ` (${opts.label})` : ''} with int${w.bits} weight ${w.label ?? ''}`;
  const p = geo.params;
  const epw = 32 / w.bits;
  // The loop group of the tiled kernel: a storage group (int4) or the whole window (int8: one scale per row).
  const group = w.bits === 4 ? w.group : p.K;
  if (p.K % group !== 0 || p.w_off % (w.bits === 4 ? w.group : epw) !== 0 || p.K % epw !== 0) {
    throw new Error(`${what}: the K window [${p.w_off}, ${p.w_off + p.K}) must start and end on a ${w.bits === 4 ? `group of ${w.group}` : '4-element word'}`);
  }
  if (p.M === 0 || p.N === 0) return out; // nothing to compute (and no zero-row GEMV variant)
  const consts = { ...geo.flags, BITS: w.bits, HAS_ZERO: w.zeroPoint };
  // Activation, bias and output views bind through src/ops/views.ts (aligned-down, element remainder added to
  // the geometry's offsets); the packed weight is always whole buffers of its own.
  const xb = bind(what, 'x', x);
  const bb = bindOptional(gpu, what, 'bias', opts.bias);
  const yb = bind(what, 'out', out);
  const params = {
    M: p.M, N: p.N, K: p.K, x_batch: p.x_batch, y_batch: p.y_batch, x_off: p.x_off + xb.off, w_off: p.w_off, y_off: p.y_off + yb.off,
    b_off: p.b_off + bb.off, ldx: p.ldx, ldw: p.ldw, ldy: p.ldy, group, sgroup: w.group, groups_row: w.groupsPerRow, groups_x: 0,
  };
  const buffers = {
    X: xb.range, Q: { buffer: w.q.qweight }, S: { buffer: w.q.scales }, Z: { buffer: w.q.qzeros ?? gpu.dummy },
    Bias: bb.range, Y: yb.range,
  };
  const base = { ...LINEAR_Q_IO, includes: ['activations', 'linear_epilogue', 'quant_weights'] };
  if (geo.gemv) {
    const ROWS = 4;
    const spec: KernelSpec = { file: 'linear_q_gemv', ...base, includes: [...base.includes, 'gemv_tree_reduce'], consts: { ...consts, ROWS, MROWS: p.M }, workgroup: [64] };
    const groups = Math.ceil(p.N / ROWS);
    const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
    const gy = Math.ceil(groups / gx);
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, { ...params, groups_x: gx }, [gx, gy, geo.B], opts.label);
  } else {
    // 4×4 outputs per invocation, 8×8 invocations (as the f32/f16 tiled kernel).
    const TM = 4, TN = 4, wg = [8, 8] as const;
    const spec: KernelSpec = { file: 'linear_q', ...base, consts: { ...consts, TM, TN }, workgroup: [wg[0], wg[1]] };
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [Math.ceil(p.N / (TN * wg[0])), Math.ceil(p.M / (TM * wg[1])), geo.B], opts.label);
  }
  return out;
}

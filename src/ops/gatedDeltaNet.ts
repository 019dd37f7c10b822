// Gated DeltaNet linear attention pieces (docs/architecture.md §5.3–§5.7): the short causal conv + SiLU, the
// gates, and the gated delta rule in its recurrent (decode) and chunked (prefill) forms.
//
// Kernels: gdn_conv (conv + state update), gdn_gates, gdn_recurrent, gdn_chunked_prep + gdn_chunked.
// Dispatch decisions live here:
// - conv: invocation per (channel, TT-token block); the state rewrite rides along in the same dispatch when
//   one block covers L (decode), else it is a second tiny dispatch (`state_update`) after the conv.
// - delta rule: `gatedDeltaRule` runs the recurrent kernel for L ≤ RECURRENT_MAX_L and the chunked pair
//   otherwise (see the constant). Both split the value columns of a head across workgroups (BV columns each),
//   so a 128×128 f32 state never has to fit in one workgroup's memory.
// Views: q/k/v/a/b/x are HeadViews into wider buffers; each binding covers the bytes a view touches from the
// aligned-down start and the remaining element offset goes in Params, so no view needs 256-byte alignment.
// Shapes go in Params; the pipeline key carries only what changes code: conv kernel size, weight dtypes, the
// dk bucket (128 / 256), the chunk size and ROLLED.
// Ragged batches (`segments`, cu_seqlens over the token axis): the conv and the chunked rule treat each segment as
// its own sequence from a zero state (cache-free prefill of several prompts at once; no state is read or stored),
// with blocks / chunks aligned to each segment's first token, so a segment's output never depends on the others.
import type { Gpu } from '../gpu/device.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { f, u, type BufferRange } from '../gpu/stream.js';
import { DTYPE_BYTES, Tensor } from '../tensor.js';
import { rwDummy } from './bind.js';
import { checkCuSeqlens, u32Table } from './segments.js';

/** Element (t, h, e) at offset + t*rowStride + h*(headStride ?? headDim) + e, counted in elements from the start of `tensor` (a Tensor view's own byte offset is added). */
export interface HeadView { tensor: Tensor; rowStride: number; offset?: number; headStride?: number }

export interface DeltaRuleArgs {
  q: HeadView; k: HeadView; v: HeadView;      // q,k: [L, Hk, dk]; v: [L, Hv, dv]
  g: Tensor; beta: Tensor;                    // [L, Hv]
  state: Tensor | null;                       // [Hv, dk, dv] f32, read and updated in place; null only with segments
  /** cu_seqlens: independent sequences from a zero state, final states not kept (chunked kernel only). */
  segments?: Int32Array;
  L: number; numKeyHeads: number; numValueHeads: number; keyDim: number; valueDim: number;
  out?: Tensor;                               // [L, Hv, dv] f32
}

/**
 * `gatedDeltaRule` uses the token-by-token kernel up to this many tokens, the chunked pair above. The
 * chunked form always works on full 64-row chunks (C×C matrices, an extra dispatch and scratch) and
 * parallelises nothing more across heads/columns than the recurrent one, so it only pays off once the
 * recurrent kernel's per-token barrier/reduction chain gets long; decode (L = 1) and short bursts stay
 * recurrent. Not tuned on a real GPU yet.
 */
export const RECURRENT_MAX_L = 16;
export const DEFAULT_CHUNK = 64;
/**
 * Loop rolling (the ROLLED const of gdn_recurrent / gdn_chunked_prep / gdn_chunked): 'auto' = rolled on
 * software adapters only (lavapipe's LLVM spends seconds unrolling the register-block loops of one variant),
 * unrolled on GPUs. Tests may set false to run the GPU code path on lavapipe.
 */
export const gdnConfig: { rolled: 'auto' | boolean } = { rolled: 'auto' };
const rolled = (gpu: Gpu) => (gdnConfig.rolled === 'auto' ? gpu.isSoftware : gdnConfig.rolled);
/** Conv tokens per invocation. */
const CONV_TT = 16;
const MAX_HEAD_DIM = 256;

// ---------------------------------------------------------------------------------------------------------
// helpers

/** A storage binding of the bytes a tensor range touches (from the aligned-down start, so any view offset
 * works without binding a whole, possibly huge, buffer) and the element offset of the range inside it. */
interface Bound { range: BufferRange; off: number; buffer: GPUBuffer }

function bindElems(op: string, name: string, t: Tensor, elemOff: number, extent: number): Bound {
  const gpu = t.gpu;
  const bpe = DTYPE_BYTES[t.dtype];
  if (t.offset % bpe !== 0) throw new Error(`${op}: ${name} tensor byte offset ${t.offset} is not a multiple of ${bpe}`);
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const start = t.offset + elemOff * bpe;
  const base = Math.floor(start / align) * align;
  const size = Math.min(Math.max(4, Math.ceil((start + Math.max(extent, 1) * bpe - base) / 4) * 4), t.buffer.size - base);
  if (size > gpu.limits.maxStorageBufferBindingSize) {
    throw new Error(`${op}: ${name} binding of ${size} bytes exceeds maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize}`);
  }
  return { range: { buffer: t.buffer, offset: base, size }, off: (start - base) / bpe, buffer: t.buffer };
}

const bindTensor = (op: string, name: string, t: Tensor): Bound => bindElems(op, name, t, 0, t.size);

interface ViewParams extends Bound { row: number; head: number }

/** Validates a HeadView of [L, numHeads, headDim] and binds the range it touches. */
function viewParams(op: string, name: string, v: HeadView, L: number, numHeads: number, headDim: number): ViewParams {
  const t = v.tensor;
  if (t.dtype !== 'f32') throw new Error(`${op}: ${name} must be f32, got ${t.dtype}`);
  const off = v.offset ?? 0;
  const head = v.headStride ?? headDim;
  for (const [k, x] of [['offset', off], ['rowStride', v.rowStride], ['headStride', head]] as const) {
    if (!Number.isInteger(x) || x < 0) throw new Error(`${op}: ${name}.${k} must be a non-negative integer, got ${x}`);
  }
  let extent = 1;
  if (L > 0) {
    const last = off + (L - 1) * v.rowStride + (numHeads - 1) * head + headDim - 1;
    if (last >= t.size) {
      throw new Error(`${op}: ${name} view [L=${L}, heads=${numHeads}, dim=${headDim}] (offset ${off}, rowStride ${v.rowStride}, headStride ${head}) reaches element ${last}, past tensor [${t.shape}] (${t.size} elements)`);
    }
    extent = last - off + 1;
  }
  return { ...bindElems(op, name, t, Math.min(off, Math.max(0, t.size - 1)), extent), row: v.rowStride, head };
}

function checkTensor(op: string, name: string, t: Tensor, size: number, shape: string, dtypes: readonly string[] = ['f32']): void {
  if (!dtypes.includes(t.dtype)) throw new Error(`${op}: ${name} must be ${dtypes.join(' or ')}, got ${t.dtype}`);
  if (t.size !== size) throw new Error(`${op}: ${name} [${t.shape}] must hold ${shape} = ${size} elements`);
}

/** WebGPU forbids one buffer bound read-only and read-write in the same dispatch. */
function checkDistinct(op: string, reads: [string, GPUBuffer][], writes: [string, GPUBuffer][]): void {
  for (let w = 0; w < writes.length; w++) {
    for (const [rn, rb] of reads) {
      if (rb === writes[w][1]) throw new Error(`${op}: ${writes[w][0]} (written) shares a GPU buffer with ${rn} (read); pass separate tensors`);
    }
    for (let w2 = w + 1; w2 < writes.length; w2++) {
      if (writes[w2][1] === writes[w][1]) throw new Error(`${op}: ${writes[w][0]} and ${writes[w2][0]} share a GPU buffer`);
    }
  }
}

function checkDims(op: string, L: number, extra: Record<string, number>): void {
  if (!Number.isInteger(L) || L < 0) throw new Error(`${op}: L must be a non-negative integer, got ${L}`);
  for (const [k, x] of Object.entries(extra)) {
    if (!Number.isInteger(x) || x < 1) throw new Error(`${op}: ${k} must be a positive integer, got ${x}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// conv

/** Depthwise causal conv over time on x [L, C] (a strided row view: x.tensor, rowStride, offset), weight [C, 1, K] (f32|f16; tap K-1 multiplies the current token), no bias, then SiLU. `state` [K-1, C] f32 holds the previous K-1 *pre-activation inputs* (zeros at sequence start); it is read as history and overwritten with the last K-1 inputs (including history when L < K-1). Output [L, C] f32. */
export function causalConv1dSilu(
  x: HeadView /* headDim = C, numHeads 1 */, weight: Tensor, state: Tensor | null,
  opts: { L: number; channels: number; kernel: number; out?: Tensor; segments?: Int32Array },
): Tensor {
  const op = 'causalConv1dSilu';
  const { L, channels: C, kernel: K } = opts;
  checkDims(op, L, { channels: C });
  if (!Number.isInteger(K) || K < 2 || K > 16) throw new Error(`${op}: kernel must be an integer in [2, 16], got ${K}`);
  const gpu: Gpu = x.tensor.gpu;
  const xv = viewParams(op, 'x', x, L, 1, C);
  checkTensor(op, 'weight', weight, C * K, `[${C}, 1, ${K}]`, ['f32', 'f16']);
  const segs = opts.segments;
  if (segs) checkCuSeqlens(op, segs, L);
  else if (!state) throw new Error(`${op}: a state is required without segments`);
  if (state) checkTensor(op, 'state', state, (K - 1) * C, `[${K - 1}, ${C}]`);
  const out = opts.out ?? Tensor.empty(gpu, [L, C], 'f32', 'gdn.conv');
  checkTensor(op, 'out', out, L * C, `[${L}, ${C}]`);
  checkDistinct(op, [['x', xv.buffer], ['weight', weight.buffer]], [...(state ? [['state', state.buffer] as [string, GPUBuffer]] : []), ['out', out.buffer]]);
  if (L === 0) return out;

  let blocks = Math.ceil(L / CONV_TT);
  let nseg = 0;
  let segRange: BufferRange = { buffer: gpu.dummy };
  if (segs) {
    nseg = segs.length - 1;
    blocks = 0;
    for (let k = 0; k < nseg; k++) blocks = Math.max(blocks, Math.ceil((segs[k + 1] - segs[k]) / CONV_TT));
    segRange = u32Table(gpu, `gdn.segments ${segs.join(',')}`, () => Uint32Array.from(segs)).binding();
  }
  const single = blocks === 1 || segs !== undefined; // segments: no state to rewrite
  const base = {
    file: 'gdn_conv',
    bindings: ['read', 'read', 'read', 'write', 'write'],
    consts: { KS: K, TT: CONV_TT },
    aliases: { WT: weight.dtype === 'f16' ? 'f16' : 'f32' },
    includes: ['activations'],
    workgroup: [64],
  } satisfies KernelSpec;
  const wb = bindTensor(op, 'weight', weight), ob = bindTensor(op, 'out', out);
  const sb = state ? bindTensor(op, 'state', state) : { range: { buffer: rwDummy(gpu) }, off: 0 };
  const buffers = [xv.range, wb.range, segRange, sb.range, ob.range];
  const params = [u(L), u(C), u(xv.off), u(xv.row), u(wb.off), u(sb.off), u(ob.off), u(single ? 1 : 0), u(nseg)];
  const gx = Math.ceil(C / 64);
  gpu.stream.dispatch(gpu.pipelines.get(base), buffers, params, [gx, blocks, Math.max(1, nseg)], 'gdn.conv');
  if (!single) gpu.stream.dispatch(gpu.pipelines.get({ ...base, entry: 'state_update' }), buffers, params, [gx], 'gdn.conv_state');
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// gates

/** g[t, j] = −exp(A_log[j]) · softplus(a[t, j] + dt_bias[j]);  beta[t, j] = sigmoid(b[t, j]).  a, b are [L, Hv] views (they come out of one fused projection, so allow rowStride/offset). */
export function gdnGates(a: HeadView, b: HeadView, aLog: Tensor, dtBias: Tensor, opts: { L: number; numValueHeads: number }): { g: Tensor; beta: Tensor } {
  const op = 'gdnGates';
  const { L, numValueHeads: Hv } = opts;
  checkDims(op, L, { numValueHeads: Hv });
  const gpu: Gpu = a.tensor.gpu;
  // A view of [L, Hv] scalars: heads of dimension 1 (headStride defaults to 1).
  const av = viewParams(op, 'a', a, L, Hv, 1);
  const bv = viewParams(op, 'b', b, L, Hv, 1);
  checkTensor(op, 'A_log', aLog, Hv, `[${Hv}]`, ['f32', 'f16']);
  checkTensor(op, 'dt_bias', dtBias, Hv, `[${Hv}]`, ['f32', 'f16']);
  const g = Tensor.empty(gpu, [L, Hv], 'f32', 'gdn.g');
  const beta = Tensor.empty(gpu, [L, Hv], 'f32', 'gdn.beta');
  if (L === 0) return { g, beta };
  const spec: KernelSpec = {
    file: 'gdn_gates',
    bindings: ['read', 'read', 'read', 'read', 'write', 'write'],
    aliases: { AT: aLog.dtype === 'f16' ? 'f16' : 'f32', DT: dtBias.dtype === 'f16' ? 'f16' : 'f32' },
    includes: ['activations'],
    workgroup: [64],
  };
  const groups = Math.ceil((L * Hv) / 64);
  const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  const gy = Math.ceil(groups / gx);
  const [alb, dtb, gb, bb] = [bindTensor(op, 'A_log', aLog), bindTensor(op, 'dt_bias', dtBias), bindTensor(op, 'g', g), bindTensor(op, 'beta', beta)];
  gpu.stream.dispatch(
    gpu.pipelines.get(spec),
    [av.range, bv.range, alb.range, dtb.range, gb.range, bb.range],
    [u(L), u(Hv), u(av.off), u(av.row), u(av.head), u(bv.off), u(bv.row), u(bv.head), u(alb.off), u(dtb.off), u(gb.off), u(bb.off), u(gx)],
    [gx, gy],
    'gdn.gates',
  );
  return { g, beta };
}

// ---------------------------------------------------------------------------------------------------------
// delta rule

interface Checked {
  gpu: Gpu;
  L: number; Hk: number; Hv: number; dk: number; dv: number;
  q: ViewParams; k: ViewParams; v: ViewParams;
  out: Tensor;
  g: Bound; beta: Bound; state: Bound; o: Bound;
  /** dk bucket; value columns per workgroup and row groups (workgroup = [BV, RG], 256 invocations). */
  DKB: number; BV: number; RG: number;
}

function checkDeltaArgs(op: string, a: DeltaRuleArgs): Checked {
  const { L, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv } = a;
  checkDims(op, L, { numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv });
  if (Hv % Hk !== 0) throw new Error(`${op}: numValueHeads ${Hv} must be a multiple of numKeyHeads ${Hk}`);
  for (const [k, d] of [['keyDim', dk], ['valueDim', dv]] as const) {
    if (d % 4 !== 0 || d > MAX_HEAD_DIM) throw new Error(`${op}: ${k} ${d} must be a multiple of 4 and at most ${MAX_HEAD_DIM}`);
  }
  const gpu: Gpu = a.q.tensor.gpu;
  const q = viewParams(op, 'q', a.q, L, Hk, dk);
  const k = viewParams(op, 'k', a.k, L, Hk, dk);
  const v = viewParams(op, 'v', a.v, L, Hv, dv);
  checkTensor(op, 'g', a.g, L * Hv, `[${L}, ${Hv}]`);
  checkTensor(op, 'beta', a.beta, L * Hv, `[${L}, ${Hv}]`);
  if (a.segments) checkCuSeqlens(op, a.segments, L);
  else if (!a.state) throw new Error(`${op}: a state is required without segments`);
  if (a.state) checkTensor(op, 'state', a.state, Hv * dk * dv, `[${Hv}, ${dk}, ${dv}]`);
  const out = a.out ?? Tensor.empty(gpu, [L, Hv, dv], 'f32', 'gdn.o');
  checkTensor(op, 'out', out, L * Hv * dv, `[${L}, ${Hv}, ${dv}]`);
  checkDistinct(
    op,
    [['q', q.buffer], ['k', k.buffer], ['v', v.buffer], ['g', a.g.buffer], ['beta', a.beta.buffer]],
    [...(a.state ? [['state', a.state.buffer] as [string, GPUBuffer]] : []), ['out', out.buffer]],
  );
  // dk is bucketed (DKB = 128 or 256) so one pipeline serves all dk in a bucket; the 4B model is exactly 128.
  // 32 columns × 8 row groups; for dk > 128 half the columns, so the chunked kernel's S block
  // (DKB × BV f32) stays at 16 KiB of workgroup memory (lavapipe allows 32 KiB in all).
  const DKB = dk <= 128 ? 128 : 256;
  const [BV, RG] = DKB === 128 ? [32, 8] : [16, 16];
  const g = bindTensor(op, 'g', a.g), beta = bindTensor(op, 'beta', a.beta);
  const o = bindTensor(op, 'out', out);
  const state: Bound = a.state ? bindTensor(op, 'state', a.state) : { range: { buffer: rwDummy(gpu) }, off: 0, buffer: rwDummy(gpu) };
  return { gpu, L, Hk, Hv, dk, dv, q, k, v, out, g, beta, state, o, DKB, BV, RG };
}

const qkvParams = (c: Checked, withV: boolean) => [
  u(c.q.off), u(c.q.row), u(c.q.head), u(c.k.off), u(c.k.row), u(c.k.head),
  ...(withV ? [u(c.v.off), u(c.v.row), u(c.v.head)] : []),
];

/** Both L2-normalise q and k per head (eps 1e-6 inside rsqrt) and scale q by keyDim^-0.5 internally. */
export function gatedDeltaRuleRecurrent(a: DeltaRuleArgs): Tensor {
  if (a.segments) throw new Error('gatedDeltaRuleRecurrent: segments need the chunked kernel (gatedDeltaRuleChunked)');
  const c = checkDeltaArgs('gatedDeltaRuleRecurrent', a);
  if (c.L === 0) return c.out;
  const { gpu } = c;
  const spec: KernelSpec = {
    file: 'gdn_recurrent',
    bindings: ['read', 'read', 'read', 'read', 'read', 'write', 'write'],
    consts: { DKB: c.DKB, ROLLED: rolled(gpu) },
    workgroup: [c.BV, c.RG],
  };
  gpu.stream.dispatch(
    gpu.pipelines.get(spec),
    [c.q.range, c.k.range, c.v.range, c.g.range, c.beta.range, c.state.range, c.o.range],
    [u(c.L), u(c.Hk), u(c.Hv), u(c.dk), u(c.dv), ...qkvParams(c, true), u(c.g.off), u(c.beta.off), u(c.state.off), u(c.o.off), f(1 / Math.sqrt(c.dk)), u(Math.ceil(c.DKB / c.RG))],
    [Math.ceil(c.dv / c.BV), c.Hv],
    'gdn.recurrent',
  );
  return c.out;
}

/** Prefill: chunked WY form of docs/architecture.md §5.6 (gdn_chunked_prep: per-chunk T = (I+M)⁻¹, P, decay factors; gdn_chunked: the state pass). */
export function gatedDeltaRuleChunked(a: DeltaRuleArgs & { chunkSize?: number /* 64 */ }): Tensor {
  const op = 'gatedDeltaRuleChunked';
  const c = checkDeltaArgs(op, a);
  const CH = a.chunkSize ?? DEFAULT_CHUNK;
  if (!Number.isInteger(CH) || CH < 1 || CH > 64) throw new Error(`${op}: chunkSize must be an integer in [1, 64], got ${CH}`);
  if (c.L === 0) return c.out;
  const { gpu, Hv } = c;
  // Segments: chunks start at every segment's first token and are numbered globally; the table is
  // [cu_seqlens (n+1) | cumulative chunk counts (n+1)].
  const segs = a.segments;
  const nseg = segs ? segs.length - 1 : 0;
  let nC = Math.ceil(c.L / CH);
  let maxC = nC;
  let segRange: BufferRange = { buffer: gpu.dummy };
  if (segs) {
    const cum = new Uint32Array(nseg + 1);
    maxC = 0;
    for (let k = 0; k < nseg; k++) {
      const ck = Math.ceil((segs[k + 1] - segs[k]) / CH);
      cum[k + 1] = cum[k] + ck;
      maxC = Math.max(maxC, ck);
    }
    nC = cum[nseg];
    segRange = u32Table(gpu, `gdn.chunks ${CH}|${segs.join(',')}`, () => {
      const d = new Uint32Array(2 * nseg + 2);
      d.set(segs);
      d.set(cum, nseg + 1);
      return d;
    }).binding();
  }
  // Scratch, released right after encoding (the pool hands it out again only after the next submit).
  const Tm = Tensor.empty(gpu, [Hv, nC, CH, CH], 'f32', 'gdn.T');
  const Pm = Tensor.empty(gpu, [Hv, nC, CH, CH], 'f32', 'gdn.P');
  const aux = Tensor.empty(gpu, [Hv, nC, CH + 1, 4], 'f32', 'gdn.aux');
  const prep: KernelSpec = {
    file: 'gdn_chunked_prep',
    bindings: ['read', 'read', 'read', 'read', 'read', 'write', 'write', 'write'],
    consts: { CH, TI: 32, ROLLED: rolled(gpu) },
    workgroup: [256],
  };
  gpu.stream.dispatch(
    gpu.pipelines.get(prep),
    [c.q.range, c.k.range, c.g.range, c.beta.range, segRange, Tm.binding(), Pm.binding(), aux.binding()],
    [u(c.L), u(c.Hk), u(Hv), u(nC), u(c.dk), u(CH), ...qkvParams(c, false), u(c.g.off), u(c.beta.off), f(1 / Math.sqrt(c.dk)), u(4), u(nseg)],
    [maxC, Hv, Math.max(1, nseg)],
    'gdn.chunk_prep',
  );
  const main: KernelSpec = {
    file: 'gdn_chunked',
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'read', 'write', 'write'],
    consts: { DKB: c.DKB, CH, ROLLED: rolled(gpu) },
    workgroup: [c.BV, c.RG],
  };
  gpu.stream.dispatch(
    gpu.pipelines.get(main),
    [c.q.range, c.k.range, c.v.range, Tm.binding(), Pm.binding(), aux.binding(), segRange, c.state.range, c.o.range],
    [u(c.L), u(c.Hk), u(Hv), u(c.dv), u(nC), u(c.dk), ...qkvParams(c, true), u(c.state.off), u(c.o.off), u(Math.ceil(CH / c.RG)), u(Math.ceil(c.DKB / c.RG)), u(nseg)],
    [Math.ceil(c.dv / c.BV), Hv, Math.max(1, nseg)],
    'gdn.chunked',
  );
  Tm.release();
  Pm.release();
  aux.release();
  return c.out;
}

/**
 * Picks: recurrent for L ≤ RECURRENT_MAX_L (decode), chunked otherwise. Segments always take the chunked kernel
 * (whatever their lengths), so a segment's arithmetic does not depend on the batch it is in.
 */
export function gatedDeltaRule(a: DeltaRuleArgs): Tensor {
  return a.L <= RECURRENT_MAX_L && !a.segments ? gatedDeltaRuleRecurrent(a) : gatedDeltaRuleChunked(a);
}

// Gated DeltaNet linear attention pieces (docs/architecture.md §5.3–§5.7): the short causal conv + SiLU, the
// gates, and the gated delta rule in its recurrent (decode) and chunked (prefill) forms.
//
// Kernels (kernels/gated_delta_net_*.wgsl): _conv (conv + state update), _gates, _recurrent, _chunked_prep +
// _chunked; their interfaces are declared below (CONV_IO, …) and generated into the WGSL.
// Dispatch decisions live here:
// - conv: invocation per (channel, TT-token block); the state rewrite rides along in the same dispatch when
//   one block covers L (decode), else it is a second tiny dispatch (`state_update`) after the conv.
// - delta rule: `gatedDeltaRule` runs the recurrent kernel for L ≤ RECURRENT_MAX_L and the chunked pair
//   otherwise (see the constant). Both split the value columns of a head across workgroups (BV columns each),
//   so a 128×128 f32 state never has to fit in one workgroup's memory.
// Views: q/k/v/a/b/x are HeadViews into wider buffers, bound by ./views.ts (aligned-down binding, element offset
// in Params), so no view needs 256-byte alignment.
// Shapes go in Params; the pipeline key carries only what changes code: conv kernel size, weight dtypes, the
// dk bucket (128 / 256), the chunk size and ROLLED.
// Ragged batches (`segments`, cu_seqlens over the token axis): the conv and the chunked rule treat each segment as
// its own sequence (cache-free prefill of several prompts at once), with blocks / chunks aligned to each segment's
// first token, so a segment's output never depends on the others. Each segment starts from a zero state, or, when
// a `state` tensor is given, from its own initial state in it ([nseg, …]: segment s at s·(state size); the
// policy's prompt-prefix cache, src/policy/prefixCache.ts); segment mode never writes a state.
import type { Gpu } from '../gpu/device.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import type { BufferRange } from '../gpu/stream.js';
import { Tensor } from '../tensor.js';
import { bind, bindHeads, checkDistinct, rwDummy, type Bound, type BoundHeads, type HeadView } from './views.js';
import { checkCuSeqlens, u32Table } from './segments.js';
import { tunedDeltaRuleChunk } from '../tune/deltaRuleChunk.js';

type IO = Pick<KernelSpec, 'params' | 'bindings'>;
// Views are (off, row[, head]) in elements: element (t, h, e) of q at q_off + t·q_row + h·q_head + e.
const QK_PARAMS = { q_off: 'u32', q_row: 'u32', q_head: 'u32', k_off: 'u32', k_row: 'u32', k_head: 'u32' } as const;
const V_PARAMS = { v_off: 'u32', v_row: 'u32', v_head: 'u32' } as const;

// x [L, C] rows at x_off + t·x_row; W[c, k] at w_off + c·KS + k; state row r (0 = oldest) at s_off + r·C;
// y [L, C] contiguous. single = 1: this dispatch also rewrites the state (one block covers L). nseg: segments in
// Seg (0 = one sequence with the state as history). seg_state = 1 (segments only): St holds one [K-1, C] history
// per segment (read only), else segments start from zeros.
const CONV_IO = {
  params: { L: 'u32', C: 'u32', x_off: 'u32', x_row: 'u32', w_off: 'u32', s_off: 'u32', y_off: 'u32', single: 'u32', nseg: 'u32', seg_state: 'u32' },
  bindings: { X: 'read f32', W: 'read WT', Seg: 'read u32', St: 'write f32', Y: 'write f32' },
} satisfies IO;

// a, b [L, Hv] views (a[t, j] at a_off + t·a_row + j·a_head); A_log, dt_bias (AT / DT: f32 or f16); g, beta out.
const GATES_IO = {
  params: {
    L: 'u32', Hv: 'u32', a_off: 'u32', a_row: 'u32', a_head: 'u32', b_off: 'u32', b_row: 'u32', b_head: 'u32',
    al_off: 'u32', dt_off: 'u32', g_off: 'u32', beta_off: 'u32', groups_x: 'u32',
  },
  bindings: { A: 'read f32', B: 'read f32', ALog: 'read AT', DtBias: 'read DT', G: 'write f32', Beta: 'write f32' },
} satisfies IO;

// g, beta [L, Hv] and out [L, Hv, dv] contiguous; state [Hv, dk, dv]; scale = dk^-1/2; nsr = NSR (read only when
// ROLLED: a runtime trip count keeps lavapipe from unrolling).
const RECURRENT_IO = {
  params: {
    L: 'u32', Hk: 'u32', Hv: 'u32', dk: 'u32', dv: 'u32', ...QK_PARAMS, ...V_PARAMS,
    g_off: 'u32', beta_off: 'u32', s_off: 'u32', o_off: 'u32', scale: 'f32', nsr: 'u32',
  },
  bindings: { Q: 'read f32', K: 'read f32', V: 'read f32', G: 'read f32', Beta: 'read f32', St: 'write f32', O: 'write f32' },
} satisfies IO;

// Per (chunk, v-head) scratch: Tm, Pm [Hv, nC, CH, CH], Aux [Hv, nC, CH + 1] vec4f. ch = CH (a runtime trip count
// keeps llvmpipe from unrolling the solve). nseg: segments in Seg (0 = one sequence of nC chunks).
const CHUNKED_PREP_IO = {
  params: { L: 'u32', Hk: 'u32', Hv: 'u32', nC: 'u32', dk: 'u32', ch: 'u32', ...QK_PARAMS, g_off: 'u32', beta_off: 'u32', scale: 'f32', nseg: 'u32' },
  bindings: { Q: 'read f32', K: 'read f32', G: 'read f32', Beta: 'read f32', Seg: 'read u32', Tm: 'write f32', Pm: 'write f32', Aux: 'write vec4f' },
} satisfies IO;

// The prep's scratch read back; nrm, nsr = NRM, NSR (read only when ROLLED); nseg as above (then no state is
// written; seg_state = 1: St holds one [Hv, dk, dv] initial state per segment, read only; 0: zeros).
const CHUNKED_IO = {
  params: {
    L: 'u32', Hk: 'u32', Hv: 'u32', dv: 'u32', nC: 'u32', dk: 'u32', ...QK_PARAMS, ...V_PARAMS,
    s_off: 'u32', o_off: 'u32', nrm: 'u32', nsr: 'u32', nseg: 'u32', seg_state: 'u32',
  },
  bindings: {
    Q: 'read f32', K: 'read f32', V: 'read f32', Tm: 'read f32', Pm: 'read f32', Aux: 'read vec4f', Seg: 'read u32',
    St: 'write f32', O: 'write f32',
  },
} satisfies IO;

export interface DeltaRuleArgs {
  q: HeadView; k: HeadView; v: HeadView;      // q,k: [L, Hk, dk]; v: [L, Hv, dv]
  g: Tensor; beta: Tensor;                    // [L, Hv]
  /**
   * [Hv, dk, dv] f32, read and updated in place. With segments: null (every segment from a zero state) or the
   * segments' initial states [nseg, Hv, dk, dv], read only.
   */
  state: Tensor | null;
  /** cu_seqlens: independent sequences, final states not kept (chunked kernel only). */
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
 * Loop rolling (the ROLLED const of the recurrent and chunked kernels): 'auto' = rolled on
 * software adapters only (lavapipe's LLVM spends seconds unrolling the register-block loops of one variant),
 * unrolled on GPUs. Tests may set false to run the GPU code path on lavapipe.
 */
export const gatedDeltaNetConfig: { rolled: 'auto' | boolean; chunk: 'auto' | number } = { rolled: 'auto', chunk: 'auto' };
/** Chunk size when the caller names none: gatedDeltaNetConfig.chunk, 'auto' = this adapter's tuned entry for (dk, dv) (src/tune/deltaRuleChunk.ts), else DEFAULT_CHUNK. */
const chunkFor = (gpu: Gpu, dk: number, dv: number) => (gatedDeltaNetConfig.chunk === 'auto' ? tunedDeltaRuleChunk(gpu, dk, dv) ?? DEFAULT_CHUNK : gatedDeltaNetConfig.chunk);
const rolled = (gpu: Gpu) => (gatedDeltaNetConfig.rolled === 'auto' ? gpu.isSoftware : gatedDeltaNetConfig.rolled);
/** Conv tokens per invocation. */
const CONV_TT = 16;
const MAX_HEAD_DIM = 256;

// ---------------------------------------------------------------------------------------------------------
// helpers

function checkTensor(op: string, name: string, t: Tensor, size: number, shape: string, dtypes: readonly string[] = ['f32']): void {
  if (!dtypes.includes(t.dtype)) throw new Error(`${op}: ${name} must be ${dtypes.join(' or ')}, got ${t.dtype}`);
  if (t.size !== size) throw new Error(`${op}: ${name} [${t.shape}] must hold ${shape} = ${size} elements`);
}

function checkDims(op: string, L: number, extra: Record<string, number>): void {
  if (!Number.isInteger(L) || L < 0) throw new Error(`${op}: L must be a non-negative integer, got ${L}`);
  for (const [k, x] of Object.entries(extra)) {
    if (!Number.isInteger(x) || x < 1) throw new Error(`${op}: ${k} must be a positive integer, got ${x}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// conv

/** Depthwise causal conv over time on x [L, C] (a strided row view: x.tensor, rowStride, offset), weight [C, 1, K] (f32|f16; tap K-1 multiplies the current token), no bias, then SiLU. `state` [K-1, C] f32 holds the previous K-1 *pre-activation inputs* (zeros at sequence start); it is read as history and overwritten with the last K-1 inputs (including history when L < K-1). Output [L, C] f32. With `segments`, `state` is null (zero histories) or [nseg, K-1, C]: one history per segment, read only. */
export function causalConv1dSilu(
  x: HeadView /* headDim = C, numHeads 1 */, weight: Tensor, state: Tensor | null,
  opts: { L: number; channels: number; kernel: number; out?: Tensor; segments?: Int32Array },
): Tensor {
  const op = 'causalConv1dSilu';
  const { L, channels: C, kernel: K } = opts;
  checkDims(op, L, { channels: C });
  if (!Number.isInteger(K) || K < 2 || K > 16) throw new Error(`${op}: kernel must be an integer in [2, 16], got ${K}`);
  const gpu: Gpu = x.tensor.gpu;
  const xv = bindHeads(op, 'x', x, L, 1, C);
  checkTensor(op, 'weight', weight, C * K, `[${C}, 1, ${K}]`, ['f32', 'f16']);
  const segs = opts.segments;
  if (segs) checkCuSeqlens(op, segs, L);
  else if (!state) throw new Error(`${op}: a state is required without segments`);
  const nseg = segs ? segs.length - 1 : 0;
  if (state && segs) checkTensor(op, 'state (per-segment histories)', state, nseg * (K - 1) * C, `[${nseg}, ${K - 1}, ${C}]`);
  else if (state) checkTensor(op, 'state', state, (K - 1) * C, `[${K - 1}, ${C}]`);
  const out = opts.out ?? Tensor.empty(gpu, [L, C], 'f32', 'gatedDeltaNet.conv');
  checkTensor(op, 'out', out, L * C, `[${L}, ${C}]`);
  checkDistinct(op, [['x', x.tensor], ['weight', weight]], [['state', state], ['out', out]]);
  if (L === 0) return out;

  let blocks = Math.ceil(L / CONV_TT);
  let segRange: BufferRange = { buffer: gpu.dummy };
  if (segs) {
    blocks = 0;
    for (let k = 0; k < nseg; k++) blocks = Math.max(blocks, Math.ceil((segs[k + 1] - segs[k]) / CONV_TT));
    segRange = bind(op, 'segments', u32Table(gpu, `gatedDeltaNet.segments ${segs.join(',')}`, () => Uint32Array.from(segs))).range;
  }
  const single = blocks === 1 || segs !== undefined; // segments: no state to rewrite
  const spec = {
    file: 'gated_delta_net_conv',
    ...CONV_IO,
    consts: { KS: K, TT: CONV_TT },
    aliases: { WT: weight.dtype === 'f16' ? 'f16' : 'f32' },
    includes: ['activations'],
    workgroup: [64],
  } satisfies KernelSpec;
  const wb = bind(op, 'weight', weight), ob = bind(op, 'out', out);
  const sb: Bound = state ? bind(op, 'state', state) : { range: { buffer: rwDummy(gpu) }, off: 0 };
  const buffers = { X: xv.range, W: wb.range, Seg: segRange, St: sb.range, Y: ob.range };
  const params = {
    L, C, x_off: xv.off, x_row: xv.row, w_off: wb.off, s_off: sb.off, y_off: ob.off, single: single ? 1 : 0, nseg,
    seg_state: segs && state ? 1 : 0,
  };
  const gx = Math.ceil(C / 64);
  gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [gx, blocks, Math.max(1, nseg)], 'gatedDeltaNet.conv');
  if (!single) gpu.stream.dispatch(gpu.pipelines.get({ ...spec, entry: 'state_update' }), buffers, params, [gx], 'gatedDeltaNet.conv_state');
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// gates

/** g[t, j] = −exp(A_log[j]) · softplus(a[t, j] + dt_bias[j]);  beta[t, j] = sigmoid(b[t, j]).  a, b are [L, Hv] views (they come out of one fused projection, so allow rowStride/offset). */
export function gatedDeltaNetGates(a: HeadView, b: HeadView, aLog: Tensor, dtBias: Tensor, opts: { L: number; numValueHeads: number }): { g: Tensor; beta: Tensor } {
  const op = 'gatedDeltaNetGates';
  const { L, numValueHeads: Hv } = opts;
  checkDims(op, L, { numValueHeads: Hv });
  const gpu: Gpu = a.tensor.gpu;
  // A view of [L, Hv] scalars: heads of dimension 1 (headStride defaults to 1).
  const av = bindHeads(op, 'a', a, L, Hv, 1);
  const bv = bindHeads(op, 'b', b, L, Hv, 1);
  checkTensor(op, 'A_log', aLog, Hv, `[${Hv}]`, ['f32', 'f16']);
  checkTensor(op, 'dt_bias', dtBias, Hv, `[${Hv}]`, ['f32', 'f16']);
  const g = Tensor.empty(gpu, [L, Hv], 'f32', 'gatedDeltaNet.g');
  const beta = Tensor.empty(gpu, [L, Hv], 'f32', 'gatedDeltaNet.beta');
  if (L === 0) return { g, beta };
  const spec: KernelSpec = {
    file: 'gated_delta_net_gates',
    ...GATES_IO,
    aliases: { AT: aLog.dtype === 'f16' ? 'f16' : 'f32', DT: dtBias.dtype === 'f16' ? 'f16' : 'f32' },
    includes: ['activations'],
    workgroup: [64],
  };
  const groups = Math.ceil((L * Hv) / 64);
  const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  const gy = Math.ceil(groups / gx);
  const [alb, dtb, gb, bb] = [bind(op, 'A_log', aLog), bind(op, 'dt_bias', dtBias), bind(op, 'g', g), bind(op, 'beta', beta)];
  gpu.stream.dispatch(
    gpu.pipelines.get(spec),
    { A: av.range, B: bv.range, ALog: alb.range, DtBias: dtb.range, G: gb.range, Beta: bb.range },
    {
      L, Hv, a_off: av.off, a_row: av.row, a_head: av.head, b_off: bv.off, b_row: bv.row, b_head: bv.head,
      al_off: alb.off, dt_off: dtb.off, g_off: gb.off, beta_off: bb.off, groups_x: gx,
    },
    [gx, gy],
    'gatedDeltaNet.gates',
  );
  return { g, beta };
}

// ---------------------------------------------------------------------------------------------------------
// delta rule

interface Checked {
  gpu: Gpu;
  L: number; Hk: number; Hv: number; dk: number; dv: number;
  q: BoundHeads; k: BoundHeads; v: BoundHeads;
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
  const q = bindHeads(op, 'q', a.q, L, Hk, dk);
  const k = bindHeads(op, 'k', a.k, L, Hk, dk);
  const v = bindHeads(op, 'v', a.v, L, Hv, dv);
  checkTensor(op, 'g', a.g, L * Hv, `[${L}, ${Hv}]`);
  checkTensor(op, 'beta', a.beta, L * Hv, `[${L}, ${Hv}]`);
  if (a.segments) checkCuSeqlens(op, a.segments, L);
  else if (!a.state) throw new Error(`${op}: a state is required without segments`);
  if (a.state && a.segments) {
    const n = a.segments.length - 1;
    checkTensor(op, 'state (per-segment initial states)', a.state, n * Hv * dk * dv, `[${n}, ${Hv}, ${dk}, ${dv}]`);
  } else if (a.state) checkTensor(op, 'state', a.state, Hv * dk * dv, `[${Hv}, ${dk}, ${dv}]`);
  const out = a.out ?? Tensor.empty(gpu, [L, Hv, dv], 'f32', 'gatedDeltaNet.o');
  checkTensor(op, 'out', out, L * Hv * dv, `[${L}, ${Hv}, ${dv}]`);
  checkDistinct(op, [['q', a.q.tensor], ['k', a.k.tensor], ['v', a.v.tensor], ['g', a.g], ['beta', a.beta]], [['state', a.state], ['out', out]]);
  // dk is bucketed (DKB = 128 or 256) so one pipeline serves all dk in a bucket; the 4B model is exactly 128.
  // 32 columns × 8 row groups; for dk > 128 half the columns, so the chunked kernel's S block
  // (DKB × BV f32) stays at 16 KiB of workgroup memory (lavapipe allows 32 KiB in all).
  const DKB = dk <= 128 ? 128 : 256;
  const [BV, RG] = DKB === 128 ? [32, 8] : [16, 16];
  const g = bind(op, 'g', a.g), beta = bind(op, 'beta', a.beta);
  const o = bind(op, 'out', out);
  const state: Bound = a.state ? bind(op, 'state', a.state) : { range: { buffer: rwDummy(gpu) }, off: 0 };
  return { gpu, L, Hk, Hv, dk, dv, q, k, v, out, g, beta, state, o, DKB, BV, RG };
}

const qkParams = (c: Checked) => ({ q_off: c.q.off, q_row: c.q.row, q_head: c.q.head, k_off: c.k.off, k_row: c.k.row, k_head: c.k.head });
const vParams = (c: Checked) => ({ v_off: c.v.off, v_row: c.v.row, v_head: c.v.head });

/** Both L2-normalise q and k per head (eps 1e-6 inside rsqrt) and scale q by keyDim^-0.5 internally. */
export function gatedDeltaRuleRecurrent(a: DeltaRuleArgs): Tensor {
  if (a.segments) throw new Error('gatedDeltaRuleRecurrent: segments need the chunked kernel (gatedDeltaRuleChunked)');
  const c = checkDeltaArgs('gatedDeltaRuleRecurrent', a);
  if (c.L === 0) return c.out;
  const { gpu } = c;
  const spec: KernelSpec = {
    file: 'gated_delta_net_recurrent',
    ...RECURRENT_IO,
    consts: { DKB: c.DKB, ROLLED: rolled(gpu) },
    workgroup: [c.BV, c.RG],
  };
  gpu.stream.dispatch(
    gpu.pipelines.get(spec),
    { Q: c.q.range, K: c.k.range, V: c.v.range, G: c.g.range, Beta: c.beta.range, St: c.state.range, O: c.o.range },
    {
      L: c.L, Hk: c.Hk, Hv: c.Hv, dk: c.dk, dv: c.dv, ...qkParams(c), ...vParams(c),
      g_off: c.g.off, beta_off: c.beta.off, s_off: c.state.off, o_off: c.o.off, scale: 1 / Math.sqrt(c.dk), nsr: Math.ceil(c.DKB / c.RG),
    },
    [Math.ceil(c.dv / c.BV), c.Hv],
    'gatedDeltaNet.recurrent',
  );
  return c.out;
}

/** Prefill: chunked WY form of docs/architecture.md §5.6 (gated_delta_net_chunked_prep: per-chunk T = (I+M)⁻¹, P, decay factors; gated_delta_net_chunked: the state pass). */
export function gatedDeltaRuleChunked(a: DeltaRuleArgs & { chunkSize?: number /* default: chunkFor */ }): Tensor {
  const op = 'gatedDeltaRuleChunked';
  const c = checkDeltaArgs(op, a);
  const CH = a.chunkSize ?? chunkFor(c.gpu, c.dk, c.dv);
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
    segRange = bind(op, 'segments', u32Table(gpu, `gatedDeltaNet.chunks ${CH}|${segs.join(',')}`, () => {
      const d = new Uint32Array(2 * nseg + 2);
      d.set(segs);
      d.set(cum, nseg + 1);
      return d;
    })).range;
  }
  // Scratch: released at the end of the scope (the pool hands it out again only after the next submit).
  return gpu.scope(() => {
    const Tm = bind(op, 'T', Tensor.empty(gpu, [Hv, nC, CH, CH], 'f32', 'gatedDeltaNet.T')).range;
    const Pm = bind(op, 'P', Tensor.empty(gpu, [Hv, nC, CH, CH], 'f32', 'gatedDeltaNet.P')).range;
    const Aux = bind(op, 'aux', Tensor.empty(gpu, [Hv, nC, CH + 1, 4], 'f32', 'gatedDeltaNet.aux')).range;
    const prep: KernelSpec = {
      file: 'gated_delta_net_chunked_prep',
      ...CHUNKED_PREP_IO,
      consts: { CH, TI: 32 },
      workgroup: [256],
    };
    gpu.stream.dispatch(
      gpu.pipelines.get(prep),
      { Q: c.q.range, K: c.k.range, G: c.g.range, Beta: c.beta.range, Seg: segRange, Tm, Pm, Aux },
      { L: c.L, Hk: c.Hk, Hv, nC, dk: c.dk, ch: CH, ...qkParams(c), g_off: c.g.off, beta_off: c.beta.off, scale: 1 / Math.sqrt(c.dk), nseg },
      [maxC, Hv, Math.max(1, nseg)],
      'gatedDeltaNet.chunk_prep',
    );
    const main: KernelSpec = {
      file: 'gated_delta_net_chunked',
      ...CHUNKED_IO,
      consts: { DKB: c.DKB, CH, ROLLED: rolled(gpu) },
      workgroup: [c.BV, c.RG],
    };
    gpu.stream.dispatch(
      gpu.pipelines.get(main),
      { Q: c.q.range, K: c.k.range, V: c.v.range, Tm, Pm, Aux, Seg: segRange, St: c.state.range, O: c.o.range },
      {
        L: c.L, Hk: c.Hk, Hv, dv: c.dv, nC, dk: c.dk, ...qkParams(c), ...vParams(c),
        s_off: c.state.off, o_off: c.o.off, nrm: Math.ceil(CH / c.RG), nsr: Math.ceil(c.DKB / c.RG), nseg,
        seg_state: segs && a.state ? 1 : 0,
      },
      [Math.ceil(c.dv / c.BV), Hv, Math.max(1, nseg)],
      'gatedDeltaNet.chunked',
    );
    return c.out;
  });
}

/**
 * Picks: recurrent for L ≤ RECURRENT_MAX_L (decode), chunked otherwise. Segments always take the chunked kernel
 * (whatever their lengths), so a segment's arithmetic does not depend on the batch it is in.
 */
export function gatedDeltaRule(a: DeltaRuleArgs): Tensor {
  return a.L <= RECURRENT_MAX_L && !a.segments ? gatedDeltaRuleRecurrent(a) : gatedDeltaRuleChunked(a);
}

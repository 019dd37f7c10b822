// attention: scaled dot-product attention over strided per-head views (GQA, causal, cu_seqlens segments, key
// padding mask, Qwen3.5 output gate), plus the KV cache the text decoder appends to.
//
// Kernels and the dispatch decision (here, next to the specs):
// - `attention.wgsl` ('tiles'): flash attention, one workgroup per (BQ-query tile, head), KV tiles in shared
//   memory, online softmax. The general / prefill path on GPUs.
// - `attention_rows.wgsl` ('rows'): the same semantics with NQL query rows per invocation and lane-uniform K/V
//   loads, no shared memory: the prefill path on software adapters (lavapipe), ~6× faster there. See
//   `PrefillVariant` and `attentionConfig`.
// - `attention_decode.wgsl` + `attention_decode_reduce.wgsl`: split-K flash-decoding for Lq ≤ DECODE_MAX_Q
//   queries against a long key range: partials per (split, kv head) covering all query heads of the GQA group
//   (K/V read once), then a reduce. `attention()` routes there when Lq ≤ DECODE_MAX_Q and Lk ≥ DECODE_MIN_K.
// - `attention_kv_append.wgsl`: KVCache.append (strided rows → contiguous cache rows, K and V in one dispatch).
// Pipeline keys carry only the head dim (a compile-time array size) and the tile sizes derived from it (and NQ
// for decode, the GQA heads per workgroup for 'rows'); masking modes are uniform flags so the variant count stays
// one per head dim (per GQA group size for 'rows'). Interfaces are declared by name (ATTENTION_IO, DECODE_IO, …).
import type { Gpu } from '../gpu/device.js';
import type { BufferRange } from '../gpu/stream.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { bind, bindHeads, type Bound, type BoundHeads, type HeadView } from './views.js';
import { checkCuSeqlens, u32Table } from './segments.js';
import { tunedAttentionPrefill } from '../tune/attentionPrefill.js';

/** The strided per-head view of q, k, v, gate (src/ops/views.ts). */
export type { HeadView };

export interface AttentionArgs {
  q: HeadView; k: HeadView; v: HeadView;
  Lq: number; Lk: number;
  /** GQA: query head h uses kv head floor(h / (numHeads / numKvHeads)). */
  numHeads: number; numKvHeads: number; headDim: number;
  /** usually headDim^-0.5 */
  scale: number;
  /** query i may see keys j ≤ i + causalOffset (default Lk − Lq: the queries are the last Lq positions). */
  causal?: boolean; causalOffset?: number;
  /**
   * cu_seqlens [0, n1, n1+n2, ..., Lq] of the queries: a ragged batch of independent rows (combinable with causal,
   * which then compares global indices). Each segment sees only its own key range: the same segment of the keys
   * (needs Lq == Lk) or, with `keyRanges`, any range. Query tiles never cross a segment, so a segment's output is
   * bit-identical to running it alone (at any position in any batch).
   */
  segments?: Int32Array;
  /** [lo₀, hi₀, lo₁, hi₁, …]: key range [lo_s, hi_s) of query segment s (needs `segments`; any Lq, Lk). */
  keyRanges?: Int32Array;
  /**
   * cu_seqlens of the keys (flash-attn varlen: query segment s sees key segment s; needs `segments` with as many
   * segments, not with keyRanges). With `causal`, the rule is aligned to each segment's bottom right: query i of
   * a segment with n_q queries and n_k keys sees its segment's first n_k − n_q + (i − first query) + 1 keys (a
   * prompt suffix attending to [its cached prefix ++ its own keys]); causalOffset does not apply.
   */
  keySegments?: Int32Array;
  /** u32 / i32 / f32, at least Lk values (the first Lk are used): 0 = masked key. A row with no visible key outputs zeros. */
  keyMask?: Tensor;
  /** Qwen3.5 output gate: out[t, h, :] *= sigmoid(gate[t, h, :]). */
  gate?: HeadView;
  /** [Lq, numHeads*headDim] f32 (contiguous); must not share a GPUBuffer with any input. */
  out?: Tensor;
  label?: string;
}

/** Largest Lq the decode kernel takes (query rows held in registers). */
export const DECODE_MAX_Q = 4;
/** attention() routes Lq ≤ DECODE_MAX_Q to flash-decoding from this many keys on. */
export const DECODE_MIN_K = 128;
/** Head dims: multiples of 4 up to this. */
export const MAX_HEAD_DIM = 256;

const WG = 64;

/**
 * Variant choice of the attention kernels, with documented defaults (tests and bench/attention.mjs override them):
 * - `rolled` (the ROLLED const): 'auto' = rolled on software adapters only (lavapipe compiles the unrolled
 *   variants 4–18× slower, 5–25 s each cold), unrolled on GPUs. Tests set false to check the GPU code path.
 * - `prefill`: 'auto' = the tuning table's entry for (head dim, GQA group) (`qvla tune`), else 'rows' on software
 *   adapters, 'tiles' on GPUs (see PrefillVariant).
 * - `rowsTiles`: the 'rows' shape. Default 32 lanes × 4 keys per step × 4 query rows per lane: on lavapipe at the
 *   Qwen3.5-4B prefill (600 tokens, 16/4 heads, d 256) 4 rows per lane took 0.78 s of CPU against 1.14 s for 2 and
 *   2.09 s for 1; 8 rows, 8 keys or 64 lanes were no faster (bench/attention.mjs, one run, interleaved).
 *   A tuner (`qvla tune`) would set these per adapter and shape class.
 */
export const attentionConfig: { rolled: 'auto' | boolean; prefill: 'auto' | PrefillVariant; rowsTiles: RowsTiles } = {
  rolled: 'auto',
  prefill: 'auto',
  rowsTiles: { lanes: 32, keys: 4, rowsPerLane: 4 },
};
const rolled = (gpu: Gpu) => (attentionConfig.rolled === 'auto' ? gpu.isSoftware : attentionConfig.rolled);

const isNat = (x: number) => Number.isInteger(x) && x >= 0;

/**
 * The segment table of attention.wgsl (cached, see ./segments.ts): [cu_seqlens (n+1) | key range (lo, hi) per
 * segment | query tiles (segment, first query) of BQ queries, never crossing a segment]. The decode kernel reads
 * only the cu_seqlens head.
 */
function segTable(gpu: Gpu, segs: Int32Array, keyRanges: Int32Array | undefined, BQ: number): { t: Tensor; tiles: number } {
  const n = segs.length - 1;
  let tiles = 0;
  for (let sg = 0; sg < n; sg++) tiles += Math.ceil((segs[sg + 1] - segs[sg]) / BQ);
  const key = `attention ${BQ}|${segs.join(',')}|${keyRanges ? keyRanges.join(',') : '='}`;
  const t = u32Table(gpu, key, () => {
    const data = new Uint32Array(3 * n + 1 + 2 * tiles);
    data.set(segs);
    for (let sg = 0; sg < n; sg++) {
      data[n + 1 + 2 * sg] = keyRanges ? keyRanges[2 * sg] : segs[sg];
      data[n + 2 + 2 * sg] = keyRanges ? keyRanges[2 * sg + 1] : segs[sg + 1];
    }
    let k = 3 * n + 1;
    for (let sg = 0; sg < n; sg++) {
      for (let q = segs[sg]; q < segs[sg + 1]; q += BQ) {
        data[k++] = sg;
        data[k++] = q;
      }
    }
    return data;
  });
  return { t, tiles };
}

interface Prepared {
  gpu: Gpu;
  what: string;
  H: number; Hkv: number; G: number; hd: number; Lq: number; Lk: number;
  q: BoundHeads;
  k: BoundHeads;
  v: BoundHeads;
  gate?: BoundHeads;
  mask?: Bound & { kind: number };
  seg?: { range: BufferRange; n: number; tiles: number; krBase: number; tileBase: number };
  /** 0 none, 1 global indices (causalOffset), 2 aligned to each segment's bottom right (keySegments) */
  causal: 0 | 1 | 2; causalOffset: number;
  out: Tensor; outB: Bound;
}

/** `BQ`: the query tile of the kernel (sizes the segment tile table), asked for after the shapes are checked. */
function prepare(op: string, a: AttentionArgs, BQ: (hd: number) => number): Prepared {
  const what = `${op}${a.label ? ` (${a.label})` : ''}`;
  const { Lq, Lk, numHeads: H, numKvHeads: Hkv, headDim: hd } = a;
  const gpu = a.q.tensor.gpu;
  for (const [n, x] of [['Lq', Lq], ['Lk', Lk], ['numHeads', H], ['numKvHeads', Hkv], ['headDim', hd]] as const) {
    if (!isNat(x)) throw new Error(`${what}: ${n} must be a non-negative integer, got ${x}`);
  }
  if (H < 1 || Hkv < 1 || H % Hkv !== 0) throw new Error(`${what}: numKvHeads ${Hkv} must divide numHeads ${H}`);
  if (hd < 4 || hd > MAX_HEAD_DIM || hd % 4 !== 0) throw new Error(`${what}: headDim ${hd} must be a multiple of 4 in [4, ${MAX_HEAD_DIM}]`);
  if (!Number.isFinite(a.scale)) throw new Error(`${what}: scale ${a.scale} is not finite`);
  const q = bindHeads(what, 'q', a.q, Lq, H, hd);
  const k = bindHeads(what, 'k', a.k, Lk, Hkv, hd);
  const v = bindHeads(what, 'v', a.v, Lk, Hkv, hd);
  const gate = a.gate ? bindHeads(what, 'gate', a.gate, Lq, H, hd) : undefined;
  let mask: Prepared['mask'];
  if (a.keyMask) {
    const m = a.keyMask;
    if (m.dtype === 'f16') throw new Error(`${what}: keyMask must be u32, i32 or f32, got f16`);
    if (m.size < Lk) throw new Error(`${what}: keyMask [${m.shape}] has fewer than Lk=${Lk} values`);
    mask = { ...bind(what, 'keyMask', m, 0, Lk), kind: m.dtype === 'f32' ? 2 : 1 };
  }
  let seg: Prepared['seg'];
  if (a.keyRanges && !a.segments) throw new Error(`${what}: keyRanges need segments`);
  if (a.keySegments && (!a.segments || a.keyRanges)) throw new Error(`${what}: keySegments need segments (and replace keyRanges)`);
  if (a.segments) {
    const s = a.segments;
    let kr = a.keyRanges;
    if (a.keySegments) {
      const ks = a.keySegments;
      if (ks.length !== s.length) throw new Error(`${what}: keySegments hold ${ks.length - 1} segments, the queries ${s.length - 1}`);
      checkCuSeqlens(`${what} (keySegments)`, ks, Lk);
      kr = new Int32Array(2 * (ks.length - 1));
      for (let x = 0; x + 1 < ks.length; x++) {
        kr[2 * x] = ks[x];
        kr[2 * x + 1] = ks[x + 1];
      }
    }
    if (!kr && Lq !== Lk) throw new Error(`${what}: segments need Lq == Lk (got ${Lq} and ${Lk}), or keyRanges`);
    checkCuSeqlens(what, s, Lq);
    const n = s.length - 1;
    if (kr) {
      if (kr.length !== 2 * n) throw new Error(`${what}: keyRanges must hold 2 values (lo, hi) for each of the ${n} segments, got ${kr.length}`);
      for (let x = 0; x < n; x++) {
        if (!(Number.isInteger(kr[2 * x]) && kr[2 * x] >= 0 && kr[2 * x] <= kr[2 * x + 1] && kr[2 * x + 1] <= Lk)) {
          throw new Error(`${what}: key range ${x} [${kr[2 * x]}, ${kr[2 * x + 1]}) is not inside [0, Lk=${Lk}]`);
        }
      }
    }
    const tab = segTable(gpu, s, kr, BQ(hd));
    seg = { range: bind(what, 'segment table', tab.t).range, n, tiles: tab.tiles, krBase: n + 1, tileBase: 3 * n + 1 };
  }
  const causalOffset = a.causalOffset ?? Lk - Lq;
  if (!Number.isInteger(causalOffset)) throw new Error(`${what}: causalOffset ${causalOffset} must be an integer`);
  const out = a.out ?? Tensor.empty(gpu, [Lq, H * hd], 'f32', a.label);
  if (out.dtype !== 'f32' || out.size !== Lq * H * hd) throw new Error(`${what}: out [${out.shape}] ${out.dtype} must be f32 with ${Lq}×${H * hd} elements`);
  const inputs: [string, Tensor | undefined][] = [['q', a.q.tensor], ['k', a.k.tensor], ['v', a.v.tensor], ['gate', a.gate?.tensor], ['keyMask', a.keyMask]];
  for (const [n, t] of inputs) {
    if (t && t.buffer === out.buffer) throw new Error(`${what}: out shares a GPUBuffer with ${n} (an output may not alias an input)`);
  }
  const outB = bind(what, 'out', out, 0, Lq * H * hd);
  const causal = !a.causal ? 0 : a.keySegments ? 2 : 1;
  return { gpu, what, H, Hkv, G: H / Hkv, hd, Lq, Lk, q, k, v, gate, mask, seg, causal, causalOffset, out, outB };
}

/** Workgroup memory of attention.wgsl for these tiles (Qs, Ks padded; Vs; Ss; kok), in bytes. */
function prefillShared(hd: number, BQ: number, BK: number): number {
  const hd4 = hd / 4;
  return 16 * (BQ * (hd4 + 1) + BK * (hd4 + 1) + BK * hd4) + 4 * BQ * BK + 4 * BK;
}

/**
 * Prefill tiles: BQ·HD ≈ 2048 floats of Q (and of K, of V) in shared memory, BQ ≤ 32 (≥ 2 threads per query
 * row), BK = BQ; halved until the tiles fit the device's workgroup memory. TPQ threads serve one query row.
 */
export function prefillTiles(hd: number, maxShared = 32768): { BQ: number; BK: number; TPQ: number; DPT4: number } {
  let BQ = Math.min(32, 2 ** Math.floor(Math.log2(2048 / hd)));
  let BK = BQ;
  while (prefillShared(hd, BQ, BK) > maxShared && BQ > 1) {
    if (BK >= BQ) BK /= 2;
    else BQ /= 2;
  }
  const TPQ = WG / BQ;
  BK = Math.max(BK, TPQ); // every thread computes ≥ 1 score per tile (BK is a multiple of TPQ: both powers of 2)
  if (prefillShared(hd, BQ, BK) > maxShared) {
    throw new Error(`attention: head dim ${hd} needs ${prefillShared(hd, BQ, BK)} bytes of workgroup memory, the device has ${maxShared}`);
  }
  return { BQ, BK, TPQ, DPT4: Math.ceil(hd / 4 / TPQ) };
}

/** What the prefill and decode kernels both read: shapes, the q/k/v views, the key mask, the scale and the
 * causal / segment modes (lib/attention_keys.wgsl reads them by name). */
const QKV_PARAMS = {
  Lq: 'u32', Lk: 'u32', H: 'u32', G: 'u32',
  q_off: 'u32', q_rs: 'u32', q_hs: 'u32',
  k_off: 'u32', k_rs: 'u32', k_hs: 'u32',
  v_off: 'u32', v_rs: 'u32', v_hs: 'u32',
  m_off: 'u32',
  scale: 'f32',
  causal: 'u32', causal_off: 'i32', // causal 0 none, 1 global indices (+ causal_off), 2 per segment, bottom right
  nseg: 'u32', // segments (0: none); Seg = [cu_seqlens (nseg+1) | key ranges (lo, hi) × nseg | tiles (seg, q0) × …]
  mask_kind: 'u32', // 0 none, 1 u32/i32 (0 = masked), 2 f32 (±0.0 = masked)
} satisfies KernelSpec['params'];

/**
 * Everything the two prefill kernels (attention.wgsl, attention_rows.wgsl) touch, by name: shapes, the strided
 * views (element offset, row stride, head stride of q, k, v, gate; output offset; mask offset), the scale, the
 * masking modes (uniform flags: one pipeline per head dim and tile shape), the ROLLED trip counts and the segment
 * table offsets.
 */
const ATTENTION_IO = {
  params: {
    ...QKV_PARAMS,
    g_off: 'u32', g_rs: 'u32', g_hs: 'u32',
    o_off: 'u32',
    has_gate: 'u32',
    n_hd4: 'u32', n_kpt: 'u32', n_bk: 'u32', n_dpt4: 'u32', // = HD/4, KPT, BK, DPT4 (read only when ROLLED)
    kr_base: 'u32', tile_base: 'u32', // offsets of the key ranges and the tile table in Seg
  },
  bindings: { Q: 'read f32', K: 'read f32', V: 'read f32', Gt: 'read f32', Mk: 'read u32', Seg: 'read u32', Out: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

/** attention_decode.wgsl (pass 1): as ATTENTION_IO without gate/output/segment tiles, plus the split sizes. */
const DECODE_IO = {
  params: {
    ...QKV_PARAMS,
    chunk: 'u32', // keys per split (a multiple of the 64-key tile)
    nsplit: 'u32',
    n_hd4: 'u32', n_nq: 'u32', n_kt: 'u32', n_dpt4: 'u32', // = HD/4, NQ, KT, DPT4 (read only when ROLLED)
  },
  bindings: { Q: 'read f32', K: 'read f32', V: 'read f32', Mk: 'read u32', Seg: 'read u32', Part: 'write vec4f', Meta: 'write vec2f' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

/** attention_decode_reduce.wgsl (pass 2): combine the splits, gate, write the output rows. */
const DECODE_REDUCE_IO = {
  params: {
    Lq: 'u32', H: 'u32', HD4: 'u32', nsplit: 'u32',
    g_off: 'u32', g_rs: 'u32', g_hs: 'u32', has_gate: 'u32',
    o_off: 'u32',
  },
  bindings: { Part: 'read vec4f', Meta: 'read vec2f', Gt: 'read f32', Out: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

/** attention_kv_append.wgsl: strided K/V source rows → contiguous cache rows (offsets include the cache length). */
const KV_APPEND_IO = {
  params: {
    rows: 'u32', Hkv: 'u32', HD: 'u32',
    k_off: 'u32', k_rs: 'u32', k_hs: 'u32',
    v_off: 'u32', v_rs: 'u32', v_hs: 'u32',
    kc_off: 'u32', vc_off: 'u32',
    groups_x: 'u32',
  },
  bindings: { Ks: 'read f32', Vs: 'read f32', Kc: 'write f32', Vc: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

/**
 * The prefill kernel's variant:
 * - `tiles` (attention.wgsl): Q and K/V tiles in shared memory, TPQ threads per query row, the O columns spread
 *   over those threads (few registers per thread): the GPU kernel.
 * - `rows` (attention_rows.wgsl): one query row per invocation, lanes = (GQA heads × queries) sharing every K/V
 *   read, no shared memory or barrier, O in private memory: the kernel for SIMD-on-CPU adapters (lavapipe), where
 *   a lane-uniform load is a scalar broadcast and a per-lane one a gather.
 * 'auto' (default): `rows` on software adapters, `tiles` otherwise. Both are checked by the op harness.
 */
export type PrefillVariant = 'tiles' | 'rows';

/**
 * Shape of the `rows` variant: `lanes` invocations per workgroup (power of two; GQA heads × query slots), `keys`
 * per step (4 or 8 scores per row held in registers), `rowsPerLane` query rows per invocation (each K/V load
 * serves them all). Default: attentionConfig.rowsTiles.
 */
export interface RowsTiles { lanes: number; keys: 4 | 8; rowsPerLane: number }

/** Largest power of two ≤ cap dividing G: the query heads of one GQA group a `rows` workgroup serves together. */
function headsPerWorkgroup(G: number, cap: number): number {
  let hpw = 1;
  while (hpw * 2 <= cap && G % (hpw * 2) === 0) hpw *= 2;
  return hpw;
}

/**
 * `rows` variant shape for a GQA group of G heads whose longest run of queries (a segment, or Lq) is `run`:
 * HPW heads × BQ queries per workgroup of WG lanes, NQL rows per lane, BK keys per step. The lanes shrink (not
 * below 8, lavapipe's SIMD width) while half of them still cover the run, so short segments (the DiT's 51-token
 * rows) do not pay for padding lanes. A row's arithmetic does not depend on WG or BQ (same key steps, same order),
 * so this keeps a segment's bits independent of the batch around it.
 */
export function rowsTiles(G: number, run = Infinity, t: RowsTiles = attentionConfig.rowsTiles): { BQ: number; NQL: number; HPW: number; BK: number; WG: number } {
  const pow2 = Number.isInteger(t.lanes) && t.lanes >= 1 && (t.lanes & (t.lanes - 1)) === 0;
  if (!pow2 || t.lanes > 256 || (t.keys !== 4 && t.keys !== 8) || !Number.isInteger(t.rowsPerLane) || t.rowsPerLane < 1 || t.rowsPerLane > 8) {
    throw new Error(`attention: rowsTiles ${JSON.stringify(t)} needs lanes a power of two ≤ 256, keys 4 or 8, rowsPerLane an integer in [1, 8]`);
  }
  const HPW = headsPerWorkgroup(G, Math.max(1, t.lanes / 8));
  let WG = t.lanes;
  while (WG > 8 && WG / 2 >= HPW && (WG / 2 / HPW) * t.rowsPerLane >= run) WG /= 2;
  return { BQ: (WG / HPW) * t.rowsPerLane, NQL: t.rowsPerLane, HPW, BK: t.keys, WG };
}

function prefillVariant(gpu: Gpu, hd: number, G: number): PrefillVariant {
  const v = attentionConfig.prefill;
  // 'auto': this adapter's tuned entry (src/tune/attentionPrefill.ts), else the default above.
  return v === 'auto' ? (tunedAttentionPrefill(gpu, hd, G) ?? (gpu.isSoftware ? 'rows' : 'tiles')) : v;
}

/** Scaled dot-product attention (flash-style). Routes to flash-decoding when Lq is small and Lk large. */
export function attention(a: AttentionArgs): Tensor {
  if (a.Lq <= DECODE_MAX_Q && a.Lk >= DECODE_MIN_K && !a.segments) return attentionDecode(a);
  const gpu0 = a.q.tensor.gpu;
  const G = a.numKvHeads > 0 ? a.numHeads / a.numKvHeads : 1;
  const variant = prefillVariant(gpu0, a.headDim, G);
  const maxShared = gpu0.limits.maxComputeWorkgroupStorageSize;
  // Longest run of queries a tile can cover (sizes the 'rows' workgroup; the segments are checked in prepare()).
  let run = a.Lq;
  if (a.segments) {
    run = 1;
    for (let s = 1; s < a.segments.length; s++) run = Math.max(run, a.segments[s] - a.segments[s - 1]);
  }
  const BQof = (hd: number) => (variant === 'rows' ? rowsTiles(G, run).BQ : prefillTiles(hd, maxShared).BQ);
  const p = prepare('attention', a, BQof);
  const { gpu } = p;
  const dummy = { buffer: gpu.dummy };
  const buffers = {
    Q: p.q.range, K: p.k.range, V: p.v.range, Gt: p.gate?.range ?? dummy, Mk: p.mask?.range ?? dummy,
    Seg: p.seg?.range ?? dummy, Out: p.outB.range,
  };
  const params = {
    Lq: p.Lq, Lk: p.Lk, H: p.H, G: p.G,
    q_off: p.q.off, q_rs: p.q.row, q_hs: p.q.head,
    k_off: p.k.off, k_rs: p.k.row, k_hs: p.k.head,
    v_off: p.v.off, v_rs: p.v.row, v_hs: p.v.head,
    g_off: p.gate?.off ?? 0, g_rs: p.gate?.row ?? 0, g_hs: p.gate?.head ?? 0,
    o_off: p.outB.off, m_off: p.mask?.off ?? 0,
    scale: a.scale,
    causal: p.causal, causal_off: p.causalOffset,
    nseg: p.seg?.n ?? 0, mask_kind: p.mask?.kind ?? 0, has_gate: p.gate ? 1 : 0,
    n_hd4: p.hd / 4, n_kpt: 0, n_bk: 0, n_dpt4: 0,
    kr_base: p.seg?.krBase ?? 0, tile_base: p.seg?.tileBase ?? 0,
  };
  const BQ = BQof(p.hd);
  const tiles = p.seg ? p.seg.tiles : Math.ceil(p.Lq / BQ);
  if (variant === 'rows') {
    const { HPW, BK, NQL, WG: lanes } = rowsTiles(p.G, run);
    const spec: KernelSpec = {
      file: 'attention_rows', ...ATTENTION_IO,
      consts: { HD: p.hd, BQ, NQL, HPW, BK, ROLLED: rolled(gpu) },
      includes: ['attention_keys', 'attention_tile', 'attention_out'],
      workgroup: [lanes],
    };
    gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [tiles, p.H / HPW], a.label);
    return p.out;
  }
  const { BK, TPQ, DPT4 } = prefillTiles(p.hd, maxShared);
  const spec: KernelSpec = {
    file: 'attention', ...ATTENTION_IO,
    consts: { HD: p.hd, BQ, BK, TPQ, DPT4, ROLLED: rolled(gpu) },
    includes: ['attention_keys', 'attention_tile', 'attention_out'],
    workgroup: [WG],
  };
  gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, { ...params, n_kpt: BK / TPQ, n_bk: BK, n_dpt4: DPT4 }, [tiles, p.H], a.label);
  return p.out;
}

/**
 * Split sizes for flash-decoding: enough (split, kv head, row group) workgroups to fill a GPU (~256, not tuned on
 * lavapipe); chunks are a multiple of the KT = 64-key tile.
 */
export function decodeSplits(Lk: number, workgroupsPerSplit: number): { chunk: number; nsplit: number } {
  const tiles = Math.max(1, Math.ceil(Lk / WG));
  const target = Math.max(1, Math.ceil(256 / workgroupsPerSplit));
  const chunk = Math.ceil(tiles / Math.min(tiles, target)) * WG;
  return { chunk, nsplit: Math.max(1, Math.ceil(Lk / chunk)) };
}

/** Flash-decoding for Lq ≤ DECODE_MAX_Q queries: per-split partials, then a reduce. Same semantics as attention(). */
export function attentionDecode(a: AttentionArgs): Tensor {
  if (a.Lq > DECODE_MAX_Q) {
    throw new Error(`attentionDecode${a.label ? ` (${a.label})` : ''}: Lq=${a.Lq} exceeds the decode kernel's ${DECODE_MAX_Q} query rows (use attention())`);
  }
  if (a.keyRanges || a.keySegments) throw new Error(`attentionDecode${a.label ? ` (${a.label})` : ''}: keyRanges / keySegments are not supported (use attention())`);
  const p = prepare('attentionDecode', a, () => 1);
  const { gpu } = p;
  if (p.Lq === 0) return p.out;
  // Rows per workgroup: the G·Lq (query head, query) pairs sharing a kv head, in groups of NQ ∈ {1, 4, 8}.
  const R = p.G * p.Lq;
  const NQ = R === 1 ? 1 : R <= 4 ? 4 : 8;
  const groups = Math.ceil(R / NQ);
  const DPT4 = Math.ceil(p.hd / 4 / WG);
  const { chunk, nsplit } = decodeSplits(p.Lk, p.Hkv * groups);
  const rows = p.H * p.Lq * nsplit;
  const part = Tensor.empty(gpu, [rows, p.hd], 'f32', 'attention.partials');
  const meta = Tensor.empty(gpu, [rows, 2], 'f32', 'attention.meta');
  const dummy = { buffer: gpu.dummy };
  const spec: KernelSpec = {
    file: 'attention_decode', ...DECODE_IO,
    consts: { HD: p.hd, NQ, DPT4, ROLLED: rolled(gpu) },
    includes: ['attention_keys'],
    workgroup: [WG],
  };
  const params = {
    Lq: p.Lq, Lk: p.Lk, H: p.H, G: p.G,
    q_off: p.q.off, q_rs: p.q.row, q_hs: p.q.head,
    k_off: p.k.off, k_rs: p.k.row, k_hs: p.k.head,
    v_off: p.v.off, v_rs: p.v.row, v_hs: p.v.head,
    m_off: p.mask?.off ?? 0,
    scale: a.scale,
    causal: p.causal, causal_off: p.causalOffset,
    nseg: p.seg?.n ?? 0, mask_kind: p.mask?.kind ?? 0,
    chunk, nsplit,
    n_hd4: p.hd / 4, n_nq: NQ, n_kt: WG, n_dpt4: DPT4,
  };
  // Fresh pooled tensors: element offset 0 in their bindings.
  const partB = bind(p.what, 'partials', part).range;
  const metaB = bind(p.what, 'partial stats', meta).range;
  const buffers = { Q: p.q.range, K: p.k.range, V: p.v.range, Mk: p.mask?.range ?? dummy, Seg: p.seg?.range ?? dummy, Part: partB, Meta: metaB };
  gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [nsplit, p.Hkv, groups], a.label && `${a.label}.partial`);
  const red: KernelSpec = { file: 'attention_decode_reduce', ...DECODE_REDUCE_IO, includes: ['attention_out'], workgroup: [WG] };
  const rparams = {
    Lq: p.Lq, H: p.H, HD4: p.hd / 4, nsplit,
    g_off: p.gate?.off ?? 0, g_rs: p.gate?.row ?? 0, g_hs: p.gate?.head ?? 0, has_gate: p.gate ? 1 : 0,
    o_off: p.outB.off,
  };
  const rbuf = { Part: partB, Meta: metaB, Gt: p.gate?.range ?? dummy, Out: p.outB.range };
  gpu.stream.dispatch(gpu.pipelines.get(red), rbuf, rparams, [p.Lq, p.H], a.label && `${a.label}.reduce`);
  part.release(); // back to the pool after the next submit
  meta.release();
  return p.out;
}

/**
 * Per-layer KV cache: k and v are [maxLen, numKvHeads·headDim] f32. The caller applies RoPE to k before `append`.
 */
export class KVCache {
  readonly k: Tensor;
  readonly v: Tensor;
  length = 0;

  constructor(readonly gpu: Gpu, readonly maxLen: number, readonly numKvHeads: number, readonly headDim: number) {
    if (!isNat(maxLen) || maxLen < 1 || !isNat(numKvHeads) || numKvHeads < 1 || !isNat(headDim) || headDim < 1) {
      throw new Error(`KVCache: bad shape maxLen=${maxLen} numKvHeads=${numKvHeads} headDim=${headDim}`);
    }
    this.k = Tensor.empty(gpu, [maxLen, numKvHeads * headDim], 'f32', 'kvcache.k');
    this.v = Tensor.empty(gpu, [maxLen, numKvHeads * headDim], 'f32', 'kvcache.v');
  }

  /** Copy `count` rows of k and v (strided views, numKvHeads × headDim each) to positions [length, length+count). */
  append(k: HeadView, v: HeadView, count: number): void {
    const what = 'KVCache.append';
    if (!isNat(count)) throw new Error(`${what}: count ${count} must be a non-negative integer`);
    if (this.length + count > this.maxLen) {
      throw new Error(`${what}: ${count} rows at length ${this.length} overflow the cache of ${this.maxLen} positions`);
    }
    if (count === 0) return;
    const { numKvHeads: Hkv, headDim: hd, gpu } = this;
    for (const [n, t] of [['k', k.tensor], ['v', v.tensor]] as const) {
      if (t.buffer === this.k.buffer || t.buffer === this.v.buffer) throw new Error(`${what}: ${n} source lives in the cache's own buffer`);
    }
    const kb = bindHeads(what, 'k', k, count, Hkv, hd);
    const vb = bindHeads(what, 'v', v, count, Hkv, hd);
    const W = Hkv * hd;
    const kc = bind(what, 'cache k', this.k, this.length * W, count * W);
    const vc = bind(what, 'cache v', this.v, this.length * W, count * W);
    const groups = Math.ceil((count * W) / WG);
    const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
    const gy = Math.ceil(groups / gx);
    const spec: KernelSpec = { file: 'attention_kv_append', ...KV_APPEND_IO, workgroup: [WG] };
    const params = {
      rows: count, Hkv, HD: hd,
      k_off: kb.off, k_rs: kb.row, k_hs: kb.head, v_off: vb.off, v_rs: vb.row, v_hs: vb.head,
      kc_off: kc.off, vc_off: vc.off, groups_x: gx,
    };
    gpu.stream.dispatch(gpu.pipelines.get(spec), { Ks: kb.range, Vs: vb.range, Kc: kc.range, Vc: vc.range }, params, [gx, gy], 'kvcache.append');
    this.length += count;
  }

  reset(): void {
    this.length = 0;
  }

  /** Views of the filled part, ready for AttentionArgs.k / .v (Lk = length). */
  view(): { k: HeadView; v: HeadView; Lk: number } {
    const W = this.numKvHeads * this.headDim;
    return { k: { tensor: this.k, rowStride: W }, v: { tensor: this.v, rowStride: W }, Lk: this.length };
  }

  /** Give the cache buffers back to the pool. */
  release(): void {
    this.k.release();
    this.v.release();
  }
}

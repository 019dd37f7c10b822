// attention: scaled dot-product attention over strided per-head views (GQA, causal, cu_seqlens segments, key
// padding mask, Qwen3.5 output gate), plus the KV cache the text decoder appends to.
//
// Kernels and the dispatch decision (here, next to the specs):
// - `attention.wgsl`: flash attention, one workgroup per (BQ-query tile, head), KV tiles in shared memory, online
//   softmax. The general / prefill path.
// - `attention_decode.wgsl` + `attention_decode_reduce.wgsl`: split-K flash-decoding for Lq ≤ DECODE_MAX_Q
//   queries against a long key range: partials per (split, kv head) covering all query heads of the GQA group
//   (K/V read once), then a reduce. `attention()` routes there when Lq ≤ DECODE_MAX_Q and Lk ≥ DECODE_MIN_K.
// - `attention_kv_append.wgsl`: KVCache.append (strided rows → contiguous cache rows, K and V in one dispatch).
// Pipeline keys carry only the head dim (a compile-time array size) and the tile sizes derived from it (and NQ
// for decode); masking modes are uniform flags so the variant count stays one per head dim.
import type { Gpu } from '../gpu/device.js';
import { f, i, u, type BufferRange } from '../gpu/stream.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { checkCuSeqlens, u32Table } from './segments.js';

/**
 * A strided view of per-head vectors: element (token t, head h, dim e) is at
 * `offset + t*rowStride + h*headStride + e`, in f32 elements counted from the tensor's first element
 * (`tensor.offset` bytes into `tensor.buffer`). `headStride` defaults to the head dim; the Qwen3.5 q_proj output,
 * where q and gate interleave per head ([q₀ | g₀ | q₁ | g₁ | …]), is q = {rowStride: H·2d, headStride: 2d} and
 * gate = {offset: d, rowStride: H·2d, headStride: 2d}.
 */
export interface HeadView { tensor: Tensor; rowStride: number; offset?: number; headStride?: number }

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
 * Loop rolling of the attention kernels (the ROLLED const): 'auto' = rolled on software adapters only (lavapipe
 * compiles the unrolled variants 4–18× slower, 5–25 s each cold), unrolled on GPUs. Tests set false to check
 * the GPU code path on lavapipe.
 */
export const attentionConfig: { rolled: 'auto' | boolean } = { rolled: 'auto' };
const rolled = (gpu: Gpu) => (attentionConfig.rolled === 'auto' ? gpu.isSoftware : attentionConfig.rolled);

interface Bound { range: BufferRange; off: number }

/** Bind the bytes a view touches from the aligned-down start (any view offset works); `off` = element offset in the binding. */
function bindElems(what: string, name: string, t: Tensor, elemOff: number, extent: number): Bound {
  const gpu = t.gpu;
  if (t.offset % 4 !== 0) throw new Error(`${what}: ${name} tensor byte offset ${t.offset} is not a multiple of 4`);
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const start = t.offset + elemOff * 4;
  const base = Math.floor(start / align) * align;
  const size = Math.min(Math.max(4, Math.ceil((start + extent * 4 - base) / 4) * 4), t.buffer.size - base);
  if (size > gpu.limits.maxStorageBufferBindingSize) {
    throw new Error(`${what}: ${name} binding of ${size} bytes exceeds maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize}`);
  }
  return { range: { buffer: t.buffer, offset: base, size }, off: (start - base) / 4 };
}

function isNat(x: number): boolean {
  return Number.isInteger(x) && x >= 0;
}

/** Validate a HeadView covering `rows` tokens × `heads` heads × `hd` dims and bind it. */
function bindView(what: string, name: string, view: HeadView, rows: number, heads: number, hd: number): Bound & { rs: number; hs: number } {
  const t = view.tensor;
  const off = view.offset ?? 0;
  const hs = view.headStride ?? hd;
  if (t.dtype !== 'f32') throw new Error(`${what}: ${name} must be f32, got ${t.dtype}`);
  if (!isNat(off) || !isNat(view.rowStride) || !isNat(hs)) {
    throw new Error(`${what}: ${name} offset/rowStride/headStride must be non-negative integers (got ${off}/${view.rowStride}/${hs})`);
  }
  const extent = rows === 0 ? 0 : (rows - 1) * view.rowStride + (heads - 1) * hs + hd;
  if (off + extent > t.size) {
    throw new Error(
      `${what}: ${name} view (offset ${off}, rowStride ${view.rowStride}, headStride ${hs}) of ${rows} rows × ${heads} heads × ${hd} ` +
        `needs ${off + extent} elements, tensor [${t.shape}] has ${t.size}`,
    );
  }
  return { ...bindElems(what, name, t, off, extent), rs: view.rowStride, hs };
}

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
  q: Bound & { rs: number; hs: number };
  k: Bound & { rs: number; hs: number };
  v: Bound & { rs: number; hs: number };
  gate?: Bound & { rs: number; hs: number };
  mask?: Bound & { kind: number };
  seg?: { range: BufferRange; n: number; tiles: number; krBase: number; tileBase: number };
  causal: boolean; causalOffset: number;
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
  const q = bindView(what, 'q', a.q, Lq, H, hd);
  const k = bindView(what, 'k', a.k, Lk, Hkv, hd);
  const v = bindView(what, 'v', a.v, Lk, Hkv, hd);
  const gate = a.gate ? bindView(what, 'gate', a.gate, Lq, H, hd) : undefined;
  let mask: Prepared['mask'];
  if (a.keyMask) {
    const m = a.keyMask;
    if (m.dtype === 'f16') throw new Error(`${what}: keyMask must be u32, i32 or f32, got f16`);
    if (m.size < Lk) throw new Error(`${what}: keyMask [${m.shape}] has fewer than Lk=${Lk} values`);
    mask = { ...bindElems(what, 'keyMask', m, 0, Lk), kind: m.dtype === 'f32' ? 2 : 1 };
  }
  let seg: Prepared['seg'];
  if (a.keyRanges && !a.segments) throw new Error(`${what}: keyRanges need segments`);
  if (a.segments) {
    const s = a.segments;
    const kr = a.keyRanges;
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
    seg = { range: tab.t.binding(), n, tiles: tab.tiles, krBase: n + 1, tileBase: 3 * n + 1 };
  }
  const causalOffset = a.causalOffset ?? Lk - Lq;
  if (!Number.isInteger(causalOffset)) throw new Error(`${what}: causalOffset ${causalOffset} must be an integer`);
  const out = a.out ?? Tensor.empty(gpu, [Lq, H * hd], 'f32', a.label);
  if (out.dtype !== 'f32' || out.size !== Lq * H * hd) throw new Error(`${what}: out [${out.shape}] ${out.dtype} must be f32 with ${Lq}×${H * hd} elements`);
  const inputs: [string, Tensor | undefined][] = [['q', a.q.tensor], ['k', a.k.tensor], ['v', a.v.tensor], ['gate', a.gate?.tensor], ['keyMask', a.keyMask]];
  for (const [n, t] of inputs) {
    if (t && t.buffer === out.buffer) throw new Error(`${what}: out shares a GPUBuffer with ${n} (an output may not alias an input)`);
  }
  const outB = bindElems(what, 'out', out, 0, Lq * H * hd);
  return { gpu, what, H, Hkv, G: H / Hkv, hd, Lq, Lk, q, k, v, gate, mask, seg, causal: !!a.causal, causalOffset, out, outB };
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

/** Scaled dot-product attention (flash-style). Routes to flash-decoding when Lq is small and Lk large. */
export function attention(a: AttentionArgs): Tensor {
  if (a.Lq <= DECODE_MAX_Q && a.Lk >= DECODE_MIN_K && !a.segments) return attentionDecode(a);
  const maxShared = a.q.tensor.gpu.limits.maxComputeWorkgroupStorageSize;
  const p = prepare('attention', a, (hd) => prefillTiles(hd, maxShared).BQ);
  const { gpu } = p;
  const { BQ, BK, TPQ, DPT4 } = prefillTiles(p.hd, maxShared);
  const spec: KernelSpec = {
    file: 'attention',
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'write'],
    consts: { HD: p.hd, BQ, BK, TPQ, DPT4, ROLLED: rolled(gpu) },
    includes: ['attention_keys'],
    workgroup: [WG],
  };
  const dummy = { buffer: gpu.dummy };
  const params = [
    u(p.Lq), u(p.Lk), u(p.H), u(p.G),
    u(p.q.off), u(p.q.rs), u(p.q.hs),
    u(p.k.off), u(p.k.rs), u(p.k.hs),
    u(p.v.off), u(p.v.rs), u(p.v.hs),
    u(p.gate?.off ?? 0), u(p.gate?.rs ?? 0), u(p.gate?.hs ?? 0),
    u(p.outB.off), u(p.mask?.off ?? 0),
    f(a.scale),
    u(p.causal ? 1 : 0), i(p.causalOffset),
    u(p.seg?.n ?? 0), u(p.mask?.kind ?? 0), u(p.gate ? 1 : 0),
    u(p.hd / 4), u(BK / TPQ), u(BK), u(DPT4),
    u(p.seg?.krBase ?? 0), u(p.seg?.tileBase ?? 0),
  ];
  const buffers = [p.q.range, p.k.range, p.v.range, p.gate?.range ?? dummy, p.mask?.range ?? dummy, p.seg?.range ?? dummy, p.outB.range];
  const tiles = p.seg ? p.seg.tiles : Math.ceil(p.Lq / BQ);
  gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [tiles, p.H], a.label);
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
  if (a.keyRanges) throw new Error(`attentionDecode${a.label ? ` (${a.label})` : ''}: keyRanges are not supported (use attention())`);
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
    file: 'attention_decode',
    bindings: ['read', 'read', 'read', 'read', 'read', 'write', 'write'],
    consts: { HD: p.hd, NQ, DPT4, ROLLED: rolled(gpu) },
    includes: ['attention_keys'],
    workgroup: [WG],
  };
  const params = [
    u(p.Lq), u(p.Lk), u(p.H), u(p.G),
    u(p.q.off), u(p.q.rs), u(p.q.hs),
    u(p.k.off), u(p.k.rs), u(p.k.hs),
    u(p.v.off), u(p.v.rs), u(p.v.hs),
    u(p.mask?.off ?? 0),
    f(a.scale),
    u(p.causal ? 1 : 0), i(p.causalOffset),
    u(p.seg?.n ?? 0), u(p.mask?.kind ?? 0),
    u(chunk), u(nsplit),
    u(p.hd / 4), u(NQ), u(WG), u(DPT4),
  ];
  const buffers = [p.q.range, p.k.range, p.v.range, p.mask?.range ?? dummy, p.seg?.range ?? dummy, part.binding(), meta.binding()];
  gpu.stream.dispatch(gpu.pipelines.get(spec), buffers, params, [nsplit, p.Hkv, groups], a.label && `${a.label}.partial`);
  const red: KernelSpec = { file: 'attention_decode_reduce', bindings: ['read', 'read', 'read', 'write'], workgroup: [WG] };
  const rparams = [u(p.Lq), u(p.H), u(p.hd / 4), u(nsplit), u(p.gate?.off ?? 0), u(p.gate?.rs ?? 0), u(p.gate?.hs ?? 0), u(p.gate ? 1 : 0), u(p.outB.off)];
  gpu.stream.dispatch(gpu.pipelines.get(red), [part.binding(), meta.binding(), p.gate?.range ?? dummy, p.outB.range], rparams, [p.Lq, p.H], a.label && `${a.label}.reduce`);
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
    const kb = bindView(what, 'k', k, count, Hkv, hd);
    const vb = bindView(what, 'v', v, count, Hkv, hd);
    const W = Hkv * hd;
    const kc = bindElems(what, 'cache k', this.k, this.length * W, count * W);
    const vc = bindElems(what, 'cache v', this.v, this.length * W, count * W);
    const groups = Math.ceil((count * W) / WG);
    const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
    const gy = Math.ceil(groups / gx);
    const spec: KernelSpec = { file: 'attention_kv_append', bindings: ['read', 'read', 'write', 'write'], workgroup: [WG] };
    const params = [u(count), u(Hkv), u(hd), u(0), u(kb.off), u(kb.rs), u(kb.hs), u(vb.off), u(vb.rs), u(vb.hs), u(kc.off), u(vc.off), u(gx)];
    gpu.stream.dispatch(gpu.pipelines.get(spec), [kb.range, vb.range, kc.range, vc.range], params, [gx, gy], 'kvcache.append');
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

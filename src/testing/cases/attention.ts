// Op cases for attention (src/ops/attention.ts): causal GQA prefill at odd lengths and every model head dim,
// cu_seqlens segments, cross-attention with key-padding masks (incl. fully masked), the output gate, strided
// views (fused vision qkv, Qwen q_proj q/gate interleave, unaligned tensor views), causalOffset, and the
// flash-decoding path called directly.
import { attention, attentionDecode, type AttentionArgs, type HeadView } from '../../ops/attention.js';
import { attentionRef } from '../../ref/attention.js';
import { Tensor } from '../../tensor.js';
import type { Rng } from '../../util/rng.js';
import { TOL, type OpCase } from '../opHarness.js';

export interface AttentionShape {
  Lq: number; Lk: number; H: number; Hkv: number; d: number;
  causal?: boolean; causalOffset?: number;
  segments?: number[];
  /** key range pairs per query segment (ragged cross-attention) */
  keyRanges?: number[];
  /** key cu_seqlens (query segment s sees key segment s; causal aligned to each segment's bottom right) */
  keySegments?: number[];
  /** key mask: 'random' ≈30% zeros, 'all0' all zeros (every row fully masked) */
  mask?: 'random' | 'all0';
  maskDtype?: 'u32' | 'f32';
  gate?: boolean;
  /**
   * separate: q [Lq, H·d], k / v [Lk, Hkv·d] (+ gate [Lq, H·d]);
   * fused: one [L, 3·H·d] buffer holding q | k | v per row (vision qkv projection; Lq == Lk, H == Hkv);
   * qgate: the Qwen3.5 q_proj output [Lq, H·2d] with q and gate interleaved per head (gate implied).
   */
  layout?: 'separate' | 'fused' | 'qgate';
  /** k / v are row views starting `kvPad` rows into a larger tensor (unaligned byte offset). */
  kvPad?: number;
  /** call attentionDecode directly */
  decode?: boolean;
  perf?: boolean;
  tag?: string;
}

/** A view's [rows, heads, d] values, gathered contiguous (what the reference reads). */
function gather(data: Float32Array, view: { rowStride: number; offset?: number; headStride?: number }, rows: number, heads: number, d: number): Float32Array {
  const out = new Float32Array(rows * heads * d);
  const hs = view.headStride ?? d;
  for (let t = 0; t < rows; t++) {
    for (let h = 0; h < heads; h++) {
      for (let e = 0; e < d; e++) out[(t * heads + h) * d + e] = data[(view.offset ?? 0) + t * view.rowStride + h * hs + e];
    }
  }
  return out;
}

/** (query, key) pairs that are visible, for the FLOP count. */
function visiblePairs(s: AttentionShape): number {
  if (s.segments) {
    let n = 0;
    for (let k = 1; k < s.segments.length; k++) {
      const len = s.segments[k] - s.segments[k - 1];
      const nk = s.keySegments ? s.keySegments[k] - s.keySegments[k - 1] : s.keyRanges ? s.keyRanges[2 * k - 1] - s.keyRanges[2 * k - 2] : len;
      // bottom-right causal: query i (from 0) sees nk − len + i + 1 keys
      if (s.keySegments && s.causal) for (let i = 0; i < len; i++) n += Math.max(0, Math.min(nk, nk - len + i + 1));
      else n += len * nk;
    }
    if (!s.causal || s.keySegments) return n;
  }
  if (!s.causal) return s.Lq * s.Lk;
  const off = s.causalOffset ?? s.Lk - s.Lq;
  let n = 0;
  for (let t = 0; t < s.Lq; t++) n += Math.min(s.Lk, Math.max(0, t + off + 1));
  return n;
}

function makeMask(rng: Rng, s: AttentionShape): Float32Array | undefined {
  if (!s.mask) return undefined;
  const m = new Float32Array(s.Lk);
  if (s.mask === 'random') for (let j = 0; j < s.Lk; j++) m[j] = rng.uniform() < 0.3 ? 0 : 1;
  return m;
}

export function attentionCase(s: AttentionShape): OpCase {
  const layout = s.layout ?? 'separate';
  const gate = s.gate || layout === 'qgate';
  const name =
    `attention${s.decode ? ' decode' : ''} Lq=${s.Lq} Lk=${s.Lk} H=${s.H}/${s.Hkv} d=${s.d}` +
    `${s.causal ? ` causal${s.causalOffset !== undefined ? `(off ${s.causalOffset})` : ''}` : ''}` +
    `${s.segments ? ` seg[${s.segments.join(',')}]` : ''}${s.keyRanges ? ` keys[${s.keyRanges.join(',')}]` : ''}${s.keySegments ? ` kseg[${s.keySegments.join(',')}]` : ''}${s.mask ? ` mask:${s.mask}${s.maskDtype === 'f32' ? '(f32)' : ''}` : ''}` +
    `${gate ? ' gate' : ''}${layout !== 'separate' ? ` ${layout}` : ''}${s.kvPad ? ` kv@+${s.kvPad}rows` : ''}${s.tag ? ` [${s.tag}]` : ''}`;
  if (layout === 'fused' && (s.Lq !== s.Lk || s.H !== s.Hkv)) throw new Error(`${name}: fused layout needs Lq == Lk and H == Hkv`);
  return {
    name,
    op: 'attention',
    perf: s.perf,
    // Outputs are convex combinations of v (|v| ~ 1): f32 score/exp/sum rounding stays far below TOL.f32.
    tol: TOL.f32,
    setup(gpu, rng) {
      const { Lq, Lk, H, Hkv, d } = s;
      const tensors: Tensor[] = [];
      const mk = (data: Float32Array, shape: number[], label: string) => {
        const t = Tensor.from(gpu, data, shape, 'f32', label);
        tensors.push(t);
        return t;
      };
      let qv: HeadView, kv: HeadView, vv: HeadView, gv: HeadView | undefined;
      let qd: Float32Array, kd: Float32Array, vd: Float32Array, gd: Float32Array | undefined;
      if (layout === 'fused') {
        const W = 3 * H * d;
        const all = rng.normals(Lq * W);
        const t = mk(all, [Lq, W], 'qkv');
        qv = { tensor: t, rowStride: W };
        kv = { tensor: t, rowStride: W, offset: H * d };
        vv = { tensor: t, rowStride: W, offset: 2 * H * d };
        qd = gather(all, qv, Lq, H, d);
        kd = gather(all, kv, Lk, Hkv, d);
        vd = gather(all, vv, Lk, Hkv, d);
      } else {
        if (layout === 'qgate') {
          const W = H * 2 * d;
          const all = rng.normals(Lq * W, 1.5);
          const t = mk(all, [Lq, W], 'q_proj');
          qv = { tensor: t, rowStride: W, headStride: 2 * d };
          gv = { tensor: t, rowStride: W, headStride: 2 * d, offset: d };
          qd = gather(all, qv, Lq, H, d);
          gd = gather(all, gv, Lq, H, d);
        } else {
          qd = rng.normals(Lq * H * d, 1.5);
          qv = { tensor: mk(qd, [Lq, H * d], 'q'), rowStride: H * d };
        }
        const pad = s.kvPad ?? 0;
        const W = Hkv * d;
        const kAll = rng.normals((Lk + pad) * W);
        const vAll = rng.normals((Lk + pad) * W);
        kd = kAll.subarray(pad * W);
        vd = vAll.subarray(pad * W);
        kv = { tensor: mk(kAll, [Lk + pad, W], 'k').rows(pad, Lk), rowStride: W };
        vv = { tensor: mk(vAll, [Lk + pad, W], 'v').rows(pad, Lk), rowStride: W };
      }
      if (gate && !gv) {
        gd = rng.normals(Lq * H * d, 2);
        gv = { tensor: mk(gd, [Lq, H * d], 'gate'), rowStride: H * d };
      }
      const md = makeMask(rng, s);
      const keyMask = md ? (s.maskDtype === 'f32' ? mk(md, [Lk], 'mask') : Tensor.from(gpu, Uint32Array.from(md), [Lk], 'u32', 'mask')) : undefined;
      if (keyMask && s.maskDtype !== 'f32') tensors.push(keyMask);
      // NaN-filled output: every element must be written (fully masked rows included).
      const out = mk(new Float32Array(Lq * H * d).fill(NaN), [Lq, H * d], 'out');
      const args: AttentionArgs = {
        q: qv, k: kv, v: vv, Lq, Lk, numHeads: H, numKvHeads: Hkv, headDim: d, scale: 1 / Math.sqrt(d),
        causal: s.causal, causalOffset: s.causalOffset, segments: s.segments ? Int32Array.from(s.segments) : undefined,
        keyRanges: s.keyRanges ? Int32Array.from(s.keyRanges) : undefined,
        keySegments: s.keySegments ? Int32Array.from(s.keySegments) : undefined,
        keyMask, gate: gv, out, label: 'attention',
      };
      const encode = () => { (s.decode ? attentionDecode : attention)(args); };
      return {
        encode,
        async run() { encode(); return out.read() as Promise<Float32Array>; },
        reference: () => attentionRef({
          q: qd, k: kd, v: vd, gate: gd, Lq, Lk, H, Hkv, d, scale: 1 / Math.sqrt(d),
          causal: s.causal, causalOffset: s.causalOffset, segments: s.segments, keyRanges: s.keyRanges, keySegments: s.keySegments, keyMask: md,
        }),
        flops: 4 * visiblePairs(s) * H * d,
        bytes: (2 * Lq * H * d + 2 * Lk * Hkv * d + (gate ? Lq * H * d : 0) + (md ? Lk : 0)) * 4,
        dispose() { for (const t of tensors) t.release(); },
      };
    },
  };
}

const causalSweep: AttentionShape[] = [1, 7, 64, 257].flatMap((L) =>
  [48, 64, 128, 256].flatMap((d) => [
    { Lq: L, Lk: L, H: 2, Hkv: 2, d, causal: true },
    { Lq: L, Lk: L, H: 4, Hkv: 1, d, causal: true },
  ]),
);

export const attentionCases: OpCase[] = [
  ...causalSweep.map(attentionCase),
  attentionCase({ Lq: 1000, Lk: 1000, H: 2, Hkv: 2, d: 64, causal: true }),
  attentionCase({ Lq: 1000, Lk: 1000, H: 4, Hkv: 1, d: 128, causal: true }),
  // other head dims: tiny configs (32), any multiple of 4
  attentionCase({ Lq: 45, Lk: 45, H: 3, Hkv: 3, d: 32, causal: true }),
  attentionCase({ Lq: 19, Lk: 19, H: 2, Hkv: 1, d: 4 }),
  attentionCase({ Lq: 30, Lk: 23, H: 2, Hkv: 2, d: 36 }),
  attentionCase({ Lq: 33, Lk: 33, H: 2, Hkv: 2, d: 64 }),
  // vision: segments per image (non-causal), q/k/v inside the fused qkv projection output
  attentionCase({ Lq: 170, Lk: 170, H: 2, Hkv: 2, d: 64, segments: [0, 49, 50, 170], layout: 'fused' }),
  attentionCase({ Lq: 170, Lk: 170, H: 2, Hkv: 2, d: 48, segments: [0, 49, 50, 170] }),
  attentionCase({ Lq: 75, Lk: 75, H: 2, Hkv: 2, d: 32, segments: [0, 3, 3, 70, 75], causal: true }),
  attentionCase({ Lq: 40, Lk: 40, H: 1, Hkv: 1, d: 64, segments: [0, 40], layout: 'fused' }),
  // ragged batches: DiT self-attention rows of 17 with a key mask; cross-attention with a key range per row
  // (overlapping, empty, and a row longer than one key tile)
  attentionCase({ Lq: 51, Lk: 51, H: 4, Hkv: 4, d: 32, segments: [0, 17, 34, 51], mask: 'random', maskDtype: 'f32' }),
  attentionCase({ Lq: 51, Lk: 90, H: 4, Hkv: 4, d: 32, segments: [0, 17, 34, 51], keyRanges: [0, 40, 40, 40, 20, 90] }),
  attentionCase({ Lq: 70, Lk: 33, H: 2, Hkv: 1, d: 64, segments: [0, 5, 70], keyRanges: [3, 33, 0, 7], gate: true }),
  // prompt suffixes after cached prefixes: query / key cu_seqlens, causal aligned to each segment's bottom right
  // (key segment = prefix ++ the suffix's own keys); an empty prefix, a 1-token suffix, an empty suffix
  attentionCase({ Lq: 60, Lk: 131, H: 4, Hkv: 2, d: 64, segments: [0, 23, 24, 24, 60], keySegments: [0, 61, 62, 69, 131], causal: true, layout: 'qgate' }),
  attentionCase({ Lq: 41, Lk: 77, H: 2, Hkv: 1, d: 32, segments: [0, 41], keySegments: [0, 77], causal: true, mask: 'random' }),
  attentionCase({ Lq: 9, Lk: 20, H: 3, Hkv: 3, d: 36, segments: [0, 4, 9], keySegments: [0, 4, 20], causal: true, kvPad: 3 }),
  // DiT cross-attention with a key-padding mask, fully masked, f32 mask; DiT self-attention
  attentionCase({ Lq: 17, Lk: 301, H: 4, Hkv: 4, d: 48, mask: 'random' }),
  attentionCase({ Lq: 17, Lk: 301, H: 4, Hkv: 4, d: 48, mask: 'random', maskDtype: 'f32', kvPad: 3 }),
  attentionCase({ Lq: 17, Lk: 301, H: 4, Hkv: 4, d: 48, mask: 'all0' }),
  attentionCase({ Lq: 17, Lk: 301, H: 4, Hkv: 4, d: 48 }),
  attentionCase({ Lq: 51, Lk: 51, H: 2, Hkv: 2, d: 48, tag: 'DiT self' }),
  // Qwen3.5 gated attention: q and gate interleaved per head in q_proj's output; separate gate
  attentionCase({ Lq: 37, Lk: 37, H: 4, Hkv: 1, d: 64, causal: true, layout: 'qgate' }),
  attentionCase({ Lq: 20, Lk: 20, H: 4, Hkv: 1, d: 256, causal: true, layout: 'qgate', kvPad: 1 }),
  attentionCase({ Lq: 9, Lk: 9, H: 2, Hkv: 2, d: 128, causal: true, gate: true }),
  // causalOffset: queries at the end of the keys (default), an explicit offset, a negative one (empty rows → 0)
  attentionCase({ Lq: 5, Lk: 40, H: 2, Hkv: 1, d: 64, causal: true }),
  attentionCase({ Lq: 12, Lk: 40, H: 2, Hkv: 1, d: 64, causal: true, causalOffset: 3 }),
  attentionCase({ Lq: 12, Lk: 40, H: 2, Hkv: 1, d: 64, causal: true, causalOffset: -2 }),
  // flash-decoding, called directly; and through attention()'s routing (Lq ≤ 4, Lk ≥ 128)
  attentionCase({ Lq: 1, Lk: 600, H: 4, Hkv: 1, d: 256, causal: true, decode: true, layout: 'qgate' }),
  attentionCase({ Lq: 1, Lk: 1, H: 4, Hkv: 1, d: 256, causal: true, decode: true }),
  attentionCase({ Lq: 3, Lk: 301, H: 4, Hkv: 4, d: 48, mask: 'random', decode: true }),
  attentionCase({ Lq: 3, Lk: 301, H: 2, Hkv: 2, d: 48, mask: 'all0', decode: true }),
  attentionCase({ Lq: 4, Lk: 130, H: 4, Hkv: 2, d: 64, causal: true, gate: true, decode: true }),
  attentionCase({ Lq: 2, Lk: 200, H: 2, Hkv: 1, d: 64, causal: true, causalOffset: 50, decode: true, kvPad: 5 }),
  attentionCase({ Lq: 4, Lk: 4, H: 2, Hkv: 2, d: 64, segments: [0, 1, 4], decode: true }),
  attentionCase({ Lq: 2, Lk: 1500, H: 32, Hkv: 32, d: 48, causal: true, mask: 'random', decode: true, tag: 'several KV tiles per split' }), // 8 splits of 192 keys
  attentionCase({ Lq: 4, Lk: 260, H: 8, Hkv: 2, d: 64, causal: true, decode: true, tag: '2 row groups per kv head' }),
  attentionCase({ Lq: 1, Lk: 140, H: 6, Hkv: 2, d: 64, causal: true, decode: true, tag: 'padded row group' }),
  attentionCase({ Lq: 2, Lk: 700, H: 4, Hkv: 1, d: 64, causal: true, tag: 'routed to decode' }),
];

export const attentionPerfCases: OpCase[] = [
  // Qwen3.5-4B text: 16 q / 4 kv heads, d 256, causal, gated; prefill of ~600 tokens and one decode step
  attentionCase({ Lq: 600, Lk: 600, H: 16, Hkv: 4, d: 256, causal: true, layout: 'qgate', perf: true, tag: '4B text prefill' }),
  attentionCase({ Lq: 1, Lk: 600, H: 16, Hkv: 4, d: 256, causal: true, layout: 'qgate', perf: true, tag: '4B text decode' }),
  // vision: 2400 patches, 16 heads of 64, one image and four images
  attentionCase({ Lq: 2400, Lk: 2400, H: 16, Hkv: 16, d: 64, segments: [0, 2400], layout: 'fused', perf: true, tag: 'vision 1 image' }),
  attentionCase({ Lq: 2400, Lk: 2400, H: 16, Hkv: 16, d: 64, segments: [0, 600, 1200, 1800, 2400], layout: 'fused', perf: true, tag: 'vision 4 images' }),
  // DiT: 51 tokens (1 state + 50 actions), 32 heads of 48; cross to 600 VLM tokens with a padding mask; self
  attentionCase({ Lq: 51, Lk: 600, H: 32, Hkv: 32, d: 48, mask: 'random', perf: true, tag: 'DiT cross' }),
  attentionCase({ Lq: 51, Lk: 51, H: 32, Hkv: 32, d: 48, perf: true, tag: 'DiT self' }),
  // tiny config: text 4/2 heads of 64, vision 2 heads of 32, DiT 4 heads of 32 over 17 tokens
  attentionCase({ Lq: 100, Lk: 100, H: 4, Hkv: 2, d: 64, causal: true, layout: 'qgate', perf: true, tag: 'tiny text prefill' }),
  attentionCase({ Lq: 1, Lk: 100, H: 4, Hkv: 2, d: 64, causal: true, layout: 'qgate', decode: true, perf: true, tag: 'tiny text decode' }),
  attentionCase({ Lq: 64, Lk: 64, H: 2, Hkv: 2, d: 32, segments: [0, 64], layout: 'fused', perf: true, tag: 'tiny vision' }),
  attentionCase({ Lq: 17, Lk: 100, H: 4, Hkv: 4, d: 32, mask: 'random', perf: true, tag: 'tiny DiT cross' }),
  attentionCase({ Lq: 17, Lk: 17, H: 4, Hkv: 4, d: 32, perf: true, tag: 'tiny DiT self' }),
];

// Plain f64 CPU reference of attention (src/ops/attention.ts): explicit scores, plain softmax over the visible
// keys (docs/architecture.md §5.8 / §4.4, docs/action-decoder.md §6.2).
import { sigmoid } from './activations.js';

export interface AttentionRefArgs {
  /** q [Lq, H, d], k / v [Lk, Hkv, d], gate [Lq, H, d]: contiguous (extracted from any strided view). */
  q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number>; gate?: ArrayLike<number>;
  Lq: number; Lk: number; H: number; Hkv: number; d: number; scale: number;
  causal?: boolean; causalOffset?: number;
  segments?: ArrayLike<number>;
  /** key range [lo_s, hi_s) of query segment s, as pairs (default: the same segment of the keys) */
  keyRanges?: ArrayLike<number>;
  /**
   * cu_seqlens of the keys (query segment s sees key segment s); with causal, aligned to the segment's bottom
   * right: its i-th query (from 0) sees its first n_k − n_q + i + 1 keys.
   */
  keySegments?: ArrayLike<number>;
  /** 0 = masked key */
  keyMask?: ArrayLike<number>;
}

/** out [Lq, H·d]; a row that sees no key is all zeros. */
export function attentionRef(a: AttentionRefArgs): Float64Array {
  const { Lq, Lk, H, Hkv, d } = a;
  const G = H / Hkv;
  const off = a.causalOffset ?? Lk - Lq;
  // segment of token i: the k with segments[k] ≤ i < segments[k+1]
  const segOf = (i: number): number => {
    const s = a.segments!;
    let k = 0;
    while (k + 1 < s.length - 1 && s[k + 1] <= i) k++;
    return k;
  };
  const segId = a.segments ? Array.from({ length: Math.max(Lq, Lk) }, (_, i) => segOf(i)) : [];
  const out = new Float64Array(Lq * H * d);
  const sc = new Float64Array(Lk);
  const vis = new Uint8Array(Lk);
  for (let t = 0; t < Lq; t++) {
    for (let j = 0; j < Lk; j++) {
      let ok = true;
      if (a.keySegments) {
        const s = segId[t], ks = a.keySegments, qs = a.segments!;
        if (j < ks[s] || j >= ks[s + 1]) ok = false;
        if (a.causal && j - ks[s] > t - qs[s] + (ks[s + 1] - ks[s]) - (qs[s + 1] - qs[s])) ok = false;
      } else if (a.causal && j > t + off) ok = false;
      if (a.segments && !a.keyRanges && !a.keySegments && segId[j] !== segId[t]) ok = false;
      if (a.keyRanges && (j < a.keyRanges[2 * segId[t]] || j >= a.keyRanges[2 * segId[t] + 1])) ok = false;
      if (a.keyMask && a.keyMask[j] === 0) ok = false;
      vis[j] = ok ? 1 : 0;
    }
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / G);
      let mx = -Infinity;
      for (let j = 0; j < Lk; j++) {
        if (!vis[j]) continue;
        let s = 0;
        for (let e = 0; e < d; e++) s += a.q[(t * H + h) * d + e] * a.k[(j * Hkv + hk) * d + e];
        sc[j] = s * a.scale;
        mx = Math.max(mx, sc[j]);
      }
      if (mx === -Infinity) continue; // no visible key: zeros
      let sum = 0;
      for (let j = 0; j < Lk; j++) if (vis[j]) sum += (sc[j] = Math.exp(sc[j] - mx));
      const o = (t * H + h) * d;
      for (let j = 0; j < Lk; j++) {
        if (!vis[j]) continue;
        const p = sc[j] / sum;
        for (let e = 0; e < d; e++) out[o + e] += p * a.v[(j * Hkv + hk) * d + e];
      }
      if (a.gate) for (let e = 0; e < d; e++) out[o + e] *= sigmoid(a.gate[o + e]);
    }
  }
  return out;
}

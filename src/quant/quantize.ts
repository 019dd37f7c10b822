// Quantising one Linear weight (rows of f32 values) into the format of docs/quantization.md, and the error it
// makes. Pure host code: `qvla quantize` streams row blocks through it, tests and the op cases use it directly.
import { f16ToF32, f32ToF16 } from '../tensor.js';
import type { QuantizedHost } from './tensor.js';

export interface QuantScheme {
  bits: 8 | 4;
  /** int4: elements of K per scale (32, 64, 128); ignored for int8 (one scale per output row). */
  group: number;
  /** int4 only: store a zero point per group (asymmetric) instead of the fixed 8. */
  zeroPoint: boolean;
}

/** The f16 scale actually stored for `v` (what dequantisation will multiply by). */
function f16Scale(v: number): { bits: number; value: number } {
  const b = f32ToF16(v);
  return { bits: b, value: f16ToF32(b) };
}

/**
 * Quantises `rows` rows of K values (`w`, row-major) and writes the packed data, scales and zero points into
 * the given arrays starting at row 0 (the caller offsets them for a row block).
 * - int8: s = max|w|/127 per row, q = round(w/s) ∈ [−127, 127];
 * - int4 symmetric (ggml Q4_0's rule): the value of largest magnitude m maps to −8, s = m/−8, q = round(w/s) + 8
 *   clamped to 0..15 (one more level than ±7);
 * - int4 with zero point: the group's [min(w, 0), max(w, 0)] spans 0..15, s = (max − min)/15, z = round(−min/s).
 * Scales are rounded to f16 before the codes are chosen, so codes are the best for the scale that is stored.
 */
export function quantizeRows(
  w: Float32Array, rows: number, K: number, scheme: QuantScheme,
  qweight: Uint8Array, scales: Uint16Array, qzeros: Uint8Array | null,
): void {
  if (scheme.bits === 8) {
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(w[r * K + k]!));
      const s = f16Scale(m / 127);
      scales[r] = s.bits;
      const inv = s.value > 0 ? 1 / s.value : 0;
      for (let k = 0; k < K; k++) {
        const q = Math.max(-127, Math.min(127, Math.round(w[r * K + k]! * inv)));
        qweight[r * K + k] = q & 0xff;
      }
    }
    return;
  }
  const g = scheme.group;
  const G = K / g;
  for (let r = 0; r < rows; r++) {
    for (let gi = 0; gi < G; gi++) {
      const base = r * K + gi * g;
      let s: { bits: number; value: number };
      let z: number;
      if (scheme.zeroPoint) {
        let lo = 0, hi = 0;
        for (let k = 0; k < g; k++) { const v = w[base + k]!; lo = Math.min(lo, v); hi = Math.max(hi, v); }
        s = f16Scale((hi - lo) / 15);
        z = s.value > 0 ? Math.max(0, Math.min(15, Math.round(-lo / s.value))) : 0;
        qzeros![r * G + gi] = z;
      } else {
        let m = 0;
        for (let k = 0; k < g; k++) { const v = w[base + k]!; if (Math.abs(v) > Math.abs(m)) m = v; }
        s = f16Scale(m / -8);
        z = 8;
      }
      scales[r * G + gi] = s.bits;
      const inv = s.value !== 0 ? 1 / s.value : 0;
      for (let k = 0; k < g; k += 2) {
        const q0 = Math.max(0, Math.min(15, Math.round(w[base + k]! * inv) + z));
        const q1 = Math.max(0, Math.min(15, Math.round(w[base + k + 1]! * inv) + z));
        qweight[(base + k) >> 1] = q0 | (q1 << 4);
      }
    }
  }
}

/** Allocates and fills the packed form of a whole [N, K] weight. */
export function quantizeWeight(w: Float32Array, N: number, K: number, scheme: QuantScheme): QuantizedHost {
  checkScheme(scheme, K, 'weight');
  const group = scheme.bits === 8 ? K : scheme.group;
  const G = K / group;
  const qweight = new Uint8Array((N * K * scheme.bits) / 8);
  const scales = new Uint16Array(N * G);
  const qzeros = scheme.bits === 4 && scheme.zeroPoint ? new Uint8Array(N * G) : null;
  quantizeRows(w, N, K, scheme, qweight, scales, qzeros);
  return { bits: scheme.bits, N, K, group, qweight, scales, qzeros };
}

/** Why a [N, K] weight cannot take the scheme, or null. */
export function schemeProblem(scheme: QuantScheme, K: number): string | null {
  if (scheme.bits === 8) return K % 4 === 0 ? null : `K = ${K} is not a multiple of 4`;
  if (K % scheme.group !== 0) return `group size ${scheme.group} does not divide K = ${K}`;
  return null;
}

export function checkScheme(scheme: QuantScheme, K: number, name: string): void {
  const p = schemeProblem(scheme, K);
  if (p) throw new Error(`${name}: ${p}`);
}

/** Error of a quantised weight against the original, accumulated over row blocks. */
export class ErrorStats {
  private se = 0;
  private ss = 0;
  maxAbs = 0;
  count = 0;

  add(orig: ArrayLike<number>, deq: ArrayLike<number>, n = orig.length): void {
    for (let i = 0; i < n; i++) {
      const d = deq[i]! - orig[i]!;
      this.se += d * d;
      this.ss += orig[i]! * orig[i]!;
      if (Math.abs(d) > this.maxAbs) this.maxAbs = Math.abs(d);
    }
    this.count += n;
  }

  /** ‖ŵ − w‖ / ‖w‖. */
  get relRms(): number {
    return this.ss > 0 ? Math.sqrt(this.se / this.ss) : Math.sqrt(this.se);
  }

  /** Signal-to-quantisation-noise ratio in dB. */
  get sqnrDb(): number {
    return this.se > 0 ? 10 * Math.log10(this.ss / this.se) : Infinity;
  }
}

// Plain f64 CPU references of the row norms (src/ops/norm.ts), straight from docs/architecture.md §5.2, §4.4 and
// docs/action-decoder.md §6.2–§6.3.
import { silu } from './activations.js';

type Arr = ArrayLike<number>;

function rms(x: Arr, o: number, dim: number, eps: number): number {
  let s = 0;
  for (let j = 0; j < dim; j++) s += x[o + j] * x[o + j];
  return 1 / Math.sqrt(s / dim + eps);
}

function meanInvStd(x: Arr, o: number, dim: number, eps: number): [number, number] {
  let s = 0;
  for (let j = 0; j < dim; j++) s += x[o + j];
  const mean = s / dim;
  let v = 0;
  for (let j = 0; j < dim; j++) v += (x[o + j] - mean) ** 2;
  return [mean, 1 / Math.sqrt(v / dim + eps)];
}

/** y = x·rsqrt(mean(x²) + eps) · w (addOne: · (1 + w); w null: no weight), per row of `dim`. */
export function rmsNormRef(x: Arr, w: Arr | null, dim: number, eps: number, addOne = false): Float64Array {
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += dim) {
    const inv = rms(x, o, dim, eps);
    for (let j = 0; j < dim; j++) y[o + j] = x[o + j] * inv * (w ? (addOne ? 1 + w[j] : w[j]) : 1);
  }
  return y;
}

/** Qwen3_5RMSNormGated: y = (x·rsqrt(mean(x²) + eps) · w) · silu(z), per row of dim = w.length. */
export function rmsNormGatedRef(x: Arr, z: Arr, w: Arr, eps: number): Float64Array {
  const dim = w.length;
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += dim) {
    const inv = rms(x, o, dim, eps);
    for (let j = 0; j < dim; j++) y[o + j] = x[o + j] * inv * w[j] * silu(z[o + j]);
  }
  return y;
}

/** y = (x − μ)·rsqrt(var + eps) · w + b (biased variance, as torch LayerNorm), per row of `dim`. */
export function layerNormRef(x: Arr, w: Arr | null, b: Arr | null, dim: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += dim) {
    const [mean, inv] = meanInvStd(x, o, dim, eps);
    for (let j = 0; j < dim; j++) y[o + j] = (x[o + j] - mean) * inv * (w ? w[j] : 1) + (b ? b[j] : 0);
  }
  return y;
}

/**
 * adaLN: y = LN(x; no affine)·(1 + scale) + shift over rows of `dim`; mod = [scale | shift] ('scale-shift') or
 * [shift | scale] ('shift-scale'), 2·dim values shared by every row, or 2·dim per row.
 */
export function modulatedLayerNormRef(x: Arr, mod: Arr, dim: number, eps: number, order: 'scale-shift' | 'shift-scale'): Float64Array {
  const y = new Float64Array(x.length);
  const perRow = mod.length !== 2 * dim;
  for (let o = 0, r = 0; o < x.length; o += dim, r++) {
    const [mean, inv] = meanInvStd(x, o, dim, eps);
    const mo = perRow ? r * 2 * dim : 0;
    const sc = order === 'scale-shift' ? mo : mo + dim;
    const sh = order === 'scale-shift' ? mo + dim : mo;
    for (let j = 0; j < dim; j++) y[o + j] = (x[o + j] - mean) * inv * (1 + mod[sc + j]) + mod[sh + j];
  }
  return y;
}

// Plain CPU references of the rotary embeddings (docs/architecture.md §5.9 text M-RoPE, §4.3 vision 2-D rope).
// Where PyTorch rounds to fp32 (inv_freq and the angle pos·inv_freq, both fp32 tensors in HF), this does too;
// cos/sin and the rotation are then f64.
const f32 = Math.fround;

/** fp32 inv_freq as HF builds it: 1.0 / (theta ** (arange(0, dim, 2).float() / dim)), j < dim/2. */
export function invFreqRef(theta: number, dim: number): number[] {
  const inv: number[] = [];
  for (let j = 0; j < dim / 2; j++) inv.push(f32(1 / f32(Math.pow(f32(theta), f32((2 * j) / dim)))));
  return inv;
}

export interface HeadLayout {
  L: number;
  numHeads: number;
  headDim: number;
  rowStride: number;
  offset?: number;
  headStride?: number;
}

/** Rotate pairs (e, e + half) of every head by angle(t, e); returns a copy of `buf` (f64). */
function rotate(buf: ArrayLike<number>, v: HeadLayout, half: number, angle: (t: number, e: number) => number): Float64Array {
  const out = Float64Array.from(buf);
  const hs = v.headStride ?? v.headDim;
  for (let t = 0; t < v.L; t++) {
    for (let e = 0; e < half; e++) {
      const a = angle(t, e);
      const c = Math.cos(a), s = Math.sin(a);
      for (let h = 0; h < v.numHeads; h++) {
        const b = (v.offset ?? 0) + t * v.rowStride + h * hs + e;
        const x1 = buf[b], x2 = buf[b + half];
        out[b] = x1 * c - x2 * s;
        out[b + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/**
 * Text M-RoPE on the flat buffer `buf`. positions [3, posCols] (rows t, h, w); token t reads column
 * positionOffset + t. Frequency j's axis: interleaved → H if j%3==1 && j<3·sec[1], W if j%3==2 && j<3·sec[2],
 * else T; chunked → T for j < sec[0], H for the next sec[1], W for the rest.
 */
export function ropeTextRef(
  buf: ArrayLike<number>, positions: ArrayLike<number>, posCols: number, v: HeadLayout,
  o: { rotaryDim: number; theta: number; mropeSection: [number, number, number]; interleaved: boolean; positionOffset?: number },
): Float64Array {
  const half = o.rotaryDim / 2;
  const inv = invFreqRef(o.theta, o.rotaryDim);
  const sec = o.mropeSection;
  const axis = (j: number): number => {
    if (o.interleaved) {
      if (j % 3 === 1 && j < 3 * sec[1]) return 1;
      if (j % 3 === 2 && j < 3 * sec[2]) return 2;
      return 0;
    }
    return j < sec[0] ? 0 : j < sec[0] + sec[1] ? 1 : 2;
  };
  const col = o.positionOffset ?? 0;
  return rotate(buf, v, half, (t, j) => f32(f32(positions[axis(j) * posCols + col + t]) * inv[j]));
}

/**
 * Vision 2-D rope: coords [2, coordCols] (rows, then cols). f = [r·inv[0..d/4), c·inv[0..d/4)],
 * inv[j] = theta^(−2j/(d/2)); emb = concat(f, f) over all d dims, rotate_half pairs (e, e + d/2).
 */
export function ropeVisionRef(buf: ArrayLike<number>, coords: ArrayLike<number>, coordCols: number, v: HeadLayout, theta: number): Float64Array {
  const d = v.headDim;
  const inv = invFreqRef(theta, d / 2); // d/4 values
  const q = d / 4;
  return rotate(buf, v, d / 2, (t, e) => (e < q ? f32(f32(coords[t]) * inv[e]) : f32(f32(coords[coordCols + t]) * inv[e - q])));
}

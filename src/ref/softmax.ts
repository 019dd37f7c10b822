// Plain f64 CPU reference of softmax over rows (src/ops/softmax.ts).

/** y = softmax(scale · x) along rows of `dim`; a row of all -inf gives zeros (as the kernel documents). */
export function softmaxRef(x: ArrayLike<number>, dim: number, scale = 1): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    const o = r * dim;
    let m = -Infinity;
    for (let j = 0; j < dim; j++) m = Math.max(m, scale * x[o + j]);
    if (m === -Infinity) continue;
    let s = 0;
    for (let j = 0; j < dim; j++) s += Math.exp(scale * x[o + j] - m);
    for (let j = 0; j < dim; j++) y[o + j] = Math.exp(scale * x[o + j] - m) / s;
  }
  return y;
}

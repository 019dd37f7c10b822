// Plain f64 CPU reference of the NaN guard count (src/ops/checkFinite.ts): how many values are NaN or ±Inf.

export function countNonFiniteRef(values: ArrayLike<number>): number {
  let n = 0;
  for (let k = 0; k < values.length; k++) if (!Number.isFinite(values[k])) n++;
  return n;
}

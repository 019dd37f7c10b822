// Plain f64 CPU reference of the embedding row gather (src/ops/gather.ts).

/**
 * out[(outRowOffset + l)·D + j] = table[(ids[l] − rowOffset)·D + j] for ids in [rowOffset, rowOffset + V);
 * other rows keep `init` (zeros by default). `outRows` is the number of rows of out.
 */
export function gatherRowsRef(
  table: ArrayLike<number>, V: number, D: number, ids: ArrayLike<number>,
  opts: { rowOffset?: number; outRowOffset?: number; outRows?: number; init?: ArrayLike<number> } = {},
): Float64Array {
  const ro = opts.rowOffset ?? 0;
  const oro = opts.outRowOffset ?? 0;
  const out = new Float64Array((opts.outRows ?? ids.length + oro) * D);
  if (opts.init) for (let k = 0; k < out.length; k++) out[k] = opts.init[k];
  for (let l = 0; l < ids.length; l++) {
    const r = ids[l] - ro;
    if (r < 0 || r >= V) continue;
    for (let j = 0; j < D; j++) out[(oro + l) * D + j] = table[r * D + j];
  }
  return out;
}

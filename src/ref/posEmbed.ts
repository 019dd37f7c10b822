// Plain f64 CPU reference of the bilinearly resampled vision position embedding (docs/architecture.md §4.2).

/**
 * Returns x + P (f64), x [Np, C]; table [S*S, C]. Per image (t, h, w), patch (row r, col c) in merge-block order
 * (bh, bw, ih, iw) samples the table at y = r·(S−1)/max(h−1, 1), x = c·(S−1)/max(w−1, 1) bilinearly
 * (y0 = ⌊y⌋, y1 = min(y0+1, S−1), dy = y − y0); frames repeat for each t; images concatenated in order.
 */
export function posEmbedRef(
  x: ArrayLike<number>, table: ArrayLike<number>, C: number, S: number,
  grids: { t: number; h: number; w: number }[], merge: number,
): Float64Array {
  const out = Float64Array.from(x);
  const T = (yy: number, xx: number, ch: number) => table[(yy * S + xx) * C + ch];
  let row = 0;
  for (const g of grids) {
    for (let tt = 0; tt < g.t; tt++) {
      for (let bh = 0; bh < g.h / merge; bh++) {
        for (let bw = 0; bw < g.w / merge; bw++) {
          for (let ih = 0; ih < merge; ih++) {
            for (let iw = 0; iw < merge; iw++) {
              const r = bh * merge + ih, c = bw * merge + iw;
              const y = (r * (S - 1)) / Math.max(g.h - 1, 1);
              const xx = (c * (S - 1)) / Math.max(g.w - 1, 1);
              const y0 = Math.floor(y), x0 = Math.floor(xx);
              const y1 = Math.min(y0 + 1, S - 1), x1 = Math.min(x0 + 1, S - 1);
              const dy = y - y0, dx = xx - x0;
              for (let ch = 0; ch < C; ch++) {
                out[row * C + ch] +=
                  (1 - dy) * (1 - dx) * T(y0, x0, ch) + (1 - dy) * dx * T(y0, x1, ch) +
                  dy * (1 - dx) * T(y1, x0, ch) + dy * dx * T(y1, x1, ch);
              }
              row++;
            }
          }
        }
      }
    }
  }
  return out;
}

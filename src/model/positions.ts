// Position ids for the ropes (pure CPU, no GPU).
// - visionPatchCoords: (row, col) of every vision patch in merge-block order (docs/architecture.md §3.5,
//   §4.3), the coordinates of the vision 2-D rope;
// - ropeIndex: the 3-D (t, h, w) text positions of a mixed text/image sequence and rope_delta (§6.2, HF
//   `get_rope_index`);
// - decodePositions: positions of generated tokens (n + rope_delta on every axis).

export interface Grid {
  t: number;
  h: number;
  w: number;
}

function checkGrid(what: string, g: Grid, merge: number): void {
  for (const [k, v] of [['t', g.t], ['h', g.h], ['w', g.w]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${what}: grid ${k}=${v} must be a positive integer`);
  }
  if (g.h % merge !== 0 || g.w % merge !== 0) throw new Error(`${what}: grid ${g.h}×${g.w} is not divisible by the spatial merge size ${merge}`);
}

/**
 * (row, col) of every patch as i32 [2, Np] (all rows, then all cols). Per image, patches are in merge-block order
 * (bh, bw, ih, iw): row = bh·m + ih, col = bw·m + iw; the frame's coordinates repeat for each t; images are
 * concatenated in order.
 */
export function visionPatchCoords(grids: Grid[], spatialMerge = 2): Int32Array {
  const m = spatialMerge;
  let np = 0;
  for (const g of grids) {
    checkGrid('visionPatchCoords', g, m);
    np += g.t * g.h * g.w;
  }
  const out = new Int32Array(2 * np);
  let k = 0;
  for (const g of grids) {
    for (let tt = 0; tt < g.t; tt++) {
      for (let bh = 0; bh < g.h / m; bh++) {
        for (let bw = 0; bw < g.w / m; bw++) {
          for (let ih = 0; ih < m; ih++) {
            for (let iw = 0; iw < m; iw++) {
              out[k] = bh * m + ih;
              out[np + k] = bw * m + iw;
              k++;
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * docs/architecture.md §6.2: split the sequence into maximal runs of equal mm token type (0 text, 1 image). A cursor p starts at 0.
 * A text run of n tokens gets p..p+n−1 on all axes, then p += n. An image run (next grid (gt, gh, gw), merged
 * H = gh/m, W = gw/m, run length gt·H·W) gets (p + tt, p + r, p + c) in (tt, r, c) order, then p += max(gh, gw)/m.
 * rope_delta = max(all positions) + 1 − L (0 for an empty sequence).
 * Returns positions i32 [3, L] (t row, h row, w row).
 */
export function ropeIndex(
  mmTokenTypeIds: ArrayLike<number>,
  imageGrids: Grid[],
  spatialMerge: number,
): { positions: Int32Array; ropeDelta: number } {
  const m = spatialMerge;
  if (!Number.isInteger(m) || m < 1) throw new Error(`ropeIndex: spatialMerge ${m} must be a positive integer`);
  const L = mmTokenTypeIds.length;
  const pos = new Int32Array(3 * L);
  let p = 0;
  let gi = 0;
  let max = -1;
  let i = 0;
  while (i < L) {
    const type = mmTokenTypeIds[i];
    let j = i;
    while (j < L && mmTokenTypeIds[j] === type) j++;
    const n = j - i;
    if (type === 0) {
      for (let k = 0; k < n; k++) pos[i + k] = pos[L + i + k] = pos[2 * L + i + k] = p + k;
      max = Math.max(max, p + n - 1);
      p += n;
    } else if (type === 1) {
      if (gi >= imageGrids.length) throw new Error(`ropeIndex: image run at token ${i} but only ${imageGrids.length} image grid(s) given`);
      const g = imageGrids[gi++];
      checkGrid('ropeIndex', g, m);
      const H = g.h / m, W = g.w / m;
      if (n !== g.t * H * W) {
        throw new Error(`ropeIndex: image ${gi - 1} run at token ${i} has ${n} tokens, but grid ${g.t}×${g.h}×${g.w} with merge ${m} needs ${g.t * H * W}`);
      }
      let k = i;
      for (let tt = 0; tt < g.t; tt++) {
        for (let r = 0; r < H; r++) {
          for (let c = 0; c < W; c++) {
            pos[k] = p + tt;
            pos[L + k] = p + r;
            pos[2 * L + k] = p + c;
            k++;
          }
        }
      }
      max = Math.max(max, p + g.t - 1, p + H - 1, p + W - 1);
      p += Math.max(g.h, g.w) / m;
    } else {
      throw new Error(`ropeIndex: mm token type ${type} at token ${i} is not supported (0 = text, 1 = image; videos are not)`);
    }
    i = j;
  }
  if (gi !== imageGrids.length) throw new Error(`ropeIndex: ${imageGrids.length} image grids given but the sequence has ${gi} image run(s)`);
  return { positions: pos, ropeDelta: L ? max + 1 - L : 0 };
}

/** Positions of tokens start..start+count−1 during decode: i32 [3, count], all axes n + ropeDelta. */
export function decodePositions(start: number, count: number, ropeDelta: number): Int32Array {
  const out = new Int32Array(3 * count);
  for (let k = 0; k < count; k++) out[k] = out[count + k] = out[2 * count + k] = start + k + ropeDelta;
  return out;
}

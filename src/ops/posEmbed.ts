// Vision learned position embedding, bilinearly resampled (docs/architecture.md §4.2), added in place to the
// patch embeddings: kernels/pos_embed.wgsl. One dispatch per run of consecutive images with the same h×w grid
// (the kernel indexes patches modulo h·w, so such a run is one image of several frames; a batch of robots with
// the same camera size is one dispatch).
import type { KernelSpec } from '../gpu/pipelines.js';
import type { Tensor } from '../tensor.js';
import { bind } from './views.js';

// The S×S table T (TT: f32 or f16) and the patch rows X of one run of same-grid images, updated in place.
const POS_EMBED_IO = {
  params: { rows: 'u32', C: 'u32', gh: 'u32', gw: 'u32', side: 'u32', merge: 'u32', x_off: 'u32', t_off: 'u32', groups_x: 'u32' },
  bindings: { T: 'read TT', X: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

const WG = 128;

/**
 * x [Np, C] f32 += P, where P is the S×S table [S*S, C] (f32 or f16) resampled bilinearly with align_corners=True
 * to each image's (h, w) patch grid, rows in merge-block order (bh, bw, ih, iw), repeated for each t; images are
 * concatenated in order (Np = Σ t·h·w).
 */
export function addInterpolatedPosEmbed(x: Tensor, table: Tensor, grids: { t: number; h: number; w: number }[], spatialMerge: number): void {
  const gpu = x.gpu;
  const m = spatialMerge;
  if (x.dtype !== 'f32' || x.shape.length !== 2) throw new Error(`addInterpolatedPosEmbed: x must be f32 [Np, C], got ${x.dtype} [${x.shape}]`);
  const [Np, C] = x.shape;
  if (table.dtype !== 'f32' && table.dtype !== 'f16') throw new Error(`addInterpolatedPosEmbed: table must be f32 or f16, got ${table.dtype}`);
  if (table.shape.length !== 2 || table.shape[1] !== C) throw new Error(`addInterpolatedPosEmbed: table [${table.shape}] must be [S*S, ${C}] for x [${x.shape}]`);
  const S = Math.round(Math.sqrt(table.shape[0]));
  if (S * S !== table.shape[0]) throw new Error(`addInterpolatedPosEmbed: table has ${table.shape[0]} rows, not a square S*S`);
  if (!Number.isInteger(m) || m < 1) throw new Error(`addInterpolatedPosEmbed: spatialMerge ${m} must be a positive integer`);
  let total = 0;
  for (const g of grids) {
    if (![g.t, g.h, g.w].every((v) => Number.isInteger(v) && v >= 1)) throw new Error(`addInterpolatedPosEmbed: bad grid ${JSON.stringify(g)}`);
    if (g.h % m || g.w % m) throw new Error(`addInterpolatedPosEmbed: grid ${g.h}×${g.w} not divisible by spatialMerge ${m}`);
    total += g.t * g.h * g.w;
  }
  if (total !== Np) throw new Error(`addInterpolatedPosEmbed: grids [${grids.map((g) => `${g.t}×${g.h}×${g.w}`)}] hold ${total} patches, x has ${Np} rows`);
  const op = 'addInterpolatedPosEmbed';
  if (x.buffer === table.buffer) throw new Error(`${op}: x shares a GPU buffer with the table`);
  const tb = bind(op, 'table', table);
  const spec: KernelSpec = { file: 'pos_embed', ...POS_EMBED_IO, aliases: { TT: table.dtype }, workgroup: [WG] };
  const kernel = gpu.pipelines.get(spec);
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  const runs: { h: number; w: number; rows: number }[] = [];
  for (const g of grids) {
    const last = runs[runs.length - 1];
    if (last && last.h === g.h && last.w === g.w) last.rows += g.t * g.h * g.w;
    else runs.push({ h: g.h, w: g.w, rows: g.t * g.h * g.w });
  }
  let row0 = 0;
  for (const g of runs) {
    const rows = g.rows;
    const gx = Math.min(rows, maxWg);
    const gy = Math.ceil(rows / gx);
    const xb = bind(op, 'x', x, row0 * C, rows * C);
    const params = { rows, C, gh: g.h, gw: g.w, side: S, merge: m, x_off: xb.off, t_off: tb.off, groups_x: gx };
    gpu.stream.dispatch(kernel, { T: tb.range, X: xb.range }, params, [gx, gy], 'posEmbed');
    row0 += rows;
  }
}

// Embedding lookup (kernels/gather.wgsl): out[outRowOffset + l] = table[ids[l] − rowOffset] as f32.
//
// table [V, D] f32 or f16, ids i32 (or u32) [L]. A big embedding is split along rows into parts that each fit
// maxStorageBufferBindingSize; call once per part with that part's first global row as `rowOffset`: ids outside
// [rowOffset, rowOffset + V) are skipped, so the calls together fill every row (rows whose id is in no part
// keep their previous contents). `out` defaults to a fresh [L, D] (only valid with a single, whole table).
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { bind, shapeStr } from './views.js';

// Table T (WT: f32 or f16) rows, ids, output rows; row_offset: this table part's first global row.
const GATHER_IO = {
  params: { L: 'u32', D: 'u32', V: 'u32', row_offset: 'i32', ids_off: 'u32', t_off: 'u32', y_off: 'u32', out_row_offset: 'u32', groups_x: 'u32' },
  bindings: { T: 'read WT', Ids: 'read i32', Y: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

const WG = 256;

export function gatherRows(table: Tensor, ids: Tensor, opts: { out?: Tensor; rowOffset?: number; outRowOffset?: number } = {}): Tensor {
  const op = 'gatherRows';
  const gpu = table.gpu;
  if (table.shape.length !== 2) throw new Error(`${op}: table must be [V, D], got ${shapeStr(table)}`);
  if (table.dtype !== 'f32' && table.dtype !== 'f16') throw new Error(`${op}: table must be f32 or f16, got ${shapeStr(table)}`);
  if (ids.dtype !== 'i32' && ids.dtype !== 'u32') throw new Error(`${op}: ids must be i32, got ${shapeStr(ids)}`);
  const [V, D] = table.shape;
  const L = ids.size;
  const rowOffset = opts.rowOffset ?? 0;
  const outRowOffset = opts.outRowOffset ?? 0;
  if (!Number.isInteger(rowOffset) || rowOffset < 0 || rowOffset > 0x7fffffff) throw new Error(`${op}: bad rowOffset ${rowOffset}`);
  const out = opts.out ?? Tensor.empty(gpu, [L, D], 'f32', op);
  if (out.dtype !== 'f32' || out.shape[out.shape.length - 1] !== D || out.size < (outRowOffset + L) * D || !Number.isInteger(outRowOffset) || outRowOffset < 0) {
    throw new Error(`${op}: out ${shapeStr(out)} cannot hold rows [${outRowOffset}, ${outRowOffset + L}) of width ${D}`);
  }
  if (out.buffer === table.buffer || out.buffer === ids.buffer) throw new Error(`${op}: out shares a buffer with an input`);
  if (L === 0 || D === 0) return out;
  const ts = bind(op, 'table', table);
  const is = bind(op, 'ids', ids);
  const ys = bind(op, 'out', out);
  const spec: KernelSpec = { file: 'gather', ...GATHER_IO, aliases: { WT: table.dtype }, workgroup: [WG] };
  const gx = Math.min(L, gpu.limits.maxComputeWorkgroupsPerDimension);
  gpu.stream.dispatch(
    gpu.pipelines.get(spec),
    { T: ts.range, Ids: is.range, Y: ys.range },
    { L, D, V, row_offset: rowOffset, ids_off: is.off, t_off: ts.off, y_off: ys.off, out_row_offset: outRowOffset, groups_x: gx },
    [gx, Math.ceil(L / gx)],
    op,
  );
  return out;
}

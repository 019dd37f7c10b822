// Op cases for gatherRows (src/ops/gather.ts): f32 / f16 tables, awkward widths, a table split into two parts
// (ids outside a part are skipped, so two calls fill every row), invalid ids left untouched, outRowOffset.
import { gatherRows } from '../../ops/gather.js';
import { gatherRowsRef } from '../../ref/gather.js';
import { Tensor, f16ToF32Array, f32ToF16Array } from '../../tensor.js';
import type { OpCase } from '../opHarness.js';
import { simpleCase } from './elementwise.js';

interface GOpts { f16?: boolean; split?: number; outRowOffset?: number; invalid?: boolean; perf?: boolean; tag?: string }

function gatherCase(V: number, D: number, L: number, o: GOpts = {}): OpCase {
  const dt = o.f16 ? 'f16' : 'f32';
  const name = `gatherRows ${dt} V=${V} D=${D} L=${L}${o.split ? ` split@${o.split}` : ''}${o.outRowOffset ? ` outRow+${o.outRowOffset}` : ''}` +
    `${o.invalid ? ' invalid-ids' : ''}${o.tag ? ` [${o.tag}]` : ''}`;
  return simpleCase(name, 'gatherRows', (gpu, rng) => {
    let tv = rng.normals(V * D);
    const stored = o.f16 ? f32ToF16Array(tv) : tv;
    if (o.f16) tv = f16ToF32Array(stored as Uint16Array);
    const ids = Int32Array.from({ length: L }, (_, l) => (o.invalid && l % 5 === 2 ? (l % 2 ? -1 : V + l) : Math.floor(rng.uniform() * V)));
    // the parts of the table, each its own tensor as a split checkpoint would load them
    const cuts = o.split ? [0, o.split, V] : [0, V];
    const parts = cuts.slice(0, -1).map((r0, k) => {
      const rows = cuts[k + 1] - r0;
      const data = stored.subarray(r0 * D, (r0 + rows) * D);
      return { r0, t: Tensor.from(gpu, data, [rows, D], dt) };
    });
    const idsT = Tensor.from(gpu, ids, [L]);
    const oro = o.outRowOffset ?? 0;
    const outRows = oro + L + (oro ? 2 : 0);
    const init = Float32Array.from({ length: outRows * D }, (_, k) => -1000 - k);
    const out = Tensor.from(gpu, init, [outRows, D]);
    return {
      encode() {
        out.write(init);
        for (const p of parts) gatherRows(p.t, idsT, { out, rowOffset: p.r0, outRowOffset: oro });
      },
      outs: [out],
      reference: () => gatherRowsRef(tv, V, D, ids, { outRowOffset: oro, outRows, init }),
      tensors: [...parts.map((p) => p.t), idsT, out],
      bytes: L * D * (4 + (o.f16 ? 2 : 4)),
    };
  }, { perf: o.perf });
}

export const gatherCases: OpCase[] = [
  gatherCase(1, 1, 1),
  gatherCase(10, 3, 7),
  gatherCase(100, 64, 257, { f16: true }),
  gatherCase(33, 257, 7),
  gatherCase(50, 2560, 7, { f16: true }),
  gatherCase(200, 48, 31, { split: 77 }),
  gatherCase(200, 130, 31, { split: 101, f16: true }),
  gatherCase(20, 16, 12, { invalid: true }),
  gatherCase(20, 16, 5, { outRowOffset: 3 }),
  gatherCase(20, 33, 9, { outRowOffset: 2, split: 10, f16: true }),
];

export const gatherPerfCases: OpCase[] = [
  gatherCase(8192, 2560, 600, { f16: true, perf: true, tag: '4B embed (part)' }),
  gatherCase(8192, 2560, 600, { perf: true, tag: '4B embed (part)' }),
  gatherCase(3328, 128, 64, { perf: true, tag: 'tiny embed' }),
];

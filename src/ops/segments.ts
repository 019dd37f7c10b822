// Ragged batches: several independent sequences concatenated along the token axis, described by cu_seqlens
// [0, n₀, n₀+n₁, …, L]. The kernels that mix tokens (attention, the Gated DeltaNet conv and delta rule) take a
// small u32 table built from them; the tables are cached per device (the same segments serve every layer of a
// pass) and evicted least-recently-used.
import type { Gpu } from '../gpu/device.js';
import { Tensor } from '../tensor.js';

/** Validates cu_seqlens of `L` tokens: starts at 0, ends at L, non-decreasing integers. */
export function checkCuSeqlens(what: string, segs: ArrayLike<number>, L: number): void {
  if (segs.length < 2 || segs[0] !== 0 || segs[segs.length - 1] !== L) {
    throw new Error(`${what}: segments must be cu_seqlens [0, ..., ${L}], got [${Array.from(segs).slice(0, 8).join(', ')}${segs.length > 8 ? ', ...' : ''}]`);
  }
  for (let x = 1; x < segs.length; x++) {
    if (!Number.isInteger(segs[x]) || segs[x] < segs[x - 1]) throw new Error(`${what}: segments must be non-decreasing integers (cu_seqlens), got [${Array.from(segs).join(', ')}]`);
  }
}

const tables = new WeakMap<Gpu, Map<string, Tensor>>();
const MAX_TABLES = 32;

/** A cached u32 GPU tensor holding `data` (built by `make` on a miss); `key` must identify the contents. */
export function u32Table(gpu: Gpu, key: string, make: () => Uint32Array): Tensor {
  let m = tables.get(gpu);
  if (!m) tables.set(gpu, (m = new Map()));
  let t = m.get(key);
  if (t) {
    m.delete(key); // refresh LRU order
    m.set(key, t);
    return t;
  }
  if (m.size >= MAX_TABLES) {
    const [oldKey, old] = m.entries().next().value as [string, Tensor];
    m.delete(oldKey);
    old.release(); // reusable only after the next submit, so dispatches already encoded are safe
  }
  const data = make();
  t = gpu.lifetimes.cached(Tensor.empty(gpu, [data.length], 'u32', key.slice(0, 40))); // outlives any scope
  // Written without the flush of Tensor.write: the buffer was just taken from the pool's free list, which only
  // holds buffers released before a submit, so no encoded-but-unsubmitted dispatch can touch it and the write is
  // queued before every dispatch that will read it. Not submitting here keeps a pass's submits (and so the point
  // where its released temporaries become reusable, hence the pool's peak) the same whether its tables were
  // cached by an earlier call of equal shapes or are uploaded now.
  gpu.device.queue.writeBuffer(t.buffer, t.offset, data.buffer, data.byteOffset, data.byteLength);
  m.set(key, t);
  return t;
}

/**
 * Gives every cached table of `gpu` back to the pool (after the next submit). A caller that runs passes of changing
 * shapes (the policy, once per call) does this at the end of a pass, so a steady loop reuses the same pool buffers
 * instead of growing the cache.
 */
export function releaseSegmentTables(gpu: Gpu): void {
  const m = tables.get(gpu);
  if (!m) return;
  for (const t of m.values()) t.release();
  m.clear();
}

// Storage-buffer pool and MAP_READ staging pool.
//
// Buffers are bucketed by a size class, so a steady-state loop that allocates and releases the same shapes
// creates no new GPUBuffers after warm-up (`stats.created` stays flat: that is what the leak tests assert).
// A released buffer goes to `pending` and becomes reusable only after the next submit: a queue.writeBuffer
// into it must not overtake a dispatch that still reads it in an un-submitted encoder.

/** Round a byte size up to its size class: 256-byte steps to 64 KiB, then 4 classes per power of two. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  if (b <= 65536) return Math.ceil(b / 256) * 256;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 4;
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  created: number; // GPUBuffers ever created by the pool
  live: number; // currently handed out
  bytesAllocated: number; // bytes of all pool buffers (free + in use)
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private pending: GPUBuffer[] = [];
  private all = new Set<GPUBuffer>();
  readonly stats: PoolStats = { created: 0, live: 0, bytesAllocated: 0 };

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number, label?: string): GPUBuffer {
    const size = sizeClass(bytes);
    if (size > this.device.limits.maxBufferSize) {
      throw new Error(`buffer of ${bytes} bytes${label ? ` (${label})` : ''} exceeds maxBufferSize ${this.device.limits.maxBufferSize}`);
    }
    const list = this.free.get(size);
    const reused = list?.pop();
    this.stats.live++;
    if (reused) return reused;
    const buf = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label,
    });
    this.all.add(buf);
    this.stats.created++;
    this.stats.bytesAllocated += size;
    return buf;
  }

  /** Return a buffer; it becomes reusable after the next submit (see `afterSubmit`). */
  release(buf: GPUBuffer): void {
    if (!this.all.has(buf)) throw new Error('BufferPool.release: buffer does not belong to this pool');
    this.pending.push(buf);
    this.stats.live--;
  }

  /** Called by the command stream right after queue.submit(). */
  afterSubmit(): void {
    for (const b of this.pending) {
      const list = this.free.get(b.size);
      if (list) list.push(b);
      else this.free.set(b.size, [b]);
    }
    this.pending.length = 0;
  }

  /** Destroy every idle buffer (e.g. after a shape change); live buffers are untouched. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.all.delete(b);
        this.stats.bytesAllocated -= b.size;
        b.destroy();
      }
    }
    this.free.clear();
  }

  destroyAll(): void {
    for (const b of this.all) b.destroy();
    this.all.clear();
    this.free.clear();
    this.pending.length = 0;
  }
}

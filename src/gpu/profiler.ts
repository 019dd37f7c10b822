// GPU-time profiler on timestamp queries.
//
// When enabled, the stream gives every dispatch its own compute pass with begin/end timestamps, resolves the
// query set at each flush into a buffer, and `collect()` reads them back as (label, ns) records. One pass per
// dispatch adds a little overhead, so profiling is off in production paths and on in benchmarks.
import type { Gpu } from './device.js';

const CAPACITY = 2048; // timestamps per submit (2 per dispatch)

export interface KernelTiming {
  label: string;
  ns: number;
}

export class Profiler {
  enabled = false;
  private querySet: GPUQuerySet | null = null;
  private resolveBuf: GPUBuffer | null = null;
  private used = 0;
  private labels: string[] = [];
  private pending: { buf: GPUBuffer; labels: string[] }[] = [];

  constructor(private readonly gpu: Gpu) {}

  /** Turn profiling on (throws if the adapter has no timestamp-query). */
  enable(on = true): void {
    if (on && !this.gpu.features.timestamps) throw new Error('profiler: this adapter has no timestamp-query feature');
    this.gpu.stream.flush();
    this.enabled = on;
    if (on && !this.querySet) {
      this.querySet = this.gpu.device.createQuerySet({ type: 'timestamp', count: CAPACITY });
      this.resolveBuf = this.gpu.device.createBuffer({
        size: CAPACITY * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
    }
  }

  get full(): boolean {
    return this.used + 2 > CAPACITY;
  }

  nextWrites(): GPUComputePassTimestampWrites {
    const w = { querySet: this.querySet!, beginningOfPassWriteIndex: this.used, endOfPassWriteIndex: this.used + 1 };
    this.used += 2;
    return w;
  }

  record(label: string): void {
    this.labels.push(label);
  }

  /** Called by the stream before finishing an encoder. */
  resolve(encoder: GPUCommandEncoder): void {
    if (this.used === 0) return;
    encoder.resolveQuerySet(this.querySet!, 0, this.used, this.resolveBuf!, 0);
    const dst = this.gpu.device.createBuffer({ size: this.used * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.copyBufferToBuffer(this.resolveBuf!, 0, dst, 0, this.used * 8);
    this.pending.push({ buf: dst, labels: this.labels });
    this.labels = [];
    this.used = 0;
  }

  /** Read back all timings recorded since the last collect. */
  async collect(): Promise<KernelTiming[]> {
    this.gpu.stream.flush();
    const out: KernelTiming[] = [];
    for (const { buf, labels } of this.pending.splice(0)) {
      await buf.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(buf.getMappedRange());
      labels.forEach((label, k) => out.push({ label, ns: Number(t[2 * k + 1] - t[2 * k]) }));
      buf.unmap();
      buf.destroy();
    }
    return out;
  }

  destroy(): void {
    this.querySet?.destroy();
    this.resolveBuf?.destroy();
    for (const p of this.pending) p.buf.destroy();
    this.pending = [];
  }
}

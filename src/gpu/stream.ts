// The command stream: many dispatches per submit, per-dispatch uniforms, writes and readbacks.
//
// Dispatches are encoded into one open compute pass. Their `Params` go into a CPU mirror of a uniform arena
// (one 256-byte-aligned slot per dispatch, bound with a dynamic offset); the mirror is uploaded with a single
// writeBuffer right before the submit. Queue order makes that safe: the upload for batch n+1 is queued after
// batch n's submit. A host write (`write`) or a readback flushes first, because queue.writeBuffer runs at
// queue time and would overtake dispatches still sitting in the encoder.
import type { Gpu } from './device.js';
import type { CompiledKernel } from './pipelines.js';
import { Profiler } from './profiler.js';

/** Uniform values by the names the kernel's spec declares (`vec4f[N]` fields take a number[]). */
export type ParamValues = Record<string, number | ArrayLike<number>>;
/** Storage buffers by the names the kernel's spec declares. */
export type BufferMap = Record<string, BufferRange>;

/** A storage binding: a whole buffer or a byte range of one (offset must be storage-offset aligned). */
export interface BufferRange {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

const SLOT = 256; // minUniformBufferOffsetAlignment on every adapter we target
const ARENA_SLOTS = 1024; // dispatches per submit before an automatic flush

export class CommandStream {
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly arena: GPUBuffer;
  private readonly mirror = new ArrayBuffer(SLOT * ARENA_SLOTS);
  private readonly mirrorU32 = new Uint32Array(this.mirror);
  private readonly mirrorI32 = new Int32Array(this.mirror);
  private readonly mirrorF32 = new Float32Array(this.mirror);
  private slots = 0;
  private staging = new Map<number, GPUBuffer[]>();
  readonly profiler: Profiler;
  /** Counters for tests and benchmarks. */
  readonly stats = { dispatches: 0, submits: 0, stagingCreated: 0 };

  constructor(private readonly gpu: Gpu) {
    this.arena = gpu.device.createBuffer({
      size: SLOT * ARENA_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'uniform-arena',
    });
    this.profiler = new Profiler(gpu);
  }

  private ensurePass(): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.gpu.device.createCommandEncoder();
    if (this.profiler.enabled) {
      // One pass per dispatch so each one gets its own begin/end timestamps.
      this.pass?.end();
      this.pass = this.encoder.beginComputePass({ timestampWrites: this.profiler.nextWrites() });
      return this.pass;
    }
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  /**
   * Encode one dispatch. `buffers` and `params` are given by the names the kernel's spec declares (every name
   * exactly once: a missing or unknown name throws, naming it). `label` names the dispatch in profiles
   * (defaults to the kernel file name: pipeline keys are long).
   */
  dispatch(
    kernel: CompiledKernel,
    buffers: BufferMap,
    params: ParamValues,
    workgroups: [number, number?, number?],
    label?: string,
  ): void {
    const slotBuffers = this.bindingsInOrder(kernel, buffers);
    const [x, y = 1, z = 1] = workgroups;
    const maxWg = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new Error(`${kernel.key}: dispatch ${x}x${y}x${z} exceeds maxComputeWorkgroupsPerDimension ${maxWg}`);
    }
    if (x === 0 || y === 0 || z === 0) return; // empty problem: nothing to do
    if (this.slots === ARENA_SLOTS || (this.profiler.enabled && this.profiler.full)) this.flush();
    this.packParams(kernel, params, (this.slots * SLOT) / 4);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.arena, offset: 0, size: SLOT } }];
    slotBuffers.forEach((b, k) => {
      entries.push({ binding: k + 1, resource: { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } });
    });
    const bindGroup = this.gpu.device.createBindGroup({ layout: kernel.layout, entries });
    const pass = this.ensurePass();
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup, [this.slots * SLOT]);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler.enabled) this.profiler.record(label ?? kernel.spec.file);
    this.slots++;
    this.stats.dispatches++;
  }

  private bindingsInOrder(kernel: CompiledKernel, buffers: BufferMap): BufferRange[] {
    const names = kernel.bindingNames;
    // An array would bind by position: the one mistake named bindings exist to rule out (JS callers, old code).
    if (Array.isArray(buffers)) throw new Error(`${kernel.key}: buffers must be given by name (${names.join(', ')})`);
    const out = names.map((n) => {
      const b = buffers[n];
      if (!b) throw new Error(`${kernel.key}: missing buffer '${n}' (declared: ${names.join(', ')})`);
      return b;
    });
    if (Object.keys(buffers).length !== names.length) {
      const extra = Object.keys(buffers).filter((n) => !names.includes(n));
      throw new Error(`${kernel.key}: unknown buffer${extra.length > 1 ? 's' : ''} '${extra.join("', '")}' (declared: ${names.join(', ')})`);
    }
    return out;
  }

  private packParams(kernel: CompiledKernel, values: ParamValues, base: number): void {
    const fields = kernel.paramFields;
    if (Array.isArray(values)) throw new Error(`${kernel.key}: params must be given by name (${fields.map((f) => f.name).join(', ')})`);
    let count = 0;
    for (const f of fields) {
      const v = values[f.name];
      if (v === undefined) throw new Error(`${kernel.key}: missing param '${f.name}' (declared: ${fields.map((x) => x.name).join(', ')})`);
      count++;
      if (f.type === 'v4') {
        if (typeof v === 'number' || v.length > f.floats!) throw new Error(`${kernel.key}: param '${f.name}' takes at most ${f.floats} numbers`);
        for (let k = 0; k < f.floats!; k++) this.mirrorF32[base + f.word + k] = k < v.length ? v[k] : 0;
        continue;
      }
      if (typeof v !== 'number' || Number.isNaN(v)) throw new Error(`${kernel.key}: param '${f.name}' must be a number, got ${String(v)}`);
      if (f.type === 'f') this.mirrorF32[base + f.word] = v;
      else if (f.type === 'i') this.mirrorI32[base + f.word] = v;
      else {
        if (v < 0 || v > 0xffffffff || !Number.isInteger(v)) throw new Error(`${kernel.key}: param '${f.name}' = ${v} is not a u32`);
        this.mirrorU32[base + f.word] = v;
      }
    }
    if (Object.keys(values).length !== count) {
      const extra = Object.keys(values).filter((n) => !fields.some((f) => f.name === n));
      throw new Error(`${kernel.key}: unknown param${extra.length > 1 ? 's' : ''} '${extra.join("', '")}' (declared: ${fields.map((f) => f.name).join(', ')})`);
    }
  }

  /** Copy between buffers in stream order (ends the open pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (!this.encoder) this.encoder = this.gpu.device.createCommandEncoder();
    this.pass?.end();
    this.pass = null;
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Submit everything encoded so far. Cheap when nothing is pending. */
  flush(): void {
    if (!this.encoder) return;
    this.pass?.end();
    this.pass = null;
    if (this.profiler.enabled) this.profiler.resolve(this.encoder);
    if (this.slots > 0) this.gpu.device.queue.writeBuffer(this.arena, 0, this.mirror, 0, this.slots * SLOT);
    this.gpu.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.slots = 0;
    this.stats.submits++;
    this.gpu.buffers.afterSubmit();
  }

  /** Host → GPU write, ordered after everything already encoded. */
  write(buffer: GPUBuffer, byteOffset: number, data: ArrayBufferView): void {
    this.flush();
    this.gpu.device.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** GPU → host read of `bytes` bytes at `byteOffset`, through a reused MAP_READ staging buffer. */
  async read(buffer: GPUBuffer, byteOffset: number, bytes: number): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const cls = Math.max(256, 2 ** Math.ceil(Math.log2(size)));
    const list = this.staging.get(cls) ?? [];
    this.staging.set(cls, list);
    let st = list.pop();
    if (!st) {
      st = this.gpu.device.createBuffer({ size: cls, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'staging' });
      this.stats.stagingCreated++;
    }
    this.copy(buffer, byteOffset, st, 0, size);
    this.flush();
    try {
      await st.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      await this.gpu.pipelines.checkCompilation();
      this.gpu.checkHealthy();
      throw e;
    }
    const out = st.getMappedRange(0, size).slice(0, bytes);
    st.unmap();
    list.push(st);
    await this.gpu.pipelines.checkCompilation();
    this.gpu.checkHealthy();
    return out;
  }

  destroy(): void {
    this.encoder = null;
    this.pass = null;
    this.arena.destroy();
    for (const l of this.staging.values()) for (const b of l) b.destroy();
    this.staging.clear();
    this.profiler.destroy();
  }
}

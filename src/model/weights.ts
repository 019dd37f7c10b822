// Where weight tensors are born on the GPU: the checkpoint is bound against the config's expected tensor list
// (src/model/expectedTensors.ts), streamed to GPU buffers (src/io/upload.ts), and wrapped as Tensors here.
// Model code reads them through the towers' declared trees (src/model/weightDecl.ts), bound against this store.
import type { Gpu } from '../gpu/device.js';
import { Tensor, type DType } from '../tensor.js';
import type { UploadedTensor } from '../io/upload.js';
import { destroyUploaded } from '../io/upload.js';

export interface WeightPart {
  tensor: Tensor;
  rowStart: number;
  rows: number;
}

export class WeightStore {
  private cache = new Map<string, Tensor>();

  constructor(
    readonly gpu: Gpu,
    readonly uploaded: Map<string, UploadedTensor>,
  ) {}

  has(name: string): boolean {
    return this.uploaded.has(name);
  }

  private entry(name: string): UploadedTensor {
    const t = this.uploaded.get(name);
    if (!t) throw new Error(`weight ${name} is not loaded`);
    return t;
  }

  /** A single-buffer weight (error if it was split because it exceeded the binding limit). */
  get(name: string): Tensor {
    let t = this.cache.get(name);
    if (t) return t;
    const e = this.entry(name);
    if (e.parts.length !== 1) throw new Error(`weight ${name} is split into ${e.parts.length} parts; use parts()`);
    t = new Tensor(this.gpu, e.parts[0].buffer, e.shape, e.dtype as DType, 0, false, name);
    this.cache.set(name, t);
    return t;
  }

  /** A weight as row blocks (one block unless it exceeded maxStorageBufferBindingSize). */
  parts(name: string): WeightPart[] {
    const e = this.entry(name);
    return e.parts.map((p) => ({
      tensor: new Tensor(this.gpu, p.buffer, [p.rows, ...e.shape.slice(1)], e.dtype as DType, 0, false, `${name}[${p.rowStart}:]`),
      rowStart: p.rowStart,
      rows: p.rows,
    }));
  }

  /** Free a weight once everything already encoded that reads it has been submitted. */
  drop(name: string): void {
    const e = this.entry(name);
    this.gpu.stream.flush();
    for (const p of e.parts) p.buffer.destroy();
    this.uploaded.delete(name);
    this.cache.delete(name);
  }

  get bytes(): number {
    let n = 0;
    for (const t of this.uploaded.values()) n += t.byteLength;
    return n;
  }

  destroy(): void {
    destroyUploaded(this.uploaded);
    this.cache.clear();
  }
}

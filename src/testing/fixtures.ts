// Reading the golden fixtures written by tools/reference (test/fixtures/*.safetensors) with our own reader.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensors } from '../io/safetensors.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..').replace(/[\\/]dist$/, '');
export const FIXTURE_DIR = path.join(REPO_ROOT, 'test', 'fixtures');
export const TINY_DIR = path.join(REPO_ROOT, 'weights', 'tiny');

export interface FixtureTensor {
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

export class Fixture {
  private constructor(
    readonly name: string,
    readonly meta: Record<string, any>,
    private readonly tensors: Map<string, FixtureTensor>,
  ) {}

  static async load(name: string): Promise<Fixture> {
    const f = await openSafetensors(path.join(FIXTURE_DIR, `${name}.safetensors`));
    const tensors = new Map<string, FixtureTensor>();
    try {
      for (const [k, info] of f.tensors) {
        const bytes = await f.readTensor(k);
        const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        const data = info.dtype === 'F32' ? new Float32Array(buf) : info.dtype === 'I32' ? new Int32Array(buf) : new Uint8Array(buf);
        tensors.set(k, { shape: [...info.shape], data });
      }
    } finally {
      await f.close();
    }
    const meta = JSON.parse(f.metadata?.case ?? '{}');
    return new Fixture(name, meta, tensors);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get(name: string): FixtureTensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`fixture ${this.name} has no tensor ${name}`);
    return t;
  }

  f32(name: string): Float32Array {
    const t = this.get(name).data;
    if (!(t instanceof Float32Array)) throw new Error(`fixture ${this.name}: ${name} is not F32`);
    return t;
  }

  i32(name: string): Int32Array {
    const t = this.get(name).data;
    if (!(t instanceof Int32Array)) throw new Error(`fixture ${this.name}: ${name} is not I32`);
    return t;
  }

  /** The checkpoint directory this case was computed with. */
  get checkpointDir(): string {
    return path.join(REPO_ROOT, this.meta.checkpoint as string);
  }
}

/** max |a−b| and max |a−b| / max|b| */
export function errors(a: ArrayLike<number>, b: ArrayLike<number>): { maxAbs: number; rel: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let maxAbs = 0, scale = 0;
  for (let k = 0; k < a.length; k++) {
    const d = Math.abs(a[k] - b[k]);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    scale = Math.max(scale, Math.abs(b[k]));
  }
  return { maxAbs, rel: maxAbs / (scale || 1) };
}

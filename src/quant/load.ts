// Loading a quantised checkpoint (docs/quantization.md) onto the GPU: the `quantization` section and every
// quantised tensor are validated (errors name the tensor), the logical tensors are bound against the config as
// for any checkpoint, plain tensors are uploaded as usual (src/io/upload.ts, `weightDtype` applies to the
// matrices left unquantised), and packed weights, scales and zero points are uploaded raw. The result is a
// WeightStore whose get() returns a QuantizedTensor for a quantised Linear weight, so model code is unchanged.
import type { Gpu } from '../gpu/device.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { CONFIG_FILE } from '../io/checkpoint.js';
import { CheckpointError } from '../io/errors.js';
import { destroyUploaded, uploadTensors, type UploadedTensor } from '../io/upload.js';
import { bindTensors, expectedTensors, type BoundTensor } from '../model/expectedTensors.js';
import type { LoadWeightsOptions } from '../model/load.js';
import { WeightStore, type WeightPart } from '../model/weights.js';
import type { Tensor } from '../tensor.js';
import { parseQuantConfig, quantizedLayout, QWEIGHT, QZEROS, SCALES, type QuantConfig, type QuantizedTensorInfo } from './format.js';
import { QuantizedTensor } from './tensor.js';

/** Whether config.json has a `quantization` section (then loadQuantizedWeights reads the checkpoint). */
export function isQuantizedCheckpoint(ckpt: Pick<Checkpoint, 'rawConfig'>): boolean {
  const c = ckpt.rawConfig;
  return c !== null && typeof c === 'object' && 'quantization' in c && (c as Record<string, unknown>)['quantization'] !== null;
}

export interface QuantizedCheckpointView {
  config: QuantConfig;
  quantized: Map<string, QuantizedTensorInfo>;
  bound: Map<string, BoundTensor>;
}

/** Validates a quantised checkpoint without touching the GPU (inspect and load share it). */
export function bindQuantized(ckpt: Checkpoint, opts: { vision?: boolean; actionExpert?: boolean } = {}): QuantizedCheckpointView {
  const cfgPath = `${ckpt.dir}/${CONFIG_FILE}`;
  const config = parseQuantConfig(ckpt.rawConfig, cfgPath);
  if (!config) throw new CheckpointError('has no quantization section', { file: cfgPath });
  const { quantized, logical } = quantizedLayout(config, ckpt.tensorInfos, ckpt.dir);
  const bound = bindTensors(expectedTensors(ckpt.config, opts), logical, { file: ckpt.dir });
  return { config, quantized, bound };
}

/** A WeightStore that also holds quantised Linear weights (see the module comment). */
export class QuantizedWeightStore extends WeightStore {
  constructor(
    gpu: Gpu,
    uploaded: Map<string, UploadedTensor>,
    readonly quantization: QuantConfig,
    private readonly quantized: Map<string, { tensor: QuantizedTensor; uploaded: UploadedTensor[] }>,
  ) {
    super(gpu, uploaded);
  }

  override has(name: string): boolean {
    return this.quantized.has(name) || super.has(name);
  }

  override get(name: string): Tensor {
    return this.quantized.get(name)?.tensor ?? super.get(name);
  }

  override parts(name: string): WeightPart[] {
    const q = this.quantized.get(name);
    return q ? [{ tensor: q.tensor, rowStart: 0, rows: q.tensor.shape[0]! }] : super.parts(name);
  }

  override drop(name: string): void {
    const q = this.quantized.get(name);
    if (!q) return super.drop(name);
    q.tensor.destroy();
    this.quantized.delete(name);
  }

  /** Bytes of the quantised weights alone (packed + scales + zeros). */
  get quantizedBytes(): number {
    let n = 0;
    for (const q of this.quantized.values()) n += q.tensor.byteLength;
    return n;
  }

  override get bytes(): number {
    return super.bytes + this.quantizedBytes;
  }

  override destroy(): void {
    super.destroy();
    for (const q of this.quantized.values()) destroyUploaded(q.uploaded);
    this.quantized.clear();
  }
}

export async function loadQuantizedWeights(gpu: Gpu, ckpt: Checkpoint, opts: LoadWeightsOptions = {}): Promise<QuantizedWeightStore> {
  const groupsOff = new Set<string>();
  if (opts.vision === false) groupsOff.add('vision');
  if (opts.actionExpert === false) groupsOff.add('action_expert');
  // Bind everything the config implies (a wrong checkpoint is rejected whole), upload what is asked.
  const view = bindQuantized(ckpt);
  const wanted = [...view.bound.values()].filter((b) => !groupsOff.has(b.group)).map((b) => b.name);
  const plain = wanted.filter((n) => !view.quantized.has(n));
  const packed = wanted.filter((n) => view.quantized.has(n));
  const companions = packed.flatMap((n) => {
    const q = view.quantized.get(n)!;
    return [q.qweight.name, q.scales.name, ...(q.qzeros ? [q.qzeros.name] : [])];
  });
  const sizeOf = (names: string[]) => names.reduce((s, n) => s + ckpt.tensorInfos.get(n)!.byteLength, 0);
  const totalBytes = sizeOf(plain) + sizeOf(companions);
  const totalTensors = plain.length + companions.length;
  const uploaded = await uploadTensors(gpu.device, ckpt, plain, {
    weightDtype: opts.weightDtype ?? 'f32',
    source: ckpt.dir,
    onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, totalBytes, totalTensors })),
  });
  let raw: Map<string, UploadedTensor>;
  try {
    const base = sizeOf(plain);
    // Packed data (I8/U8) is uploaded as is; F16 scales of rank 2 stay f16 with weightDtype 'f16'.
    raw = await uploadTensors(gpu.device, ckpt, companions, {
      weightDtype: 'f16',
      source: ckpt.dir,
      onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, bytes: base + p.bytes, tensors: plain.length + p.tensors, totalBytes, totalTensors })),
    });
  } catch (e) {
    destroyUploaded(uploaded);
    throw e;
  }
  const quantized = new Map<string, { tensor: QuantizedTensor; uploaded: UploadedTensor[] }>();
  try {
    for (const n of packed) {
      const info = view.quantized.get(n)!;
      const get = (name: string): UploadedTensor => {
        const u = raw.get(name)!;
        if (u.parts.length !== 1) throw new CheckpointError(`is ${u.byteLength} bytes, more than one GPU binding holds; quantised weights cannot be split`, { file: ckpt.dir, tensor: name });
        return u;
      };
      const qw = get(info.qweight.name);
      const sc = get(info.scales.name);
      const qz = info.qzeros ? get(info.qzeros.name) : null;
      const tensor = new QuantizedTensor(gpu, {
        qweight: qw.parts[0]!.buffer, scales: sc.parts[0]!.buffer, qzeros: qz ? qz.parts[0]!.buffer : null,
        byteLength: qw.byteLength + sc.byteLength + (qz?.byteLength ?? 0),
      }, info.shape, info.bits, info.group, n);
      quantized.set(n, { tensor, uploaded: qz ? [qw, sc, qz] : [qw, sc] });
    }
  } catch (e) {
    destroyUploaded(uploaded);
    destroyUploaded(raw);
    throw e;
  }
  return new QuantizedWeightStore(gpu, uploaded, view.config, quantized);
}

export { QWEIGHT, SCALES, QZEROS };

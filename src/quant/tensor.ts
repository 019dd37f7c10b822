// A quantised Linear weight on the GPU (docs/quantization.md): a Tensor whose shape is the logical [N, K], so
// model code passes it to linear() like any weight; linear() hands it to linearQuantized (src/quant/linear.ts),
// which binds the packed words, scales and zero points itself. Views, raw reads and binding it to any other kernel (views.bind) throw
// naming the weight instead of reading packed bytes as floats.
import type { Gpu } from '../gpu/device.js';
import { Tensor, f16ToF32 } from '../tensor.js';

export interface QuantizedBuffers {
  /** Packed weights: int4 [N, K/2] bytes, int8 [N, K] bytes (whole u32 words per row). */
  qweight: GPUBuffer;
  /** f16 scales [N, groupsPerRow]. */
  scales: GPUBuffer;
  /** u8 zero points [N, groupsPerRow] (int4 with zero point only). */
  qzeros: GPUBuffer | null;
  /** Meaningful bytes of the three (without the padding to 4 bytes). */
  byteLength: number;
}

export class QuantizedTensor extends Tensor {
  constructor(
    gpu: Gpu,
    readonly q: QuantizedBuffers,
    shape: readonly [number, number],
    readonly bits: 8 | 4,
    /** Elements of K per scale (int8: K). */
    readonly group: number,
    label?: string,
  ) {
    super(gpu, q.qweight, shape, 'u32', 0, false, label);
  }

  /** Uploads host-packed data into fresh buffers (tests, benchmarks); free them with destroy(). */
  static fromHost(gpu: Gpu, h: QuantizedHost, label?: string): QuantizedTensor {
    const buf = (data: Uint8Array | Uint16Array, what: string): GPUBuffer => {
      const bytes = new Uint8Array(Math.max(4, Math.ceil(data.byteLength / 4) * 4));
      bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      const b = gpu.device.createBuffer({ size: bytes.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, label: `${label ?? 'q'}.${what}` });
      gpu.device.queue.writeBuffer(b, 0, bytes);
      return b;
    };
    const q: QuantizedBuffers = {
      qweight: buf(h.qweight, 'qweight'),
      scales: buf(h.scales, 'scales'),
      qzeros: h.qzeros ? buf(h.qzeros, 'qzeros') : null,
      byteLength: h.qweight.byteLength + h.scales.byteLength + (h.qzeros?.byteLength ?? 0),
    };
    return new QuantizedTensor(gpu, q, [h.N, h.K], h.bits, h.group, label);
  }

  /** Frees the buffers (once everything encoded that reads them has been submitted). */
  destroy(): void {
    this.gpu.stream.flush();
    this.q.qweight.destroy();
    this.q.scales.destroy();
    this.q.qzeros?.destroy();
  }

  get groupsPerRow(): number {
    return this.shape[1]! / this.group;
  }

  get zeroPoint(): boolean {
    return this.q.qzeros !== null;
  }

  override get byteLength(): number {
    return this.q.byteLength;
  }

  private misuse(what: string): Error {
    return new Error(`weight ${this.label ?? ''} is int${this.bits}-quantised [${this.shape}]: only linear() reads it (${what} is not supported)`);
  }

  override checkBindable(op: string): never {
    throw this.misuse(`binding it to ${op}`);
  }

  override reshape(): never {
    throw this.misuse('reshape');
  }

  override rows(): never {
    throw this.misuse('a row view');
  }

  override write(): never {
    throw this.misuse('write');
  }

  override read(): never {
    throw this.misuse('a raw read; readF32() dequantises');
  }

  /** The dequantised weights [N·K] (host-side, for tests and error measurement). */
  override async readF32(): Promise<Float32Array> {
    const s = this.gpu.stream;
    const [N, K] = this.shape as [number, number];
    const G = this.groupsPerRow;
    const pad4 = (n: number) => Math.ceil(n / 4) * 4;
    const qBytes = new Uint8Array(await s.read(this.q.qweight, 0, pad4((N * K * this.bits) / 8)));
    const sc = new Uint16Array(await s.read(this.q.scales, 0, pad4(N * G * 2)), 0, N * G);
    const zp = this.q.qzeros ? new Uint8Array(await s.read(this.q.qzeros, 0, pad4(N * G))) : null;
    return dequantize<Float32Array>({ bits: this.bits, N, K, group: this.group, qweight: qBytes, scales: sc, qzeros: zp });
  }
}

export function isQuantized(w: Tensor): w is QuantizedTensor {
  return w instanceof QuantizedTensor;
}

/** Packed host data of one quantised weight (docs/quantization.md). */
export interface QuantizedHost {
  bits: 8 | 4;
  N: number;
  K: number;
  group: number;
  /** int4: [N, K/2] bytes, low nibble = even k; int8: [N, K] signed bytes. */
  qweight: Uint8Array;
  /** f16 bits [N, K/group]. */
  scales: Uint16Array;
  qzeros: Uint8Array | null;
}

/** w[n, k] as the format defines it (the reference the kernels and the quantiser are checked against). */
export function dequantize<T extends Float32Array | Float64Array = Float32Array>(h: QuantizedHost, out?: T): T {
  const o = (out ?? new Float32Array(h.N * h.K)) as T;
  const { N, K, group } = h;
  const G = K / group;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++) {
      const s = f16ToF32(h.scales[n * G + g]!);
      const z = h.bits === 8 ? 0 : h.qzeros ? h.qzeros[n * G + g]! : 8;
      for (let k = g * group; k < (g + 1) * group; k++) {
        let q: number;
        if (h.bits === 8) q = (h.qweight[n * K + k]! << 24) >> 24;
        else {
          const byte = h.qweight[(n * K + k) >> 1]!;
          q = k & 1 ? byte >> 4 : byte & 15;
        }
        o[n * K + k] = s * (q - z);
      }
    }
  }
  return o;
}

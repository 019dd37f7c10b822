/**
 * Streaming upload of checkpoint tensors into GPU buffers.
 *
 * One GPUBuffer per tensor (usage STORAGE | COPY_DST | COPY_SRC, size rounded up to 4 bytes), or several when
 * the tensor is larger than the binding limit: it is then split along dim 0 into parts of whole rows, each at
 * most `maxBindingBytes`. Data flows from disk in chunks of at most `chunkBytes` through one reused staging
 * array (plus one reused conversion array when the dtype changes), so the JS heap stays bounded whatever the
 * tensor sizes, and is written with `device.queue.writeBuffer`. Every `flushBytes` written, the upload waits
 * for the queue (`onSubmittedWorkDone`) so the driver's own staging memory is recycled too.
 *
 * dtype policy (float sources F32 / F16 / BF16):
 * - tensors kept in f32 whatever `weightDtype` is: every tensor of rank ≤ 1 (norm weights, biases, `dt_bias`,
 *   `A_log`, …) and, by name, `*.A_log` and `*.linear_attn.norm.weight` (stored F32 in real Qwen3.5
 *   checkpoints; see {@link keepsF32});
 * - every other float tensor is converted to `weightDtype` ('f32' or 'f16'); BF16 → f16 goes through f32 and
 *   rounds to nearest even (values beyond the f16 range become ±inf, as a PyTorch cast would).
 * - integer / BOOL tensors are uploaded raw (dtype 'i32', 'u8', 'bool', …), zero-padded to 4 bytes.
 * - F64 is rejected.
 *
 * Everything (names, optional binding against the expected tensors, dtypes, row sizes vs the binding limit) is
 * validated before the first GPU buffer is created, so nothing is uploaded for a rejected checkpoint; if a read
 * fails mid-stream, the buffers already created are destroyed before the error is rethrown.
 */
import { DTYPE_SIZES, bf16ToF16, bf16ToF32, f16ToF32, f32ToF16, isFloatDtype, type Dtype } from './dtypes.js';
import { CheckpointError } from './errors.js';
import type { TensorInfo, TensorSource } from './safetensors.js';
import { bindTensors, type ExpectedTensor } from '../model/expectedTensors.js';

export type GpuDtype = 'f32' | 'f16' | 'i8' | 'u8' | 'bool' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64';

export interface UploadedPart {
  buffer: GPUBuffer;
  /** First dim-0 row held by this part. */
  rowStart: number;
  /** Number of dim-0 rows in this part. */
  rows: number;
  /** Meaningful bytes (the buffer's size is this rounded up to 4). */
  byteLength: number;
}

export interface UploadedTensor {
  name: string;
  /** Element type of the GPU data. */
  dtype: GpuDtype;
  /** dtype in the checkpoint. */
  sourceDtype: Dtype;
  shape: number[];
  /** Bytes of one dim-0 row on the GPU (the whole tensor for a 0-d tensor). */
  rowBytes: number;
  /** Total meaningful bytes over all parts. */
  byteLength: number;
  /** One part unless the tensor exceeded maxBindingBytes. */
  parts: UploadedPart[];
}

export interface UploadProgress {
  /** Source bytes read so far. */
  bytes: number;
  totalBytes: number;
  /** Tensors completely uploaded so far. */
  tensors: number;
  totalTensors: number;
  /** The tensor being uploaded. */
  name: string;
}

export interface UploadOptions {
  /** GPU dtype of float weights (rank ≥ 2 and not kept in f32 by name). */
  weightDtype: 'f32' | 'f16';
  /**
   * Largest buffer part, in bytes (default and upper bound: the device's maxStorageBufferBindingSize, also
   * bounded by maxBufferSize; rounded down to a multiple of 4).
   */
  maxBindingBytes?: number;
  /** Source bytes read per chunk (default 8 MiB; rounded down to a multiple of 16, minimum 16). */
  chunkBytes?: number;
  /** Wait for the GPU queue every this many bytes written (default 64 MiB). */
  flushBytes?: number;
  /** Called after every chunk. */
  onProgress?: (p: UploadProgress) => void;
  /**
   * When given, the whole source is first bound against these tensors (missing / unexpected / mis-shaped /
   * wrong-dtype tensors throw one CheckpointError) — before any buffer is created.
   */
  expected?: readonly ExpectedTensor[];
  /** Named in errors (e.g. the checkpoint directory). */
  source?: string;
}

/** Whether a float tensor stays f32 on the GPU regardless of weightDtype (see the module comment). */
export function keepsF32(name: string, shape: readonly number[]): boolean {
  return shape.length <= 1 || name.endsWith('.A_log') || name.endsWith('linear_attn.norm.weight');
}

const USAGE_STORAGE = 0x80;
const USAGE_COPY_SRC = 0x04;
const USAGE_COPY_DST = 0x08;

const MiB = 1024 * 1024;

interface PartPlan {
  rowStart: number;
  rows: number;
  byteLength: number;
  srcStart: number;
  srcLength: number;
}

interface TensorPlan {
  info: TensorInfo;
  out: GpuDtype;
  outElem: number;
  rowBytes: number;
  parts: PartPlan[];
}

const roundUp4 = (n: number): number => Math.ceil(n / 4) * 4;

/** Plans one tensor; returns an error string instead of throwing so that all problems can be collected. */
function planTensor(info: TensorInfo, weightDtype: 'f32' | 'f16', maxBinding: number): TensorPlan | string {
  const src = info.dtype;
  let out: GpuDtype;
  if (isFloatDtype(src)) out = keepsF32(info.name, info.shape) ? 'f32' : weightDtype;
  else if (src === 'F64') return `dtype F64 is not supported for GPU upload (store F32, F16 or BF16)`;
  else out = src.toLowerCase() as GpuDtype;
  const srcElem = DTYPE_SIZES[src];
  const outElem = out === 'f32' ? 4 : out === 'f16' ? 2 : srcElem;
  const rows = info.shape.length >= 1 ? info.shape[0]! : 1;
  let rowElems = 1;
  for (let i = 1; i < info.shape.length; i++) rowElems *= info.shape[i]!;
  const rowBytes = rowElems * outElem;
  const srcRowBytes = rowElems * srcElem;
  const total = rows * rowBytes;
  if (rowBytes > maxBinding) {
    return `one dim-0 row is ${rowBytes} bytes as ${out} (shape [${info.shape.join(', ')}]), more than maxBindingBytes ${maxBinding}; it cannot be split along dim 0`;
  }
  const parts: PartPlan[] = [];
  if (total <= maxBinding || rowBytes === 0) {
    parts.push({ rowStart: 0, rows, byteLength: total, srcStart: 0, srcLength: info.byteLength });
  } else {
    const per = Math.floor(maxBinding / rowBytes);
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      parts.push({ rowStart: r, rows: n, byteLength: n * rowBytes, srcStart: r * srcRowBytes, srcLength: n * srcRowBytes });
    }
  }
  return { info, out, outElem, rowBytes, parts };
}

/** Destroys every buffer of an upload result. */
export function destroyUploaded(tensors: Iterable<UploadedTensor> | ReadonlyMap<string, UploadedTensor>): void {
  const list = tensors instanceof Map ? tensors.values() : (tensors as Iterable<UploadedTensor>);
  for (const t of list) for (const p of t.parts) p.buffer.destroy();
}

/** Uploads `names` from `src` (see the module comment). Returns name → UploadedTensor in `names` order. */
export async function uploadTensors(
  device: GPUDevice,
  src: TensorSource,
  names: readonly string[],
  opts: UploadOptions,
): Promise<Map<string, UploadedTensor>> {
  const file = opts.source;
  const where = file !== undefined ? { file } : {};
  // ---- validation: nothing below this block may run for a rejected input
  if (opts.weightDtype !== 'f32' && opts.weightDtype !== 'f16') {
    throw new CheckpointError(`weightDtype must be 'f32' or 'f16', got ${String(opts.weightDtype)}`, { ...where, field: 'weightDtype' });
  }
  const lim = device.limits;
  const requested = opts.maxBindingBytes ?? lim.maxStorageBufferBindingSize;
  if (!Number.isFinite(requested) || requested < 4) {
    throw new CheckpointError(`maxBindingBytes must be ≥ 4, got ${requested}`, { ...where, field: 'maxBindingBytes' });
  }
  const maxBinding = Math.floor(Math.min(requested, lim.maxStorageBufferBindingSize, lim.maxBufferSize) / 4) * 4;
  const chunkOpt = opts.chunkBytes ?? 8 * MiB;
  if (!Number.isFinite(chunkOpt) || chunkOpt < 16) {
    throw new CheckpointError(`chunkBytes must be ≥ 16, got ${chunkOpt}`, { ...where, field: 'chunkBytes' });
  }
  const chunk = Math.floor(chunkOpt / 16) * 16;
  const flushBytes = Math.max(opts.flushBytes ?? 64 * MiB, chunk);

  if (opts.expected !== undefined) bindTensors(opts.expected, src.tensorInfos, file !== undefined ? { file } : {});

  const problems: string[] = [];
  const plans: TensorPlan[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      problems.push(`${JSON.stringify(name)}: requested twice`);
      continue;
    }
    seen.add(name);
    const info = src.tensorInfos.get(name);
    if (info === undefined) {
      problems.push(`${JSON.stringify(name)}: not in the checkpoint`);
      continue;
    }
    const p = planTensor(info, opts.weightDtype, maxBinding);
    if (typeof p === 'string') problems.push(`${JSON.stringify(name)}: ${p}`);
    else plans.push(p);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20);
    if (problems.length > 20) shown.push(`… and ${problems.length - 20} more`);
    throw new CheckpointError(`cannot upload ${problems.length} tensor(s):\n  ${shown.join('\n  ')}`, {
      ...where,
      field: 'upload',
    });
  }

  // ---- upload
  const totalBytes = plans.reduce((s, p) => s + p.info.byteLength, 0);
  const result = new Map<string, UploadedTensor>();
  const created: GPUBuffer[] = [];
  const staging = new Uint8Array(chunk);
  // The conversion output is allocated once, sized for the widest conversion planned (bf16/f16 → f32 doubles).
  let convBytes = 0;
  for (const p of plans) {
    if (converter(p.info.dtype, p.out) !== null) convBytes = Math.max(convBytes, (chunk / DTYPE_SIZES[p.info.dtype]) * p.outElem);
  }
  let conv: Uint8Array<ArrayBuffer> | null = null;
  let bytesDone = 0;
  let tensorsDone = 0;
  let sinceFlush = 0;
  try {
    for (const plan of plans) {
      const { info, out } = plan;
      const name = info.name;
      const parts: UploadedPart[] = [];
      device.pushErrorScope('out-of-memory');
      device.pushErrorScope('validation');
      for (let i = 0; i < plan.parts.length; i++) {
        const pp = plan.parts[i]!;
        const buffer = device.createBuffer({
          label: plan.parts.length > 1 ? `${name}#${i}` : name,
          size: Math.max(4, roundUp4(pp.byteLength)),
          usage: USAGE_STORAGE | USAGE_COPY_DST | USAGE_COPY_SRC,
        });
        created.push(buffer);
        parts.push({ buffer, rowStart: pp.rowStart, rows: pp.rows, byteLength: pp.byteLength });
      }
      const validationErr = await device.popErrorScope();
      const oomErr = await device.popErrorScope();
      const gpuErr = validationErr ?? oomErr;
      if (gpuErr) {
        throw new CheckpointError(`creating the GPU buffer(s) failed: ${gpuErr.message}`, { ...where, tensor: name });
      }

      const srcElem = DTYPE_SIZES[info.dtype];
      const convert = converter(info.dtype, out);
      if (convert !== null && conv === null) conv = new Uint8Array(convBytes);
      for (let i = 0; i < plan.parts.length; i++) {
        const pp = plan.parts[i]!;
        const buffer = parts[i]!.buffer;
        for (let off = 0; off < pp.srcLength; off += chunk) {
          const n = Math.min(chunk, pp.srcLength - off);
          await src.readRange(name, pp.srcStart + off, n, staging);
          const dstOffset = (off / srcElem) * plan.outElem;
          let data: Uint8Array<ArrayBuffer>;
          let outLen: number;
          if (convert === null) {
            data = staging;
            outLen = n;
          } else {
            data = conv!;
            outLen = convert(staging, conv!, n / srcElem);
          }
          const write = roundUp4(outLen);
          if (write > outLen) data.fill(0, outLen, write);
          device.queue.writeBuffer(buffer, dstOffset, data, 0, write);
          bytesDone += n;
          sinceFlush += write;
          if (sinceFlush >= flushBytes) {
            sinceFlush = 0;
            await device.queue.onSubmittedWorkDone();
          }
          const last = i === plan.parts.length - 1 && off + n >= pp.srcLength;
          if (last) tensorsDone++;
          opts.onProgress?.({ bytes: bytesDone, totalBytes, tensors: tensorsDone, totalTensors: plans.length, name });
        }
      }
      if (plan.parts.every((p) => p.srcLength === 0)) {
        tensorsDone++;
        opts.onProgress?.({ bytes: bytesDone, totalBytes, tensors: tensorsDone, totalTensors: plans.length, name });
      }
      result.set(name, {
        name,
        dtype: out,
        sourceDtype: info.dtype,
        shape: [...info.shape],
        rowBytes: plan.rowBytes,
        byteLength: plan.parts.reduce((s, p) => s + p.byteLength, 0),
        parts,
      });
    }
    await device.queue.onSubmittedWorkDone();
  } catch (e) {
    for (const b of created) b.destroy();
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`upload failed: ${e instanceof Error ? e.message : String(e)}`, { ...where, cause: e });
  }
  return result;
}

/** Converts `count` source elements from `src` bytes into `dst` bytes; returns the output byte count. */
type Converter = (src: Uint8Array, dst: Uint8Array, count: number) => number;

function converter(from: Dtype, to: GpuDtype): Converter | null {
  const u16 = (b: Uint8Array, n: number): Uint16Array => new Uint16Array(b.buffer, b.byteOffset, n);
  const f32 = (b: Uint8Array, n: number): Float32Array => new Float32Array(b.buffer, b.byteOffset, n);
  if (from === 'F32' && to === 'f32') return null;
  if (from === 'F16' && to === 'f16') return null;
  if (from === 'BF16' && to === 'f32') return (s, d, n) => (bf16ToF32(u16(s, n), f32(d, n), n), n * 4);
  if (from === 'BF16' && to === 'f16') return (s, d, n) => (bf16ToF16(u16(s, n), u16(d, n), n), n * 2);
  if (from === 'F16' && to === 'f32') return (s, d, n) => (f16ToF32(u16(s, n), f32(d, n), n), n * 4);
  if (from === 'F32' && to === 'f16') return (s, d, n) => (f32ToF16(f32(s, n), u16(d, n), n), n * 2);
  if (!isFloatDtype(from)) return null; // raw integer upload
  throw new Error(`no converter ${from} → ${to}`);
}

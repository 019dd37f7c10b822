/**
 * safetensors writer for tools and tests.
 *
 * The header is `__metadata__` (when given) followed by the tensors in the order given; data is laid out
 * contiguously in that order. The JSON header is padded with spaces so that the data section starts at a
 * multiple of 8 bytes (as Hugging Face's writer does). The same rules the reader enforces are checked before
 * anything is written. The file is written to `<path>.tmp-<pid>` and renamed over `path` only when complete, so
 * an error never leaves a half-written `path` behind (the temporary file is removed).
 */
import { promises as fsp } from 'node:fs';
import { DTYPE_SIZES, isDtype, SAFETENSORS_DTYPES, type Dtype } from './dtypes.js';
import { CheckpointError, describeValue } from './errors.js';
import { MAX_HEADER_BYTES } from './safetensors.js';

export interface TensorHeaderEntry {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
}

export interface TensorToWrite extends TensorHeaderEntry {
  /** Little-endian bytes, exactly product(shape) × dtype size of them. */
  data: ArrayBufferView;
}

export interface EncodedHeader {
  /** 8-byte length + padded JSON header: the first `bytes.length` bytes of the file. */
  bytes: Uint8Array;
  /** [begin, end] of each entry within the data section, in entry order. */
  dataOffsets: [number, number][];
  /** Total data section size. */
  dataSize: number;
}

/**
 * Validates entries and builds the header bytes (length prefix + JSON + space padding). Exported so callers can
 * stream very large files: write `bytes`, then each tensor's data in order.
 */
export function encodeSafetensorsHeader(
  entries: readonly TensorHeaderEntry[],
  metadata?: Readonly<Record<string, string>> | null,
  file = '<writer>',
): EncodedHeader {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new CheckpointError('__metadata__ must be an object of strings', { file, field: '__metadata__' });
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new CheckpointError(`__metadata__.${k} must be a string, got ${describeValue(v)}`, {
          file,
          field: '__metadata__',
        });
      }
    }
    header['__metadata__'] = { ...metadata };
  }
  const seen = new Set<string>();
  const dataOffsets: [number, number][] = [];
  let offset = 0;
  for (const e of entries) {
    const name = e.name;
    if (typeof name !== 'string' || name.length === 0 || name === '__metadata__') {
      throw new CheckpointError(`invalid tensor name ${describeValue(name)}`, { file, field: 'name' });
    }
    if (seen.has(name)) throw new CheckpointError('duplicate tensor name', { file, tensor: name });
    seen.add(name);
    if (!isDtype(e.dtype)) {
      throw new CheckpointError(`dtype ${describeValue(e.dtype)} is not one of ${SAFETENSORS_DTYPES.join(', ')}`, {
        file,
        tensor: name,
        field: 'dtype',
      });
    }
    if (!Array.isArray(e.shape)) throw new CheckpointError('shape must be an array', { file, tensor: name, field: 'shape' });
    let numel = 1;
    for (const d of e.shape) {
      if (!Number.isSafeInteger(d) || d < 0) {
        throw new CheckpointError(`shape ${describeValue(e.shape)} has an invalid dimension ${describeValue(d)}`, {
          file,
          tensor: name,
          field: 'shape',
        });
      }
      numel *= d;
    }
    const size = numel * DTYPE_SIZES[e.dtype];
    if (!Number.isSafeInteger(size)) {
      throw new CheckpointError(`shape ${describeValue(e.shape)} is too large`, { file, tensor: name, field: 'shape' });
    }
    dataOffsets.push([offset, offset + size]);
    header[name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new CheckpointError(`header is ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit`, {
      file,
      field: 'header length',
    });
  }
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { bytes, dataOffsets, dataSize: offset };
}

function viewBytes(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Writes a safetensors file atomically (see the module comment). */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>> | null,
): Promise<void> {
  const enc = encodeSafetensorsHeader(tensors, metadata, path);
  tensors.forEach((t, i) => {
    const [b, e] = enc.dataOffsets[i]!;
    if (!ArrayBuffer.isView(t.data)) {
      throw new CheckpointError('data must be an ArrayBufferView', { file: path, tensor: t.name, field: 'data' });
    }
    if (t.data.byteLength !== e - b) {
      throw new CheckpointError(
        `data has ${t.data.byteLength} bytes but shape ${describeValue(t.shape)} × ${t.dtype} needs ${e - b}`,
        { file: path, tensor: t.name, field: 'data' },
      );
    }
  });
  await writeFileAtomic(path, async (h) => {
    await writeAll(h, enc.bytes);
    for (const t of tensors) await writeAll(h, viewBytes(t.data));
  });
}

/**
 * Runs `fill` on a fresh `<path>.tmp-<pid>` file handle, then renames it over `path`. On any error the
 * temporary file is removed and the error rethrown (as a CheckpointError naming `path`).
 */
export async function writeFileAtomic(
  path: string,
  fill: (h: import('node:fs/promises').FileHandle) => Promise<void>,
): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  let h: import('node:fs/promises').FileHandle | null = null;
  try {
    h = await fsp.open(tmp, 'w');
    await fill(h);
    await h.close();
    h = null;
    await fsp.rename(tmp, path);
  } catch (e) {
    if (h !== null) await h.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`write failed: ${e instanceof Error ? e.message : String(e)}`, { file: path, cause: e });
  }
}

async function writeAll(h: import('node:fs/promises').FileHandle, bytes: Uint8Array): Promise<void> {
  // Large views are written in slices so a short write is retried and no single call is enormous.
  const SLICE = 64 * 1024 * 1024;
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(SLICE, bytes.length - done);
    const { bytesWritten } = await h.write(bytes, done, n);
    if (bytesWritten <= 0) throw new Error('short write');
    done += bytesWritten;
  }
}

/**
 * A validating, streaming safetensors reader.
 *
 * Format: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON header, then the raw little-endian
 * data section. The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative
 * to the data section) plus an optional `__metadata__` object of string values.
 *
 * Validation is strict (everything below is a {@link CheckpointError} naming the file, tensor and field):
 * - 2 ≤ N ≤ 100,000,000 (the Hugging Face limit) and 8 + N ≤ file size;
 * - the header is valid UTF-8 (a BOM is not stripped, so it is rejected by the JSON parse), valid JSON, a JSON
 *   object, with no duplicate key at any nesting level (JSON.parse would silently keep the last one; a small
 *   key scanner detects them);
 * - `__metadata__`, when present, is an object whose values are all strings;
 * - every other key is a non-empty tensor name whose entry is an object with exactly the keys `dtype`, `shape`,
 *   `data_offsets`; dtype is one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL U16 U32 U64; shape is an array of
 *   non-negative safe integers; data_offsets is `[begin, end]` of non-negative safe integers, begin ≤ end,
 *   end ≤ data section size, end − begin = product(shape) × dtype size;
 * - no two tensors with non-empty data overlap (zero-byte tensors occupy nothing and are exempt).
 * Coverage of the data section need not be complete (unreferenced bytes are allowed), and a numeric JSON value
 * written as `3.0` is accepted as the integer 3 (JSON.parse does not tell them apart).
 *
 * The file is never read whole: the header is read once, and tensor data is read on demand with positional
 * reads ({@link SafetensorsFile.readRange}), so large checkpoints stream in bounded memory.
 */
import { platform, type RandomAccessFile } from '../platform/index.js';
import { DTYPE_SIZES, isDtype, SAFETENSORS_DTYPES, type Dtype } from './dtypes.js';
import { CheckpointError, describeValue } from './errors.js';

/** The largest header accepted (the Hugging Face `safetensors` limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor data in the file (8 + N + data_offsets[0]). */
  readonly byteOffset: number;
  /** Number of data bytes (data_offsets[1] − data_offsets[0]). */
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  /** N, the JSON header length. */
  readonly headerLength: number;
  /** 8 + N: where the data section starts. */
  readonly dataOffset: number;
  /** fileSize − 8 − N. */
  readonly dataSize: number;
  /** Tensors in header order. */
  readonly tensors: Map<string, TensorInfo>;
  /** `__metadata__`, or null when absent. */
  readonly metadata: Readonly<Record<string, string>> | null;
}

/**
 * Anything tensors can be streamed from: a single {@link SafetensorsFile} or a whole checkpoint directory
 * (`Checkpoint` in checkpoint.ts).
 */
export interface TensorSource {
  readonly tensorInfos: ReadonlyMap<string, TensorInfo>;
  /**
   * Reads bytes [start, start + length) of tensor `name` into `into` (its first `length` bytes) or into a new
   * array, and returns the filled view (`length` bytes).
   */
  readRange(name: string, start: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
}

/**
 * Reads and validates the 8-byte header length. `bytes` holds (at least) the first 8 bytes of the file.
 */
export function readHeaderLength(bytes: Uint8Array, fileSize: number, file = '<memory>'): number {
  if (!Number.isSafeInteger(fileSize) || fileSize < 0) {
    throw new CheckpointError(`invalid file size ${fileSize}`, { file });
  }
  if (fileSize < 8 || bytes.length < 8) {
    throw new CheckpointError(
      `file is too short for a safetensors header length (${fileSize < 8 ? fileSize : bytes.length} bytes, need 8)`,
      { file, field: 'header length' },
    );
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n < 2n) {
    throw new CheckpointError(`header length ${n} is too small (minimum 2, an empty JSON object "{}")`, {
      file,
      field: 'header length',
    });
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, {
      file,
      field: 'header length',
    });
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new CheckpointError(`header length ${len} runs past the end of the file (8 + ${len} > ${fileSize} bytes)`, {
      file,
      field: 'header length',
    });
  }
  return len;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses and validates a safetensors header held in memory. `bytes` is the beginning of the file and must hold
 * at least 8 + N bytes (it may hold more, e.g. the whole file); `fileSize` is the size of the whole file.
 * Used both by {@link openSafetensors} and directly (e.g. by in-memory fuzzing).
 */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, file = '<memory>'): SafetensorsHeader {
  const headerLength = readHeaderLength(bytes, fileSize, file);
  if (bytes.length < 8 + headerLength) {
    throw new CheckpointError(`header buffer holds ${bytes.length} bytes, need 8 + ${headerLength}`, {
      file,
      field: 'header length',
    });
  }
  const dataOffset = 8 + headerLength;
  const dataSize = fileSize - dataOffset;

  let text: string;
  try {
    text = utf8.decode(bytes.subarray(8, dataOffset));
  } catch {
    throw new CheckpointError('header is not valid UTF-8', { file, field: 'header' });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new CheckpointError(`header is not valid JSON (${why.slice(0, 200)})`, { file, field: 'header' });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new CheckpointError(`header must be a JSON object, got ${jsonKind(json)}`, { file, field: 'header' });
  }
  const dup = findDuplicateKey(text);
  if (dup !== null) {
    throw new CheckpointError(
      dup.within === null
        ? `header has duplicate key ${JSON.stringify(dup.key)}`
        : `header has duplicate key ${JSON.stringify(dup.key)} inside the entry ${JSON.stringify(dup.within)}`,
      dup.within !== null && dup.within !== '__metadata__'
        ? { file, tensor: dup.within, field: dup.key }
        : { file, field: 'header' },
    );
  }

  const obj = json as Record<string, unknown>;
  let metadata: Record<string, string> | null = null;
  const tensors = new Map<string, TensorInfo>();
  const ranges: { name: string; begin: number; end: number }[] = [];

  for (const name of Object.keys(obj)) {
    const entry = obj[name];
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
        throw new CheckpointError(`__metadata__ must be an object of strings, got ${jsonKind(entry)}`, {
          file,
          field: '__metadata__',
        });
      }
      const md: Record<string, string> = Object.create(null) as Record<string, string>;
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') {
          throw new CheckpointError(
            `__metadata__.${k} must be a string, got ${jsonKind(v)} ${describeValue(v)}`,
            { file, field: '__metadata__' },
          );
        }
        md[k] = v;
      }
      metadata = md;
      continue;
    }
    if (name.length === 0) {
      throw new CheckpointError('header has a tensor with an empty name', { file, field: 'header' });
    }
    const info = validateEntry(name, entry, dataOffset, dataSize, file);
    tensors.set(name, info);
    ranges.push({ name, begin: info.byteOffset - dataOffset, end: info.byteOffset - dataOffset + info.byteLength });
  }

  // Overlaps: sort the non-empty ranges by begin; each must start at or after the previous end.
  const nonEmpty = ranges.filter((r) => r.end > r.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < nonEmpty.length; i++) {
    const prev = nonEmpty[i - 1]!;
    const cur = nonEmpty[i]!;
    if (cur.begin < prev.end) {
      throw new CheckpointError(
        `data_offsets [${cur.begin}, ${cur.end}] overlap tensor ${JSON.stringify(prev.name)} at [${prev.begin}, ${prev.end}]`,
        { file, tensor: cur.name, field: 'data_offsets' },
      );
    }
  }

  return { headerLength, dataOffset, dataSize, tensors, metadata };
}

const ENTRY_KEYS = new Set(['dtype', 'shape', 'data_offsets']);

function validateEntry(name: string, entry: unknown, dataOffset: number, dataSize: number, file: string): TensorInfo {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new CheckpointError(`entry must be an object {dtype, shape, data_offsets}, got ${jsonKind(entry)}`, {
      file,
      tensor: name,
      field: 'header',
    });
  }
  const e = entry as Record<string, unknown>;
  for (const k of Object.keys(e)) {
    if (!ENTRY_KEYS.has(k)) {
      throw new CheckpointError(`unknown key ${JSON.stringify(k)} (allowed: dtype, shape, data_offsets)`, {
        file,
        tensor: name,
        field: k,
      });
    }
  }
  for (const k of ENTRY_KEYS) {
    if (!(k in e)) throw new CheckpointError(`missing ${k}`, { file, tensor: name, field: k });
  }
  const dtype = e['dtype'];
  if (!isDtype(dtype)) {
    throw new CheckpointError(
      `dtype ${describeValue(dtype)} is not a safetensors dtype (${SAFETENSORS_DTYPES.join(', ')})`,
      { file, tensor: name, field: 'dtype' },
    );
  }
  const shapeV = e['shape'];
  if (!Array.isArray(shapeV)) {
    throw new CheckpointError(`shape must be an array, got ${jsonKind(shapeV)}`, { file, tensor: name, field: 'shape' });
  }
  const shape: number[] = [];
  let numel = 1n;
  for (let i = 0; i < shapeV.length; i++) {
    const d: unknown = shapeV[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new CheckpointError(`shape[${i}] must be a non-negative integer, got ${describeValue(d)}`, {
        file,
        tensor: name,
        field: 'shape',
      });
    }
    shape.push(d);
    numel *= BigInt(d);
  }
  const offV = e['data_offsets'];
  if (!Array.isArray(offV) || offV.length !== 2) {
    throw new CheckpointError(`data_offsets must be an array [begin, end], got ${describeValue(offV)}`, {
      file,
      tensor: name,
      field: 'data_offsets',
    });
  }
  const [begin, end] = offV as unknown[];
  for (const [label, v] of [['begin', begin], ['end', end]] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new CheckpointError(`data_offsets ${label} must be a non-negative integer, got ${describeValue(v)}`, {
        file,
        tensor: name,
        field: 'data_offsets',
      });
    }
  }
  const b = begin as number;
  const en = end as number;
  if (b > en) {
    throw new CheckpointError(`data_offsets [${b}, ${en}]: begin is greater than end`, {
      file,
      tensor: name,
      field: 'data_offsets',
    });
  }
  if (en > dataSize) {
    throw new CheckpointError(
      `data_offsets [${b}, ${en}] run past the end of the data section (${dataSize} bytes; file truncated?)`,
      { file, tensor: name, field: 'data_offsets' },
    );
  }
  const expected = numel * BigInt(DTYPE_SIZES[dtype]);
  if (expected !== BigInt(en - b)) {
    throw new CheckpointError(
      `data_offsets [${b}, ${en}] span ${en - b} bytes but shape ${describeValue(shape)} × ${dtype} needs ${expected} bytes`,
      { file, tensor: name, field: 'data_offsets' },
    );
  }
  return Object.freeze({ name, dtype, shape: Object.freeze(shape), byteOffset: dataOffset + b, byteLength: en - b });
}

function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * Finds the first duplicate key in any object of a *valid* JSON text (JSON.parse keeps the last one silently).
 * `within` is the top-level key whose value contains the duplicate, or null for a top-level duplicate.
 * Keys are compared after unescaping ("a" and "\u0061" are the same key). Linear time, no recursion.
 */
export function findDuplicateKey(text: string): { key: string; within: string | null } | null {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let topKey: string | null = null;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j += 2;
          continue;
        }
        if (d === 0x22) break;
        j++;
      }
      if (expectKey) {
        const raw = text.slice(i + 1, Math.min(j, n));
        let key = raw;
        if (escaped) {
          try {
            key = JSON.parse(text.slice(i, j + 1)) as string;
          } catch {
            key = raw;
          }
        }
        const set = stack[stack.length - 1];
        if (set) {
          if (set.has(key)) return { key, within: stack.length === 1 ? null : topKey };
          set.add(key);
        }
        if (stack.length === 1) topKey = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    }
    i++;
  }
  return null;
}

/** An open safetensors file. Tensor data is read on demand; call {@link close} when done. */
export class SafetensorsFile implements TensorSource {
  readonly path: string;
  readonly fileSize: number;
  readonly headerLength: number;
  readonly dataOffset: number;
  /** Tensors in header order. */
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>> | null;
  private handle: RandomAccessFile | null;

  /** Use {@link openSafetensors}. */
  constructor(path: string, handle: RandomAccessFile, fileSize: number, header: SafetensorsHeader) {
    this.path = path;
    this.handle = handle;
    this.fileSize = fileSize;
    this.headerLength = header.headerLength;
    this.dataOffset = header.dataOffset;
    this.tensors = header.tensors;
    this.metadata = header.metadata;
  }

  get tensorInfos(): ReadonlyMap<string, TensorInfo> {
    return this.tensors;
  }

  get closed(): boolean {
    return this.handle === null;
  }

  /** The tensor's info; a CheckpointError when the file has no such tensor. */
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError('no such tensor in this file', { file: this.path, tensor: name });
    return t;
  }

  /**
   * Reads a whole tensor into a new array. Meant for small tensors; refuses more than `maxBytes`
   * (default 256 MiB) — stream big ones with {@link readRange}.
   */
  async readTensor(name: string, maxBytes = 256 * 1024 * 1024): Promise<Uint8Array> {
    const t = this.info(name);
    if (t.byteLength > maxBytes) {
      throw new CheckpointError(
        `readTensor refuses ${t.byteLength} bytes (limit ${maxBytes}); stream it with readRange`,
        { file: this.path, tensor: name },
      );
    }
    return this.readRange(name, 0, t.byteLength);
  }

  /**
   * Reads bytes [start, start + length) of a tensor's data into `into` (or a new array) and returns the filled
   * view of exactly `length` bytes.
   */
  async readRange(name: string, start: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const t = this.info(name);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > t.byteLength) {
      throw new CheckpointError(`readRange(${start}, ${length}) is outside the tensor's ${t.byteLength} bytes`, {
        file: this.path,
        tensor: name,
      });
    }
    if (into !== undefined && into.length < length) {
      throw new CheckpointError(`readRange: destination holds ${into.length} bytes, need ${length}`, {
        file: this.path,
        tensor: name,
      });
    }
    const out = into !== undefined ? into.subarray(0, length) : new Uint8Array(length);
    await this.readAt(out, t.byteOffset + start, name);
    return out;
  }

  private async readAt(out: Uint8Array, position: number, tensor?: string): Promise<void> {
    const h = this.handle;
    if (h === null) throw new CheckpointError('file is closed', { file: this.path, ...(tensor !== undefined ? { tensor } : {}) });
    let done = 0;
    while (done < out.length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await h.read(out, done, out.length - done, position + done));
      } catch (e) {
        throw new CheckpointError(`read failed at byte ${position + done}: ${e instanceof Error ? e.message : String(e)}`, {
          file: this.path,
          ...(tensor !== undefined ? { tensor } : {}),
          cause: e,
        });
      }
      if (bytesRead === 0) {
        throw new CheckpointError(
          `unexpected end of file at byte ${position + done} (the file shrank after it was opened?)`,
          { file: this.path, ...(tensor !== undefined ? { tensor } : {}) },
        );
      }
      done += bytesRead;
    }
  }

  /** Closes the file handle (idempotent). */
  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h !== null) await h.close();
  }
}

/** Opens and validates a safetensors file (reads only its header). */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  let handle: RandomAccessFile;
  try {
    handle = await platform().fs.open(path);
  } catch (e) {
    throw new CheckpointError(`cannot open: ${e instanceof Error ? e.message : String(e)}`, { file: path, cause: e });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new CheckpointError('not a regular file', { file: path });
    const fileSize = st.size;
    const first = new Uint8Array(8);
    const got = fileSize >= 8 ? (await handle.read(first, 0, 8, 0)).bytesRead : 0;
    const headerLength = readHeaderLength(first.subarray(0, got), fileSize, path);
    const bytes = new Uint8Array(8 + headerLength);
    bytes.set(first);
    let done = 8;
    while (done < bytes.length) {
      const { bytesRead } = await handle.read(bytes, done, bytes.length - done, done);
      if (bytesRead === 0) throw new CheckpointError('unexpected end of file in the header', { file: path, field: 'header' });
      done += bytesRead;
    }
    const header = parseSafetensorsHeader(bytes, fileSize, path);
    return new SafetensorsFile(path, handle, fileSize, header);
  } catch (e) {
    await handle.close().catch(() => undefined);
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`cannot read: ${e instanceof Error ? e.message : String(e)}`, { file: path, cause: e });
  }
}

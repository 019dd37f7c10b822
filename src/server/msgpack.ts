// The openpi wire format: msgpack with numpy arrays as maps (openpi_client/msgpack_numpy.py):
//
//   ndarray:  {b"__ndarray__": True, b"data": <bin: raw bytes>, b"dtype": <str, e.g. "<f4">, b"shape": [..]}
//   numpy scalar: {b"__npgeneric__": True, b"data": <the value>, b"dtype": <str>}
//
// openpi (Python msgpack, use_bin_type=True) writes those four keys as msgpack *bin* (bytes) keys and its
// unpacker looks them up as bytes, so the encoder here writes them as bin too (a str key would not be
// recognised by upstream openpi clients). The decoder accepts both str and bin keys. Every other map key is
// a str. Object / void / complex dtypes are refused, as openpi does (no pickle anywhere).
import { Decoder, DecodeError, ExtData } from '@msgpack/msgpack';
import { NdArray, parseDtype } from './ndarray.js';
import { QvlaError } from '../util/errors.js';

export class WireError extends QvlaError {
  declare readonly field?: string;
  constructor(message: string, field?: string) {
    super(message, { code: 'bad_frame', field });
    this.name = 'WireError';
  }
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

// ---------------------------------------------------------------------------------------------------------
// Encoding (a small msgpack writer: nil, bool, int, float64, str, bin, array, map, NdArray)

/** Marker for a map whose keys must go out as msgpack bin (bytes) keys. */
class BinKeyMap {
  constructor(readonly entries: [string, unknown][]) {}
}

class Writer {
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const nb = new Uint8Array(size);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
    this.view = new DataView(nb.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  int(v: number): void {
    if (v >= 0) {
      if (v < 128) this.u8(v);
      else if (v < 0x100) { this.u8(0xcc); this.u8(v); }
      else if (v < 0x10000) { this.u8(0xcd); this.u16(v); }
      else if (v < 0x100000000) { this.u8(0xce); this.u32(v); }
      else { this.u8(0xcf); this.ensure(8); this.view.setBigUint64(this.pos, BigInt(v)); this.pos += 8; }
    } else {
      if (v >= -32) this.u8(v & 0xff);
      else if (v >= -128) { this.u8(0xd0); this.ensure(1); this.view.setInt8(this.pos, v); this.pos += 1; }
      else if (v >= -32768) { this.u8(0xd1); this.ensure(2); this.view.setInt16(this.pos, v); this.pos += 2; }
      else if (v >= -2147483648) { this.u8(0xd2); this.ensure(4); this.view.setInt32(this.pos, v); this.pos += 4; }
      else { this.u8(0xd3); this.ensure(8); this.view.setBigInt64(this.pos, BigInt(v)); this.pos += 8; }
    }
  }

  float(v: number): void {
    this.u8(0xcb);
    this.ensure(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }

  str(s: string): void {
    const b = utf8.encode(s);
    const n = b.length;
    if (n < 32) this.u8(0xa0 | n);
    else if (n < 0x100) { this.u8(0xd9); this.u8(n); }
    else if (n < 0x10000) { this.u8(0xda); this.u16(n); }
    else { this.u8(0xdb); this.u32(n); }
    this.bytes(b);
  }

  bin(b: Uint8Array): void {
    const n = b.length;
    if (n < 0x100) { this.u8(0xc4); this.u8(n); }
    else if (n < 0x10000) { this.u8(0xc5); this.u16(n); }
    else { this.u8(0xc6); this.u32(n); }
    this.bytes(b);
  }

  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n < 0x10000) { this.u8(0xdc); this.u16(n); }
    else { this.u8(0xdd); this.u32(n); }
  }

  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 | n);
    else if (n < 0x10000) { this.u8(0xde); this.u16(n); }
    else { this.u8(0xdf); this.u32(n); }
  }

  value(v: unknown, depth: number): void {
    if (depth > 64) throw new Error('msgpack encode: nesting deeper than 64');
    if (v === null || v === undefined) this.u8(0xc0);
    else if (v === true) this.u8(0xc3);
    else if (v === false) this.u8(0xc2);
    else if (typeof v === 'number') {
      if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER && !Object.is(v, -0)) this.int(v);
      else this.float(v);
    } else if (typeof v === 'bigint') {
      this.int(Number(v));
    } else if (typeof v === 'string') this.str(v);
    else if (v instanceof NdArray) this.value(ndarrayMap(v), depth);
    else if (v instanceof BinKeyMap) {
      this.mapHeader(v.entries.length);
      for (const [k, x] of v.entries) {
        this.bin(utf8.encode(k));
        this.value(x, depth + 1);
      }
    } else if (v instanceof Uint8Array) this.bin(v);
    else if (v instanceof Float32Array) this.value(NdArray.fromFloat32(v, [v.length]), depth);
    else if (v instanceof Float64Array) this.value(NdArray.fromFloat64(v, [v.length]), depth);
    else if (Array.isArray(v)) {
      this.arrayHeader(v.length);
      for (const x of v) this.value(x, depth + 1);
    } else if (v instanceof Map) {
      this.mapHeader(v.size);
      for (const [k, x] of v) {
        if (k instanceof Uint8Array) this.bin(k);
        else this.str(String(k));
        this.value(x, depth + 1);
      }
    } else if (typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
      this.mapHeader(entries.length);
      for (const [k, x] of entries) {
        this.str(k);
        this.value(x, depth + 1);
      }
    } else {
      throw new Error(`msgpack encode: cannot encode a ${typeof v}`);
    }
  }
}

function ndarrayMap(a: NdArray): BinKeyMap {
  return new BinKeyMap([
    ['__ndarray__', true],
    ['data', a.data],
    ['dtype', a.dtype.str],
    ['shape', a.shape],
  ]);
}

/**
 * msgpack-encodes a value the way openpi's `msgpack_numpy.Packer` would: NdArray (and bare Float32Array /
 * Float64Array, as 1-D arrays) become ndarray maps with bin keys; Uint8Array becomes bin; plain objects and
 * Maps become maps with str keys; integers become msgpack ints, other numbers float64.
 */
export function packb(value: unknown): Uint8Array {
  const w = new Writer();
  w.value(value, 0);
  return w.result();
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

/** Python-side values after decoding: plain objects with string keys, arrays, NdArray, numbers, strings… */
export type Unpacked = unknown;

function keyConverter(key: unknown): string | number {
  let k: string | number;
  if (typeof key === 'string' || typeof key === 'number') k = key;
  else if (key instanceof Uint8Array) {
    try {
      k = utf8d.decode(key);
    } catch {
      throw new DecodeError('a map key is bytes that are not UTF-8');
    }
  } else {
    throw new DecodeError(`map keys must be strings, bytes or numbers, got ${key === null ? 'nil' : typeof key}`);
  }
  if (k === '__proto__') throw new DecodeError('map key "__proto__" is not allowed');
  return k;
}

const MAX_DEPTH = 32;

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof NdArray);
}

function toNdArray(m: Record<string, unknown>, where: string): NdArray {
  const keys = Object.keys(m).sort().join(',');
  if (keys !== '__ndarray__,data,dtype,shape') throw new WireError(`an ndarray must have exactly the keys __ndarray__, data, dtype, shape (got ${keys})`, where);
  const dtype = parseDtype(m['dtype']);
  if (!dtype) throw new WireError(`unsupported ndarray dtype ${JSON.stringify(m['dtype'])} (numeric and bool dtypes only)`, where);
  const shape = m['shape'];
  if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) {
    throw new WireError('ndarray shape must be a list of at most 8 non-negative integers', where);
  }
  const data = m['data'];
  if (!(data instanceof Uint8Array)) throw new WireError('ndarray data must be bytes', where);
  const n = (shape as number[]).reduce((a, b) => a * b, 1);
  if (n * dtype.itemsize !== data.length) {
    throw new WireError(`ndarray data has ${data.length} bytes, shape [${shape.join(', ')}] × ${dtype.itemsize} bytes needs ${n * dtype.itemsize}`, where);
  }
  return new NdArray(dtype, (shape as number[]).slice(), data.slice());
}

function npGeneric(m: Record<string, unknown>, where: string): number | boolean {
  const dtype = parseDtype(m['dtype']);
  const d = m['data'];
  if (!dtype) throw new WireError(`unsupported numpy scalar dtype ${JSON.stringify(m['dtype'])}`, where);
  if (dtype.kind === 'b') {
    if (typeof d !== 'boolean') throw new WireError('a numpy bool scalar must carry a bool', where);
    return d;
  }
  if (typeof d !== 'number' && typeof d !== 'bigint') throw new WireError('a numpy scalar must carry a number', where);
  return Number(d);
}

function convert(v: unknown, depth: number, where: string): unknown {
  if (depth > MAX_DEPTH) throw new WireError(`nesting deeper than ${MAX_DEPTH}`, where);
  if (Array.isArray(v)) return v.map((x, i) => convert(x, depth + 1, `${where}[${i}]`));
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') return v;
  if (v instanceof Date || v instanceof ExtData || !isMap(v)) throw new WireError('unsupported msgpack extension type', where);
  if ('__ndarray__' in v) return toNdArray(v, where);
  if ('__npgeneric__' in v) return npGeneric(v, where);
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, x] of Object.entries(v)) out[k] = convert(x, depth + 1, where ? `${where}.${k}` : k);
  return out;
}

/**
 * Decodes one frame: msgpack → JS, ndarray maps → NdArray, numpy scalars → number/bool. Map keys may be str
 * or bin (both become strings). Throws WireError (undecodable bytes, bad ndarray, unsupported types).
 */
export function unpackb(bytes: Uint8Array): Unpacked {
  let raw: unknown;
  try {
    raw = new Decoder({ mapKeyConverter: keyConverter, useBigInt64: false }).decode(bytes);
  } catch (e) {
    throw new WireError(`not a valid msgpack message (${e instanceof Error ? e.message : String(e)})`);
  }
  return convert(raw, 0, '');
}

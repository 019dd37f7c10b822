import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAFETENSORS_DTYPES } from '../../src/io/dtypes.js';
import { CheckpointError } from '../../src/io/errors.js';
import { findDuplicateKey, openSafetensors, parseSafetensorsHeader } from '../../src/io/safetensors.js';
import { encodeSafetensorsHeader, writeFileAtomic, writeSafetensors, type TensorToWrite } from '../../src/io/safetensorsWriter.js';
import { randomTensor, rng, tmpDir } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tmpDir('qvla-st-');
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Builds file bytes from a raw header object (JSON text) and a data section. */
function fileFromHeaderText(json: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function expectReject(bytes: Uint8Array, re: RegExp, fileSize = bytes.length): CheckpointError {
  let err: unknown;
  try {
    parseSafetensorsHeader(bytes, fileSize, 'x.safetensors');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CheckpointError);
  const ce = err as CheckpointError;
  expect(ce.message.startsWith('x.safetensors: ')).toBe(true);
  expect(ce.message).toMatch(re);
  return ce;
}

describe('safetensors writer → reader', () => {
  it('round-trips every dtype, with metadata, an empty tensor and a scalar', async () => {
    const r = rng(1);
    const tensors: TensorToWrite[] = SAFETENSORS_DTYPES.map((dt, i) => randomTensor(r, `t.${dt}`, dt, [3, i + 1]));
    tensors.push(randomTensor(r, 'empty', 'F32', [0, 5]));
    tensors.push(randomTensor(r, 'scalar', 'BF16', []));
    const p = nodePath.join(dir, 'all.safetensors');
    await writeSafetensors(p, tensors, { format: 'pt', note: 'ü' });
    const f = await openSafetensors(p);
    try {
      expect(f.dataOffset % 8).toBe(0);
      expect(f.metadata).toEqual({ format: 'pt', note: 'ü' });
      expect([...f.tensors.keys()]).toEqual(tensors.map((t) => t.name));
      for (const t of tensors) {
        const info = f.tensors.get(t.name)!;
        expect(info.dtype).toBe(t.dtype);
        expect(info.shape).toEqual(t.shape);
        const got = await f.readTensor(t.name);
        expect(got).toEqual(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      }
      // readRange into a provided buffer, partial
      const t0 = tensors[1]!; // F32 [3, 2]
      const into = new Uint8Array(64).fill(7);
      const part = await f.readRange(t0.name, 4, 8, into);
      expect(part.length).toBe(8);
      expect(part.buffer).toBe(into.buffer);
      expect(part).toEqual(new Uint8Array(t0.data.buffer, 4, 8));
      await expect(f.readRange(t0.name, 20, 8)).rejects.toThrow(/outside the tensor's 24 bytes/);
      await expect(f.readRange('nope', 0, 1)).rejects.toThrow(CheckpointError);
      await expect(f.readTensor(t0.name, 4)).rejects.toThrow(/readRange/);
    } finally {
      await f.close();
    }
    await expect(f.readTensor('t.F32')).rejects.toThrow(/closed/);
    // the header JSON is padded with spaces
    const raw = await fsp.readFile(p);
    const n = Number(raw.readBigUInt64LE(0));
    const header = raw.subarray(8, 8 + n).toString('utf8');
    expect(header.trimEnd().endsWith('}')).toBe(true);
    expect((8 + n) % 8).toBe(0);
    expect(/^ *$/.test(header.slice(header.trimEnd().length))).toBe(true);
  });

  it('writer validates before writing and never leaves a partial file', async () => {
    const p = nodePath.join(dir, 'bad.safetensors');
    const ok = { name: 'a', dtype: 'F32' as const, shape: [2], data: new Float32Array(2) };
    await expect(writeSafetensors(p, [{ ...ok, data: new Float32Array(3) }])).rejects.toThrow(/tensor "a": data has 12 bytes but shape \[2\] × F32 needs 8/);
    await expect(writeSafetensors(p, [ok, ok])).rejects.toThrow(/duplicate tensor name/);
    await expect(writeSafetensors(p, [{ ...ok, dtype: 'F8' as never }])).rejects.toThrow(/dtype "F8"/);
    await expect(writeSafetensors(p, [{ ...ok, shape: [-2] }])).rejects.toThrow(/shape/);
    await expect(writeSafetensors(p, [{ ...ok, name: '__metadata__' }])).rejects.toThrow(/invalid tensor name/);
    await expect(writeSafetensors(p, [ok], { a: 1 as never })).rejects.toThrow(/__metadata__\.a must be a string/);
    expect(await fsp.readdir(dir)).not.toContain('bad.safetensors');
    // a failure in the middle of writing: the old file stays, no temp file remains
    await writeSafetensors(p, [ok]);
    const before = await fsp.readFile(p);
    await expect(
      writeFileAtomic(p, async (h) => {
        await h.write(new Uint8Array(100));
        throw new Error('disk full (simulated)');
      }),
    ).rejects.toThrow(/bad\.safetensors: write failed: disk full/);
    expect(await fsp.readFile(p)).toEqual(before);
    expect((await fsp.readdir(dir)).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('encodeSafetensorsHeader lays tensors out contiguously', () => {
    const enc = encodeSafetensorsHeader([
      { name: 'a', dtype: 'BF16', shape: [3] },
      { name: 'b', dtype: 'U8', shape: [5] },
    ]);
    expect(enc.dataOffsets).toEqual([[0, 6], [6, 11]]);
    expect(enc.dataSize).toBe(11);
    expect(enc.bytes.length % 8).toBe(0);
  });
});

describe('safetensors header validation', () => {
  const data = new Uint8Array(16);
  const good = (extra = ''): string => `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}${extra}}`;

  it('accepts a valid header and computes absolute offsets', () => {
    const bytes = fileFromHeaderText(good(',"b":{"dtype":"U8","shape":[2,2],"data_offsets":[8,12]}'), data);
    const h = parseSafetensorsHeader(bytes, bytes.length, 'x.safetensors');
    const hl = bytes.length - 16 - 8;
    expect(h.headerLength).toBe(hl);
    expect(h.tensors.get('b')).toEqual({ name: 'b', dtype: 'U8', shape: [2, 2], byteOffset: 8 + hl + 8, byteLength: 4 });
    expect(h.metadata).toBeNull();
  });

  it('rejects bad header lengths', () => {
    const b = fileFromHeaderText(good(), data);
    const set = (n: bigint): Uint8Array => {
      const c = b.slice();
      new DataView(c.buffer).setBigUint64(0, n, true);
      return c;
    };
    expectReject(set(0n), /header length 0 is too small/);
    expectReject(set(1n), /header length 1 is too small/);
    expectReject(set(100_000_001n), /exceeds the 100000000-byte limit/);
    expectReject(set(2n ** 64n - 1n), /exceeds/);
    expectReject(set(BigInt(b.length)), /runs past the end of the file/);
    expectReject(b.subarray(0, 5), /too short/);
    expectReject(new Uint8Array(0), /too short/);
  });

  it('rejects non-UTF-8, BOM, non-JSON and non-object headers', () => {
    const bad = fileFromHeaderText(good(), data);
    bad[12] = 0xff;
    expectReject(bad, /not valid UTF-8/);
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(good())]);
    const withBom = new Uint8Array(8 + bom.length);
    new DataView(withBom.buffer).setBigUint64(0, BigInt(bom.length), true);
    withBom.set(bom, 8);
    expectReject(withBom, /not valid JSON/);
    expectReject(fileFromHeaderText('{"a":'), /not valid JSON/);
    expectReject(fileFromHeaderText('[1,2]'), /must be a JSON object, got an array/);
    expectReject(fileFromHeaderText('42'), /must be a JSON object, got a number/);
    expectReject(fileFromHeaderText('null'), /must be a JSON object, got null/);
  });

  it('rejects bad entries, naming tensor and field', () => {
    const e = (entry: string, more = ''): Uint8Array => fileFromHeaderText(`{"t":${entry}${more}}`, data);
    expect(expectReject(e('{"dtype":"F8","shape":[2],"data_offsets":[0,2]}'), /tensor "t": dtype "F8" is not a safetensors dtype/).field).toBe('dtype');
    expectReject(e('{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}'), /tensor "t": shape\[0\] must be a non-negative integer, got -1/);
    expectReject(e('{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}'), /shape\[0\]/);
    expectReject(e('{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}'), /shape\[0\]/);
    expectReject(e('{"dtype":"F32","shape":"2","data_offsets":[0,8]}'), /shape must be an array/);
    expectReject(e('{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}'), /data_offsets must be an array \[begin, end\]/);
    expectReject(e('{"dtype":"F32","shape":[2],"data_offsets":[8,0]}'), /begin is greater than end/);
    expectReject(e('{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}'), /data_offsets begin must be a non-negative integer/);
    expectReject(e('{"dtype":"F32","shape":[2],"data_offsets":[12,20]}'), /run past the end of the data section \(16 bytes/);
    expectReject(e('{"dtype":"F32","shape":[3],"data_offsets":[0,8]}'), /span 8 bytes but shape \[3\] × F32 needs 12 bytes/);
    expectReject(e('{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}'), /tensor "t": unknown key "extra"/);
    expectReject(e('{"dtype":"F32","shape":[2]}'), /tensor "t": missing data_offsets/);
    expectReject(e('[1]'), /tensor "t": header: entry must be an object/);
    expectReject(fileFromHeaderText('{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', data), /empty name/);
    // overlap, and zero-size tensors that sit inside another are fine
    expectReject(e('{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', ',"u":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}'), /tensor "u": data_offsets \[4, 8\] overlap tensor "t" at \[0, 8\]/);
    const okZero = e('{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', ',"z":{"dtype":"U8","shape":[0],"data_offsets":[4,4]}');
    expect(parseSafetensorsHeader(okZero, okZero.length).tensors.get('z')!.byteLength).toBe(0);
  });

  it('rejects bad __metadata__ and duplicate keys (which JSON.parse would hide)', () => {
    expectReject(fileFromHeaderText('{"__metadata__":{"a":1}}'), /__metadata__\.a must be a string, got a number 1/);
    expectReject(fileFromHeaderText('{"__metadata__":["a"]}'), /__metadata__ must be an object of strings, got an array/);
    expectReject(fileFromHeaderText(good(',"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}'), data), /duplicate key "a"/);
    expectReject(fileFromHeaderText(good(',"\\u0061":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}'), data), /duplicate key "a"/);
    expectReject(fileFromHeaderText('{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}', data), /tensor "a": header has duplicate key "dtype"/);
    expect(findDuplicateKey('{"a":{"b":1,"c":[{"b":2},{"b":3}]},"b":"a\\"b","c":{"x":{"y":1},"y":{"x":1}}}')).toBeNull();
    expect(findDuplicateKey('{"a":1,"b":{"k":[{"z":1,"z":2}]}}')).toEqual({ key: 'z', within: 'b' });
  });

  it('file path: open errors are CheckpointErrors naming the file', async () => {
    const missing = nodePath.join(dir, 'missing.safetensors');
    await expect(openSafetensors(missing)).rejects.toThrow(/missing\.safetensors: cannot open: ENOENT/);
    await expect(openSafetensors(dir)).rejects.toThrow(CheckpointError);
    const p = nodePath.join(dir, 'short.safetensors');
    await fsp.writeFile(p, new Uint8Array([1, 2, 3]));
    await expect(openSafetensors(p)).rejects.toThrow(/short\.safetensors: file is too short for a safetensors header length \(3 bytes/);
  });

  it('readRange reports a file that shrank after open', async () => {
    const p = nodePath.join(dir, 'shrink.safetensors');
    await writeSafetensors(p, [{ name: 'a', dtype: 'U8', shape: [1000], data: new Uint8Array(1000) }]);
    const f = await openSafetensors(p);
    try {
      await fsp.truncate(p, 200);
      await expect(f.readTensor('a')).rejects.toThrow(/tensor "a": unexpected end of file/);
    } finally {
      await f.close();
    }
  });
});

/**
 * Fuzzing the safetensors header parser: ≥ 2,000 mutated / truncated / garbage files, in memory through
 * parseSafetensorsHeader, and a subset of 200 through real files via openSafetensors. Each input is either
 * rejected with a CheckpointError whose message names the file and the problem, or accepted with a result that
 * satisfies every invariant (and that the file path reproduces exactly). Never another exception type.
 */
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DTYPE_SIZES, SAFETENSORS_DTYPES, type Dtype } from '../../src/io/dtypes.js';
import { CheckpointError } from '../../src/io/errors.js';
import { openSafetensors, parseSafetensorsHeader, type SafetensorsHeader } from '../../src/io/safetensors.js';
import { encodeSafetensorsHeader } from '../../src/io/safetensorsWriter.js';
import { randInt, randomBytes, rng, tmpDir } from './helpers.js';

const FILE = 'fuzz.safetensors';
/** Words a rejection message must contain at least one of (it must say what is wrong). */
const NAMES_A_PROBLEM =
  /header length|too short|UTF-8|not valid JSON|must be a JSON object|duplicate key|__metadata__|empty name|entry must be an object|unknown key|missing (dtype|shape|data_offsets)|dtype|shape|data_offsets/;

interface Case {
  kind: string;
  bytes: Uint8Array;
  /** A more specific pattern the rejection must match, when the mutation determines the first failing check. */
  expect?: RegExp;
}

function baseFile(r: () => number): { bytes: Uint8Array; header: Record<string, unknown> } {
  const n = randInt(r, 1, 6);
  const entries: { name: string; dtype: Dtype; shape: number[] }[] = [];
  for (let i = 0; i < n; i++) {
    const dtype = SAFETENSORS_DTYPES[randInt(r, 0, SAFETENSORS_DTYPES.length - 1)]!;
    const rank = randInt(r, 0, 3);
    entries.push({ name: `layer.${i}.w`, dtype, shape: Array.from({ length: rank }, () => randInt(r, 0, 5)) });
  }
  const md = r() < 0.5 ? { format: 'pt', k: String(randInt(r, 0, 99)) } : null;
  const enc = encodeSafetensorsHeader(entries, md);
  const bytes = new Uint8Array(enc.bytes.length + enc.dataSize);
  bytes.set(enc.bytes);
  bytes.set(randomBytes(r, enc.dataSize), enc.bytes.length);
  const n0 = Number(new DataView(enc.bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(enc.bytes.subarray(8, 8 + n0))) as Record<string, unknown>;
  return { bytes, header };
}

function withHeader(json: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function dataOf(bytes: Uint8Array): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return bytes.subarray(8 + n);
}

const WEIRD: unknown[] = [-1, 1.5, 2 ** 53, '3', null, true, [], {}, 1e300, -0.5];

function mutate(r: () => number, base: { bytes: Uint8Array; header: Record<string, unknown> }): Case {
  const b = base.bytes;
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const tensorNames = Object.keys(base.header).filter((k) => k !== '__metadata__');
  const pick = <T>(xs: readonly T[]): T => xs[randInt(r, 0, xs.length - 1)]!;
  const clone = (): Record<string, Record<string, unknown>> => JSON.parse(JSON.stringify(base.header)) as Record<string, Record<string, unknown>>;
  const rebuilt = (h: unknown): Uint8Array => withHeader(JSON.stringify(h), dataOf(b));
  const kind = randInt(r, 0, 17);
  switch (kind) {
    case 0: {
      const c = b.slice();
      const choices = [0n, 1n, 2n, BigInt(n - 1), BigInt(n + 1), BigInt(n + 8), BigInt(randInt(r, 0, 2 ** 32 - 1)), 2n ** 53n, 2n ** 64n - 1n, 100_000_001n, BigInt(b.length - 8), BigInt(b.length - 7)];
      new DataView(c.buffer).setBigUint64(0, pick(choices), true);
      return { kind: 'header-length', bytes: c };
    }
    case 1: {
      const c = b.slice();
      const i = randInt(r, 8, 8 + n - 1);
      c[i] = c[i]! ^ (1 << randInt(r, 0, 7));
      return { kind: 'bit-flip', bytes: c };
    }
    case 2: {
      const c = b.slice();
      const k = randInt(r, 1, 4);
      for (let j = 0; j < k; j++) c[randInt(r, 8, 8 + n - 1)] = pick([...'{}[]",:0123456789-.e '].map((ch) => ch.charCodeAt(0)).concat([0x80, 0xc3, 0xff, 0x00]));
      return { kind: 'byte-replace', bytes: c };
    }
    case 3:
      return { kind: 'truncate', bytes: b.slice(0, randInt(r, 0, b.length - 1)) };
    case 4:
      return { kind: 'garbage', bytes: randomBytes(r, randInt(r, 0, 300)) };
    case 5: {
      // insert or delete one byte in the header without fixing the length
      const i = randInt(r, 8, 8 + n - 1);
      const c = r() < 0.5 ? new Uint8Array([...b.subarray(0, i), randInt(r, 0, 255), ...b.subarray(i)]) : new Uint8Array([...b.subarray(0, i), ...b.subarray(i + 1)]);
      return { kind: 'insert-delete', bytes: c };
    }
    case 6: {
      const h = clone();
      const t = pick(tensorNames);
      h[t]!['dtype'] = pick<unknown>(['F8_E4M3', 'f32', '', 123, null, 'BF16', 'U8', 'F64', ['F32']]);
      const dt = h[t]!['dtype'];
      // a different valid dtype usually breaks the byte count instead
      return { kind: 'dtype', bytes: rebuilt(h), expect: typeof dt === 'string' && (SAFETENSORS_DTYPES as readonly string[]).includes(dt) ? /dtype|data_offsets/ : /dtype/ };
    }
    case 7: {
      const h = clone();
      const t = pick(tensorNames);
      const shape = h[t]!['shape'] as unknown[];
      const m = randInt(r, 0, 3);
      if (m === 0 && shape.length > 0) shape[randInt(r, 0, shape.length - 1)] = pick(WEIRD);
      else if (m === 1) shape.push(randInt(r, 0, 3));
      else if (m === 2) shape.pop();
      else h[t]!['shape'] = pick<unknown>(['[2]', 3, null, { 0: 1 }]);
      return { kind: 'shape', bytes: rebuilt(h), expect: /shape|data_offsets/ };
    }
    case 8: {
      const h = clone();
      const t = pick(tensorNames);
      const off = h[t]!['data_offsets'] as number[];
      const m = randInt(r, 0, 5);
      if (m === 0) off[0] = off[0]! + randInt(r, -3, 3);
      else if (m === 1) off[1] = off[1]! + randInt(r, -3, 3);
      else if (m === 2) h[t]!['data_offsets'] = [off[1], off[0]];
      else if (m === 3) h[t]!['data_offsets'] = [off[0]! + 2 ** 40, off[1]! + 2 ** 40];
      else if (m === 4) h[t]!['data_offsets'] = pick<unknown>([[0], [0, 1, 2], null, '0,8', [0.5, 8], [-1, 7]]);
      else {
        const d = randInt(r, 1, 4);
        h[t]!['data_offsets'] = [off[0]! + d, off[1]! + d];
      }
      return { kind: 'data_offsets', bytes: rebuilt(h), expect: /data_offsets/ };
    }
    case 9: {
      const h = clone();
      h[pick(tensorNames)]![pick(['extra', 'offsets', 'Dtype', 'metadata'])] = 1;
      return { kind: 'unknown-key', bytes: rebuilt(h), expect: /unknown key/ };
    }
    case 10: {
      const h = clone();
      const key = pick(['dtype', 'shape', 'data_offsets']);
      delete h[pick(tensorNames)]![key];
      return { kind: 'missing-key', bytes: rebuilt(h), expect: new RegExp(`missing ${key}`) };
    }
    case 11: {
      const h = clone();
      (h as Record<string, unknown>)['__metadata__'] = pick<unknown>([{ a: 1 }, ['x'], null, 'str', { a: { b: 'c' } }, { a: null }]);
      return { kind: 'metadata', bytes: rebuilt(h), expect: /__metadata__/ };
    }
    case 12: {
      const h = clone();
      h[pick(tensorNames)] = pick<unknown>([[1, 2], 5, null, 'F32', true]) as Record<string, unknown>;
      return { kind: 'entry-type', bytes: rebuilt(h), expect: /entry must be an object/ };
    }
    case 13:
      return { kind: 'top-level', bytes: withHeader(pick(['[]', '55', '"x"', 'null', 'true', '[{}]']), dataOf(b)), expect: /must be a JSON object/ };
    case 14: {
      // duplicate key at the top level (text-level splice: JSON.parse would keep the last)
      const t = pick(tensorNames);
      const json = JSON.stringify(base.header);
      const dupEntry = `${JSON.stringify(t)}:${JSON.stringify(base.header[t])},`;
      return { kind: 'duplicate', bytes: withHeader(`{${dupEntry}${json.slice(1)}`, dataOf(b)), expect: /duplicate key/ };
    }
    case 15: {
      // overlap: copy one non-empty tensor's offsets, dtype and shape to another
      const h = clone();
      const nonEmpty = tensorNames.filter((t) => (h[t]!['data_offsets'] as number[])[1]! > (h[t]!['data_offsets'] as number[])[0]!);
      if (nonEmpty.length < 2) return { kind: 'overlap-noop', bytes: b.slice() };
      const a = nonEmpty[0]!;
      const c = nonEmpty[1]!;
      h[c] = { ...h[a]! };
      return { kind: 'overlap', bytes: rebuilt(h), expect: /overlap/ };
    }
    case 16: {
      // invalid UTF-8 / BOM / NUL inside a string
      const json = JSON.stringify(base.header);
      const enc = new TextEncoder().encode(json);
      const m = randInt(r, 0, 2);
      let hb: Uint8Array;
      if (m === 0) hb = new Uint8Array([0xef, 0xbb, 0xbf, ...enc]);
      else {
        const i = json.indexOf('"') + 1;
        hb = new Uint8Array([...enc.subarray(0, i), ...(m === 1 ? [0xc3, 0x28] : [0xed, 0xa0, 0x80]), ...enc.subarray(i)]);
      }
      const d = dataOf(b);
      const out = new Uint8Array(8 + hb.length + d.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
      out.set(hb, 8);
      out.set(d, 8 + hb.length);
      return { kind: 'utf8', bytes: out, expect: /UTF-8|not valid JSON/ };
    }
    default: {
      // appended bytes after the data: still valid (coverage need not be complete)
      return { kind: 'append', bytes: new Uint8Array([...b, ...randomBytes(r, randInt(r, 1, 64))]) };
    }
  }
}

/** Checks every invariant of an accepted header. */
function checkAccepted(h: SafetensorsHeader, fileSize: number): void {
  expect(h.dataOffset).toBe(8 + h.headerLength);
  expect(h.dataOffset).toBeLessThanOrEqual(fileSize);
  const ranges: [number, number][] = [];
  for (const [name, t] of h.tensors) {
    expect(t.name).toBe(name);
    expect(name.length).toBeGreaterThan(0);
    expect((SAFETENSORS_DTYPES as readonly string[]).includes(t.dtype)).toBe(true);
    for (const d of t.shape) expect(Number.isSafeInteger(d) && d >= 0).toBe(true);
    expect(t.byteLength).toBe(t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[t.dtype]);
    expect(t.byteOffset).toBeGreaterThanOrEqual(h.dataOffset);
    expect(t.byteOffset + t.byteLength).toBeLessThanOrEqual(fileSize);
    if (t.byteLength > 0) ranges.push([t.byteOffset, t.byteOffset + t.byteLength]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![1]);
  if (h.metadata) for (const v of Object.values(h.metadata)) expect(typeof v).toBe('string');
}

type Outcome = { ok: true; header: SafetensorsHeader } | { ok: false; err: unknown };

function run(bytes: Uint8Array): Outcome {
  try {
    return { ok: true, header: parseSafetensorsHeader(bytes, bytes.length, FILE) };
  } catch (err) {
    return { ok: false, err };
  }
}

function summary(h: SafetensorsHeader): unknown {
  return { n: h.headerLength, md: h.metadata, t: [...h.tensors.values()] };
}

const N_MEMORY = 2400;
const N_FILES = 200;

describe('safetensors fuzz', () => {
  let dir: string;
  const cases: Case[] = [];
  beforeAll(async () => {
    dir = await tmpDir('qvla-fuzz-');
    const r = rng(20240611);
    const bases = Array.from({ length: 12 }, () => baseFile(r));
    for (let i = 0; i < N_MEMORY; i++) {
      let c = mutate(r, bases[i % bases.length]!);
      // sometimes stack a second structural mutation on top of a byte-level one
      if (r() < 0.1) c = { kind: `${c.kind}+bit-flip`, bytes: c.bytes.length > 8 ? (() => { const x = c.bytes.slice(); const k = randInt(r, 0, x.length - 1); x[k] = x[k]! ^ 0x10; return x; })() : c.bytes };
      cases.push(c);
    }
  });
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it(`${N_MEMORY} mutated headers in memory: CheckpointError naming the problem, or a consistent accept`, () => {
    const stats = new Map<string, { rejected: number; accepted: number }>();
    const t0 = performance.now();
    for (const c of cases) {
      const s = stats.get(c.kind) ?? { rejected: 0, accepted: 0 };
      stats.set(c.kind, s);
      const o = run(c.bytes);
      if (o.ok) {
        s.accepted++;
        checkAccepted(o.header, c.bytes.length);
        // deterministic
        const again = run(c.bytes);
        expect(again.ok && summary(again.header)).toEqual(summary(o.header));
      } else {
        s.rejected++;
        if (!(o.err instanceof CheckpointError)) throw new Error(`[${c.kind}] non-CheckpointError: ${String(o.err)}`);
        const msg = o.err.message;
        expect(msg.startsWith(`${FILE}: `), msg).toBe(true);
        expect(msg, `[${c.kind}]`).toMatch(NAMES_A_PROBLEM);
        if (c.expect && !c.kind.includes('+')) expect(msg, `[${c.kind}]`).toMatch(c.expect);
      }
    }
    const ms = performance.now() - t0;
    const rows = [...stats].map(([k, v]) => `${k}: ${v.rejected} rejected / ${v.accepted} accepted`);
    console.log(`fuzz (memory): ${cases.length} cases in ${ms.toFixed(0)} ms\n  ${rows.join('\n  ')}`);
    const rejected = [...stats.values()].reduce((a, v) => a + v.rejected, 0);
    expect(cases.length).toBeGreaterThanOrEqual(2000);
    expect(rejected).toBeGreaterThan(cases.length * 0.7);
    // appended trailing bytes stay valid
    expect(stats.get('append')?.rejected ?? 0).toBe(0);
  });

  it(`${N_FILES} of them through real files give the same outcome as the in-memory parser`, async () => {
    let accepted = 0;
    for (let i = 0; i < N_FILES; i++) {
      const c = cases[(i * 7) % cases.length]!;
      const p = nodePath.join(dir, `${i}.safetensors`);
      await fsp.writeFile(p, c.bytes);
      let fileOutcome: Outcome;
      try {
        const f = await openSafetensors(p);
        fileOutcome = { ok: true, header: { headerLength: f.headerLength, dataOffset: f.dataOffset, dataSize: f.fileSize - f.dataOffset, tensors: f.tensors, metadata: f.metadata } };
        // and the data of every tensor is readable
        for (const name of f.tensors.keys()) await f.readTensor(name);
        await f.close();
      } catch (err) {
        fileOutcome = { ok: false, err };
      }
      const mem = run(c.bytes);
      expect(fileOutcome.ok, `[${c.kind}] ${fileOutcome.ok ? '' : String((fileOutcome as { err: unknown }).err)}`).toBe(mem.ok);
      if (fileOutcome.ok && mem.ok) {
        accepted++;
        expect(summary(fileOutcome.header)).toEqual(summary(mem.header));
      } else if (!fileOutcome.ok && !mem.ok) {
        expect(fileOutcome.err).toBeInstanceOf(CheckpointError);
        expect((fileOutcome.err as Error).message.startsWith(`${p}: `)).toBe(true);
        expect((fileOutcome.err as Error).message.slice(p.length)).toBe((mem.err as Error).message.slice(FILE.length));
      }
      await fsp.rm(p);
    }
    console.log(`fuzz (files): ${N_FILES} files, ${accepted} accepted`);
  });
});

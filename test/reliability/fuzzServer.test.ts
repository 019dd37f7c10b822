// Fuzzing the policy server's input path with random / mutated msgpack frames:
// - in memory (thousands of frames): unpackb (msgpack → observation) then observationToRequest (validation),
//   the exact functions the server runs on every frame. Each frame is either rejected with the server's own
//   error types (WireError from decoding, RequestError naming the field from validation) or turned into an
//   act() request that the policy's own checks accept (images valid, state finite and of the right length).
//   Frames: structural mutations of valid ALOHA / LIBERO / text-only observations (ndarray headers included),
//   byte-level corruption of their encodings (bit flips, truncation, insertion, splices), and raw garbage
//   including huge declared lengths and deep nesting.
// - live: ~500 mutated frames over ONE WebSocket connection to a started server (every one answered with an
//   error map or actions, the connection never dropped), undecodable frames on their own connections (closed
//   with 1007 and a reason), then /healthz and a valid request still work and give the direct act() result.
import * as http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/policy/policy.js';
import { normalizeState, parseEmbodiments } from '../../src/policy/embodiments.js';
import { validateImage } from '../../src/preprocess/image.js';
import { packb, unpackb, WireError } from '../../src/server/msgpack.js';
import { NdArray } from '../../src/server/ndarray.js';
import { observationToRequest, RequestError, type DecodeContext, type DecodedRequest } from '../../src/server/observation.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { OpenpiClient } from '../server/openpiClient.js';
import { keyNames, mutate, pick, randInt, rng, type Rand } from './mutate.js';

const registry = parseEmbodiments(JSON.parse(readFileSync(path.join(TINY_DIR, 'embodiments.json'), 'utf8')), { kMax: 16, sMax: 16, hMax: 16 });
const ctx: DecodeContext = { registry, mapping: null, defaultEmbodiment: 'widowx' };

/** An ndarray as a plain wire map (str keys; the server accepts str and bin keys). */
function nd(dtype: string, shape: number[], data: Uint8Array): Record<string, unknown> {
  return { __ndarray__: true, data, dtype, shape };
}
const u8img = (r: Rand, s: number[]) => nd('|u1', s, Uint8Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => randInt(r, 0, 255)));
const f32 = (xs: number[]) => nd('<f4', [xs.length], new Uint8Array(Float32Array.from(xs).buffer));
const f64 = (xs: number[]) => nd('<f8', [xs.length], new Uint8Array(Float64Array.from(xs).buffer));

function bases(r: Rand): Record<string, unknown>[] {
  return [
    { // ALOHA style (CHW images keyed by camera)
      images: { cam_high: u8img(r, [3, 12, 16]), cam_left_wrist: u8img(r, [3, 12, 16]), cam_right_wrist: u8img(r, [12, 16, 3]) },
      state: f32(Array.from({ length: 14 }, (_, k) => k / 20)), prompt: 'fold the towel', embodiment: 'aloha', seed: 3, steps: 1, request_id: 7,
    },
    { // LIBERO style (flat keys, HWC)
      'observation/image': u8img(r, [12, 16, 3]), 'observation/state': f64([0.1, 0, 0.2, 0, 0, 0, 0, 0.5]), prompt: 'pick up the cup',
      embodiment: 'widowx', solver: 'heun', grid: 'cosine', steps: 1, request_id: 'r-1',
    },
    { prompt: 'go to the door', embodiment: 'nav', steps: 1, seed: 0 }, // text-only
    { 'observation/image': u8img(r, [3, 12, 16]), prompt: 'go', embodiment: 'nav', steps: 1 },
  ];
}

/** ndarray-specific mutations (headers that decoders get wrong) on top of the generic ones. */
function mutateObservation(r: Rand, base: Record<string, unknown>, pool: string[]): { value: unknown; what: string } {
  if (r() < 0.25) {
    const arrays: [string[], Record<string, unknown>][] = [];
    const walk = (o: unknown, p: string[]) => {
      if (o && typeof o === 'object' && !ArrayBuffer.isView(o) && !Array.isArray(o)) {
        const m = o as Record<string, unknown>;
        if ('__ndarray__' in m) arrays.push([p, m]);
        else for (const k of Object.keys(m)) walk(m[k], [...p, k]);
      }
    };
    walk(base, []);
    if (arrays.length) {
      const [p, a] = pick(r, arrays);
      const c = { ...a };
      const ops: (() => string)[] = [
        () => { c['dtype'] = pick(r, ['<f4', '>f4', '<f8', '<f2', '|u1', '<u2', '<i8', '|b1', '|O', '|V8', '<c8', '<U4', 'float32', '', 'f', '<f16', '<u0', '=u1', '>u1']); return `dtype ${String(c['dtype'])}`; },
        () => { c['shape'] = pick(r, [[], [0], [-1], [1e9, 1e9, 3], [3, 0, 16], [2 ** 53], [1.5], ['3'], [3, 12], [12, 16, 3, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1], null, 'x']); return `shape ${JSON.stringify(c['shape'])}`; },
        () => { const d = c['data'] as Uint8Array; c['data'] = d.subarray(0, randInt(r, 0, d.length)); return 'data truncated'; },
        () => { c['data'] = pick(r, [new Uint8Array(0), 'bytes', 1, null, [1, 2], new Uint8Array(10_000)]); return 'data replaced'; },
        () => { c['__ndarray__'] = pick(r, [false, 0, 'yes', null]); return '__ndarray__ flag'; },
        () => { delete c[pick(r, ['data', 'dtype', 'shape'])]; return 'ndarray key deleted'; },
        () => { c['extra'] = 1; return 'ndarray extra key'; },
      ];
      const what = pick(r, ops)();
      const out = structuredClone({ ...base });
      let o: Record<string, unknown> = out;
      for (const k of p.slice(0, -1)) o = o[k] as Record<string, unknown>;
      if (p.length === 0) return { value: c, what };
      o[p[p.length - 1]!] = c;
      return { value: out, what: `${p.join('.')}: ${what}` };
    }
  }
  return mutate(r, base, pool);
}

function byteMutation(r: Rand, b: Uint8Array): { bytes: Uint8Array; what: string } {
  const c = b.slice();
  switch (randInt(r, 0, 6)) {
    case 0: {
      const n = randInt(r, 1, 8);
      for (let k = 0; k < n; k++) { const i = randInt(r, 0, c.length - 1); c[i]! ^= 1 << randInt(r, 0, 7); }
      return { bytes: c, what: `${n} bit flips` };
    }
    case 1:
      return { bytes: c.subarray(0, randInt(r, 0, c.length - 1)), what: 'truncated' };
    case 2: {
      const i = randInt(r, 0, c.length);
      const ins = Uint8Array.from({ length: randInt(r, 1, 16) }, () => randInt(r, 0, 255));
      const out = new Uint8Array(c.length + ins.length);
      out.set(c.subarray(0, i)); out.set(ins, i); out.set(c.subarray(i), i + ins.length);
      return { bytes: out, what: 'bytes inserted' };
    }
    case 3: {
      const i = randInt(r, 0, c.length - 1);
      c[i] = pick(r, [0xc1, 0xc4, 0xc5, 0xc6, 0xc7, 0xd4, 0xd8, 0xdc, 0xdd, 0xde, 0xdf, 0xcf, 0xd3, 0xcb, 0xff, 0x00, 0x80, 0x90]);
      return { bytes: c, what: 'type byte replaced' };
    }
    case 4: {
      const j = randInt(r, 0, c.length - 1);
      return { bytes: new Uint8Array([...c.subarray(0, j), ...c.subarray(randInt(r, 0, j))]), what: 'spliced' };
    }
    case 5:
      return { bytes: Uint8Array.from({ length: randInt(r, 0, 64) }, () => randInt(r, 0, 255)), what: 'random bytes' };
    default: {
      const specials: Uint8Array[] = [
        new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 of 4G elements, no data
        new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61]), // map32 of 4G entries
        new Uint8Array([0xc6, 0x7f, 0xff, 0xff, 0xff]), // bin32 of 2 GB, no data
        new Uint8Array([0xdb, 0xff, 0xff, 0xff, 0xff]), // str32 of 4 GB
        new Uint8Array(5000).fill(0x91), // 5000 nested arrays
        new Uint8Array([0x81, ...new Array(3000).fill(0x81)]), // nested maps without keys' values
        new Uint8Array([0xd4, 0xff, 0x00]), // timestamp ext (unsupported)
        new Uint8Array([0xc7, 0x01, 0x05, 0x00]), // ext8 type 5
        new Uint8Array([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02]), // duplicate key
        new Uint8Array([0x81, 0xa9, ...Buffer.from('__proto__'), 0x80]),
        new Uint8Array([0x81, 0xc0, 0x01]), // nil key
        new Uint8Array([0x81, 0x90, 0x01]), // array key
        new Uint8Array([0x81, 0xc4, 0x02, 0xff, 0xfe, 0x01]), // bin key that is not UTF-8
        new Uint8Array(0),
      ];
      return { bytes: pick(r, specials), what: 'special' };
    }
  }
}

type Verdict = { kind: 'wire'; field?: string } | { kind: 'not-a-map' } | { kind: 'request'; field: string | null } | { kind: 'ok'; d: DecodedRequest };

/** What the server does with one frame, minus the GPU: decode, the map check, validation. */
function serverPath(bytes: Uint8Array): Verdict {
  let obs: unknown;
  try {
    obs = unpackb(bytes);
  } catch (e) {
    if (!(e instanceof WireError)) throw new Error(`unpackb threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    expect(e.message.length).toBeGreaterThan(0);
    return { kind: 'wire', field: e.field };
  }
  if (obs === null || typeof obs !== 'object' || Array.isArray(obs) || obs instanceof Uint8Array || obs instanceof NdArray) return { kind: 'not-a-map' };
  if ((obs as Record<string, unknown>)['__ctrl__'] !== undefined) return { kind: 'not-a-map' };
  try {
    return { kind: 'ok', d: observationToRequest(obs, ctx) };
  } catch (e) {
    if (!(e instanceof RequestError)) throw new Error(`observationToRequest threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    expect(e.message.length).toBeGreaterThan(0);
    if (e.field !== null) expect(typeof e.field).toBe('string');
    return { kind: 'request', field: e.field };
  }
}

/** An accepted request passes the policy's own input checks (no GPU needed for these). */
function checkAccepted(d: DecodedRequest): void {
  const emb = registry.get(d.act.embodiment);
  for (const [cam, im] of Object.entries(d.act.images)) {
    expect(emb.cameras).toContain(cam);
    validateImage(im);
  }
  expect(typeof d.act.instruction).toBe('string');
  if (d.act.state !== undefined && d.act.state !== null) normalizeState(emb, d.act.state);
  else expect(emb.action.relative.some((x) => x)).toBe(false);
}

function frames(seed: number, n: number): { bytes: Uint8Array; what: string }[] {
  const r = rng(seed);
  const bs = bases(r);
  const pools = bs.map((b) => [...keyNames(b), 'images', 'state', 'prompt', 'observation/image', 'observation/wrist_image', 'observation/state']);
  const out: { bytes: Uint8Array; what: string }[] = [];
  while (out.length < n) {
    const k = randInt(r, 0, bs.length - 1);
    const u = r();
    if (u < 0.6) {
      const m = mutateObservation(r, bs[k]!, pools[k]!);
      let bytes: Uint8Array;
      try {
        bytes = packb(m.value);
      } catch {
        continue; // not encodable (a test-side limitation, not a server input)
      }
      out.push({ bytes, what: m.what });
    } else if (u < 0.9) {
      out.push(byteMutation(r, packb(bs[k])));
    } else {
      out.push({ bytes: packb(bs[k]), what: 'valid' });
    }
  }
  return out;
}

describe('server input fuzzing (in memory)', () => {
  it('6,000 frames → WireError / RequestError naming the field, or a request the policy accepts', () => {
    const counts: Record<string, number> = { wire: 0, 'not-a-map': 0, request: 0, ok: 0 };
    const fields = new Map<string, number>();
    frames(31, 6000).forEach((f, i) => {
      let v: Verdict;
      try {
        v = serverPath(f.bytes);
        if (v.kind === 'ok') checkAccepted(v.d);
      } catch (e) {
        throw new Error(`frame ${i} (${f.what}): ${e instanceof Error ? e.message : String(e)}`);
      }
      counts[v.kind]++;
      if (v.kind === 'request' && v.field) fields.set(v.field, (fields.get(v.field) ?? 0) + 1);
    });
    console.log(`server fuzz: ${JSON.stringify(counts)}; request errors by field: ${[...fields].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, c]) => `${k} ${c}`).join(', ')}`);
    expect(counts['request']).toBeGreaterThan(1000);
    expect(counts['wire']).toBeGreaterThan(500);
  });
});

// ---------------------------------------------------------------------------------------------------------

let policy: Policy;
let server: RunningServer;
const log: string[] = [];

describe('server input fuzzing (live, one connection)', () => {
  beforeAll(async () => {
    policy = await Policy.load(TINY_DIR);
    server = await startServer({ policy, port: 0, defaultEmbodiment: ctx.defaultEmbodiment, log: (l) => log.push(l) });
  });
  afterAll(async () => {
    await server?.close();
    policy?.destroy();
  });

  it('~500 decodable random frames on one connection: one reply each, never dropped; garbage frames close only their own connection', async () => {
    const all = frames(41, 4000);
    // decodable maps go over one connection; at most 8 of them valid (each runs a real act())
    let valid = 0;
    const decodable = all.filter((f) => {
      const v = serverPath(f.bytes);
      if (v.kind === 'ok') return valid++ < 8;
      return v.kind === 'request' || (v.kind === 'wire' && !!v.field); // (the server answers a WireError with a field, closes on one without)
    }).slice(0, 500);
    const garbage = all.filter((f) => { const v = serverPath(f.bytes); return v.kind === 'wire' && !v.field; }).slice(0, 30);
    expect(decodable.length).toBe(500);

    const c = await OpenpiClient.connect(server.url);
    let errors = 0, actions = 0;
    for (const [i, f] of decodable.entries()) {
      await c.sendRaw(f.bytes);
      const r = await c.reply();
      if ('kind' in r && typeof r.kind === 'string' && ['text', 'close', 'binary'].includes(r.kind as string)) {
        throw new Error(`frame ${i} (${f.what}): the server answered with a ${String(r.kind)} frame ${JSON.stringify(r).slice(0, 200)}`);
      }
      const m = r as Record<string, unknown>;
      if (typeof m['error'] === 'string') errors++;
      else if (m['actions'] instanceof NdArray) actions++;
      else throw new Error(`frame ${i} (${f.what}): neither an error nor actions: ${JSON.stringify(Object.keys(m))}`);
    }
    expect(c.closed).toBeNull();
    expect(errors + actions).toBe(500);
    expect(actions).toBe(Math.min(valid, 8));
    await c.close();

    for (const f of garbage) {
      const g = await OpenpiClient.connect(server.url);
      await g.sendRaw(f.bytes);
      const first = await g.next(20_000);
      const fr = first.kind === 'text' ? await g.next(20_000) : first;
      expect(fr.kind, f.what).toBe('close');
      if (fr.kind === 'close') expect(fr.code, f.what).toBe(1007);
    }
    expect(log.filter((l) => /internal error/.test(l))).toEqual([]);
  });

  it('afterwards /healthz answers 200 and a valid request gives the direct act() result', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      http.get(`http://127.0.0.1:${server.port}/healthz`, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject);
    });
    expect(status).toBe(200);
    const c = await OpenpiClient.connect(server.url);
    const r = await c.infer({ prompt: 'go to the door', embodiment: 'nav', steps: 2, seed: 5 });
    await c.close();
    const direct = await policy.act({ instruction: 'go to the door', embodiment: 'nav', steps: 2, seed: 5 });
    const a = (r['actions'] as NdArray).toFloat64();
    expect(a.length).toBe(direct.actions.actions.length);
    for (let k = 0; k < a.length; k++) expect(a[k]).toBe(direct.actions.actions[k]);
  });
});

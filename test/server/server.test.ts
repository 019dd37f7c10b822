// The policy server end to end on loopback: an openpi-style client, the tiny checkpoint, one Policy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import { Policy, type ActResult } from '../../src/policy/policy.js';
import { decodeImageFile, type RawImage } from '../../src/preprocess/image.js';
import { startServer, type InferEvent, type RunningServer, type ServerStats } from '../../src/server/server.js';
import { parseMapping } from '../../src/server/observation.js';
import { NdArray } from '../../src/server/ndarray.js';
import { OpenpiClient, type Frame } from './openpiClient.js';
import { chw, hwc, toRgb } from './frames.js';

const TOKEN = 's3cret-token';
const AUTH = { Authorization: `Bearer ${TOKEN}` };
const MAX_BYTES = 1024 * 1024;

let policy: Policy;
let server: RunningServer;
const events: { type: 'start' | 'end'; e: InferEvent }[] = [];
const rgb: Record<string, RawImage> = {};
/** Set by a test: the next request's device is destroyed this many ms after its act() starts. */
let destroyOnNextInfer: number | null = null;

function actionsOf(reply: Record<string, unknown>): NdArray {
  const a = reply['actions'];
  expect(a).toBeInstanceOf(NdArray);
  return a as NdArray;
}

function expectSameActions(a: NdArray, r: ActResult): void {
  expect(a.dtype.str).toBe('<f4');
  expect(a.shape).toEqual([r.actions.rows, r.actions.dims]);
  const got = a.toFloat64();
  let maxDiff = 0;
  for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - r.actions.actions[i]!));
  expect(maxDiff).toBeLessThanOrEqual(1e-5);
}

function isErrorReply(r: Record<string, unknown> | Frame): r is Record<string, unknown> {
  return !('kind' in r && typeof (r as Frame).kind === 'string' && ['text', 'close', 'binary'].includes((r as Frame).kind));
}

const ALOHA_STATE = new Float32Array([0, -0.6, 0.5, 0, 0.3, 0, 0.5, 0, -0.6, 0.5, 0, 0.3, 0, 0.5]);
const WIDOWX_STATE = new Float64Array([0.3, 0.0, 0.1, 0.0, 0.05, 0.0, 0.0, 0.5]);

beforeAll(async () => {
  policy = await Policy.load('weights/tiny');
  for (const [k, f] of [
    ['cam_high', 'aloha_cam_high'], ['cam_left_wrist', 'aloha_cam_left_wrist'], ['cam_right_wrist', 'aloha_cam_right_wrist'],
    ['image_0', 'widowx_image_0'], ['front', 'nav_front'],
  ] as const) rgb[k] = toRgb(await decodeImageFile(`weights/tiny/samples/${f}.png`));
  const mapping = parseMapping({
    embodiments: { widowx: { images: { 'observation/image': 'image_0', 'observation/wrist_image': null } } },
  }, policy.embodiments);
  server = await startServer({
    policy, port: 0, token: TOKEN, maxMessageBytes: MAX_BYTES, mapping,
    hooks: {
      onInferStart: (e) => {
        events.push({ type: 'start', e });
        if (destroyOnNextInfer !== null) {
          const gpu = policy.gpu;
          setTimeout(() => gpu.device.destroy(), destroyOnNextInfer);
          destroyOnNextInfer = null;
        }
      },
      onInferEnd: (e) => events.push({ type: 'end', e }),
    },
  });
  expect(await server.warm).toBe(true);
});

afterAll(async () => {
  await server?.close();
  policy?.destroy();
});

describe('policy server (openpi protocol)', () => {
  it('answers GET /healthz with 200 OK, without a token', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http.get(`http://127.0.0.1:${server.port}/healthz`, (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      }).on('error', reject);
    });
    expect(status).toBe(200);
    expect(body.trim()).toBe('OK');
  });

  it('sends the metadata on connect', async () => {
    const c = await OpenpiClient.connect(server.url, AUTH);
    const m = c.metadata;
    expect(m['server']).toBe('qvla');
    expect(typeof m['qvla_version']).toBe('string');
    expect(m['default_embodiment']).toBe('aloha');
    expect(m['action_dim']).toBe(14);
    expect(m['action_horizon']).toBe(16);
    const embs = m['embodiments'] as Record<string, Record<string, unknown>>;
    expect(Object.keys(embs)).toEqual(['aloha', 'widowx', 'nav']);
    expect(embs['widowx']).toMatchObject({ action_dim: 7, action_horizon: 4, cameras: ['image_0'], state_dim: 8, needs_state: true });
    expect(m['auth']).toBe(true);
    await c.close();
  });

  it('ALOHA-style observation for aloha = direct act() with the same seed', async () => {
    const c = await OpenpiClient.connect(server.url, AUTH);
    const reply = await c.infer({
      images: { cam_high: chw(rgb['cam_high']!), cam_left_wrist: chw(rgb['cam_left_wrist']!), cam_right_wrist: chw(rgb['cam_right_wrist']!) },
      state: NdArray.fromFloat32(ALOHA_STATE, [14]),
      prompt: 'fold the towel',
      seed: 7,
      steps: 2,
      request_id: 'r-aloha',
    });
    expect(reply['error']).toBeUndefined();
    expect(reply['request_id']).toBe('r-aloha');
    const st = reply['server_timing'] as Record<string, unknown>;
    for (const k of ['infer_ms', 'preprocess_ms', 'vision_ms', 'prefill_ms', 'context_ms', 'denoise_ms', 'readback_ms']) expect(typeof st[k]).toBe('number');
    expect((st['step_ms'] as number[]).length).toBe(2);
    expect(typeof (reply['policy_timing'] as Record<string, unknown>)['infer_ms']).toBe('number');
    expect(reply['qvla']).toMatchObject({ embodiment: 'aloha', steps: 2, seed: 7, format: 'aloha' });
    const direct = await policy.act({
      images: { cam_high: rgb['cam_high']!, cam_left_wrist: rgb['cam_left_wrist']!, cam_right_wrist: rgb['cam_right_wrist']! },
      instruction: 'fold the towel', embodiment: 'aloha', state: ALOHA_STATE, seed: 7, steps: 2,
    });
    expectSameActions(actionsOf(reply), direct);
    await c.close();
  });

  it('LIBERO-style observation mapped to widowx (Api-Key auth, as openpi_client sends) = direct act()', async () => {
    const c = await OpenpiClient.connect(server.url, { Authorization: `Api-Key ${TOKEN}` });
    const reply = await c.infer({
      'observation/image': hwc(rgb['image_0']!),
      'observation/wrist_image': hwc(rgb['front']!), // mapped to null: accepted and ignored
      'observation/state': NdArray.fromFloat64(WIDOWX_STATE, [8]),
      prompt: 'put the spoon in the bowl',
      embodiment: 'widowx',
      seed: 3,
      steps: 2,
    });
    expect(reply['error']).toBeUndefined();
    expect(reply['request_id']).toBeUndefined();
    expect(reply['qvla']).toMatchObject({ embodiment: 'widowx', format: 'mapped', cameras: ['image_0'] });
    const direct = await policy.act({
      images: { image_0: rgb['image_0']! }, instruction: 'put the spoon in the bowl', embodiment: 'widowx',
      state: Array.from(WIDOWX_STATE), seed: 3, steps: 2,
    });
    expectSameActions(actionsOf(reply), direct);
    await c.close();
  });

  it('answers bad requests with an error map naming the field, and keeps the connection', async () => {
    const c = await OpenpiClient.connect(server.url, AUTH);
    const good = () => ({ images: { cam_high: chw(rgb['cam_high']!) }, state: NdArray.fromFloat32(ALOHA_STATE, [14]), prompt: 'x', steps: 1 });
    const bad: [string, Record<string, unknown>, string][] = [
      ['wrong dtype', { ...good(), images: { cam_high: NdArray.fromFloat32(new Float32Array(3 * 8 * 8), [3, 8, 8]) } }, 'images.cam_high'],
      ['wrong shape', { ...good(), state: NdArray.fromFloat32(new Float32Array(13), [13]) }, 'state'],
      ['missing key', { images: good().images, state: good().state }, 'prompt'],
      ['unknown embodiment', { ...good(), embodiment: 'robot9' }, 'embodiment'],
      ['non-finite', { ...good(), state: NdArray.fromFloat32(new Float32Array(14).fill(Infinity), [14]) }, 'state'],
      ['bad ndarray bytes', { ...good(), state: new Map<unknown, unknown>([['__ndarray__', true], ['data', new Uint8Array(5)], ['dtype', '<f4'], ['shape', [14]]]) }, 'state'],
    ];
    for (const [what, obs, field] of bad) {
      await c.send({ ...obs, request_id: what });
      const r = await c.reply();
      expect(isErrorReply(r), what).toBe(true);
      const m = r as Record<string, unknown>;
      expect(m['field'], what).toBe(field);
      expect(String(m['error']), what).toContain(field);
      if (what !== 'bad ndarray bytes') expect(m['request_id'], what).toBe(what);
    }
    // still serving on the same connection
    const ok = await c.infer({ ...good(), request_id: 'after-errors' });
    expect(ok['request_id']).toBe('after-errors');
    expect(actionsOf(ok).shape).toEqual([16, 14]);
    await c.close();
  });

  it('closes on protocol garbage (text frame first, as openpi), on text frames, and on oversized messages', async () => {
    const g = await OpenpiClient.connect(server.url, AUTH);
    await g.sendRaw(new Uint8Array([0xc1, 0xff, 0x00, 0x13]));
    const f1 = await g.next();
    expect(f1.kind).toBe('text');
    const f2 = await g.next();
    expect(f2).toMatchObject({ kind: 'close', code: 1007 });

    const t = await OpenpiClient.connect(server.url, AUTH);
    await t.sendRaw('hello');
    expect((await t.next()).kind).toBe('text');
    expect(await t.next()).toMatchObject({ kind: 'close', code: 1003 });

    const n = await OpenpiClient.connect(server.url, AUTH);
    await n.sendRaw(new Uint8Array([0x93, 1, 2, 3])); // a msgpack list, not a map
    expect((await n.next()).kind).toBe('text');
    expect(await n.next()).toMatchObject({ kind: 'close', code: 1007 });

    const o = await OpenpiClient.connect(server.url, AUTH);
    await o.send({ images: { cam_high: NdArray.fromUint8(new Uint8Array(MAX_BYTES + 1000), [MAX_BYTES + 1000]) }, prompt: 'x' }).catch(() => undefined);
    const f = await o.next();
    expect(f).toMatchObject({ kind: 'close', code: 1009 });
  });

  it('refuses a missing or wrong token with 401 before the upgrade', async () => {
    await expect(OpenpiClient.connect(server.url)).rejects.toMatchObject({ statusCode: 401 });
    await expect(OpenpiClient.connect(server.url, { Authorization: 'Bearer nope' })).rejects.toMatchObject({ statusCode: 401 });
    await expect(OpenpiClient.connect(server.url, { Authorization: TOKEN })).rejects.toMatchObject({ statusCode: 401 });
  });

  it('a GPU device loss mid-request → error map (kind device_lost, retryable), connection kept; the retry recovers, same actions', async () => {
    const c = await OpenpiClient.connect(server.url, AUTH);
    const obs = (id: string, steps: number) => ({
      images: { cam_high: chw(rgb['cam_high']!) }, state: NdArray.fromFloat32(ALOHA_STATE, [14]), prompt: 'stack the cups', seed: 11, steps, request_id: id,
    });
    const before = await c.infer(obs('before', 2));
    expect(before['error']).toBeUndefined();
    const gpu0 = policy.gpu;
    destroyOnNextInfer = 200;
    // 100 steps on the 3-camera embodiment take seconds on lavapipe: the loss lands mid-request
    const lost = await c.infer(obs('lost', 100));
    expect(lost['kind']).toBe('device_lost');
    expect(lost['retryable']).toBe(true);
    expect(lost['request_id']).toBe('lost');
    expect(String(lost['error'])).toMatch(/GPU device lost/);
    expect(policy.deviceLost).toBe(true);
    const after = await c.infer(obs('after', 2));
    expect(after['error']).toBeUndefined();
    expect(policy.gpu).not.toBe(gpu0);
    expect(Array.from(actionsOf(after).toFloat64())).toEqual(Array.from(actionsOf(before).toFloat64()));
    await c.close();
  });

  it('GET /stats: JSON counters behind the token; GPU buffers flat over 24 repeated requests after warm-up', async () => {
    const get = (headers: Record<string, string>) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      http.get(`http://127.0.0.1:${server.port}/stats`, { headers }, (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      }).on('error', reject);
    });
    expect((await get({})).status).toBe(401);
    expect((await get({ Authorization: 'Bearer wrong' })).status).toBe(401);
    const c = await OpenpiClient.connect(server.url, AUTH);
    const obs = [
      (k: number) => ({ images: { front: chw(rgb['front']!) }, prompt: `go to door ${k % 3}`, embodiment: 'nav', steps: 1 + (k % 3), seed: k }),
      (k: number) => ({ images: { cam_high: chw(rgb['cam_high']!) }, state: NdArray.fromFloat32(ALOHA_STATE, [14]), prompt: 'fold', steps: 1 + (k % 3), seed: k }),
    ];
    for (let k = 0; k < 6; k++) expect((await c.infer(obs[k % 2]!(k)))['error']).toBeUndefined(); // warm-up: every shape once
    const r0 = await get(AUTH);
    expect(r0.status).toBe(200);
    const s0 = JSON.parse(r0.body) as ServerStats;
    expect(s0.served).toBe(server.served);
    expect(server.stats().gpu).toEqual(s0.gpu); // the library view is the same object as the endpoint's
    expect(s0.connections_open).toBeGreaterThanOrEqual(1);
    expect(s0.policy.device_losses).toBeGreaterThanOrEqual(1); // the device-loss test above
    expect(s0.policy.recoveries).toBe(s0.policy.device_losses);
    expect(s0.policy.device_lost).toBe(false);
    for (let k = 6; k < 30; k++) expect((await c.infer(obs[k % 2]!(k)))['error']).toBeUndefined();
    const s1 = JSON.parse((await get({ Authorization: `Api-Key ${TOKEN}` })).body) as ServerStats;
    expect(s1.served - s0.served).toBe(24);
    expect(s1.gpu.buffers_created, 'no new GPU buffers in a steady stream of requests').toBe(s0.gpu.buffers_created);
    expect(s1.gpu.pool_mb).toBe(s0.gpu.pool_mb);
    expect(s1.gpu.tensors_live).toBe(s0.gpu.tensors_live);
    expect(s1.gpu.pipelines).toBe(s0.gpu.pipelines);
    expect(s1.error_replies).toBe(s0.error_replies);
    expect(s1.queue_pending).toBe(0);
    await c.close();
  });

  it('keeps serving a healthy client after all that', async () => {
    const c = await OpenpiClient.connect(server.url, AUTH);
    const r = await c.infer({ images: { front: chw(rgb['front']!) }, prompt: 'go to the door', embodiment: 'nav', steps: 1, request_id: 7 });
    expect(r['request_id']).toBe(7);
    expect(actionsOf(r).shape).toEqual([8, 3]);
    expect((r['qvla'] as Record<string, unknown>)['action_names']).toEqual(['x', 'y', 'yaw']);
    await c.close();
  });

  it('runs requests from concurrent clients in arrival order, one GPU call (batch) at a time', async () => {
    const a = await OpenpiClient.connect(server.url, AUTH);
    const b = await OpenpiClient.connect(server.url, AUTH);
    events.length = 0;
    const obs = (id: string) => ({ images: { front: chw(rgb['front']!) }, prompt: `request ${id}`, embodiment: 'nav', steps: 1, request_id: id });
    const order = ['a1', 'b1', 'a2', 'b2'];
    for (const id of order) {
      await (id.startsWith('a') ? a : b).send(obs(id));
      await new Promise((r) => setTimeout(r, 30));
    }
    const ra = [await a.reply(), await a.reply()] as Record<string, unknown>[];
    const rb = [await b.reply(), await b.reply()] as Record<string, unknown>[];
    expect(ra.map((r) => r['request_id'])).toEqual(['a1', 'a2']);
    expect(rb.map((r) => r['request_id'])).toEqual(['b1', 'b2']);
    // Requests that arrive while the GPU is busy are batched: the events come in blocks (every row of a batch
    // starts, then every row ends) — never two GPU calls at once — and the rows follow the arrival order.
    for (let i = 0; i < events.length; ) {
      let k = 0;
      while (events[i + k]?.type === 'start') k++;
      expect(k).toBeGreaterThan(0);
      expect(events.slice(i + k, i + 2 * k).map((x) => x.type)).toEqual(Array(k).fill('end'));
      expect(events.slice(i + k, i + 2 * k).map((x) => x.e.seq)).toEqual(events.slice(i, i + k).map((x) => x.e.seq));
      i += 2 * k;
    }
    const starts = events.filter((x) => x.type === 'start').map((x) => x.e);
    expect(starts.map((e) => e.requestId)).toEqual(order);
    for (let i = 1; i < starts.length; i++) expect(starts[i]!.seq).toBeGreaterThan(starts[i - 1]!.seq);
    expect(new Set(starts.map((e) => e.connection)).size).toBe(2);
    await a.close();
    await b.close();
  });
});

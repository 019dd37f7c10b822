// Cross-robot batching, /readyz, /metrics and drain() on loopback (weights/tiny, one Policy, one server).
//
// - A request sent alone and the same request inside a concurrent burst of mixed requests (embodiments, camera
//   counts, prompt lengths, solvers, steps, seeds; one that the policy refuses) get bit-identical replies.
// - GET /metrics parses with a strict text-format parser (and with Debian's python3-prometheus-client when it is
//   installed), and its counters equal GET /stats taken right before it.
// - drain(): queued and running requests finish and are answered, a new request on an open connection gets a
//   retryable "draining" error (in order), new connections are refused, connections close with 1001.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import { spawnSync } from 'node:child_process';
import { Policy } from '../../src/policy/policy.js';
import { decodeImageFile, type RawImage } from '../../src/preprocess/image.js';
import { startServer, OUTCOMES, type InferEvent, type RunningServer, type ServerStats } from '../../src/server/server.js';
import { NdArray } from '../../src/server/ndarray.js';
import { OpenpiClient } from './openpiClient.js';
import { chw, toRgb } from './frames.js';
import { parseExposition, sampleValue } from './promParse.js';

const TOKEN = 'batch-token';
const AUTH = { Authorization: `Bearer ${TOKEN}` };

let policy: Policy;
let server: RunningServer;
const rgb: Record<string, RawImage> = {};
const events: { type: 'start' | 'end'; e: InferEvent }[] = [];
let readyzBeforeWarm: { status: number; body: string } | null = null;

function httpGet(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${server.port}${path}`, { headers }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, type: String(res.headers['content-type'] ?? '') }));
    }).on('error', reject);
  });
}

const ALOHA_STATE = new Float32Array([0, -0.6, 0.5, 0, 0.3, 0, 0.5, 0, -0.6, 0.5, 0, 0.3, 0, 0.5]);
const WIDOWX_STATE = new Float32Array([0.3, 0.0, 0.1, 0.0, 0.05, 0.0, 0.0, 0.5]);

/** The mixed burst: every row differs from the others in something a batch must keep apart. */
function burst(): Record<string, unknown>[] {
  return [
    {
      images: { cam_high: chw(rgb['cam_high']!), cam_left_wrist: chw(rgb['cam_left_wrist']!), cam_right_wrist: chw(rgb['cam_right_wrist']!) },
      state: NdArray.fromFloat32(ALOHA_STATE, [14]), prompt: 'fold the towel', seed: 1, steps: 2, request_id: 'aloha-3cam',
    },
    {
      images: { image_0: chw(rgb['image_0']!) }, state: NdArray.fromFloat32(WIDOWX_STATE, [8]), prompt: 'put the spoon in the bowl',
      embodiment: 'widowx', seed: 2, steps: 3, solver: 'heun', request_id: 'widowx-heun3',
    },
    {
      images: { front: chw(rgb['front']!) }, prompt: 'go through the door, turn left at the kitchen and stop by the red chair',
      embodiment: 'nav', seed: 3, steps: 1, solver: 'midpoint', request_id: 'nav-long-prompt',
    },
    {
      images: { image_0: chw(rgb['front']!) }, state: NdArray.fromFloat32(WIDOWX_STATE.map((v) => v + 0.05), [8]), prompt: 'wipe',
      embodiment: 'widowx', seed: 4, steps: 3, solver: 'heun', request_id: 'widowx-heun3-b',
    },
    {
      images: { cam_high: chw(rgb['cam_high']!) }, state: NdArray.fromFloat32(ALOHA_STATE, [14]), prompt: 'stack the cups', seed: 5,
      steps: 2, solver: 'rk4', grid: 'cosine', request_id: 'aloha-1cam-rk4',
    },
    {
      // passes the server's checks (≤ 4000 characters) but not the policy's: 6000 prompt tokens > maxContext 4096
      images: { front: chw(rgb['front']!) }, prompt: 'ж'.repeat(3000), embodiment: 'nav', steps: 1, request_id: 'too-long',
    },
  ];
}

function bits(reply: Record<string, unknown>): string | null {
  const a = reply['actions'];
  if (!(a instanceof NdArray)) return null;
  return Buffer.from(a.data).toString('hex');
}

beforeAll(async () => {
  policy = await Policy.load('weights/tiny');
  for (const [k, f] of [
    ['cam_high', 'aloha_cam_high'], ['cam_left_wrist', 'aloha_cam_left_wrist'], ['cam_right_wrist', 'aloha_cam_right_wrist'],
    ['image_0', 'widowx_image_0'], ['front', 'nav_front'],
  ] as const) rgb[k] = toRgb(await decodeImageFile(`weights/tiny/samples/${f}.png`));
  server = await startServer({
    policy, port: 0, token: TOKEN, maxBatch: 8, maxWaitMs: 150,
    hooks: { onInferStart: (e) => events.push({ type: 'start', e }), onInferEnd: (e) => events.push({ type: 'end', e }) },
  });
  // the warm-up (one actBatch over every embodiment) runs now: not ready yet
  readyzBeforeWarm = await httpGet('/readyz');
  expect(await server.warm).toBe(true);
});

afterAll(async () => {
  await server?.close();
  policy?.destroy();
});

describe('readiness', () => {
  it('GET /readyz: 503 "warming up" before the warm-up batch is done, 200 after; /healthz 200 all along; no token needed', async () => {
    expect(readyzBeforeWarm).toEqual(expect.objectContaining({ status: 503, body: 'warming up\n' }));
    const r = await httpGet('/readyz');
    expect(r.status).toBe(200);
    expect(r.body).toBe('ready\n');
    expect(server.ready).toBe(true);
    expect((await httpGet('/healthz')).status).toBe(200);
    expect(server.stats().ready).toBe(true);
  });
});

describe('cross-robot batching', () => {
  it('a request alone and inside a concurrent mixed burst gets bit-identical actions (and the same error for a bad one)', async () => {
    const alone = new Map<string, Record<string, unknown>>();
    const c = await OpenpiClient.connect(server.url, AUTH);
    for (const obs of burst()) {
      const r = await c.infer(obs);
      alone.set(String(obs['request_id']), r);
      if (r['error'] === undefined) expect((r['qvla'] as Record<string, unknown>)['batch_size']).toBe(1);
    }
    await c.close();
    expect(alone.get('too-long')!['field']).toBe('instruction');
    expect(String(alone.get('too-long')!['error'])).toMatch(/token/);
    for (const [id, r] of alone) if (id !== 'too-long') expect(bits(r), id).not.toBeNull();

    // the same requests at once, one connection per robot
    const reqs = burst();
    const clients = await Promise.all(reqs.map(() => OpenpiClient.connect(server.url, AUTH)));
    events.length = 0;
    await Promise.all(reqs.map((obs, i) => clients[i]!.send(obs)));
    const together = await Promise.all(clients.map((cl) => cl.reply() as Promise<Record<string, unknown>>));
    await Promise.all(clients.map((cl) => cl.close()));
    const sizes = together.filter((r) => r['error'] === undefined).map((r) => (r['qvla'] as Record<string, unknown>)['batch_size'] as number);
    expect(Math.max(...sizes), 'the burst ran batched').toBeGreaterThan(1);
    together.forEach((r, i) => {
      const id = String(reqs[i]!['request_id']);
      expect(r['request_id']).toBe(id);
      const a = alone.get(id)!;
      if (id === 'too-long') {
        expect(r['field']).toBe(a['field']);
        expect(r['error']).toBe(a['error']);
      } else {
        expect(r['error'], id).toBeUndefined();
        expect(bits(r), `${id}: bit-identical alone and batched`).toBe(bits(a));
      }
    });
    // the direct library call agrees too (act() alone = a row of actBatch)
    const direct = await policy.act({
      images: { image_0: rgb['image_0']! }, instruction: 'put the spoon in the bowl', embodiment: 'widowx', state: WIDOWX_STATE,
      seed: 2, steps: 3, solver: 'heun',
    });
    expect(Buffer.from(new Uint8Array(direct.actions.actions.buffer, direct.actions.actions.byteOffset, direct.actions.actions.byteLength)).toString('hex'))
      .toBe(bits(together[1]!));
  });

  it('batches never overlap on the GPU, run in arrival order, and one connection gets its replies in order', async () => {
    const a = await OpenpiClient.connect(server.url, AUTH);
    const b = await OpenpiClient.connect(server.url, AUTH);
    events.length = 0;
    const obs = (id: string, steps: number) => ({ images: { front: chw(rgb['front']!) }, prompt: `request ${id}`, embodiment: 'nav', steps, seed: 9, request_id: id });
    const order = ['a1', 'b1', 'a2', 'a3', 'b2', 'a4'];
    for (const id of order) {
      await (id.startsWith('a') ? a : b).send(obs(id, 1 + (order.indexOf(id) % 3)));
      await new Promise((r) => setTimeout(r, 30)); // arrival order across two sockets is only defined with a gap
    }
    const ra = [] as Record<string, unknown>[];
    for (let k = 0; k < 4; k++) ra.push((await a.reply()) as Record<string, unknown>);
    const rb = [(await b.reply()) as Record<string, unknown>, (await b.reply()) as Record<string, unknown>];
    expect(ra.map((r) => r['request_id'])).toEqual(['a1', 'a2', 'a3', 'a4']);
    expect(rb.map((r) => r['request_id'])).toEqual(['b1', 'b2']);
    for (const r of [...ra, ...rb]) expect(r['error']).toBeUndefined();
    // events come in blocks: every row of a batch starts, then every row ends, before the next batch starts
    for (let i = 0; i < events.length; ) {
      let k = 0;
      while (events[i + k]?.type === 'start') k++;
      expect(k).toBeGreaterThan(0);
      const ended = events.slice(i + k, i + 2 * k);
      expect(ended.map((e) => e.type)).toEqual(Array(k).fill('end'));
      expect(ended.map((e) => e.e.seq)).toEqual(events.slice(i, i + k).map((e) => e.e.seq));
      i += 2 * k;
    }
    const starts = events.filter((x) => x.type === 'start').map((x) => x.e);
    expect(starts.map((e) => e.requestId)).toEqual(order);
    for (let i = 1; i < starts.length; i++) expect(starts[i]!.seq).toBeGreaterThan(starts[i - 1]!.seq);
    await a.close();
    await b.close();
  });
});

describe('GET /metrics', () => {
  it('is the Prometheus text format (strict parser; python3-prometheus-client when installed), behind the token, and its counters equal /stats', async () => {
    expect((await httpGet('/metrics')).status).toBe(401);
    expect((await httpGet('/metrics', { Authorization: 'Bearer nope' })).status).toBe(401);
    // a control message and a validation error, so more than one outcome is non-zero
    const c = await OpenpiClient.connect(server.url, AUTH);
    expect((await c.infer({ __ctrl__: 'episode_start' }))['__ack__']).toBe('episode_start');
    expect((await c.infer({ images: {}, prompt: 'x', embodiment: 'robot9', request_id: 'bad' }))['field']).toBe('embodiment');
    await c.close();
    await new Promise((r) => setTimeout(r, 50));
    const st = await httpGet('/stats', AUTH);
    const m = await httpGet('/metrics', AUTH);
    expect(m.status).toBe(200);
    expect(m.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const s = JSON.parse(st.body) as ServerStats;
    const f = parseExposition(m.body);
    for (const name of ['qvla_requests_total', 'qvla_request_duration_seconds', 'qvla_stage_duration_seconds', 'qvla_batch_size', 'qvla_queue_depth',
      'qvla_gpu_pool_bytes', 'qvla_device_losses_total', 'qvla_ready']) expect(f.has(name), name).toBe(true);
    expect(f.get('qvla_requests_total')!.type).toBe('counter');
    expect(f.get('qvla_batch_size')!.type).toBe('histogram');
    // counters = /stats
    for (const o of OUTCOMES) expect(sampleValue(f, 'qvla_requests_total', { outcome: o }), o).toBe(s.requests[o]);
    expect(s.requests.ok).toBe(s.served);
    expect(s.requests.invalid + s.requests.busy + s.requests.draining + s.requests.device_lost).toBe(s.error_replies);
    expect(s.served).toBeGreaterThanOrEqual(11);
    expect(s.requests.invalid).toBeGreaterThanOrEqual(3);
    expect(s.requests.control).toBe(1);
    expect(sampleValue(f, 'qvla_request_duration_seconds_count')).toBe(s.served);
    for (const stage of ['queue', 'infer', 'vision', 'prefill', 'denoise']) expect(sampleValue(f, 'qvla_stage_duration_seconds_count', { stage })).toBe(s.served);
    expect(sampleValue(f, 'qvla_batch_size_count')).toBe(s.batches);
    expect(sampleValue(f, 'qvla_batch_size_sum')).toBe(s.batch_rows);
    expect(s.batches).toBeLessThan(s.batch_rows); // some batch had several rows
    expect(sampleValue(f, 'qvla_gpu_busy_seconds_total')).toBe(s.busy_s);
    expect(s.busy_s).toBeGreaterThan(0);
    expect(s.busy_s).toBeLessThanOrEqual(s.uptime_s);
    expect(sampleValue(f, 'qvla_connections_total')).toBe(s.connections_total);
    expect(sampleValue(f, 'qvla_connections_open')).toBe(s.connections_open);
    expect(sampleValue(f, 'qvla_queue_depth')).toBe(s.queue_waiting);
    expect(sampleValue(f, 'qvla_requests_in_flight')).toBe(s.in_flight);
    expect(sampleValue(f, 'qvla_device_losses_total')).toBe(s.policy.device_losses);
    expect(sampleValue(f, 'qvla_device_recoveries_total')).toBe(s.policy.recoveries);
    expect(sampleValue(f, 'qvla_nan_guard_trips_total')).toBe(s.policy.nan_guard_trips);
    expect(sampleValue(f, 'qvla_gpu_pool_bytes')).toBe(s.gpu.pool_bytes);
    expect(sampleValue(f, 'qvla_gpu_buffers_created')).toBe(s.gpu.buffers_created);
    expect(sampleValue(f, 'qvla_gpu_tensors_live')).toBe(s.gpu.tensors_live);
    expect(sampleValue(f, 'qvla_gpu_pipelines')).toBe(s.gpu.pipelines);
    expect(sampleValue(f, 'qvla_ready')).toBe(1);
    expect(sampleValue(f, 'qvla_draining')).toBe(0);
    expect(server.metrics()).toContain('# TYPE qvla_batch_size histogram');

    // The exposition as Prometheus' own Python client parses it (Debian: python3-prometheus-client).
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import prometheus_client'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      console.log('GET /metrics: python3-prometheus-client is not installed (apt-get install python3-prometheus-client): its parser is skipped; the strict parser above ran');
      return;
    }
    const py = spawnSync('/usr/bin/python3', ['-c', [
      'import sys, json',
      'from prometheus_client.parser import text_string_to_metric_families',
      'out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]',
      'print(json.dumps(out))',
    ].join('\n')], { input: m.body, encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const pySamples = JSON.parse(py.stdout) as [string, Record<string, string>, number][];
    const ours = [...f.values()].flatMap((fam) => fam.samples);
    expect(pySamples.length).toBe(ours.length);
    for (const [name, labels, value] of pySamples) expect(sampleValue(f, name, labels), name).toBe(value);
  });
});

describe('drain()', () => {
  it('finishes queued and running requests, answers new ones with a retryable error, refuses new connections, closes with 1001', async () => {
    const a = await OpenpiClient.connect(server.url, AUTH);
    const b = await OpenpiClient.connect(server.url, AUTH);
    const obs = (id: string, steps: number) => ({ images: { front: chw(rgb['front']!) }, prompt: `go ${id}`, embodiment: 'nav', steps, seed: 1, request_id: id });
    for (const id of ['a1', 'a2']) await a.send(obs(id, 2));
    for (const id of ['b1', 'b2']) await b.send(obs(id, 3));
    await new Promise((r) => setTimeout(r, 20)); // queued (the batch waits up to 150 ms for company)
    const drained = server.drain();
    expect(server.ready).toBe(false);
    expect(server.draining).toBe(true);
    await b.send(obs('b3-after-drain', 1));
    // new connections are refused: the listener is closed
    await expect(OpenpiClient.connect(server.url, AUTH)).rejects.toThrow();
    const ra = [await a.reply(), await a.reply()] as Record<string, unknown>[];
    const rb = [await b.reply(), await b.reply(), await b.reply()] as Record<string, unknown>[];
    expect(ra.map((r) => r['request_id'])).toEqual(['a1', 'a2']);
    for (const r of [...ra, rb[0]!, rb[1]!]) expect(r['error'], String(r['request_id'])).toBeUndefined();
    expect(rb.map((r) => r['request_id'])).toEqual(['b1', 'b2', 'b3-after-drain']);
    expect(rb[2]).toMatchObject({ kind: 'draining', retryable: true, field: null });
    expect(await a.next()).toMatchObject({ kind: 'close', code: 1001 });
    expect(await b.next()).toMatchObject({ kind: 'close', code: 1001 });
    await drained;
    const s = server.stats();
    expect(s.draining).toBe(true);
    expect(s.ready).toBe(false);
    expect(s.requests.draining).toBe(1);
    expect(s.queue_pending).toBe(0);
    expect(s.connections_open).toBe(0);
  });
});

// The policy server: openpi's WebSocket protocol (websocket_policy_server.py + msgpack_numpy.py) in front of a
// loaded Policy. See src/server/README.md for the protocol as qvla speaks it.
//
// - On connect: one binary frame with the metadata map.
// - Then: each binary frame (an observation map) gets exactly one reply frame, in order (per connection).
// - Requests from all connections go through ONE queue (src/server/batcher.ts): whenever the GPU is free, the
//   requests waiting at its head (up to maxBatch) run as one policy.actBatch() call — each reply bit-identical
//   to the unbatched one. maxBatch 1 is the one-at-a-time server.
// - `GET /healthz` → 200 "OK\n" (liveness, no auth); `GET /readyz` → 200 once warm and while not draining, else 503
//   (no auth); `GET /stats` → JSON counters (ServerStats); `GET /metrics` → the same counters and latency / batch
//   histograms in the Prometheus text format (src/server/metrics.ts). Optional token on the upgrade, /stats and
//   /metrics (401 before the upgrade).
// - drain() (SIGTERM in `qvla serve`): stop listening, answer new requests on open connections with a retryable
//   error, finish what is queued and running, then close every connection with 1001.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual, createHash } from 'node:crypto';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { Policy, type ActRequest } from '../policy/policy.js';
import { packb, unpackb, WireError } from './msgpack.js';
import { errorReply, serverError } from './errors.js';
import { Batcher, DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS, type BatchInfo, type JobOutcome } from './batcher.js';
import { Registry, PROMETHEUS_CONTENT_TYPE } from './metrics.js';
import { NdArray } from './ndarray.js';
import {
  observationToRequest, DEFAULT_LIMITS,
  type ObservationMapping, type RequestLimits,
} from './observation.js';
import { qvlaVersion } from './pkg.js';
import { throttleDawnPolling } from '../gpu/dawnPolling.js';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_QUEUE = 64;
/** How long drain() waits for queued and running requests before closing connections anyway. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 60_000;
export { DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS };
/** Body of every 401 (WebSocket upgrade and GET /stats). */
const UNAUTHORIZED_BODY = 'unauthorized: send "Authorization: Bearer <token>" (or "Api-Key <token>")\n';

export interface InferEvent {
  /** Global sequence number of the request (arrival order over all connections). */
  seq: number;
  /** Connection number (1, 2, … in accept order). */
  connection: number;
  requestId: string | number | undefined;
  embodiment: string;
}

export interface ServerHooks {
  /** Called right before the GPU call (act() or actBatch()) that runs this request, once per request of the batch in row order. */
  onInferStart?(e: InferEvent): void;
  /** Called after that call returned or threw, once per request of the batch in row order. */
  onInferEnd?(e: InferEvent): void;
}

export interface ServerOptions {
  policy: Policy;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Embodiment used when a request names none (default: the mapping's default_embodiment, else the first). */
  defaultEmbodiment?: string | null;
  /** When set, the upgrade needs `Authorization: Bearer <token>` or `Authorization: Api-Key <token>`. */
  token?: string | null;
  /** Largest accepted frame; bigger frames close the connection with 1009. */
  maxMessageBytes?: number;
  mapping?: ObservationMapping | null;
  limits?: Partial<RequestLimits>;
  /** Requests queued or running at most (beyond it a request gets the retryable error reply "server busy"). */
  maxQueue?: number;
  /** Most requests in one actBatch() call (default 16; 1 = unbatched, one act() at a time). */
  maxBatch?: number;
  /**
   * How long a batch may wait for more requests once the GPU is free: at most this long after the later of the oldest
   * waiting request's arrival and the end of the previous batch (default 5 ms; 0 = never; src/server/batcher.ts).
   */
  maxWaitMs?: number;
  /**
   * Run one warm-up actBatch (one request per embodiment, grey frames) right after listening, before any
   * request; GET /readyz answers 503 until it is done (default true). false: ready as soon as it listens.
   */
  warmup?: boolean;
  /** drain(): how long to wait for queued and running requests before closing connections anyway (default 60 s). */
  drainTimeoutMs?: number;
  /** Shown in the metadata (e.g. the checkpoint directory). */
  checkpoint?: string;
  log?: (line: string) => void;
  hooks?: ServerHooks;
  /**
   * Defer dawn.node's GPU-wait polling after its first millisecond instead of spinning the JS thread
   * (src/gpu/dawnPolling.ts; process-wide). Default true (on any adapter); false leaves the engine's choice
   * (GpuOptions.deferPolling: already deferred on software adapters).
   */
  throttleGpuPolling?: boolean;
}

export interface RunningServer {
  host: string;
  port: number;
  /** ws://host:port */
  url: string;
  metadata: Record<string, unknown>;
  /** Requests served so far (replies with actions). */
  readonly served: number;
  /** What GET /readyz says: warm, and not draining. */
  readonly ready: boolean;
  readonly draining: boolean;
  /** Resolves true once the warm-up is done (at once without warm-up), false if it failed (never rejects). */
  readonly warm: Promise<boolean>;
  /** Counters for monitoring a long-running server (also served as JSON by `GET /stats`). */
  stats(): ServerStats;
  /** The Prometheus text exposition of `GET /metrics`. */
  metrics(): string;
  /**
   * Graceful stop: stops listening (new connections are refused), answers new requests on open connections with
   * the retryable error `{kind: "draining"}`, finishes every queued and running request and sends its reply,
   * then closes every connection with 1001 (going away). Resolves when all connections are closed. Idempotent.
   */
  drain(): Promise<void>;
  /**
   * Closes every connection (1001) and stops listening; queued requests of closed connections are dropped (use
   * drain() first for a graceful stop). The policy stays loaded (the caller owns it).
   */
  close(): Promise<void>;
}

/** Outcomes of a request frame, as counted in /stats `requests` and /metrics `qvla_requests_total{outcome}`. */
export const OUTCOMES = ['ok', 'invalid', 'busy', 'draining', 'device_lost', 'internal', 'protocol', 'control', 'dropped'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** What `GET /stats` returns: enough to watch a server for hours (leaks, device losses, queueing). */
export interface ServerStats {
  uptime_s: number;
  /** Replies with actions sent so far. */
  served: number;
  /** Error maps sent so far (validation, server busy, draining, device lost). */
  error_replies: number;
  /**
   * Request frames by outcome: ok (= served), invalid / busy / draining / device_lost (error maps: they add up to
   * error_replies), internal (text frame + 1011), protocol (garbage or text frame: closed with 1007 / 1003),
   * control (openpi episode messages, acknowledged), dropped (the client left before its reply).
   */
  requests: Record<Outcome, number>;
  connections_open: number;
  connections_total: number;
  /** Requests queued or running now (= queue_waiting + in_flight). */
  queue_pending: number;
  /** Requests waiting for a batch / in the batch running now. */
  queue_waiting: number;
  in_flight: number;
  /** GPU calls (act / actBatch) run for requests, and the requests they carried (mean batch = rows / batches). */
  batches: number;
  batch_rows: number;
  /** Seconds spent in those GPU calls (start to end of act / actBatch): busy_s / uptime_s = how busy the GPU was. */
  busy_s: number;
  /** Warm-up done and not draining (what GET /readyz says). */
  ready: boolean;
  draining: boolean;
  policy: { device_lost: boolean; device_losses: number; recoveries: number; nan_guard_trips: number };
  /** The policy's current device: pooled buffers ever created (flat in a steady state), their bytes, tensors live. */
  gpu: { buffers_created: number; pool_mb: number; pool_bytes: number; tensors_live: number; pipelines: number };
  /** This process, after no forced gc: a trend, not an exact figure. */
  memory: { rss_mb: number; heap_used_mb: number; external_mb: number };
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^\s*(Bearer|Api-Key)\s+(.+?)\s*$/i.exec(header);
  if (!m) return false;
  // Compare digests so the comparison time does not depend on the token's length or content.
  const a = createHash('sha256').update(m[2]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The metadata map sent on connect. */
export function serverMetadata(policy: Policy, opts: { defaultEmbodiment: string; auth: boolean; maxMessageBytes: number; limits: RequestLimits; checkpoint?: string; maxBatch?: number; maxWaitMs?: number }): Record<string, unknown> {
  const embodiments: Record<string, unknown> = {};
  for (const key of policy.embodiments.keys()) {
    const e = policy.embodiments.get(key);
    embodiments[key] = {
      name: e.name,
      task_type: e.taskType,
      description: e.description,
      cameras: e.cameras,
      action_names: e.action.names,
      action_dim: e.action.names.length,
      action_horizon: e.control.chunk,
      rate_hz: e.control.rateHz,
      control_mode: e.control.mode,
      frame: e.control.frame,
      state_names: e.state ? e.state.names : null,
      state_dim: e.state ? e.state.names.length : 0,
      needs_state: e.action.relative.some((r) => r),
    };
  }
  const def = policy.embodiments.get(opts.defaultEmbodiment);
  const cfg = policy.config;
  const ae = cfg.actionExpert!;
  return {
    server: 'qvla',
    qvla_version: qvlaVersion(),
    protocol: 'openpi-websocket-msgpack',
    default_embodiment: opts.defaultEmbodiment,
    action_dim: def.action.names.length,
    action_horizon: def.control.chunk,
    embodiments,
    model: {
      checkpoint: opts.checkpoint ?? null,
      weight_dtype: policy.options.weightDtype ?? 'f32',
      device: policy.gpu.description,
      text_layers: cfg.text.numHiddenLayers,
      text_hidden: cfg.text.hiddenSize,
      vision_depth: cfg.vision.depth,
      action_expert_layers: ae.numLayers,
      action_expert_hidden: ae.hiddenSize,
      default_steps: ae.defaultSteps,
      default_solver: ae.defaultSolver,
    },
    observation_formats: ['aloha', 'libero'],
    request_extras: ['embodiment', 'seed', 'steps', 'solver', 'grid', 'request_id'],
    limits: { max_message_bytes: opts.maxMessageBytes, max_steps: opts.limits.maxSteps, max_image_pixels: opts.limits.maxImagePixels },
    auth: opts.auth,
    batching: { max_batch: opts.maxBatch ?? DEFAULT_MAX_BATCH, max_wait_ms: opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS },
  };
}


/** Grey-frame requests, one per embodiment (state in the middle of its normalisation range): the warm-up batch. */
export function warmupRequests(policy: Policy): ActRequest[] {
  const grey = { width: 224, height: 224, channels: 3 as const, data: new Uint8Array(224 * 224 * 3).fill(128) };
  return policy.embodiments.keys().map((key) => {
    const emb = policy.embodiments.get(key);
    const images: Record<string, typeof grey> = {};
    for (const c of emb.cameras) images[c] = grey;
    const req: ActRequest = { images, instruction: 'warm up', embodiment: key };
    const n = emb.normalization.state;
    if (emb.state && n) req.state = emb.state.names.map((_, i) => (emb.normalization.method === 'mean_std' ? n.a[i]! : (n.a[i]! + n.b[i]!) / 2));
    return req;
  });
}

/** Latency buckets (seconds) of the request and stage histograms: 1 ms … 60 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/** Stages of `qvla_stage_duration_seconds` (the reply's server_timing, in seconds; batch stages are the batch's). */
const STAGES = ['queue', 'decode', 'infer', 'preprocess', 'vision', 'prefill', 'context', 'denoise', 'readback', 'postprocess'] as const;

/** What a request frame turns into, delivered in arrival order on its connection. */
type Outgoing =
  | { kind: 'map'; map: Record<string, unknown>; outcome: Outcome; after?: (sent: boolean) => void; logLine?: string }
  | { kind: 'protocol'; message: string; code: number }
  | { kind: 'internal'; message: string };

/** Starts the policy server; resolves once it listens (the warm-up, if any, then runs: see `warm`, GET /readyz). */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const policy = opts.policy;
  const log = opts.log ?? (() => undefined);
  if (opts.throttleGpuPolling ?? true) throttleDawnPolling();
  const host = opts.host ?? '127.0.0.1';
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1024) throw new Error(`maxMessageBytes must be an integer ≥ 1024, got ${maxMessageBytes}`);
  const maxQueue = opts.maxQueue ?? DEFAULT_MAX_QUEUE;
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  const maxWaitMs = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const drainTimeoutMs = opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const limits: RequestLimits = { ...DEFAULT_LIMITS, ...(opts.limits ?? {}) };
  const mapping = opts.mapping ?? null;
  const defaultEmbodiment = opts.defaultEmbodiment ?? mapping?.defaultEmbodiment ?? policy.embodiments.keys()[0]!;
  if (!policy.embodiments.has(defaultEmbodiment)) {
    throw new Error(`unknown default embodiment ${JSON.stringify(defaultEmbodiment)} (known: ${policy.embodiments.keys().join(', ')})`);
  }
  const token = opts.token ?? null;
  const metadata = serverMetadata(policy, { defaultEmbodiment, auth: token !== null, maxMessageBytes, limits, checkpoint: opts.checkpoint, maxBatch, maxWaitMs });
  const metadataFrame = packb(metadata);
  const batcher = new Batcher(policy, {
    maxBatch,
    maxWaitMs,
    onBatchStart: (tags) => { for (const t of tags) opts.hooks?.onInferStart?.(t as InferEvent); },
    onBatchEnd: (tags, info) => {
      for (const t of tags) opts.hooks?.onInferEnd?.(t as InferEvent);
      batchSize.observe(info.size);
      busySeconds.inc({}, (info.endedAt - info.startedAt) / 1000);
    },
  });
  let seq = 0;
  let connections = 0;
  let isWarm = opts.warmup === false;
  let draining = false;
  let drainPromise: Promise<void> | null = null;
  let closed = false;
  /** Request frames received and not yet answered (their reply not yet handed to the socket). */
  let outstanding = 0;
  let settleWaiters: (() => void)[] = [];
  const startedAt = performance.now();
  const clients = new Set<WebSocket>();
  const round2 = (x: number) => Math.round(x * 100) / 100;

  // ---- counters (the one source of /stats and /metrics)
  const reg = new Registry();
  const requestsTotal = reg.counter('qvla_requests_total', 'Request frames by outcome (ok = replies with actions; invalid/busy/draining/device_lost = error maps).', ['outcome'])
    .init(...OUTCOMES.map((o) => ({ outcome: o })));
  const requestSeconds = reg.histogram('qvla_request_duration_seconds', 'Receipt to reply sent, requests answered with actions.', LATENCY_BUCKETS).init();
  const stageSeconds = reg.histogram('qvla_stage_duration_seconds', 'Per-stage time of requests answered with actions (server_timing; batch stages are the whole batch\'s).', LATENCY_BUCKETS, ['stage'])
    .init(...STAGES.map((s) => ({ stage: s })));
  const batchSize = reg.histogram('qvla_batch_size', 'Requests per GPU call (act / actBatch).', BATCH_BUCKETS).init();
  const busySeconds = reg.counter('qvla_gpu_busy_seconds_total', 'Seconds spent in GPU calls for requests (act / actBatch, start to end).').init();
  const gQueueDepth = reg.gauge('qvla_queue_depth', 'Requests waiting for a batch.');
  const gInFlight = reg.gauge('qvla_requests_in_flight', 'Requests in the batch running now.');
  const gConnOpen = reg.gauge('qvla_connections_open', 'Open WebSocket connections.');
  const cConnTotal = reg.counter('qvla_connections_total', 'WebSocket connections accepted.');
  const cLosses = reg.counter('qvla_device_losses_total', 'GPU device losses seen by the policy.');
  const cRecoveries = reg.counter('qvla_device_recoveries_total', 'Device re-creations (weights re-uploaded) after a loss.');
  const cNan = reg.counter('qvla_nan_guard_trips_total', 'act() calls stopped by the NaN guard.');
  const gLost = reg.gauge('qvla_device_lost', '1 while the GPU device is lost (the next request recovers it).');
  const gPool = reg.gauge('qvla_gpu_pool_bytes', 'Bytes of the GPU buffer pool (flat in a steady state).');
  const gBuffers = reg.gauge('qvla_gpu_buffers_created', 'Pooled GPU buffers created on the current device (flat in a steady state; restarts after a recovery).');
  const gTensors = reg.gauge('qvla_gpu_tensors_live', 'GPU tensors live.');
  const gPipelines = reg.gauge('qvla_gpu_pipelines', 'Compute pipelines compiled.');
  const gMemory = reg.gauge('qvla_process_memory_bytes', 'Process memory (kind = rss, heap_used, external).', ['kind']);
  const gReady = reg.gauge('qvla_ready', '1 when GET /readyz answers 200 (warm, not draining).');
  const gDraining = reg.gauge('qvla_draining', '1 while draining (SIGTERM).');
  const gUptime = reg.gauge('qvla_uptime_seconds', 'Seconds since the server started listening.');
  const gInfo = reg.gauge('qvla_build_info', 'Constant 1, labelled with the version and the batching settings.', ['version', 'max_batch', 'max_wait_ms']);

  const count = (o: Outcome) => requestsTotal.inc({ outcome: o });
  const outcomes = (): Record<Outcome, number> => Object.fromEntries(OUTCOMES.map((o) => [o, requestsTotal.get({ outcome: o })])) as Record<Outcome, number>;
  const ready = () => isWarm && !draining && !closed;

  const stats = (): ServerStats => {
    const m = process.memoryUsage();
    const g = policy.gpu;
    const req = outcomes();
    return {
      uptime_s: round2((performance.now() - startedAt) / 1000),
      served: req.ok,
      error_replies: req.invalid + req.busy + req.draining + req.device_lost,
      requests: req,
      connections_open: clients.size,
      connections_total: connections,
      queue_pending: batcher.pending,
      queue_waiting: batcher.waiting,
      in_flight: batcher.inFlight,
      batches: batchSize.count(),
      batch_rows: batchSize.sum(),
      busy_s: busySeconds.get({}),
      ready: ready(),
      draining,
      policy: {
        device_lost: policy.deviceLost,
        device_losses: policy.stats.deviceLosses,
        recoveries: policy.stats.recoveries,
        nan_guard_trips: policy.stats.nanGuardTrips,
      },
      gpu: {
        buffers_created: g.buffers.stats.created,
        pool_mb: round2(g.buffers.stats.bytesAllocated / 2 ** 20),
        pool_bytes: g.buffers.stats.bytesAllocated,
        tensors_live: g.buffers.stats.live,
        pipelines: g.pipelines.size,
      },
      memory: { rss_mb: round2(m.rss / 2 ** 20), heap_used_mb: round2(m.heapUsed / 2 ** 20), external_mb: round2(m.external / 2 ** 20) },
    };
  };

  /** Both views from one snapshot: `stats` is what /stats would say at this instant. */
  const metricsSnapshot = (): { text: string; stats: ServerStats } => {
    const s = stats();
    const m = process.memoryUsage();
    gQueueDepth.set(s.queue_waiting);
    gInFlight.set(s.in_flight);
    gConnOpen.set(s.connections_open);
    const setCounter = (c: typeof cConnTotal, v: number) => c.inc({}, Math.max(0, v - c.get()));
    setCounter(cConnTotal, s.connections_total);
    setCounter(cLosses, s.policy.device_losses);
    setCounter(cRecoveries, s.policy.recoveries);
    setCounter(cNan, s.policy.nan_guard_trips);
    gLost.set(s.policy.device_lost ? 1 : 0);
    gPool.set(s.gpu.pool_bytes);
    gBuffers.set(s.gpu.buffers_created);
    gTensors.set(s.gpu.tensors_live);
    gPipelines.set(s.gpu.pipelines);
    gMemory.set(m.rss, { kind: 'rss' });
    gMemory.set(m.heapUsed, { kind: 'heap_used' });
    gMemory.set(m.external, { kind: 'external' });
    gReady.set(s.ready ? 1 : 0);
    gDraining.set(s.draining ? 1 : 0);
    gUptime.set(s.uptime_s);
    gInfo.set(1, { version: qvlaVersion(), max_batch: String(maxBatch), max_wait_ms: String(maxWaitMs) });
    return { text: reg.render(), stats: s };
  };

  const authorized = (req: http.IncomingMessage) => token === null || tokenMatches(req.headers['authorization'], token);
  const unauthorized = (res: http.ServerResponse) => {
    res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8', 'WWW-Authenticate': 'Bearer realm="qvla"' });
    res.end(UNAUTHORIZED_BODY);
  };

  const httpServer = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (path === '/healthz' && get) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('OK\n');
      return;
    }
    if (path === '/readyz' && get) {
      // Readiness for a load balancer: weights loaded (the server exists), warm, not draining. No token.
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(ok ? 'ready\n' : draining || closed ? 'draining\n' : 'warming up\n');
      return;
    }
    if (path === '/stats' && req.method === 'GET') {
      // Same token as the WebSocket: the counters say how the server is used.
      if (!authorized(req)) return unauthorized(res);
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(stats()) + '\n');
      return;
    }
    if (path === '/metrics' && req.method === 'GET') {
      if (!authorized(req)) return unauthorized(res);
      res.writeHead(200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
      res.end(metricsSnapshot().text);
      return;
    }
    res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket' });
    res.end('qvla policy server: connect with a WebSocket (openpi protocol); GET /healthz, /readyz, /stats, /metrics\n');
  });
  httpServer.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: maxMessageBytes, perMessageDeflate: false });

  httpServer.on('upgrade', (req, socket, head) => {
    socket.on('error', () => undefined);
    if (token !== null && !tokenMatches(req.headers['authorization'], token)) {
      socket.end(
        'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="qvla"\r\nContent-Type: text/plain; charset=utf-8\r\n' +
          `Content-Length: ${Buffer.byteLength(UNAUTHORIZED_BODY)}\r\nConnection: close\r\n\r\n${UNAUTHORIZED_BODY}`,
      );
      log(`rejected a connection from ${req.socket.remoteAddress}: bad or missing token (401)`);
      return;
    }
    if (draining || closed) {
      // Only reachable on a keep-alive socket opened before drain(): the listener is closed by then.
      const body = 'server draining: connect again (another server behind the balancer will take it)\n';
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  const settled = () => {
    if (outstanding !== 0) return;
    const w = settleWaiters;
    settleWaiters = [];
    for (const f of w) f();
  };

  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const conn = ++connections;
    clients.add(ws);
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    log(`connection ${conn} from ${peer} opened`);
    let prevTotalMs: number | null = null;
    /** Replies go out in arrival order: each frame's delivery waits for the previous frame's. */
    let tail: Promise<void> = Promise.resolve();
    ws.send(metadataFrame);

    const sendFrame = (data: Uint8Array | string): Promise<boolean> =>
      new Promise((resolve) => {
        if (ws.readyState !== WebSocket.OPEN) return resolve(false);
        ws.send(data, (e) => resolve(!e));
      });
    /** The error map for `e` (src/server/errors.ts), or an internal error that closes the connection. */
    const errorOut = (e: unknown, requestId: string | number | undefined): Outgoing => {
      const r = errorReply(e);
      if (!r) return { kind: 'internal', message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
      const m: Record<string, unknown> = { error: r.field ? `${r.field}: ${r.message}` : r.message, field: r.field };
      if (r.retryable) Object.assign(m, { kind: r.outcome, retryable: true });
      if (requestId !== undefined) m['request_id'] = requestId;
      return { kind: 'map', map: m, outcome: r.outcome, logLine: `request error${r.field ? ` (${r.field})` : ''}: ${r.message}` };
    };

    const deliver = async (out: Outgoing): Promise<void> => {
      if (out.kind === 'protocol') {
        count('protocol');
        log(`connection ${conn}: ${out.message} (closing with ${out.code})`);
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(`qvla: ${out.message}`);
        ws.close(out.code, out.message.slice(0, 120));
        return;
      }
      if (out.kind === 'internal') {
        count('internal');
        log(`connection ${conn}: internal error: ${out.message}`);
        if (ws.readyState === WebSocket.OPEN) {
          ws.send(`qvla internal error: ${out.message}`);
          ws.close(1011, 'Internal server error. Message included in previous frame.');
        }
        return;
      }
      const sent = await sendFrame(packb(out.map));
      count(sent ? out.outcome : 'dropped');
      if (out.logLine) log(`connection ${conn}: ${out.logLine}${sent ? '' : ' (not sent: the connection is gone)'}`);
      out.after?.(sent);
    };

    /** Decodes, validates and (for a valid observation) runs one request frame; never throws. */
    const handleFrame = async (bytes: Uint8Array, arrivedAt: number): Promise<Outgoing> => {
      const start = performance.now();
      let obs: unknown;
      try {
        obs = unpackb(bytes);
      } catch (e) {
        if (e instanceof WireError && e.field) return errorOut(e, undefined);
        return { kind: 'protocol', message: e instanceof Error ? e.message : String(e), code: 1007 };
      }
      if (obs === null || typeof obs !== 'object' || Array.isArray(obs) || obs instanceof Uint8Array || obs instanceof NdArray) {
        return { kind: 'protocol', message: 'each request must be a msgpack map (the observation dict)', code: 1007 };
      }
      const o = obs as Record<string, unknown>;
      const decodeMs = performance.now() - start;
      if (o['__ctrl__'] !== undefined) {
        // openpi's episode control messages: acknowledged, nothing else to do.
        const c = o['__ctrl__'];
        return { kind: 'map', map: { __ack__: c === 'episode_start' || c === 'episode_end' ? c : 'ignored' }, outcome: 'control' };
      }
      const rid = typeof o['request_id'] === 'string' || typeof o['request_id'] === 'number' ? (o['request_id'] as string | number) : undefined;
      if (draining || closed) {
        return errorOut(serverError('draining', 'server draining: this server is shutting down; send the request again on a new connection'), rid);
      }
      let decoded;
      try {
        decoded = observationToRequest(o, { registry: policy.embodiments, mapping, defaultEmbodiment, limits });
        // The wire format is decoded above; what an act() request must satisfy is checked once, by the policy's own
        // observation stage (src/policy/observation.ts), here before queueing so a bad request never joins a batch.
        policy.observationEncoder.validate(decoded.act);
      } catch (e) {
        return errorOut(e, rid);
      }
      if (batcher.pending >= maxQueue) {
        return errorOut(serverError('busy', `server busy: ${batcher.pending} requests are queued or running (limit ${maxQueue}); retry later`), decoded.requestId);
      }
      const ev: InferEvent = { seq: ++seq, connection: conn, requestId: decoded.requestId, embodiment: decoded.act.embodiment };
      const outcome: JobOutcome = await batcher.submit(decoded.act, { tag: ev, alive: () => ws.readyState === WebSocket.OPEN });
      if (outcome.batch === null) return errorOut(serverError('dropped', 'the client left before its turn'), decoded.requestId);
      if (!outcome.ok) {
        // The request failed but the policy is not broken: after a device loss, with autoRecover (the CLI
        // default) the next act() re-creates the device and re-uploads the weights; the client may retry.
        return errorOut(outcome.error, decoded.requestId);
      }
      const result = outcome.result;
      const b: BatchInfo = outcome.batch;
      const inferMs = outcome.endedAt - outcome.startedAt;
      const queueMs = outcome.startedAt - arrivedAt - decodeMs;
      const t = result.timings;
      const denoise = t.stepMs.reduce((x, y) => x + y, 0);
      const a = result.actions;
      const stageMs: Record<(typeof STAGES)[number], number> = {
        queue: queueMs, decode: decodeMs, infer: inferMs, preprocess: t.preprocessMs, vision: t.visionMs, prefill: t.prefillMs,
        context: t.contextMs, denoise, readback: t.readbackMs, postprocess: t.postprocessMs,
      };
      const serverTiming: Record<string, unknown> = {
        infer_ms: round3(inferMs),
        queue_ms: round3(queueMs),
        decode_ms: round3(decodeMs),
        preprocess_ms: round3(t.preprocessMs),
        vision_ms: round3(t.visionMs),
        prefill_ms: round3(t.prefillMs),
        context_ms: round3(t.contextMs),
        denoise_ms: round3(denoise),
        step_ms: t.stepMs.map(round3),
        readback_ms: round3(t.readbackMs),
        postprocess_ms: round3(t.postprocessMs),
        batch_size: b.size,
      };
      if (prevTotalMs !== null) serverTiming['prev_total_ms'] = round3(prevTotalMs);
      const reply: Record<string, unknown> = {
        actions: NdArray.fromFloat32(a.actions, [a.rows, a.dims]),
        server_timing: serverTiming,
        policy_timing: { infer_ms: round3(t.totalMs) },
        qvla: {
          embodiment: result.embodiment,
          action_names: a.names,
          task_type: a.taskType,
          steps: result.steps,
          solver: result.solver,
          evaluations: result.evaluations,
          seed: result.seed,
          prompt_tokens: result.promptTokens,
          cameras: Object.keys(decoded.act.images),
          format: decoded.format,
          seq: ev.seq,
          batch_size: b.size,
          batch_id: b.id,
        },
      };
      if (decoded.requestId !== undefined) reply['request_id'] = decoded.requestId;
      return {
        kind: 'map', map: reply, outcome: 'ok',
        after: (sent) => {
          if (!sent) return;
          const total = performance.now() - arrivedAt;
          prevTotalMs = performance.now() - start;
          requestSeconds.observe(total / 1000);
          for (const s of STAGES) stageSeconds.observe(stageMs[s] / 1000, { stage: s });
          log(`connection ${conn}: #${ev.seq} ${result.embodiment} ${a.rows}×${a.dims} in ${inferMs.toFixed(1)} ms (batch ${b.id} of ${b.size})${decoded.requestId !== undefined ? ` (request_id ${String(decoded.requestId)})` : ''}`);
        },
      };
    };

    ws.on('message', (data: RawData, isBinary: boolean) => {
      const arrivedAt = performance.now();
      outstanding++;
      const work: Promise<Outgoing> = isBinary
        ? handleFrame(toBytes(data), arrivedAt).catch((e: unknown) => ({ kind: 'internal' as const, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }))
        : Promise.resolve({ kind: 'protocol' as const, message: 'text frames are not accepted: send msgpack-encoded binary frames (openpi protocol)', code: 1003 });
      tail = tail
        .then(() => work)
        .then(deliver)
        .catch((e: unknown) => log(`connection ${conn}: could not answer: ${e instanceof Error ? e.message : String(e)}`))
        .finally(() => {
          outstanding--;
          settled();
        });
    });
    ws.on('error', (e: Error) => {
      // ws closes the socket itself (1009 for an oversized message, 1002 for protocol errors).
      log(`connection ${conn}: ${e.message}`);
    });
    ws.on('close', (code: number) => {
      clients.delete(ws);
      log(`connection ${conn} closed (${code})`);
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    httpServer.once('error', onError);
    httpServer.listen(opts.port ?? 8000, host, () => {
      httpServer.off('error', onError);
      resolve();
    });
  });
  const addr = httpServer.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  // Warm-up: runs before any request (the batcher's first job); /readyz says 503 until it is done.
  const warm: Promise<boolean> = isWarm
    ? Promise.resolve(true)
    : batcher.exclusive(async () => {
      const t0 = performance.now();
      await policy.actBatch(warmupRequests(policy));
      return performance.now() - t0;
    }).then(
      (ms) => {
        isWarm = true;
        log(`warm-up done in ${ms.toFixed(0)} ms: ready`);
        return true;
      },
      (e: unknown) => {
        log(`warm-up failed: ${e instanceof Error ? e.message : String(e)} (GET /readyz stays 503)`);
        return false;
      },
    );

  let listening = true;
  const stopListening = (): Promise<void> => {
    if (!listening) return Promise.resolve();
    listening = false;
    return new Promise<void>((resolve) => httpServer.close(() => resolve()));
  };
  let httpClosed: Promise<void> | null = null;
  const waitSettled = (): Promise<void> => (outstanding === 0 ? Promise.resolve() : new Promise((resolve) => settleWaiters.push(resolve)));
  const closeClients = async (reason: string): Promise<void> => {
    for (const ws of clients) ws.close(1001, reason);
    // Clients that do not answer the close handshake quickly are cut off.
    const deadline = Date.now() + 2000;
    while (clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const ws of clients) ws.terminate();
  };

  return {
    host: addr.address,
    port: addr.port,
    url: `ws://${urlHost}:${addr.port}`,
    metadata,
    get served() {
      return requestsTotal.get({ outcome: 'ok' });
    },
    get ready() {
      return ready();
    },
    get draining() {
      return draining;
    },
    warm,
    stats,
    metrics: () => metricsSnapshot().text,
    drain(): Promise<void> {
      if (drainPromise) return drainPromise;
      draining = true;
      drainPromise = (async () => {
        log(`draining: no new connections; finishing ${batcher.pending} queued or running request(s)`);
        httpClosed = stopListening();
        httpServer.closeIdleConnections();
        batcher.flush();
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          (async () => {
            // Requests keep arriving on open connections (answered "draining" at once); wait until every
            // frame received so far is answered and nothing is queued or running.
            for (;;) {
              await batcher.idle();
              await waitSettled();
              if (outstanding === 0 && batcher.pending === 0) return false;
            }
          })(),
          new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), drainTimeoutMs); }),
        ]);
        clearTimeout(timer);
        if (timedOut) log(`draining: gave up waiting after ${drainTimeoutMs} ms (${batcher.pending} request(s) still queued or running)`);
        await closeClients('server draining (going away)');
        log('drained: every connection closed');
      })();
      return drainPromise;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      httpClosed ??= stopListening();
      await closeClients('server shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      httpServer.closeIdleConnections();
      // Sockets that keep an HTTP keep-alive open are cut after 2 s.
      const timer = setTimeout(() => httpServer.closeAllConnections(), 2000);
      await httpClosed;
      clearTimeout(timer);
      await batcher.idle().catch(() => undefined);
      await warm;
    },
  };
}

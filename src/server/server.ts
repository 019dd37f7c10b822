// The policy server: openpi's WebSocket protocol (websocket_policy_server.py + msgpack_numpy.py) in front of a
// loaded Policy. See src/server/README.md for the protocol as qvla speaks it.
//
// - On connect: one binary frame with the metadata map.
// - Then: each binary frame (an observation map) gets exactly one reply frame, in order.
// - Requests from all connections go through ONE FIFO queue: the GPU runs one act() at a time, in arrival
//   order; other connections wait.
// - `GET /healthz` → 200 "OK\n" (no auth); `GET /stats` → JSON counters (ServerStats; token as below).
//   Optional token checked on the WebSocket upgrade (401 before it).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual, createHash } from 'node:crypto';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { Policy, PolicyError, type ActResult } from '../policy/policy.js';
import { CheckpointError } from '../io/errors.js';
import { GpuError } from '../gpu/device.js';
import { packb, unpackb, WireError } from './msgpack.js';
import { NdArray } from './ndarray.js';
import {
  observationToRequest, RequestError, DEFAULT_LIMITS,
  type ObservationMapping, type RequestLimits,
} from './observation.js';
import { qvlaVersion } from './pkg.js';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_QUEUE = 64;
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
  /** Called right before act() runs. */
  onInferStart?(e: InferEvent): void;
  /** Called after act() returned or threw. */
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
  /** Requests waiting at most (beyond it a request gets an error reply "server busy"). */
  maxQueue?: number;
  /** Shown in the metadata (e.g. the checkpoint directory). */
  checkpoint?: string;
  log?: (line: string) => void;
  hooks?: ServerHooks;
}

export interface RunningServer {
  host: string;
  port: number;
  /** ws://host:port */
  url: string;
  metadata: Record<string, unknown>;
  /** Requests served so far (replies with actions). */
  readonly served: number;
  /** Counters for monitoring a long-running server (also served as JSON by `GET /stats`). */
  stats(): ServerStats;
  /** Closes every connection (1001) and stops listening. The policy stays loaded (the caller owns it). */
  close(): Promise<void>;
}

/** What `GET /stats` returns: enough to watch a server for hours (leaks, device losses, queueing). */
export interface ServerStats {
  uptime_s: number;
  /** Replies with actions sent so far. */
  served: number;
  /** Error maps sent so far (validation, server busy, device lost). */
  error_replies: number;
  connections_open: number;
  connections_total: number;
  /** Requests queued or running now. */
  queue_pending: number;
  policy: { device_lost: boolean; device_losses: number; recoveries: number; nan_guard_trips: number };
  /** The policy's current device: pooled buffers ever created (flat in a steady state), their bytes, tensors live. */
  gpu: { buffers_created: number; pool_mb: number; tensors_live: number; pipelines: number };
  /** This process, after no forced gc: a trend, not an exact figure. */
  memory: { rss_mb: number; heap_used_mb: number; external_mb: number };
}

/** A FIFO of async jobs: one runs at a time, in submission order. */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private count = 0;

  /** Jobs queued or running. */
  get pending(): number {
    return this.count;
  }

  run<T>(job: () => Promise<T>): Promise<T> {
    this.count++;
    const p = this.tail.then(job);
    this.tail = p.then(
      () => { this.count--; },
      () => { this.count--; },
    );
    return p;
  }

  /** Resolves once everything queued so far has finished. */
  idle(): Promise<void> {
    return this.tail;
  }
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
export function serverMetadata(policy: Policy, opts: { defaultEmbodiment: string; auth: boolean; maxMessageBytes: number; limits: RequestLimits; checkpoint?: string }): Record<string, unknown> {
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
  };
}

/** Starts the policy server; resolves once it listens. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const policy = opts.policy;
  const log = opts.log ?? (() => undefined);
  const host = opts.host ?? '127.0.0.1';
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1024) throw new Error(`maxMessageBytes must be an integer ≥ 1024, got ${maxMessageBytes}`);
  const maxQueue = opts.maxQueue ?? DEFAULT_MAX_QUEUE;
  const limits: RequestLimits = { ...DEFAULT_LIMITS, ...(opts.limits ?? {}) };
  const mapping = opts.mapping ?? null;
  const defaultEmbodiment = opts.defaultEmbodiment ?? mapping?.defaultEmbodiment ?? policy.embodiments.keys()[0]!;
  if (!policy.embodiments.has(defaultEmbodiment)) {
    throw new Error(`unknown default embodiment ${JSON.stringify(defaultEmbodiment)} (known: ${policy.embodiments.keys().join(', ')})`);
  }
  const token = opts.token ?? null;
  const metadata = serverMetadata(policy, { defaultEmbodiment, auth: token !== null, maxMessageBytes, limits, checkpoint: opts.checkpoint });
  const metadataFrame = packb(metadata);
  const queue = new SerialQueue();
  let seq = 0;
  let connections = 0;
  let served = 0;
  let errorReplies = 0;
  const startedAt = performance.now();
  const clients = new Set<WebSocket>();
  const round2 = (x: number) => Math.round(x * 100) / 100;
  const stats = (): ServerStats => {
    const m = process.memoryUsage();
    const g = policy.gpu;
    return {
      uptime_s: round2((performance.now() - startedAt) / 1000),
      served,
      error_replies: errorReplies,
      connections_open: clients.size,
      connections_total: connections,
      queue_pending: queue.pending,
      policy: {
        device_lost: policy.deviceLost,
        device_losses: policy.stats.deviceLosses,
        recoveries: policy.stats.recoveries,
        nan_guard_trips: policy.stats.nanGuardTrips,
      },
      gpu: {
        buffers_created: g.buffers.stats.created,
        pool_mb: round2(g.buffers.stats.bytesAllocated / 2 ** 20),
        tensors_live: g.buffers.stats.live,
        pipelines: g.pipelines.size,
      },
      memory: { rss_mb: round2(m.rss / 2 ** 20), heap_used_mb: round2(m.heapUsed / 2 ** 20), external_mb: round2(m.external / 2 ** 20) },
    };
  };

  const httpServer = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('OK\n');
      return;
    }
    if (path === '/stats' && req.method === 'GET') {
      // Same token as the WebSocket: the counters say how the server is used.
      if (token !== null && !tokenMatches(req.headers['authorization'], token)) {
        res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8', 'WWW-Authenticate': 'Bearer realm="qvla"' });
        res.end(UNAUTHORIZED_BODY);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(stats()) + '\n');
      return;
    }
    res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket' });
    res.end('qvla policy server: connect with a WebSocket (openpi protocol); GET /healthz for health, GET /stats for counters\n');
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
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const conn = ++connections;
    clients.add(ws);
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    log(`connection ${conn} from ${peer} opened`);
    let prevTotalMs: number | null = null;
    ws.send(metadataFrame);

    const protocolError = (message: string, code: number): void => {
      log(`connection ${conn}: ${message} (closing with ${code})`);
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(`qvla: ${message}`);
      ws.close(code, message.slice(0, 120));
    };
    const sendMap = (m: Record<string, unknown>): Promise<void> =>
      new Promise((resolve) => {
        if (ws.readyState !== WebSocket.OPEN) return resolve();
        ws.send(packb(m), () => resolve());
      });
    const errorReply = (
      message: string, field: string | null, requestId: string | number | undefined, extra: Record<string, unknown> = {},
    ): Promise<void> => {
      errorReplies++;
      log(`connection ${conn}: request error${field ? ` (${field})` : ''}: ${message}`);
      const m: Record<string, unknown> = { error: field ? `${field}: ${message}` : message, field, ...extra };
      if (requestId !== undefined) m['request_id'] = requestId;
      return sendMap(m);
    };

    const handle = async (bytes: Uint8Array, arrivedAt: number): Promise<void> => {
      if (ws.readyState !== WebSocket.OPEN) return; // the client left while this waited
      const start = performance.now();
      let obs: unknown;
      try {
        obs = unpackb(bytes);
      } catch (e) {
        if (e instanceof WireError && e.field) return errorReply(e.message, e.field, undefined);
        return protocolError(e instanceof Error ? e.message : String(e), 1007);
      }
      if (obs === null || typeof obs !== 'object' || Array.isArray(obs) || obs instanceof Uint8Array || obs instanceof NdArray) {
        return protocolError('each request must be a msgpack map (the observation dict)', 1007);
      }
      const o = obs as Record<string, unknown>;
      const decodeMs = performance.now() - start;
      if (o['__ctrl__'] !== undefined) {
        // openpi's episode control messages: acknowledged, nothing else to do.
        const c = o['__ctrl__'];
        return sendMap({ __ack__: c === 'episode_start' || c === 'episode_end' ? c : 'ignored' });
      }
      let decoded;
      const rid = typeof o['request_id'] === 'string' || typeof o['request_id'] === 'number' ? (o['request_id'] as string | number) : undefined;
      try {
        decoded = observationToRequest(o, { registry: policy.embodiments, mapping, defaultEmbodiment, limits });
      } catch (e) {
        if (e instanceof RequestError) return errorReply(e.message, e.field, rid);
        throw e;
      }
      const ev: InferEvent = { seq: ++seq, connection: conn, requestId: decoded.requestId, embodiment: decoded.act.embodiment };
      let result: ActResult;
      const t0 = performance.now();
      opts.hooks?.onInferStart?.(ev);
      try {
        result = await policy.act(decoded.act);
      } catch (e) {
        if (e instanceof PolicyError) return errorReply(e.message, e.field ?? null, decoded.requestId);
        if (e instanceof CheckpointError) return errorReply(e.message, e.field ?? null, decoded.requestId);
        if (e instanceof GpuError && e.kind === 'lost') {
          // The request failed but the policy is not broken: with autoRecover (the CLI default) the next
          // act() re-creates the device and re-uploads the weights. The client keeps its connection and may retry.
          return errorReply(`GPU device lost: ${e.message}`, null, decoded.requestId, { kind: 'device_lost', retryable: true });
        }
        const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        log(`connection ${conn}: internal error: ${msg}`);
        if (ws.readyState === WebSocket.OPEN) {
          ws.send(`qvla internal error: ${msg}`);
          ws.close(1011, 'Internal server error. Message included in previous frame.');
        }
        return;
      } finally {
        opts.hooks?.onInferEnd?.(ev);
      }
      const inferMs = performance.now() - t0;
      const t = result.timings;
      const denoise = t.stepMs.reduce((a, b) => a + b, 0);
      const a = result.actions;
      const serverTiming: Record<string, unknown> = {
        infer_ms: round3(inferMs),
        queue_ms: round3(start - arrivedAt),
        decode_ms: round3(decodeMs),
        preprocess_ms: round3(t.preprocessMs),
        vision_ms: round3(t.visionMs),
        prefill_ms: round3(t.prefillMs),
        context_ms: round3(t.contextMs),
        denoise_ms: round3(denoise),
        step_ms: t.stepMs.map(round3),
        readback_ms: round3(t.readbackMs),
        postprocess_ms: round3(t.postprocessMs),
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
        },
      };
      if (decoded.requestId !== undefined) reply['request_id'] = decoded.requestId;
      await sendMap(reply);
      served++;
      prevTotalMs = performance.now() - start;
      log(`connection ${conn}: #${ev.seq} ${result.embodiment} ${a.rows}×${a.dims} in ${inferMs.toFixed(1)} ms${decoded.requestId !== undefined ? ` (request_id ${String(decoded.requestId)})` : ''}`);
    };

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) {
        protocolError('text frames are not accepted: send msgpack-encoded binary frames (openpi protocol)', 1003);
        return;
      }
      const bytes = toBytes(data);
      const arrivedAt = performance.now();
      if (queue.pending >= maxQueue) {
        void errorReply(`server busy: ${queue.pending} requests are queued (limit ${maxQueue}); retry later`, null, undefined);
        return;
      }
      queue.run(() => handle(bytes, arrivedAt)).catch((e: unknown) => {
        const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        log(`connection ${conn}: internal error: ${msg}`);
        if (ws.readyState === WebSocket.OPEN) {
          ws.send(`qvla internal error: ${msg}`);
          ws.close(1011, 'Internal server error. Message included in previous frame.');
        }
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
  let closed = false;
  return {
    host: addr.address,
    port: addr.port,
    url: `ws://${urlHost}:${addr.port}`,
    metadata,
    get served() {
      return served;
    },
    stats,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const ws of clients) ws.close(1001, 'server shutting down');
      // Clients that do not answer the close handshake quickly are cut off.
      const timer = setTimeout(() => {
        for (const ws of clients) ws.terminate();
        httpServer.closeAllConnections();
      }, 2000);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      httpServer.closeIdleConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      clearTimeout(timer);
      await queue.idle().catch(() => undefined);
    },
  };
}

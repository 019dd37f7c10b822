// qvla serve: the openpi-compatible WebSocket policy server (src/server/).
import { readFileSync } from 'node:fs';
import { startServer, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS, DEFAULT_MAX_QUEUE } from '../server/server.js';
import { parseMapping, type ObservationMapping } from '../server/observation.js';
import { UsageError, getFlag, getNumber, getString, DEVICE_INFO_OPT, HELP_OPT, type CommandSpec, type Parsed } from './args.js';
import { CHECKPOINT_OPT, F16_OPT, MAX_PIXELS_OPT, checkpointDir, loadPolicy, policyOptions, readRegistry } from './common.js';
import { fmtBytes } from './format.js';

export const SERVE_SPEC: CommandSpec = {
  name: 'serve',
  usage: 'serve [--checkpoint DIR] [--host 127.0.0.1] [--port 8000] [options]',
  summary: "Serve the policy over WebSocket + msgpack, wire-compatible with openpi's websocket_policy_server (openpi_client.WebsocketClientPolicy connects as is). GET /healthz (live), /readyz (warm, not draining), /stats (JSON counters), /metrics (Prometheus).",
  description:
    'Requests from all connections share one queue; whenever the GPU is free, up to --max-batch waiting requests run as one\n' +
    'batched call (each reply bit-identical to the unbatched one; --max-batch 1 = one at a time). SIGTERM (or Ctrl-C) drains:\n' +
    'no new connections, new requests get a retryable error, queued and running requests finish, connections close with\n' +
    '1001, exit 0 (a second signal closes at once). Protocol, layouts, metrics, HAProxy recipe: src/server/README.md.',
  options: [
    CHECKPOINT_OPT,
    { name: 'host', type: 'string', metavar: 'HOST', help: 'address to listen on', defaultText: '127.0.0.1' },
    { name: 'port', type: 'int', metavar: 'N', min: 0, max: 65535, help: 'TCP port (0 = any free port)', defaultText: '8000' },
    { name: 'embodiment', short: 'e', type: 'string', metavar: 'NAME', help: 'embodiment for requests that name none', defaultText: "the mapping's default_embodiment, else the first" },
    { name: 'token', type: 'string', metavar: 'SECRET', help: 'require "Authorization: Bearer SECRET" (or openpi\'s "Api-Key SECRET") on connect; also $QVLA_TOKEN' },
    { name: 'max-message-bytes', type: 'int', metavar: 'N', min: 1024, help: 'largest accepted message (bigger: connection closed with 1009)', defaultText: fmtBytes(DEFAULT_MAX_MESSAGE_BYTES) },
    { name: 'mapping', type: 'string', metavar: 'FILE.json', help: 'observation-key mapping per embodiment (see src/server/README.md)' },
    { name: 'max-steps', type: 'int', metavar: 'N', min: 1, max: 1000, help: 'largest `steps` a request may ask for', defaultText: '100' },
    { name: 'max-batch', type: 'int', metavar: 'N', min: 1, max: 1024, help: 'most requests run together in one batched GPU call (1 = unbatched)', defaultText: String(DEFAULT_MAX_BATCH) },
    { name: 'max-wait-ms', type: 'number', metavar: 'MS', min: 0, max: 10000, help: 'how long a batch that is not full may wait for more requests once the GPU is free', defaultText: String(DEFAULT_MAX_WAIT_MS) },
    { name: 'max-queue', type: 'int', metavar: 'N', min: 1, help: 'requests queued or running at most (beyond: retryable "server busy" error)', defaultText: String(DEFAULT_MAX_QUEUE) },
    F16_OPT,
    MAX_PIXELS_OPT,
    { name: 'no-warmup', type: 'flag', help: 'skip the warm-up batch at start (the first request then compiles the shaders; /readyz is 200 at once)' },
    { name: 'quiet', short: 'q', type: 'flag', help: 'log only errors' },
    DEVICE_INFO_OPT,
    HELP_OPT,
  ],
  examples: [
    'qvla serve --port 8000',
    'qvla serve --checkpoint /models/qwen-vla --host 0.0.0.0 --token "$SECRET" --mapping libero.json',
    '# python: from openpi_client import websocket_client_policy as w; p = w.WebsocketClientPolicy("localhost", 8000)',
  ],
};

function stamp(): string {
  return new Date().toISOString().replace('T', ' ').slice(0, 19);
}

export async function cmdServe(p: Parsed): Promise<number> {
  const dir = checkpointDir(p);
  const { registry } = await readRegistry(dir);
  let mapping: ObservationMapping | null = null;
  const mf = getString(p, 'mapping');
  if (mf !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(mf, 'utf8')) as unknown;
    } catch (e) {
      throw new UsageError(`--mapping ${mf}: ${e instanceof Error ? e.message : String(e)}`);
    }
    try {
      mapping = parseMapping(raw, registry, mf);
    } catch (e) {
      throw new UsageError(`--mapping ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const def = getString(p, 'embodiment') ?? mapping?.defaultEmbodiment ?? registry.keys()[0]!;
  if (!registry.has(def)) throw new UsageError(`--embodiment ${def}: unknown embodiment (known: ${registry.keys().join(', ')})`);
  const token = getString(p, 'token') ?? (process.env['QVLA_TOKEN'] || null);
  if (token !== null && token.length < 1) throw new UsageError('--token must not be empty');
  const quiet = getFlag(p, 'quiet');
  const log = (s: string) => {
    if (!quiet) process.stderr.write(`[${stamp()}] ${s}\n`);
  };

  const policy = await loadPolicy(dir, policyOptions(p), quiet);
  try {
    const server = await startServer({
      policy,
      host: getString(p, 'host') ?? '127.0.0.1',
      port: getNumber(p, 'port') ?? 8000,
      defaultEmbodiment: def,
      token,
      maxMessageBytes: getNumber(p, 'max-message-bytes') ?? DEFAULT_MAX_MESSAGE_BYTES,
      mapping,
      limits: { maxSteps: getNumber(p, 'max-steps') ?? 100 },
      maxBatch: getNumber(p, 'max-batch') ?? DEFAULT_MAX_BATCH,
      maxWaitMs: getNumber(p, 'max-wait-ms') ?? DEFAULT_MAX_WAIT_MS,
      maxQueue: getNumber(p, 'max-queue') ?? DEFAULT_MAX_QUEUE,
      warmup: !getFlag(p, 'no-warmup'),
      checkpoint: dir,
      log,
    });
    const httpUrl = server.url.replace(/^ws:/, 'http:');
    process.stderr.write(
      `qvla serve: listening on ${server.url} (health: ${httpUrl}/healthz, ready: ${httpUrl}/readyz, counters: ${httpUrl}/stats, ${httpUrl}/metrics); ` +
        `embodiments ${registry.keys().join(', ')} (default ${def}); auth ${token ? 'token required' : 'off'}; ` +
        `batching: up to ${getNumber(p, 'max-batch') ?? DEFAULT_MAX_BATCH} per call, wait ≤ ${getNumber(p, 'max-wait-ms') ?? DEFAULT_MAX_WAIT_MS} ms; Ctrl-C or SIGTERM drains and stops\n`,
    );
    // First signal: drain (finish queued work, close connections with 1001, exit 0). Second: close at once.
    let signals = 0;
    const stopped = new Promise<string>((resolve) => {
      const on = (sig: string) => {
        signals++;
        if (signals === 1) {
          process.stderr.write(`qvla serve: ${sig}, draining (again to stop at once)\n`);
          resolve(sig);
        } else {
          process.stderr.write(`qvla serve: ${sig} again, closing now\n`);
          void server.close();
        }
      };
      process.on('SIGINT', () => on('SIGINT'));
      process.on('SIGTERM', () => on('SIGTERM'));
    });
    const first = await Promise.race([server.warm, stopped]);
    if (first === false) {
      process.stderr.write('qvla serve: the warm-up failed (see above); stopping\n');
      await server.close();
      return 1;
    }
    if (typeof first !== 'string') {
      process.stderr.write('qvla serve: ready\n');
      await stopped;
    }
    await server.drain();
    await server.close();
    log(`served ${server.served} request(s)`);
    process.stderr.write(`qvla serve: stopped after serving ${server.served} request(s)\n`);
    return 0;
  } finally {
    policy.destroy();
  }
}

// qvla serve: the openpi-compatible WebSocket policy server (src/server/).
import { readFileSync } from 'node:fs';
import { startServer, DEFAULT_MAX_MESSAGE_BYTES } from '../server/server.js';
import { parseMapping, type ObservationMapping } from '../server/observation.js';
import type { ActRequest } from '../policy/policy.js';
import type { RawImage } from '../preprocess/image.js';
import { UsageError, getFlag, getNumber, getString, DEVICE_INFO_OPT, HELP_OPT, type CommandSpec, type Parsed } from './args.js';
import { CHECKPOINT_OPT, F16_OPT, MAX_PIXELS_OPT, checkpointDir, loadPolicy, plausibleState, policyOptions, readRegistry } from './common.js';
import { fmtBytes, fmtMs } from './format.js';

export const SERVE_SPEC: CommandSpec = {
  name: 'serve',
  usage: 'serve [--checkpoint DIR] [--host 127.0.0.1] [--port 8000] [options]',
  summary: "Serve the policy over WebSocket + msgpack, wire-compatible with openpi's websocket_policy_server (openpi_client.WebsocketClientPolicy connects as is). GET /healthz answers 200 OK; GET /stats returns JSON counters.",
  description: 'Requests from all connections run one at a time in arrival order. Protocol and observation layouts: src/server/README.md.',
  options: [
    CHECKPOINT_OPT,
    { name: 'host', type: 'string', metavar: 'HOST', help: 'address to listen on', defaultText: '127.0.0.1' },
    { name: 'port', type: 'int', metavar: 'N', min: 0, max: 65535, help: 'TCP port (0 = any free port)', defaultText: '8000' },
    { name: 'embodiment', short: 'e', type: 'string', metavar: 'NAME', help: 'embodiment for requests that name none', defaultText: "the mapping's default_embodiment, else the first" },
    { name: 'token', type: 'string', metavar: 'SECRET', help: 'require "Authorization: Bearer SECRET" (or openpi\'s "Api-Key SECRET") on connect; also $QVLA_TOKEN' },
    { name: 'max-message-bytes', type: 'int', metavar: 'N', min: 1024, help: 'largest accepted message (bigger: connection closed with 1009)', defaultText: fmtBytes(DEFAULT_MAX_MESSAGE_BYTES) },
    { name: 'mapping', type: 'string', metavar: 'FILE.json', help: 'observation-key mapping per embodiment (see src/server/README.md)' },
    { name: 'max-steps', type: 'int', metavar: 'N', min: 1, max: 1000, help: 'largest `steps` a request may ask for', defaultText: '100' },
    F16_OPT,
    MAX_PIXELS_OPT,
    { name: 'no-warmup', type: 'flag', help: 'skip the warm-up act() at start (the first request then compiles the shaders)' },
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
    if (!getFlag(p, 'no-warmup')) {
      // One act() per embodiment with grey frames: compiles every pipeline before the first client arrives.
      const t0 = performance.now();
      for (const key of registry.keys()) {
        const emb = registry.get(key);
        const grey: RawImage = { width: 224, height: 224, channels: 3, data: new Uint8Array(224 * 224 * 3).fill(128) };
        const images: Record<string, RawImage> = {};
        for (const c of emb.cameras) images[c] = grey;
        const req: ActRequest = { images, instruction: 'warm up', embodiment: key };
        const st = plausibleState(emb);
        if (st) req.state = st;
        await policy.act(req);
      }
      log(`warm-up done in ${fmtMs(performance.now() - t0)} ms`);
    }
    const server = await startServer({
      policy,
      host: getString(p, 'host') ?? '127.0.0.1',
      port: getNumber(p, 'port') ?? 8000,
      defaultEmbodiment: def,
      token,
      maxMessageBytes: getNumber(p, 'max-message-bytes') ?? DEFAULT_MAX_MESSAGE_BYTES,
      mapping,
      limits: { maxSteps: getNumber(p, 'max-steps') ?? 100 },
      checkpoint: dir,
      log,
    });
    const httpUrl = server.url.replace(/^ws:/, 'http:');
    process.stderr.write(
      `qvla serve: listening on ${server.url} (health: ${httpUrl}/healthz, counters: ${httpUrl}/stats); embodiments ${registry.keys().join(', ')} (default ${def}); ` +
        `auth ${token ? 'token required' : 'off'}; Ctrl-C to stop\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        process.stderr.write(`qvla serve: ${sig}, shutting down\n`);
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        resolve();
      };
      const onInt = () => stop('SIGINT');
      const onTerm = () => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
    await server.close();
    log(`served ${server.served} request(s)`);
    return 0;
  } finally {
    policy.destroy();
  }
}

// qvla web: serves the browser playground (web/) and a checkpoint directory over local HTTP (node:http).
//
//   GET /                  → 302 to /web/index.html (the query string is kept)
//   GET /web/…             → the page's static files (web/)
//   GET /dist/web/…        → the browser bundle (npm run build:web; built here when missing)
//   GET /checkpoint/…      → files of the checkpoint directory, with HEAD and single-range requests (the page reads
//                            safetensors with HTTP range reads); /checkpoint/ itself answers a JSON list of names
// Every answer carries X-Qvla-Kind (file | dir) so the browser platform can tell files from directories.
// Loopback only by default; GET and HEAD only; paths never leave their root (.., NUL and encoded separators refused).
import * as http from 'node:http';
import { createReadStream, existsSync, promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../server/pkg.js';
import { getFlag, getNumber, getString, HELP_OPT, UsageError, type CommandSpec, type Parsed } from './args.js';
import { worldsCheckpointDir, WORLDS_CHECKPOINT_TEXT } from './common.js';

export const WEB_SPEC: CommandSpec = {
  name: 'web',
  usage: 'web [--port N] [--host H] [--checkpoint DIR] [--build]',
  summary: 'Serve the browser playground (qvla on WebGPU in a browser tab) and a checkpoint over local HTTP.',
  description:
    'Open the printed URL in a WebGPU browser (Chrome/Chromium ≥ 113). Page parameters: ?world=&embodiment=&level=&seed=&episodes=' +
    '&solver=&steps=&maxDecisions=&instruction=&dtype=f32|f16&auto=1. Adapters without shader-f16 (SwiftShader) run f32 weights.',
  options: [
    { name: 'port', short: 'p', type: 'int', metavar: 'N', min: 0, max: 65535, help: 'TCP port (0 = any free port)', defaultText: '8080' },
    { name: 'host', type: 'string', metavar: 'H', help: 'address to listen on (0.0.0.0 exposes the checkpoint to the network)', defaultText: '127.0.0.1' },
    { name: 'checkpoint', type: 'string', metavar: 'DIR', help: 'checkpoint directory served at /checkpoint', defaultText: WORLDS_CHECKPOINT_TEXT },
    { name: 'build', type: 'flag', help: 'rebuild the browser bundle (dist/web/) before serving (default: only when it is missing)' },
    HELP_OPT,
  ],
  examples: ['qvla web', 'qvla web --port 9000 --checkpoint weights/toy'],
};

export interface WebServerOptions {
  checkpoint: string;
  port?: number;
  host?: string;
  /** Package root holding web/ and dist/web/ (default: qvla's). */
  root?: string;
  /** Serve /dist/web/ from this directory instead of <root>/dist/web (a bundle built elsewhere, e.g. by a test). */
  bundleDir?: string;
  /** One line per request (default: silent). */
  log?: (line: string) => void;
}

export interface WebServer {
  /** http://host:port/ */
  url: string;
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json; charset=utf-8', '.map': 'application/json; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8', '.md': 'text/plain; charset=utf-8', '.png': 'image/png', '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg', '.svg': 'image/svg+xml',
};

/** `rel` (URL-decoded, '/'-separated) inside `base`, or null when it would leave it or is malformed. */
export function safeJoin(base: string, rel: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const parts = decoded.split('/').filter((s) => s.length > 0);
  if (parts.some((s) => s === '..' || s === '.')) return null;
  const p = nodePath.resolve(base, ...parts);
  const b = nodePath.resolve(base);
  return p === b || p.startsWith(b + nodePath.sep) ? p : null;
}

/** Parses a single `bytes=a-b` / `bytes=a-` / `bytes=-n` range against `size`: [start, end] inclusive, 'bad' (416) or null (ignore). */
export function parseRange(h: string | undefined, size: number): [number, number] | 'bad' | null {
  if (!h) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // multi-range or malformed: the whole file (allowed by RFC 9110)
  let start: number, end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'bad';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start >= size || start > end) return 'bad';
  return [start, end];
}

async function sendPath(req: http.IncomingMessage, res: http.ServerResponse, file: string, listDirs: boolean): Promise<void> {
  let st;
  try {
    st = await fsp.stat(file);
  } catch {
    return void send(res, 404, 'not found\n');
  }
  const head = req.method === 'HEAD';
  if (st.isDirectory()) {
    if (!listDirs) return void send(res, 404, 'not found\n');
    const names = (await fsp.readdir(file, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name).sort();
    const body = JSON.stringify(names);
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'X-Qvla-Kind': 'dir', 'Cache-Control': 'no-cache' });
    return void res.end(head ? undefined : body);
  }
  if (!st.isFile()) return void send(res, 404, 'not found\n');
  const headers: http.OutgoingHttpHeaders = {
    'Content-Type': TYPES[nodePath.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    'X-Qvla-Kind': 'file',
    'Cache-Control': 'no-cache',
    'Last-Modified': st.mtime.toUTCString(),
  };
  const range = parseRange(req.headers.range, st.size);
  if (range === 'bad') {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${st.size}` });
    return void res.end();
  }
  const [start, end] = range ?? [0, st.size - 1];
  const length = st.size === 0 ? 0 : end - start + 1;
  res.writeHead(range ? 206 : 200, {
    ...headers,
    'Content-Length': length,
    ...(range ? { 'Content-Range': `bytes ${start}-${end}/${st.size}` } : {}),
  });
  if (head || length === 0) return void res.end();
  await new Promise<void>((resolve) => {
    const s = createReadStream(file, { start, end });
    s.on('error', () => {
      res.destroy();
      resolve();
    });
    s.on('end', () => resolve());
    s.pipe(res);
  });
}

function send(res: http.ServerResponse, code: number, body: string, extra: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

/** Starts the playground server (see the module comment). */
export async function startWebServer(o: WebServerOptions): Promise<WebServer> {
  const root = o.root ?? packageRoot();
  const routes: [string, string, boolean][] = [
    ['/web/', nodePath.join(root, 'web'), false],
    ['/dist/web/', o.bundleDir ?? nodePath.join(root, 'dist', 'web'), false],
    ['/checkpoint/', nodePath.resolve(o.checkpoint), true],
  ];
  const server = http.createServer((req, res) => {
    const t0 = performance.now();
    res.on('finish', () => o.log?.(`${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(0)} ms`));
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'GET and HEAD only\n', { Allow: 'GET, HEAD' });
      const url = new URL(req.url ?? '/', 'http://localhost');
      const p = url.pathname;
      if (p === '/' || p === '/web' || p === '/index.html') {
        res.writeHead(302, { Location: `/web/index.html${url.search}` });
        return void res.end();
      }
      if (p === '/favicon.ico') return send(res, 204, '');
      for (const [prefix, base, listDirs] of routes) {
        if (p === prefix.slice(0, -1) || p.startsWith(prefix)) {
          const file = safeJoin(base, p.slice(prefix.length));
          if (file === null) return send(res, 400, 'bad path\n');
          return sendPath(req, res, file, listDirs);
        }
      }
      return send(res, 404, 'not found\n');
    })().catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, `${e instanceof Error ? e.message : String(e)}\n`);
      else res.destroy();
    });
  });
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    port,
    server,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Builds dist/web/ with web/build.mjs (esbuild, a devDependency). */
export async function buildWebBundle(root = packageRoot()): Promise<void> {
  const script = nodePath.join(root, 'web', 'build.mjs');
  if (!existsSync(script)) throw new Error(`${script} is missing: the browser bundle cannot be built from this install`);
  let mod: { buildWeb: () => Promise<unknown> };
  try {
    mod = (await import(pathToFileURL(script).href)) as typeof mod;
  } catch (e) {
    throw new Error(`cannot load the bundler (${e instanceof Error ? e.message : String(e)}); install the devDependencies (npm ci) and run npm run build:web`);
  }
  await mod.buildWeb();
}

export async function cmdWeb(p: Parsed): Promise<number> {
  const dir = worldsCheckpointDir(p);
  if (!existsSync(nodePath.join(dir, 'config.json'))) throw new UsageError(`--checkpoint ${dir}: no config.json (not a checkpoint directory)`);
  const root = packageRoot();
  const bundle = nodePath.join(root, 'dist', 'web', 'playground.js');
  if (getFlag(p, 'build') || !existsSync(bundle)) {
    process.stderr.write('building the browser bundle (dist/web/)…\n');
    await buildWebBundle(root);
  }
  const port = getNumber(p, 'port') ?? 8080;
  const host = getString(p, 'host') ?? '127.0.0.1';
  const srv = await startWebServer({ checkpoint: dir, port, host, root });
  process.stdout.write(`qvla playground: ${srv.url}  (checkpoint ${dir}; Ctrl-C to stop)\n`);
  process.stdout.write(`  e.g. ${srv.url}web/index.html?world=tabletop&embodiment=planar&episodes=4&auto=1\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void srv.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

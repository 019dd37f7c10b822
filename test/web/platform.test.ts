// The browser build without a browser: the bundle builds (no node:* import can enter it), `qvla web`'s server
// answers HEAD / range / listing requests and refuses paths outside its roots, and the browser platform
// (src/platform/browser.ts: HTTP range reads, kernels from the generated module) run here in Node, with Dawn as
// its navigator.gpu, loads a checkpoint by URL and acts bit-identically to the Node platform reading the directory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startWebServer, parseRange, safeJoin, type WebServer } from '../../src/cli/cmdWeb.js';
import { setPlatform } from '../../src/platform/index.js';
import { browserPlatform, httpFileSystem, joinUrl, type HttpStats } from '../../src/platform/browser.js';
import { nodePlatform } from '../../src/platform/node.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { Policy } from '../../src/policy/policy.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TINY = path.join(ROOT, 'weights', 'tiny');

let build: typeof import('../../web/build.mjs');
let server: WebServer;

beforeAll(async () => {
  build = await import('../../web/build.mjs');
  server = await startWebServer({ checkpoint: TINY, port: 0 });
});

afterAll(async () => {
  setPlatform(nodePlatform);
  await server?.close();
});

describe('browser bundle', () => {
  it('builds with every kernel inlined and nothing Node-only', async () => {
    const outdir = mkdtempSync(path.join(os.tmpdir(), 'qvla-web-bundle-'));
    const r = await build.buildWeb({ outdir });
    const js = readFileSync(path.join(outdir, 'playground.js'), 'utf8');
    const kernels = build.kernelSources();
    expect(Object.keys(kernels)).toContain('linear');
    for (const name of Object.keys(kernels)) expect(js, name).toContain(JSON.stringify(name));
    expect(js).not.toMatch(/from\s*["']node:|require\(["']node:|from\s*["']webgpu["']/);
    expect(Object.keys(r.metafile.outputs).some((f) => f.endsWith('playground.js'))).toBe(true);
    rmSync(outdir, { recursive: true, force: true });
  }, 120_000);
});

describe('qvla web server', () => {
  const url = (p: string) => new URL(p, server.url).href;
  /** GET with the path sent as written (no URL normalisation). */
  const rawStatus = (p: string) => new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.port, path: p }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  it('serves the checkpoint with HEAD, ranges and a JSON listing', async () => {
    const file = readFileSync(path.join(TINY, 'model.safetensors'));
    const head = await fetch(url('/checkpoint/model.safetensors'), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(file.length));
    expect(head.headers.get('accept-ranges')).toBe('bytes');
    expect(head.headers.get('x-qvla-kind')).toBe('file');
    const part = await fetch(url('/checkpoint/model.safetensors'), { headers: { Range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${file.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(file.subarray(100, 200))).toBe(true);
    const tail = await fetch(url('/checkpoint/model.safetensors'), { headers: { Range: 'bytes=-5' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(file.subarray(file.length - 5))).toBe(true);
    expect((await fetch(url('/checkpoint/model.safetensors'), { headers: { Range: `bytes=${file.length}-` } })).status).toBe(416);
    const list = await fetch(url('/checkpoint/'));
    expect(list.headers.get('x-qvla-kind')).toBe('dir');
    expect(await list.json()).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));
    const root = await fetch(url('/?world=ball&auto=1'), { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/web/index.html?world=ball&auto=1');
    expect((await fetch(url('/web/index.html'))).headers.get('content-type')).toContain('text/html');
  });

  it('refuses other methods and paths outside its roots', async () => {
    expect((await fetch(url('/checkpoint/config.json'), { method: 'POST' })).status).toBe(405);
    // dot segments (plain or encoded; sent raw: fetch would normalise them away) resolve within the URL: never a file outside
    expect(await rawStatus('/checkpoint/%2e%2e/%2e%2e/package.json')).toBe(404);
    expect(await rawStatus('/checkpoint/../../package.json')).toBe(404);
    expect(await rawStatus('/checkpoint/%2e%2e/config.json')).toBe(404);
    expect((await fetch(url('/checkpoint/..%2f..%2fpackage.json'))).status).toBe(400);
    expect((await fetch(url('/web/%00'))).status).toBe(400);
    expect((await fetch(url('/src/index.ts'))).status).toBe(404);
    expect(safeJoin('/a/b', 'c/%2e%2e/d')).toBeNull();
    expect(safeJoin('/a/b', 'c/d')).toBe(path.resolve('/a/b/c/d'));
    expect(parseRange('bytes=0-0', 10)).toEqual([0, 0]);
    expect(parseRange('bytes=5-100', 10)).toEqual([5, 9]);
    expect(parseRange('bytes=0-1,4-5', 10)).toBeNull();
    expect(parseRange('bytes=10-', 10)).toBe('bad');
  });
});

describe('browser platform (run in Node)', () => {
  it('reads safetensors over HTTP range requests, across block boundaries, and from a server without ranges', async () => {
    const stats: HttpStats = { requests: 0, bytes: 0 };
    const u = joinUrl(server.url, 'checkpoint', 'model.safetensors');
    const fsys = httpFileSystem({ blockBytes: 4096, cacheBlocks: 2, stats });
    const local = await openSafetensors(path.join(TINY, 'model.safetensors'));
    setPlatform({ ...nodePlatform, fs: fsys });
    const remote = await openSafetensors(u);
    setPlatform(nodePlatform);
    try {
      expect([...remote.tensors.keys()]).toEqual([...local.tensors.keys()]);
      for (const name of [...local.tensors.keys()].filter((_, i) => i % 7 === 0)) {
        expect(Buffer.from(await remote.readTensor(name)).equals(Buffer.from(await local.readTensor(name))), name).toBe(true);
      }
      expect(stats.requests).toBeGreaterThan(2);
    } finally {
      await remote.close();
      await local.close();
    }
    // a plain server that ignores Range and has no HEAD: one whole-file GET
    const body = readFileSync(path.join(TINY, 'config.json'));
    const plain = http.createServer((req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(405).end();
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(body);
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const f = await httpFileSystem().open(`http://127.0.0.1:${(plain.address() as { port: number }).port}/x`);
      const buf = new Uint8Array(10);
      expect((await f.read(buf, 0, 10, 5)).bytesRead).toBe(10);
      expect(Buffer.from(buf).equals(body.subarray(5, 15))).toBe(true);
      expect((await f.stat()).size).toBe(body.length);
    } finally {
      plain.close();
    }
  });

  it('loads a checkpoint by URL with the bundled kernels and acts bit-identically to the Node platform', async () => {
    const req = { instruction: 'go to the door', embodiment: 'nav', seed: 3, steps: 2 } as const;
    // the browser platform, except that navigator.gpu is Dawn (no browser here); a sample image given as a URL
    setPlatform({ ...browserPlatform({ kernels: build.kernelSources() }), gpu: nodePlatform.gpu });
    let viaHttp: Float32Array;
    const p1 = await Policy.load(joinUrl(server.url, 'checkpoint'), { weightDtype: 'f32' });
    try {
      viaHttp = (await p1.act({ ...req, images: { front: joinUrl(server.url, 'checkpoint', 'samples', 'nav_front.png') } })).raw;
    } finally {
      p1.destroy();
    }
    setPlatform(nodePlatform);
    const p2 = await Policy.load(TINY, { weightDtype: 'f32' });
    try {
      const local = (await p2.act({ ...req, images: { front: path.join(TINY, 'samples', 'nav_front.png') } })).raw;
      expect(Buffer.from(viaHttp.buffer).equals(Buffer.from(local.buffer))).toBe(true);
    } finally {
      p2.destroy();
    }
  }, 120_000);
});

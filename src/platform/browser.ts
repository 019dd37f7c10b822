// The browser platform: checkpoint files over HTTP (fetch; a "path" is a URL, relative ones resolve against the
// page), WebGPU from navigator.gpu, kernel sources handed in by the bundle (web/build.mjs inlines kernels/).
//
// Safetensors files are read with HTTP range requests in blocks (default 8 MiB, the last few kept), so a large
// checkpoint streams to the GPU in bounded memory as it does from disk in Node; a server that ignores Range
// (answers 200 with the whole body) is handled by keeping that body and serving every read from it.
// No DOM types here: this file also compiles under the Node tsconfig. Canvas / createImageBitmap helpers for
// frames live with the page (web/src/frames.ts).
import type { FileSystem, PathKind, Platform, RandomAccessFile } from './types.js';

export interface HttpStats {
  requests: number;
  /** body bytes received */
  bytes: number;
}

export interface BrowserPlatformOptions {
  /** kernels/<file>.wgsl sources by file name without extension. */
  kernels: Readonly<Record<string, string>>;
  fetch?: typeof fetch;
  /** Range-read block size in bytes (default 8 MiB). */
  blockBytes?: number;
  /** Blocks kept per open file (default 8). */
  cacheBlocks?: number;
  /** Counters, updated in place (cold-load accounting). */
  stats?: HttpStats;
}

const MiB = 1024 * 1024;

function httpError(res: Response, url: string): Error {
  return new Error(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''} for ${url}`);
}

/** Joins URL segments: `join('/ckpt/', 'a.json')` = `/ckpt/a.json`. */
export function joinUrl(...parts: string[]): string {
  const kept = parts.filter((p) => p.length > 0);
  if (kept.length === 0) return '';
  return kept
    .map((p, i) => (i === 0 ? p.replace(/\/+$/, '') : p.replace(/^\/+|\/+$/g, '')))
    .join('/');
}

class HttpFile implements RandomAccessFile {
  private whole: Uint8Array | null = null;
  private readonly blocks = new Map<number, Promise<Uint8Array>>();
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly size: number,
    private readonly f: typeof fetch,
    private readonly blockBytes: number,
    private readonly cacheBlocks: number,
    private readonly stats: HttpStats,
    whole: Uint8Array | null,
  ) {
    this.whole = whole;
  }

  static async open(url: string, f: typeof fetch, o: Required<Pick<BrowserPlatformOptions, 'blockBytes' | 'cacheBlocks' | 'stats'>>): Promise<HttpFile> {
    const head = await f(url, { method: 'HEAD' });
    o.stats.requests++;
    const len = head.ok ? Number(head.headers.get('content-length') ?? NaN) : NaN;
    const ranges = head.ok && head.headers.get('accept-ranges') === 'bytes';
    if (head.status === 404) throw httpError(head, url);
    if (Number.isSafeInteger(len) && len >= 0 && ranges) return new HttpFile(url, len, f, o.blockBytes, o.cacheBlocks, o.stats, null);
    // No usable HEAD (or no range support): the whole file, once.
    const res = await f(url);
    o.stats.requests++;
    if (!res.ok) throw httpError(res, url);
    const body = new Uint8Array(await res.arrayBuffer());
    o.stats.bytes += body.length;
    return new HttpFile(url, body.length, f, o.blockBytes, o.cacheBlocks, o.stats, body);
  }

  async stat(): Promise<{ size: number; isFile(): boolean }> {
    return { size: this.size, isFile: () => true };
  }

  private block(index: number): Promise<Uint8Array> {
    let p = this.blocks.get(index);
    if (p) {
      this.blocks.delete(index); // re-insert: most recently used last
      this.blocks.set(index, p);
      return p;
    }
    const start = index * this.blockBytes;
    const end = Math.min(this.size, start + this.blockBytes) - 1;
    p = (async () => {
      const res = await this.f(this.url, { headers: { Range: `bytes=${start}-${end}` } });
      this.stats.requests++;
      if (res.status === 200) {
        // the server ignored Range: keep the whole body
        const body = new Uint8Array(await res.arrayBuffer());
        this.stats.bytes += body.length;
        this.whole = body;
        return body.subarray(start, end + 1);
      }
      if (res.status !== 206) throw httpError(res, this.url);
      const body = new Uint8Array(await res.arrayBuffer());
      this.stats.bytes += body.length;
      if (body.length !== end - start + 1) throw new Error(`HTTP range ${start}-${end} of ${this.url}: got ${body.length} bytes`);
      return body;
    })();
    p.catch(() => this.blocks.delete(index));
    this.blocks.set(index, p);
    while (this.blocks.size > this.cacheBlocks) this.blocks.delete(this.blocks.keys().next().value!);
    return p;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    if (this.closed) throw new Error(`${this.url}: file is closed`);
    const n = Math.max(0, Math.min(length, this.size - position));
    if (n === 0) return { bytesRead: 0 };
    if (this.whole) {
      buffer.set(this.whole.subarray(position, position + n), offset);
      return { bytesRead: n };
    }
    let done = 0;
    while (done < n) {
      const pos = position + done;
      const bi = Math.floor(pos / this.blockBytes);
      const blk = await this.block(bi);
      if (this.whole) {
        const w: Uint8Array = this.whole;
        buffer.set(w.subarray(pos, position + n), offset + done);
        return { bytesRead: n };
      }
      const from = pos - bi * this.blockBytes;
      const take = Math.min(n - done, blk.length - from);
      buffer.set(blk.subarray(from, from + take), offset + done);
      done += take;
    }
    return { bytesRead: n };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.blocks.clear();
    this.whole = null;
  }
}

export function httpFileSystem(opts: Omit<BrowserPlatformOptions, 'kernels'> = {}): FileSystem {
  const f: typeof fetch = opts.fetch ?? ((...a: Parameters<typeof fetch>) => globalThis.fetch(...a));
  const o = { blockBytes: opts.blockBytes ?? 8 * MiB, cacheBlocks: opts.cacheBlocks ?? 8, stats: opts.stats ?? { requests: 0, bytes: 0 } };
  const get = async (url: string): Promise<Response> => {
    const res = await f(url);
    o.stats.requests++;
    if (!res.ok) throw httpError(res, url);
    return res;
  };
  const looksLikeFile = (url: string) => /\.[A-Za-z0-9]+$/.test(url.replace(/[?#].*$/, '').replace(/\/+$/, '').split('/').pop() ?? '');
  return {
    join: joinUrl,
    async kind(url): Promise<PathKind> {
      const res = await f(url, { method: 'HEAD' });
      o.stats.requests++;
      const told = res.headers.get('x-qvla-kind');
      if (res.ok) {
        if (told === 'dir' || told === 'file') return told;
        return looksLikeFile(url) ? 'file' : 'dir';
      }
      // A static server may have nothing at a directory's own URL: a directory with a config.json is one.
      if (!looksLikeFile(url)) {
        const cfg = await f(joinUrl(url, 'config.json'), { method: 'HEAD' });
        o.stats.requests++;
        if (cfg.ok) return 'dir';
      }
      return null;
    },
    readText: async (url) => (await get(url)).text(),
    async readBytes(url) {
      const body = new Uint8Array(await (await get(url)).arrayBuffer());
      o.stats.bytes += body.length;
      return body;
    },
    async list(dir) {
      const url = joinUrl(dir, '') + '/';
      const res = await f(url, { headers: { Accept: 'application/json' } });
      o.stats.requests++;
      let names: unknown = null;
      if (res.ok && (res.headers.get('content-type') ?? '').includes('json')) names = await res.json();
      if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
        throw new Error(
          `cannot list ${url} over HTTP (no JSON listing; \`qvla web\` serves one): name the weights model.safetensors or add model.safetensors.index.json`,
        );
      }
      return names as string[];
    },
    open: (url) => HttpFile.open(url, f, o),
  };
}

export function browserPlatform(opts: BrowserPlatformOptions): Platform {
  const fs = httpFileSystem(opts);
  return {
    name: 'browser',
    fs,
    async gpu(): Promise<GPU> {
      const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
      if (!gpu) {
        throw new Error(
          'navigator.gpu is missing: this browser has no WebGPU (Chrome/Chromium ≥ 113 on a secure origin — https or localhost; ' +
            'headless Chromium needs --enable-unsafe-webgpu)',
        );
      }
      return gpu;
    },
    kernelSource(file) {
      const src = opts.kernels[file];
      if (src === undefined) throw new Error(`kernel ${file}.wgsl is not in the bundle (rebuild with npm run build:web)`);
      return src;
    },
  };
}

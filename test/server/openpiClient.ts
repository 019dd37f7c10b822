// A test client speaking openpi's wire protocol (as openpi_client.WebsocketClientPolicy does): connect, read
// the metadata frame, then send msgpack observations (numpy arrays as {__ndarray__, data, dtype, shape} maps
// with bin keys) and read one reply per request. Text frames are errors (openpi raises on them).
import WebSocket from 'ws';
import { packb, unpackb } from '../../src/server/msgpack.js';

export type Frame = { kind: 'binary'; bytes: Uint8Array } | { kind: 'text'; text: string } | { kind: 'close'; code: number; reason: string };

export class OpenpiClient {
  metadata: Record<string, unknown> = {};
  private frames: Frame[] = [];
  private waiters: ((f: Frame) => void)[] = [];
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      this.push(isBinary ? { kind: 'binary', bytes: new Uint8Array(buf) } : { kind: 'text', text: buf.toString('utf8') });
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.push({ kind: 'close', code, reason: reason.toString() });
    });
    ws.on('error', () => undefined);
  }

  private push(f: Frame): void {
    const w = this.waiters.shift();
    if (w) w(f);
    else this.frames.push(f);
  }

  /** The next frame (or the close). */
  next(timeoutMs = 60_000): Promise<Frame> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.closed) return Promise.resolve({ kind: 'close', ...this.closed });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for a frame')), timeoutMs);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }

  /** Connects and reads the metadata frame. Rejects with the HTTP status on a refused upgrade. */
  static connect(url: string, headers: Record<string, string> = {}): Promise<OpenpiClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, perMessageDeflate: false, maxPayload: 0 });
      const c = new OpenpiClient(ws);
      ws.once('unexpected-response', (_req, res) => {
        reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode }));
        ws.terminate();
      });
      ws.once('error', (e) => reject(e));
      ws.once('open', () => {
        c.next().then((f) => {
          if (f.kind !== 'binary') return reject(new Error(`expected the metadata frame, got ${f.kind}`));
          c.metadata = unpackb(f.bytes) as Record<string, unknown>;
          resolve(c);
        }, reject);
      });
    });
  }

  send(obs: unknown): Promise<void> {
    return this.sendRaw(packb(obs));
  }

  sendRaw(data: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => this.ws.send(data, (e) => (e ? reject(e) : resolve())));
  }

  /** Reads one reply: the decoded map, or the text / close frame. */
  async reply(): Promise<Record<string, unknown> | Frame> {
    const f = await this.next();
    return f.kind === 'binary' ? (unpackb(f.bytes) as Record<string, unknown>) : f;
  }

  async infer(obs: unknown): Promise<Record<string, unknown>> {
    await this.send(obs);
    const r = await this.reply();
    if ('kind' in r && (r.kind === 'text' || r.kind === 'close')) throw new Error(`server answered with a ${r.kind} frame: ${JSON.stringify(r)}`);
    return r as Record<string, unknown>;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

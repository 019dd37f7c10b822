// The scale-out recipe, tested: HAProxy (tools/fleet/haproxy.cfg, health checks on /readyz) in front of two
// `qvla serve` processes on loopback. Several robot clients stream requests (each with a request id) through the
// balancer; one server gets SIGTERM mid-stream. Clients reconnect through HAProxy and resend only requests that
// got no reply or a retryable error. Then: every request answered exactly once (client side: one action reply
// per id; server side: each id served by exactly one server, once), 0 lost, 0 duplicated, the drained server
// exited 0. Loopback only (127.0.0.1, ephemeral ports), bounded request count and time; everything it starts it
// stops. Skipped, saying so, only when haproxy is not installed (tools/setup.sh installs it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import * as net from 'node:net';
import * as nodePath from 'node:path';
import { decodeImageFile } from '../../src/preprocess/image.js';
import { NdArray } from '../../src/server/ndarray.js';
import { unpackb } from '../../src/server/msgpack.js';
import { OpenpiClient } from './openpiClient.js';
import { ROOT, ensureBuilt } from '../cli/builtCli.js';

const CLIENTS = 4;
const PER_CLIENT = 10;
/** SIGTERM server 1 once this many requests have been answered. */
const KILL_AFTER = 10;
const DEADLINE_MS = 150_000;

function findHaproxy(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; }'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return p ? p : null;
}

const HAPROXY = findHaproxy();
if (!HAPROXY) {
  console.warn('fleet test SKIPPED: haproxy is not installed (tools/setup.sh installs it with apt-get; or: apt-get install haproxy)');
}

interface Proc {
  name: string;
  child: ChildProcess;
  out: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
}

const procs: Proc[] = [];

function start(name: string, cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { name, child, out: '', exited: false, exit: null as never };
  p.exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    p.exited = true;
    resolve({ code, signal });
  }));
  child.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (p.out += d.toString()));
  procs.push(p);
  return p;
}

async function waitFor<T>(what: string, f: () => T | null | undefined | false, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function startServerProc(name: string): Promise<{ proc: Proc; port: number }> {
  const proc = start(name, process.execPath, [nodePath.join(ROOT, 'bin', 'qvla.js'), 'serve', '--checkpoint', 'weights/tiny', '--port', '0', '--max-wait-ms', '5']);
  const port = await waitFor(`${name} to listen`, () => {
    if (proc.exited) throw new Error(`${name} exited early:\n${proc.out}`);
    const m = /listening on ws:\/\/127\.0\.0\.1:(\d+)/.exec(proc.out);
    return m ? Number(m[1]) : null;
  }, 60_000);
  return { proc, port };
}

/** Request ids served by a server (its log line for every reply with actions that was sent). */
function servedIds(p: Proc): string[] {
  return [...p.out.matchAll(/: #\d+ \S+ .*\(request_id ([^)]+)\)$/gm)].map((m) => m[1]!);
}

afterAll(async () => {
  for (const p of procs) if (!p.exited) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exit));
});

describe.skipIf(!HAPROXY)('fleet: HAProxy + two qvla serve processes, one SIGTERMed mid-stream', () => {
  beforeAll(() => {
    expect(ensureBuilt()).toBe(true);
  }, 180_000);

  it('every request is answered exactly once (0 lost, 0 duplicated); the drained server exits 0', async () => {
    const deadline = Date.now() + DEADLINE_MS;
    const [s1, s2] = await Promise.all([startServerProc('server 1'), startServerProc('server 2')]);
    const fleetPort = await freePort();
    const hap = start('haproxy', HAPROXY!, ['-f', nodePath.join(ROOT, 'tools', 'fleet', 'haproxy.cfg'), '-db'], {
      FLEET_BIND: `127.0.0.1:${fleetPort}`, QVLA_S1: `127.0.0.1:${s1.port}`, QVLA_S2: `127.0.0.1:${s2.port}`,
    });
    // both servers warm (their /readyz answers 200: HAProxy's checks take them into rotation)
    await waitFor('both servers ready', () => s1.proc.out.includes('qvla serve: ready') && s2.proc.out.includes('qvla serve: ready'), 90_000);
    await new Promise((r) => setTimeout(r, 2500)); // rise 2 × inter 1 s
    expect(hap.exited, hap.out).toBe(false);
    const url = `ws://127.0.0.1:${fleetPort}`;

    const front = await decodeImageFile('weights/tiny/samples/nav_front.png');
    const { width: W, height: H } = front;
    const chw = new Uint8Array(3 * H * W);
    for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) chw[c * H * W + i] = front.data[front.channels * i + Math.min(c, front.channels - 1)]!;
    const image = NdArray.fromUint8(chw, [3, H, W]);

    const answered = new Map<string, number>();
    let answeredTotal = 0;
    let unknownReplies = 0;
    const retryableSeen: string[] = [];
    let reconnects = 0;
    let resends = 0;
    let killedAt = -1;
    let killed: Promise<unknown> | null = null;

    const connect = async (): Promise<OpenpiClient> => {
      for (let k = 0; ; k++) {
        try {
          return await OpenpiClient.connect(url);
        } catch (e) {
          if (k >= 100 || Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };

    const robot = async (r: number): Promise<void> => {
      let c = await connect();
      for (let j = 0; j < PER_CLIENT; j++) {
        const id = `robot${r}-${j}`;
        for (let attempt = 0; ; attempt++) {
          if (attempt > 20 || Date.now() > deadline) throw new Error(`${id}: no answer after ${attempt} attempts`);
          if (attempt > 0) resends++;
          let reply: Record<string, unknown> | null = null;
          try {
            if (c.closed) throw new Error('closed');
            await c.send({ images: { front: image }, prompt: `go to waypoint ${j}`, embodiment: 'nav', steps: 2, seed: r * 100 + j, request_id: id });
            const f = await c.next(60_000);
            if (f.kind === 'binary') reply = unpackb(f.bytes) as Record<string, unknown>;
          } catch {
            reply = null;
          }
          if (reply && reply['error'] === undefined) {
            if (reply['request_id'] !== id) {
              unknownReplies++;
              throw new Error(`${id}: a reply for ${String(reply['request_id'])}`);
            }
            answered.set(id, (answered.get(id) ?? 0) + 1);
            answeredTotal++;
            if (answeredTotal === KILL_AFTER && !killed) {
              killedAt = answeredTotal;
              s1.proc.child.kill('SIGTERM');
              killed = s1.proc.exit;
            }
            break;
          }
          if (reply && reply['retryable'] !== true) throw new Error(`${id}: non-retryable error ${JSON.stringify(reply)}`);
          if (reply) retryableSeen.push(`${id}: ${String(reply['kind'])}`);
          // no reply (the connection closed) or a retryable error: reconnect through the balancer, resend
          await c.close().catch(() => undefined);
          c = await connect();
          reconnects++;
        }
      }
      await c.close();
    };

    await Promise.all(Array.from({ length: CLIENTS }, (_, r) => robot(r)));
    expect(killedAt).toBe(KILL_AFTER);
    const e1 = await s1.proc.exit;
    expect(e1, s1.proc.out).toEqual({ code: 0, signal: null });

    // client side: every id exactly one action reply, none missing, none extra
    const ids = Array.from({ length: CLIENTS }, (_, r) => Array.from({ length: PER_CLIENT }, (_, j) => `robot${r}-${j}`)).flat();
    expect(unknownReplies).toBe(0);
    expect(ids.filter((id) => answered.get(id) !== 1), 'lost or duplicated (client side)').toEqual([]);
    expect(answered.size).toBe(ids.length);

    // stop the rest: server 2 drains too and exits 0; HAProxy stops
    s2.proc.child.kill('SIGTERM');
    expect(await s2.proc.exit, s2.proc.out).toEqual({ code: 0, signal: null });
    hap.child.kill('SIGTERM');
    await hap.exit;

    // server side: each id served (an action reply sent) by exactly one server, exactly once
    const served1 = servedIds(s1.proc);
    const served2 = servedIds(s2.proc);
    const all = [...served1, ...served2].sort();
    expect(all, 'every id served exactly once across the fleet').toEqual([...ids].sort());
    // it was a real fail-over: server 1 had work when it was stopped, both served, clients came back through HAProxy
    expect(served1.length).toBeGreaterThan(0);
    expect(served2.length).toBeGreaterThan(0);
    const drainLine = /draining: no new connections; finishing (\d+) queued or running/.exec(s1.proc.out);
    expect(drainLine, s1.proc.out).not.toBeNull();
    expect(reconnects).toBeGreaterThan(0);
    console.log(
      `fleet: ${ids.length} requests from ${CLIENTS} clients; server 1 served ${served1.length} (SIGTERM after ${KILL_AFTER} answers, ` +
        `${drainLine![1]} queued or running then; exit 0), server 2 served ${served2.length}; ${reconnects} reconnects, ${resends} resends ` +
        `(retryable errors: ${retryableSeen.join(', ') || 'none'}); lost 0, duplicated 0`,
    );
  }, DEADLINE_MS + 60_000);
});

// `qvla bench serve`: throughput (requests/s) and client-side latency (p50 / p99) of the policy server against the
// number of concurrent clients, batched (`--max-batch N`) vs unbatched (`--max-batch 1`), in one run.
//
// Two `qvla serve` processes (the built CLI, as deployed) are started side by side on loopback — one batched, one
// unbatched, same checkpoint and options otherwise — and stay up for the whole run; only one of them has work at
// any time. Per client count C and mode: C WebSocket clients (openpi protocol, in this process) each send one
// warm-up request and then run closed-loop (send, wait for the reply, send the next) for `--duration` seconds.
// Requests completed inside that window count: throughput = completed / (time from the start of the window to
// the last completion in it) — not / window: a batched server completes requests in bursts of a whole batch, and
// with batches of several seconds (lavapipe) the batch cut off by the window's end would otherwise count as
// idle time (up to one batch of the window); latency = send → reply as the client sees it. The two modes alternate which goes first from one client count to the next, so a drift in
// the machine's load hits both alike. From each server's /stats: the mean batch size of the window; from
// /proc: the server process's CPU time per request (on a software adapter, lavapipe's workers run inside it).
//
// Workload (as `qvla bench batch`): widowx, one synthetic 128×128 frame per client (different per client), the
// same instruction, a state and a seed per request, 10 Euler steps. Correctness: each client's warm-up request
// has a fixed seed; its reply must be bit-identical between the two servers (the batched one answers it inside
// a burst of C); `mismatches` counts differences (must be 0).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import * as http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { HELP_OPT, UsageError, formatHelp, getNumber, getString, parseArgs, parseIntList, type CommandSpec } from '../cli/args.js';
import { packb, unpackb } from '../server/msgpack.js';
import { NdArray } from '../server/ndarray.js';
import { DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS } from '../server/batcher.js';
import { fmt, formatHeader, formatTable, machineHeader, pinLpNumThreads, type BenchHeader, writeJsonReport } from './env.js';
import { percentile } from './stats.js';
import { BATCH_INSTRUCTION, WORKLOAD_OPTS, syntheticFrame, workloadOptions } from './batch.js';
import { DEFAULT_WIDOWX_STATE } from './steps.js';
import { panelChart, writePlot, type Series } from '../plot/index.js';
import { Gpu } from '../gpu/device.js';
import { Policy, type ActResult } from '../policy/policy.js';
import { batchRequests } from './batch.js';

export const DEFAULT_CLIENTS = [1, 2, 4, 8, 16] as const;

export interface ServeBenchOptions {
  clients?: number[];
  /** Measured window per (client count, mode), seconds (default 20). */
  durationS?: number;
  /** The batched server's --max-batch / --max-wait-ms (defaults: qvla serve's). */
  maxBatch?: number;
  maxWaitMs?: number;
  steps?: number;
  imageSize?: number;
  checkpoint?: string;
  weightDtype?: 'f32' | 'f16';
  json?: string;
  plot?: string;
  log?: (line: string) => void;
  command?: string;
}

export interface ServeCell {
  clients: number;
  mode: 'batched' | 'unbatched';
  maxBatch: number;
  /** requests completed in the window */
  completed: number;
  windowS: number;
  /** completed / busyS */
  throughput: number;
  /** seconds from the window's start to its last completion */
  busyS?: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** mean rows per GPU call during the window (server /stats) */
  meanBatch: number;
  /** server process CPU ms (user + system) per completed request */
  serverCpuMsPerRequest: number;
  /** fraction of the window the server spent in GPU calls (its /stats busy_s; the rest: waiting for requests) */
  gpuBusy?: number;
  /** server process CPU time / wall time over the window (cores it kept busy, lavapipe's workers included) */
  serverCores?: number;
  /** 1-minute load average when the point started */
  loadAvg?: number;
}

export interface ServeReport {
  header: BenchHeader;
  command: string;
  checkpoint: string;
  weightDtype: 'f32' | 'f16';
  steps: number;
  imageSize: number;
  durationS: number;
  maxBatch: number;
  maxWaitMs: number;
  cells: ServeCell[];
  /** batched / unbatched throughput per client count */
  speedup: { clients: number; throughput: number }[];
  /** warm-up replies that differed in any bit between the two servers (must be 0) */
  mismatches: number;
}

interface ServerProc {
  child: ChildProcess;
  port: number;
  out: string;
  exit: Promise<number | null>;
  metadata: Record<string, unknown> | null;
}

function repoRoot(): string {
  // dist/src/bench/serve.js or src/bench/serve.ts → the package root
  let d = path.dirname(fileURLToPath(import.meta.url));
  for (let k = 0; k < 5; k++) {
    if (existsSync(path.join(d, 'package.json')) && existsSync(path.join(d, 'bin', 'qvla.js'))) return d;
    d = path.dirname(d);
  }
  throw new Error('qvla bench serve: cannot find the package root (bin/qvla.js)');
}

async function startServe(args: string[], log: (l: string) => void): Promise<ServerProc> {
  const root = repoRoot();
  const child = spawn(process.execPath, [path.join(root, 'bin', 'qvla.js'), 'serve', '--port', '0', '--quiet', ...args], {
    cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: process.env,
  });
  const p: ServerProc = { child, port: 0, out: '', metadata: null, exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stderr!.on('data', (d: Buffer) => (p.out += d.toString()));
  const t0 = Date.now();
  for (;;) {
    const m = /listening on ws:\/\/127\.0\.0\.1:(\d+)/.exec(p.out);
    if (m && p.out.includes('qvla serve: ready')) {
      p.port = Number(m[1]);
      break;
    }
    if (child.exitCode !== null) throw new Error(`qvla serve ${args.join(' ')} exited (${child.exitCode}):\n${p.out}`);
    if (Date.now() - t0 > 300_000) throw new Error(`qvla serve ${args.join(' ')} not ready after 300 s:\n${p.out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  log(`qvla serve ${args.join(' ')}: ready on port ${p.port} (pid ${child.pid})`);
  return p;
}

function getJson(port: number, p: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${port}${p}`, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => {
        try {
          resolve(JSON.parse(b) as Record<string, unknown>);
        } catch (e) {
          reject(e);
        }
      });
    }).on('error', reject);
  });
}

/** user + system CPU ms of a process (Linux /proc; NaN elsewhere). */
function procCpuMs(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / 100) * 1000; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

/** One openpi client: send an observation, await its reply (a binary msgpack map). */
class Client {
  private waiters: ((m: Record<string, unknown>) => void)[] = [];
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: WebSocket.RawData) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      const m = unpackb(new Uint8Array(buf)) as Record<string, unknown>;
      const w = this.waiters.shift();
      if (w) w(m);
    });
  }

  static connect(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: 0 });
      let c: Client | null = null;
      ws.once('error', reject);
      ws.once('open', () => {
        c = new Client(ws);
        c.waiters.push(() => resolve(c!)); // the metadata frame
      });
    });
  }

  infer(frame: Uint8Array): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.waiters.push((m) => (m['error'] !== undefined ? reject(new Error(`server error: ${String(m['error'])}`)) : resolve(m)));
      this.ws.send(frame, (e) => e && reject(e));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** The request frames of client k: the same frame and instruction every time, the seed varies. */
function requestFrame(k: number, seed: number, imageSize: number, steps: number, frame: NdArray): Uint8Array {
  return packb({
    images: { image_0: frame },
    state: NdArray.fromFloat32(Float32Array.from(DEFAULT_WIDOWX_STATE.map((v, i) => v + 0.01 * ((k + i) % 5))), [8]),
    prompt: BATCH_INSTRUCTION,
    embodiment: 'widowx',
    seed,
    steps,
    solver: 'euler',
    request_id: `c${k}-s${seed}`,
  });
}

function actionBits(m: Record<string, unknown>): string {
  const a = m['actions'];
  return a instanceof NdArray ? Buffer.from(a.data).toString('hex') : '';
}

async function runCell(
  srv: ServerProc, mode: ServeCell['mode'], maxBatch: number, C: number, o: { durationS: number; steps: number; imageSize: number; frames: NdArray[] },
  log: (l: string) => void,
): Promise<{ cell: ServeCell; warmBits: string[] }> {
  const clients = await Promise.all(Array.from({ length: C }, () => Client.connect(srv.port)));
  // warm-up: one request per client at once (fixed seed = client index: compared across the two servers)
  const warm = await Promise.all(clients.map((c, k) => c.infer(requestFrame(k, k, o.imageSize, o.steps, o.frames[k]!))));
  const loadAvg = os.loadavg()[0]!;
  const s0 = await getJson(srv.port, '/stats');
  const cpu0 = procCpuMs(srv.child.pid);
  const w0 = performance.now();
  const latencies: number[] = [];
  const t0 = performance.now();
  const end = t0 + o.durationS * 1000;
  let lastDone = t0;
  await Promise.all(clients.map(async (c, k) => {
    for (let seed = 1000 + k * 100_000; performance.now() < end; seed++) {
      const frame = requestFrame(k, seed, o.imageSize, o.steps, o.frames[k]!);
      const ts = performance.now();
      await c.infer(frame);
      const te = performance.now();
      if (te <= end) {
        latencies.push(te - ts);
        lastDone = Math.max(lastDone, te);
      }
    }
  }));
  const cpu1 = procCpuMs(srv.child.pid);
  const s1 = await getJson(srv.port, '/stats');
  const wallMs = performance.now() - w0;
  await Promise.all(clients.map((c) => c.close()));
  const windowS = o.durationS;
  const batches = (s1['batches'] as number) - (s0['batches'] as number);
  const rows = (s1['batch_rows'] as number) - (s0['batch_rows'] as number);
  const cell: ServeCell = {
    clients: C, mode, maxBatch,
    completed: latencies.length,
    windowS,
    throughput: latencies.length / Math.max(1e-3, (lastDone - t0) / 1000),
    busyS: (lastDone - t0) / 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    meanMs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    meanBatch: batches > 0 ? rows / batches : NaN,
    serverCpuMsPerRequest: (cpu1 - cpu0) / Math.max(1, rows),
    gpuBusy: ((s1['busy_s'] as number) - (s0['busy_s'] as number)) / (wallMs / 1000),
    serverCores: (cpu1 - cpu0) / wallMs,
    loadAvg,
  };
  log(`[${C} client(s), ${mode}] ${cell.completed} requests in ${windowS} s: ${fmt(cell.throughput)} req/s, p50 ${fmt(cell.p50Ms)} ms, p99 ${fmt(cell.p99Ms)} ms, mean batch ${fmt(cell.meanBatch)}, GPU busy ${fmt(100 * cell.gpuBusy!)} %, server ${fmt(cell.serverCores)} cores, load ${fmt(loadAvg)}`);
  return { cell, warmBits: warm.map(actionBits) };
}

export async function runServeBenchmark(opts: ServeBenchOptions = {}): Promise<ServeReport> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const lp = pinLpNumThreads(); // inherited by the servers
  const clientsList = opts.clients ?? [...DEFAULT_CLIENTS];
  const durationS = opts.durationS ?? 20;
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  const maxWaitMs = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const steps = opts.steps ?? 10;
  const imageSize = opts.imageSize ?? 128;
  const checkpoint = opts.checkpoint ?? 'weights/tiny';
  const weightDtype = opts.weightDtype ?? 'f32';
  const common = ['--checkpoint', path.resolve(checkpoint), ...(weightDtype === 'f16' ? ['--f16'] : []), '--max-steps', String(Math.max(100, steps))];
  const frames = Array.from({ length: Math.max(...clientsList) }, (_, k) => {
    const f = syntheticFrame(imageSize, k);
    return NdArray.fromUint8(f.data, [imageSize, imageSize, 3]);
  });
  const procs: ServerProc[] = [];
  try {
    const [batched, unbatched] = await Promise.all([
      startServe([...common, '--max-batch', String(maxBatch), '--max-wait-ms', String(maxWaitMs)], log),
      startServe([...common, '--max-batch', '1'], log),
    ]);
    procs.push(batched!, unbatched!);
    const cells: ServeCell[] = [];
    let mismatches = 0;
    for (const [i, C] of clientsList.entries()) {
      const order: ServeCell['mode'][] = i % 2 === 0 ? ['unbatched', 'batched'] : ['batched', 'unbatched'];
      const bits: Partial<Record<ServeCell['mode'], string[]>> = {};
      for (const mode of order) {
        const srv = mode === 'batched' ? batched! : unbatched!;
        const r = await runCell(srv, mode, mode === 'batched' ? maxBatch : 1, C, { durationS, steps, imageSize, frames }, log);
        cells.push(r.cell);
        bits[mode] = r.warmBits;
      }
      mismatches += bits.batched!.filter((b, k) => b !== bits.unbatched![k]).length;
    }
    const speedup = clientsList.map((C, i) => {
      const pair = cells.slice(2 * i, 2 * i + 2);
      const b = pair.find((c) => c.mode === 'batched')!;
      const u = pair.find((c) => c.mode === 'unbatched')!;
      return { clients: C, throughput: b.throughput / u.throughput };
    });
    const adapter = String(((await metadataOf(batched!.port))['model'] as Record<string, unknown> | undefined)?.['device'] ?? 'unknown');
    const header = machineHeader({ adapter, software: /llvmpipe|lavapipe|swiftshader|software/i.test(adapter), features: [], lpNumThreads: lp });
    const report: ServeReport = {
      header, command: opts.command ?? '(programmatic runServeBenchmark)', checkpoint, weightDtype, steps, imageSize, durationS, maxBatch, maxWaitMs,
      cells, speedup, mismatches,
    };
    if (opts.json) await writeJsonReport(opts.json, report);
    if (opts.plot) {
      await fsp.mkdir(path.dirname(path.resolve(opts.plot)), { recursive: true });
      await writePlot(opts.plot, serveChart(report));
    }
    return report;
  } finally {
    for (const p of procs) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exit));
  }
}

/** The metadata frame a client gets on connect. */
function metadataOf(port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    ws.once('error', reject);
    ws.once('message', (data: WebSocket.RawData) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      resolve(unpackb(new Uint8Array(buf)) as Record<string, unknown>);
      ws.close();
    });
  });
}

/** Throughput, p50 and p99 latency against clients, batched vs unbatched (src/plot panelChart). */
export function serveChart(r: ServeReport) {
  const series = (mode: ServeCell['mode'], f: (c: ServeCell) => number): Series => ({
    name: mode === 'batched' ? `batched (max ${r.maxBatch}, wait ${r.maxWaitMs} ms)` : 'unbatched (max 1)',
    points: r.cells.filter((c) => c.mode === mode).map((c): [number, number] => [c.clients, f(c)]),
    color: mode === 'batched' ? '#4e79a7' : '#e15759',
  });
  const both = (f: (c: ServeCell) => number) => [series('batched', f), series('unbatched', f)];
  return panelChart({
    title: 'qvla serve: batched vs unbatched',
    subtitle: `${r.checkpoint} (${r.weightDtype}), widowx ${r.imageSize}x${r.imageSize}, ${r.steps} Euler steps, ${r.durationS} s per point, ` +
      `${r.header.software ? 'lavapipe (CPU)' : r.header.adapter.slice(0, 40)}, load avg ${r.header.loadAvg}, ${r.header.date.slice(0, 10)}`,
    panels: [
      { label: 'throughput (requests/s)', series: both((c) => c.throughput) },
      { label: 'p50 latency (ms)', series: both((c) => c.p50Ms) },
      { label: 'p99 latency (ms)', series: both((c) => c.p99Ms) },
      { label: 'server process CPU per request (ms)', series: both((c) => c.serverCpuMsPerRequest) },
    ],
    xLabel: 'concurrent clients',
  });
}

const pct = (x: number | undefined) => (x === undefined ? '-' : fmt(100 * x));

export function formatServeReport(r: ServeReport): string[] {
  const out = [
    ...formatHeader(r.header),
    `command:        ${r.command}`,
    `workload:       ${r.checkpoint} (${r.weightDtype}), widowx, one ${r.imageSize}×${r.imageSize} frame per client, "${BATCH_INSTRUCTION}", ` +
      `${r.steps} Euler steps; closed-loop clients, ${r.durationS} s window per point; batched server --max-batch ${r.maxBatch} --max-wait-ms ${r.maxWaitMs}`,
    '',
  ];
  // One row per point of --clients (a client count may repeat: its points alternate which mode goes first).
  const rows = r.speedup.map(({ clients, throughput }, i) => {
    const pair = r.cells.slice(2 * i, 2 * i + 2);
    const b = pair.find((c) => c.mode === 'batched')!;
    const u = pair.find((c) => c.mode === 'unbatched')!;
    return [
      String(clients), fmt(u.throughput), fmt(b.throughput), `${fmt(throughput)}×`, fmt(u.p50Ms), fmt(b.p50Ms), fmt(u.p99Ms), fmt(b.p99Ms),
      fmt(b.meanBatch), fmt(u.serverCpuMsPerRequest), fmt(b.serverCpuMsPerRequest),
      `${pct(u.gpuBusy)}/${pct(b.gpuBusy)}`, `${fmt(u.serverCores)}/${fmt(b.serverCores)}`, `${fmt(u.loadAvg)}/${fmt(b.loadAvg)}`, `${u.completed}/${b.completed}`,
    ];
  });
  out.push(...formatTable([
    'clients', 'unbatched req/s', 'batched req/s', 'speedup', 'p50 ms unb.', 'p50 ms bat.', 'p99 ms unb.', 'p99 ms bat.', 'mean batch',
    'srv CPU ms/req unb.', 'srv CPU ms/req bat.', 'GPU busy % unb./bat.', 'srv cores unb./bat.', 'load unb./bat.', 'n unb./bat.',
  ], rows));
  for (const C of [...new Set(r.speedup.map((x) => x.clients))]) {
    const pooled = (mode: ServeCell['mode']) => {
      const cs = r.cells.filter((c) => c.clients === C && c.mode === mode);
      return { n: cs.length, rate: cs.reduce((a, c) => a + c.completed, 0) / cs.reduce((a, c) => a + (c.busyS ?? c.windowS), 0) };
    };
    const b = pooled('batched'), u = pooled('unbatched');
    if (b.n > 1) out.push(`${C} clients, ${b.n} points pooled: unbatched ${fmt(u.rate)} req/s, batched ${fmt(b.rate)} req/s, speedup ${fmt(b.rate / u.rate)}×`);
  }
  out.push(`bit mismatches between the two servers (warm-up replies, same seed): ${r.mismatches}`);
  return out;
}

// ---- --profile-batch B: where actBatch's time goes (B × act() vs one actBatch(B), same process, same requests)

export interface BatchProfile {
  header: BenchHeader;
  B: number;
  steps: number;
  imageSize: number;
  /** wall and process CPU ms of B sequential act() calls / one actBatch(B), with the GPU profiler on */
  sequential: { wallMs: number; cpuMs: number; dispatches: number; kernelMs: number; stages: Record<string, number> };
  batch: { wallMs: number; cpuMs: number; dispatches: number; kernelMs: number; stages: Record<string, number> };
  /** GPU time per kernel family (labels with layer numbers folded), sequential vs batch, largest batch time first */
  kernels: { family: string; sequentialMs: number; batchMs: number; sequentialDispatches: number; batchDispatches: number }[];
}

/** Kernel label → family: layer / block numbers folded (text.3.up_proj → text.N.up_proj). */
function kernelFamily(label: string): string {
  return label.replace(/\.\d+\./g, '.N.').replace(/\.\d+$/, '.N');
}

/**
 * Profiles B × act() against actBatch(B) on the `qvla bench batch` workload: stage wall times (stageTimings on,
 * summed over the B calls) and GPU timestamp time per kernel family. With timestamps, every dispatch is its own
 * pass: absolute times are higher than unprofiled ones; the split is what this is for.
 */
export async function profileActBatch(opts: { B?: number; steps?: number; imageSize?: number; checkpoint?: string; weightDtype?: 'f32' | 'f16' } = {}): Promise<BatchProfile> {
  const lp = pinLpNumThreads();
  const B = opts.B ?? 8;
  const steps = opts.steps ?? 10;
  const imageSize = opts.imageSize ?? 128;
  const gpu = await Gpu.create();
  let policy: Policy | null = null;
  try {
    if (!gpu.features.timestamps) throw new Error('qvla bench serve --profile-batch: this adapter has no timestamp-query feature');
    policy = await Policy.load(opts.checkpoint ?? 'weights/tiny', { gpu, weightDtype: opts.weightDtype ?? 'f32', stageTimings: true });
    const p = policy;
    const reqs = batchRequests(B, { steps, imageSize });
    await p.actBatch(reqs);
    await p.act(reqs[0]!);
    const run = async (fn: () => Promise<ActResult[]>, stagesOf: (r: ActResult[]) => ActResult[]) => {
      gpu.stream.profiler.enable(true);
      const d0 = gpu.stream.stats.dispatches;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const out = await fn();
      const wallMs = performance.now() - t0;
      const c = process.cpuUsage(c0);
      const dispatches = gpu.stream.stats.dispatches - d0;
      const ks = await gpu.stream.profiler.collect();
      gpu.stream.profiler.enable(false);
      const fam = new Map<string, { ms: number; n: number }>();
      for (const k of ks) {
        const f = kernelFamily(k.label);
        const e = fam.get(f) ?? { ms: 0, n: 0 };
        e.ms += k.ns / 1e6;
        e.n++;
        fam.set(f, e);
      }
      const stages: Record<string, number> = { preprocess: 0, vision: 0, prefill: 0, context: 0, denoise: 0, readback: 0 };
      for (const r of stagesOf(out)) {
        const t = r.timings;
        stages['preprocess']! += t.preprocessMs;
        stages['vision']! += t.visionMs;
        stages['prefill']! += t.prefillMs;
        stages['context']! += t.contextMs;
        stages['denoise']! += t.stepMs.reduce((a, b) => a + b, 0);
        stages['readback']! += t.readbackMs;
      }
      const kernelMs = [...fam.values()].reduce((a, e) => a + e.ms, 0);
      return { wallMs, cpuMs: (c.user + c.system) / 1000, dispatches, kernelMs, stages, fam };
    };
    const seq = await run(async () => {
      const o: ActResult[] = [];
      for (const r of reqs) o.push(await p.act(r));
      return o;
    }, (o) => o);
    const bat = await run(() => p.actBatch(reqs), (o) => o.slice(0, 1)); // a batch's stage times are the batch's, on every row
    const families = [...new Set([...seq.fam.keys(), ...bat.fam.keys()])].map((family) => ({
      family,
      sequentialMs: seq.fam.get(family)?.ms ?? 0,
      batchMs: bat.fam.get(family)?.ms ?? 0,
      sequentialDispatches: seq.fam.get(family)?.n ?? 0,
      batchDispatches: bat.fam.get(family)?.n ?? 0,
    })).sort((a, b) => b.batchMs - a.batchMs);
    const strip = ({ fam: _f, ...rest }: typeof seq) => rest;
    const adapter = gpu.description;
    return {
      header: machineHeader({ adapter, software: gpu.isSoftware, features: [], lpNumThreads: lp }),
      B, steps, imageSize, sequential: strip(seq), batch: strip(bat), kernels: families,
    };
  } finally {
    policy?.destroy();
    gpu.destroy();
  }
}

export function formatBatchProfile(r: BatchProfile, top = 20): string[] {
  const out = [...formatHeader(r.header), `workload:       B = ${r.B} widowx rows (bench batch workload), ${r.imageSize}×${r.imageSize}, ${r.steps} Euler steps; GPU profiler on`, ''];
  const s = r.sequential, b = r.batch;
  out.push(...formatTable(['', `${r.B} × act()`, `actBatch(${r.B})`, 'ratio'], [
    ['wall ms', fmt(s.wallMs), fmt(b.wallMs), `${fmt(s.wallMs / b.wallMs)}×`],
    ['process CPU ms', fmt(s.cpuMs), fmt(b.cpuMs), `${fmt(s.cpuMs / b.cpuMs)}×`],
    ['dispatches', String(s.dispatches), String(b.dispatches), `${fmt(s.dispatches / b.dispatches)}×`],
    ['GPU kernel ms (timestamps)', fmt(s.kernelMs), fmt(b.kernelMs), `${fmt(s.kernelMs / b.kernelMs)}×`],
    ...Object.keys(s.stages).map((k) => [`stage ${k} ms`, fmt(s.stages[k]), fmt(b.stages[k]), `${fmt(s.stages[k]! / b.stages[k]!)}×`]),
  ]));
  out.push('', `GPU time per kernel family (top ${top} by actBatch time):`);
  out.push(...formatTable(['kernel family', `${r.B}×act ms`, 'actBatch ms', 'ratio', 'dispatches act/batch'],
    r.kernels.slice(0, top).map((k) => [k.family.length > 60 ? `${k.family.slice(0, 57)}...` : k.family, fmt(k.sequentialMs), fmt(k.batchMs),
      `${fmt(k.sequentialMs / k.batchMs)}×`, `${k.sequentialDispatches}/${k.batchDispatches}`])));
  return out;
}

export const SERVE_BENCH_SPEC: CommandSpec = {
  name: 'bench serve',
  usage: 'bench serve [--clients 1,2,4,8,16] [--duration S] [--max-batch N] [--max-wait-ms MS] [options]',
  summary: 'qvla serve throughput and p50/p99 latency vs concurrent clients, batched vs unbatched (--max-batch 1), one run.',
  description:
    'Starts two `qvla serve` processes on loopback (batched and --max-batch 1) and drives each with C closed-loop\n' +
    'openpi clients per point, alternating which mode goes first. Needs the built CLI (npm run build).\n' +
    'Exit code 1 when a reply differs in any bit between the two servers. LP_NUM_THREADS is pinned unless set.',
  options: [
    { name: 'clients', type: 'string', metavar: 'LIST', help: 'comma-separated client counts', defaultText: DEFAULT_CLIENTS.join(',') },
    { name: 'duration', type: 'number', metavar: 'S', min: 1, help: 'measured window per point, seconds', defaultText: '20' },
    { name: 'max-batch', type: 'int', min: 2, max: 1024, help: "the batched server's --max-batch", defaultText: String(DEFAULT_MAX_BATCH) },
    { name: 'max-wait-ms', type: 'number', min: 0, max: 10000, help: "the batched server's --max-wait-ms", defaultText: String(DEFAULT_MAX_WAIT_MS) },
    ...WORKLOAD_OPTS,
    { name: 'plot', type: 'string', metavar: 'FILE', help: 'throughput / p50 / p99 vs clients chart (.svg or .png)' },
    { name: 'from-json', type: 'string', metavar: 'FILE', help: 'instead: print (and with --plot, plot) a recorded --json report' },
    { name: 'profile-batch', type: 'int', metavar: 'B', min: 1, max: 1024, help: 'instead: profile B × act() vs actBatch(B) in this process (stage times, GPU time per kernel family)' },
    HELP_OPT,
  ],
  examples: [
    'qvla bench serve',
    'qvla bench serve --clients 1,8 --duration 10 --json bench/out/serve.json --plot bench/out/serve.svg',
    'qvla bench serve --profile-batch 8     # where actBatch(8) spends its time vs 8 × act()',
  ],
};

/** CLI entry (`qvla bench serve ...`): returns the exit code. */
export async function runServeBench(args: string[]): Promise<number> {
  const p = parseArgs(SERVE_BENCH_SPEC, args);
  if (p.help) {
    process.stdout.write(formatHelp(SERVE_BENCH_SPEC));
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`qvla bench serve: unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const list = getString(p, 'clients');
  const clients = list !== undefined ? parseIntList(list, 'qvla bench serve: --clients', 1, 256) : undefined;
  const profileB = getNumber(p, 'profile-batch');
  if (profileB !== undefined) {
    const { json: _json, ...workload } = workloadOptions(p);
    const prof = await profileActBatch({ B: profileB, ...workload });
    process.stdout.write(`${formatBatchProfile(prof).join('\n')}\n`);
    const json = getString(p, 'json');
    if (json) await writeJsonReport(json, prof);
    return 0;
  }
  const plot = getString(p, 'plot');
  if (plot !== undefined && !/\.(svg|png)$/i.test(plot)) throw new UsageError('qvla bench serve: --plot must end in .svg or .png');
  const from = getString(p, 'from-json');
  if (from !== undefined) {
    // re-print / re-plot a recorded run
    const rec = JSON.parse(readFileSync(from, 'utf8')) as ServeReport;
    process.stdout.write(`${formatServeReport(rec).join('\n')}\n`);
    if (plot) await writePlot(plot, serveChart(rec));
    return 0;
  }
  const report = await runServeBenchmark({
    clients,
    durationS: getNumber(p, 'duration'),
    maxBatch: getNumber(p, 'max-batch'),
    maxWaitMs: getNumber(p, 'max-wait-ms'),
    ...workloadOptions(p),
    plot,
    command: ['qvla bench serve', ...args].join(' '),
  });
  process.stdout.write(`\n${formatServeReport(report).join('\n')}\n`);
  if (report.mismatches > 0) {
    process.stderr.write('qvla bench serve: replies differ between the batched and the unbatched server (they must be bit-identical)\n');
    return 1;
  }
  return 0;
}

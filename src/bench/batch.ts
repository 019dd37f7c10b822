// `qvla bench batch`: Policy.actBatch(B requests) against B sequential act() calls, side by side in one run.
//
// The workload of closed-loop evaluation: B widowx observations, each with its own 128×128 camera frame (a
// synthetic pattern, different per row), the same short instruction, its own state and seed, 10 Euler steps (by
// default). Per batch size: one warm-up of each kind (pipelines compiled, pool filled), then `reps` rounds of
// [B sequential act() calls, one actBatch] (the order alternates between rounds, so a drift in the machine's load
// hits both kinds alike); medians are reported, as wall time and ms per row. Every round also checks that the
// batch returned, for every row, the same `raw` bits as act() did (must be 0 mismatches) and counts the GPU
// buffers created after warm-up (must be 0: equal batches reuse the pool).
// Besides wall time it records the process CPU time (user + system) of each kind: on a software adapter
// (lavapipe runs its workers inside this process) that is the work done, which other processes on the cores do not
// inflate the way they inflate wall time; on a GPU it is the host-side cost (encoding, dispatch, readback).
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Policy, type ActRequest } from '../policy/policy.js';
import { TINY_DIR } from '../testing/fixtures.js';
import { HELP_OPT, UsageError, formatHelp, getNumber, getString, parseArgs, parseIntList, type CommandSpec, type OptSpec, type Parsed } from '../cli/args.js';
import { Gpu } from '../gpu/device.js';
import { benchHeader, fmt, formatHeader, formatTable, pinLpNumThreads, type BenchHeader, writeJsonReport } from './env.js';
import { median } from './stats.js';
import { DEFAULT_WIDOWX_STATE } from './steps.js';

export const DEFAULT_BATCHES = [1, 8, 32, 100] as const;
export const BATCH_INSTRUCTION = 'pick up the cup';

export interface BatchBenchOptions {
  batches?: number[];
  /** Measured rounds per batch size (default 1 on a software adapter, 3 otherwise). */
  reps?: number;
  steps?: number;
  checkpoint?: string;
  weightDtype?: 'f32' | 'f16';
  /** Camera frame side in pixels (default 128). */
  imageSize?: number;
  json?: string;
  log?: (line: string) => void;
  command?: string;
}

export interface BatchRow {
  B: number;
  /** median wall ms of B sequential act() calls */
  sequentialMs: number;
  /** median wall ms of one actBatch(B) */
  batchMs: number;
  sequentialMsPerRow: number;
  batchMsPerRow: number;
  speedup: number;
  /** median process CPU ms (user + system) of the B act() calls / of the actBatch */
  sequentialCpuMs: number;
  batchCpuMs: number;
  cpuSpeedup: number;
  /** GPU dispatches of one actBatch / of one act() */
  batchDispatches: number;
  actDispatches: number;
  /** rows whose batched `raw` differed in any bit from act() (must be 0) */
  mismatchedRows: number;
  /** GPU buffers created during the measured rounds (must be 0) */
  buffersCreated: number;
  rounds: { sequentialMs: number; batchMs: number; sequentialCpuMs: number; batchCpuMs: number }[];
}

export interface BatchReport {
  header: BenchHeader;
  command: string;
  checkpoint: string;
  weightDtype: 'f32' | 'f16';
  steps: number;
  imageSize: number;
  promptTokens: number;
  rows: BatchRow[];
}

/** A deterministic RGB frame, different for every row (a tilted gradient with a row-dependent slope). */
export function syntheticFrame(size: number, row: number): { width: number; height: number; channels: 3; data: Uint8Array } {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 3;
      data[o] = (x * (1 + (row % 7)) + y) & 255;
      data[o + 1] = (y * 2 + row * 13) & 255;
      data[o + 2] = ((x ^ y) + row * 29) & 255;
    }
  }
  return { width: size, height: size, channels: 3, data };
}

export function batchRequests(B: number, opts: { steps: number; imageSize: number }): ActRequest[] {
  return Array.from({ length: B }, (_, r) => ({
    images: [syntheticFrame(opts.imageSize, r)],
    instruction: BATCH_INSTRUCTION,
    embodiment: 'widowx',
    state: DEFAULT_WIDOWX_STATE.map((v, k) => v + 0.01 * ((r + k) % 5)),
    seed: r,
    steps: opts.steps,
    solver: 'euler',
  }));
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return false;
  return true;
}

export async function runBatchBenchmark(opts: BatchBenchOptions = {}): Promise<BatchReport> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  pinLpNumThreads();
  const gpu = await Gpu.create();
  const header = benchHeader(gpu);
  const dir = opts.checkpoint ?? TINY_DIR;
  const weightDtype = opts.weightDtype ?? 'f32';
  const steps = opts.steps ?? 10;
  const imageSize = opts.imageSize ?? 128;
  const reps = opts.reps ?? (gpu.isSoftware ? 1 : 3);
  const batches = opts.batches ?? [...DEFAULT_BATCHES];
  let policy: Policy | null = null;
  try {
    policy = await Policy.load(dir, { gpu, weightDtype, stageTimings: false });
    const p = policy;
    const rows: BatchRow[] = [];
    let promptTokens = 0;
    for (const B of batches) {
      const reqs = batchRequests(B, { steps, imageSize });
      log(`[B=${B}] warm-up ...`);
      await p.actBatch(reqs);
      for (const r of reqs.slice(0, Math.min(B, 2))) await p.act(r);
      await gpu.sync();
      const created0 = gpu.buffers.stats.created;
      const rounds: BatchRow['rounds'] = [];
      let mismatched = 0;
      let batchDispatches = 0;
      let actDispatches = 0;
      for (let k = 0; k < reps; k++) {
        const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
        const seq = async () => {
          const c = process.cpuUsage();
          const t = performance.now();
          const out = [];
          for (const r of reqs) {
            const d0 = gpu.stream.stats.dispatches;
            out.push(await p.act(r));
            actDispatches = gpu.stream.stats.dispatches - d0;
          }
          return { ms: performance.now() - t, cpu: cpuMs(process.cpuUsage(c)), out };
        };
        const bat = async () => {
          const d0 = gpu.stream.stats.dispatches;
          const c = process.cpuUsage();
          const t = performance.now();
          const out = await p.actBatch(reqs);
          const ms = performance.now() - t;
          const cpu = cpuMs(process.cpuUsage(c));
          batchDispatches = gpu.stream.stats.dispatches - d0;
          return { ms, cpu, out };
        };
        let s, b;
        if (k % 2 === 0) {
          s = await seq();
          b = await bat();
        } else {
          b = await bat();
          s = await seq();
        }
        promptTokens = s.out[0].promptTokens;
        mismatched = Math.max(mismatched, s.out.filter((r, i) => !sameBits(r.raw, b.out[i].raw)).length);
        rounds.push({ sequentialMs: s.ms, batchMs: b.ms, sequentialCpuMs: s.cpu, batchCpuMs: b.cpu });
        log(`[B=${B}] round ${k + 1}/${reps}: ${B} × act() ${fmt(s.ms)} ms (CPU ${fmt(s.cpu)} ms), actBatch ${fmt(b.ms)} ms (CPU ${fmt(b.cpu)} ms)`);
      }
      const sequentialMs = median(rounds.map((r) => r.sequentialMs));
      const batchMs = median(rounds.map((r) => r.batchMs));
      const sequentialCpuMs = median(rounds.map((r) => r.sequentialCpuMs));
      const batchCpuMs = median(rounds.map((r) => r.batchCpuMs));
      rows.push({
        B, sequentialMs, batchMs, sequentialMsPerRow: sequentialMs / B, batchMsPerRow: batchMs / B, speedup: sequentialMs / batchMs,
        sequentialCpuMs, batchCpuMs, cpuSpeedup: sequentialCpuMs / batchCpuMs,
        batchDispatches, actDispatches, mismatchedRows: mismatched, buffersCreated: gpu.buffers.stats.created - created0, rounds,
      });
    }
    const report: BatchReport = {
      header, command: opts.command ?? '(programmatic runBatchBenchmark)', checkpoint: dir, weightDtype, steps, imageSize, promptTokens, rows,
    };
    if (opts.json) await writeJsonReport(opts.json, report);
    return report;
  } finally {
    policy?.destroy();
    gpu.destroy();
  }
}

export function formatBatchReport(r: BatchReport): string[] {
  const out = [
    ...formatHeader(r.header),
    `command:        ${r.command}`,
    `workload:       ${r.checkpoint} (${r.weightDtype}), widowx, one ${r.imageSize}×${r.imageSize} frame per row, "${BATCH_INSTRUCTION}" ` +
      `(${r.promptTokens} prompt tokens), ${r.steps} Euler steps, stageTimings off; medians over ${r.rows[0]?.rounds.length ?? 0} round(s)`,
    '',
  ];
  const rows = r.rows.map((x) => [
    String(x.B), fmt(x.sequentialMs), fmt(x.batchMs), fmt(x.sequentialMsPerRow), fmt(x.batchMsPerRow), `${fmt(x.speedup)}×`,
    fmt(x.sequentialCpuMs / x.B), fmt(x.batchCpuMs / x.B), `${fmt(x.cpuSpeedup)}×`,
    `${x.batchDispatches}/${x.actDispatches}`, String(x.mismatchedRows), String(x.buffersCreated),
  ]);
  out.push(...formatTable([
    'B', 'B × act() ms', 'actBatch ms', 'act ms/row', 'batch ms/row', 'speedup', 'act CPU ms/row', 'batch CPU ms/row', 'CPU speedup',
    'dispatches batch/act', 'bit mismatches', 'new buffers',
  ], rows));
  out.push('(wall = elapsed time; CPU = this process\'s user + system time, lavapipe\'s workers included: the work done, less sensitive to other load)');
  return out;
}

/** The workload options shared by `qvla bench batch` and `qvla bench serve` (+ --json). */
export const WORKLOAD_OPTS: OptSpec[] = [
  { name: 'steps', type: 'int', min: 1, max: 1000, help: 'Euler steps per request', defaultText: '10' },
  { name: 'image-size', type: 'int', min: 32, max: 2048, help: 'camera frame side in pixels', defaultText: '128' },
  { name: 'checkpoint', type: 'string', metavar: 'DIR', help: 'checkpoint directory', defaultText: 'weights/tiny' },
  { name: 'weight-dtype', type: 'string', choices: ['f32', 'f16'], help: 'matrix storage on the GPU', defaultText: 'f32' },
  { name: 'json', type: 'string', metavar: 'FILE', help: 'also write the report as JSON' },
];

/** The values of {@link WORKLOAD_OPTS} (undefined: the benchmark's default). */
export function workloadOptions(p: Parsed): { steps?: number; imageSize?: number; checkpoint?: string; weightDtype?: 'f32' | 'f16'; json?: string } {
  return {
    steps: getNumber(p, 'steps'),
    imageSize: getNumber(p, 'image-size'),
    checkpoint: getString(p, 'checkpoint'),
    weightDtype: getString(p, 'weight-dtype') as 'f32' | 'f16' | undefined,
    json: getString(p, 'json'),
  };
}

export const BATCH_SPEC: CommandSpec = {
  name: 'bench batch',
  usage: 'bench batch [--batch 1,8,32,100] [--reps N] [options]',
  summary: 'Policy.actBatch(B) vs B sequential act() calls: wall time, ms per row, bit-identity check, pool growth.',
  description:
    'Per batch size: one warm-up of each kind, then rounds of [B × act(), actBatch(B)] in alternating order; medians.\n' +
    'Rows are widowx observations with their own synthetic frame, state and seed. Exit code 1 when a row of the batch\n' +
    'differs in any bit from act() or when GPU buffers were created after warm-up. LP_NUM_THREADS is pinned unless set.',
  options: [
    { name: 'batch', type: 'string', metavar: 'LIST', help: 'comma-separated batch sizes', defaultText: DEFAULT_BATCHES.join(',') },
    { name: 'reps', type: 'int', min: 1, help: 'measured rounds per batch size', defaultText: '1 on a software adapter, else 3' },
    ...WORKLOAD_OPTS,
    HELP_OPT,
  ],
  examples: ['qvla bench batch', 'qvla bench batch --batch 1,8 --reps 3 --json bench/out/batch.json'],
};

/** CLI entry (`qvla bench batch ...`): returns the exit code. */
export async function runBatchBench(args: string[]): Promise<number> {
  const p = parseArgs(BATCH_SPEC, args);
  if (p.help) {
    process.stdout.write(formatHelp(BATCH_SPEC));
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`qvla bench batch: unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const list = getString(p, 'batch');
  const batches = list !== undefined ? parseIntList(list, 'qvla bench batch: --batch') : undefined;
  const report = await runBatchBenchmark({
    batches,
    reps: getNumber(p, 'reps'),
    ...workloadOptions(p),
    command: ['qvla bench batch', ...args].join(' '),
  });
  process.stdout.write(`\n${formatBatchReport(report).join('\n')}\n`);
  let rc = 0;
  if (report.rows.some((r) => r.mismatchedRows > 0)) {
    process.stderr.write('qvla bench batch: actBatch rows differ from act() (they must be bit-identical)\n');
    rc = 1;
  }
  if (report.rows.some((r) => r.buffersCreated > 0)) {
    process.stderr.write('qvla bench batch: GPU buffers were created after warm-up (equal batches should allocate none)\n');
    rc = 1;
  }
  return rc;
}

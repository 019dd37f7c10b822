// Kernel benchmarks: the op harness's perf cases, timed, with a roofline verdict per row.
//
// For each selected OpCase (default: `perfCases` from src/testing/cases/index.ts) this follows the harness's
// perf protocol (`perfCase` in src/testing/opHarness.ts: one warm-up, then repeated runs with each dispatch in
// its own timestamped pass) but keeps every sample, so it reports the median, min–max spread and MAD of the
// GPU time. A second, wall-clock measurement of the production path (profiler off: all dispatches in one pass,
// submit → completion) is sampled by Benchmark.js. GFLOPS and GB/s come from the case's `flops`/`bytes`; the
// row is compute-bound when its arithmetic intensity flops/bytes is above the ridge point of the measured
// peaks and bandwidth-bound below it, and "% peak" is achieved / that bound (= achieved / min(P, I·B)).
//
// Entry point for `qvla bench kernels`: `runOpBench(opts)`; `parseOpBenchArgs(argv)` turns CLI flags into opts.
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Gpu } from '../gpu/device.js';
import type { DevicePeaks, OpCase } from '../testing/opHarness.js';
import { compare } from '../testing/opHarness.js';
import { perfCases } from '../testing/cases/index.js';
import { Rng } from '../util/rng.js';
import { benchHeader, fmt, formatHeader, formatTable, pinLpNumThreads, type BenchHeader } from './env.js';
import { formatPeaks, measurePeaks, type PeakReport, type RooflineOptions } from './roofline.js';
import { summarize, wallClock, type Summary, type WallClock } from './stats.js';
import { loadTuning } from '../tune/load.js';

export interface OpBenchOptions {
  /** Device to use. Default: a new `Gpu` (after pinning LP_NUM_THREADS), destroyed at the end. */
  gpu?: Gpu;
  /** Keep only cases whose `op` matches (string: case-insensitive regex, e.g. `linear` or `^attention$`). */
  op?: string | RegExp;
  /** Keep only cases whose `name` matches (string: case-insensitive regex). */
  name?: string | RegExp;
  /** Cases to choose from (default `perfCases`). */
  cases?: OpCase[];
  /** GPU-timed runs per case after one warm-up (default 7, minimum 5). */
  reps?: number;
  /** Also sample the wall clock with Benchmark.js (default true). */
  wall?: boolean;
  /** Seconds Benchmark.js may spend per case (default 1; it always takes ≥ 5 samples). */
  wallMaxTime?: number;
  /** Peaks for "% of peak": given numbers, 'measure' (default: `measurePeaks` first), or 'none'. */
  peaks?: DevicePeaks | PeakReport | 'measure' | 'none';
  /** Options for `measurePeaks` when peaks = 'measure'. */
  roofline?: RooflineOptions;
  /** Also check each case's output against its f64 reference once (slow for big cases; default false). */
  check?: boolean;
  /** Write the report as JSON to this file. */
  json?: string;
  /** Where the header, progress and table lines go (default console.log; null: silent). */
  log?: ((line: string) => void) | null;
  /** Tuning table (src/tune/load.ts): a path, or default: $QVLA_TUNE_FILE / the cache dir; none there: defaults. */
  tuneFile?: string;
}

export interface OpBenchRow {
  name: string;
  op: string;
  /** the case name without the op prefix: dtype and shape */
  shape: string;
  /** kernel files that ran (from the profiler labels / pipeline keys), e.g. `linear_gemv` */
  kernels: string[];
  dispatches: number;
  /** GPU time per run in ms (timestamp queries; wall clock if the adapter has none) */
  time: Summary;
  gpuTimed: boolean;
  /** wall clock per run of the production path (no per-dispatch passes), Benchmark.js; null if disabled */
  wall: WallClock | null;
  flops?: number;
  bytes?: number;
  gflops?: number;
  gbps?: number;
  /** FLOP per byte */
  intensity?: number;
  bound?: 'compute' | 'bandwidth';
  /** achieved / measured peak of the bound that applies */
  peakFraction?: number;
  /** result of the reference check when `check` was set */
  check?: { ok: boolean; report: string };
}

export interface OpBenchReport {
  header: BenchHeader;
  peaks: DevicePeaks | PeakReport | null;
  rows: OpBenchRow[];
}

function toRegex(p: string | RegExp | undefined): RegExp | null {
  if (p === undefined) return null;
  return typeof p === 'string' ? new RegExp(p, 'i') : p;
}

/** The cases `runOpBench` would run for these options. */
export function selectCases(opts: Pick<OpBenchOptions, 'cases' | 'op' | 'name'>): OpCase[] {
  const opRe = toRegex(opts.op);
  const nameRe = toRegex(opts.name);
  return (opts.cases ?? perfCases).filter((c) => (!opRe || opRe.test(c.op)) && (!nameRe || nameRe.test(c.name)));
}

function kernelFile(label: string): string {
  return label.split(/[:|]/)[0];
}

/** Time one case (see the header comment). */
export async function benchCase(gpu: Gpu, c: OpCase, opts: Pick<OpBenchOptions, 'reps' | 'wall' | 'wallMaxTime' | 'check'> = {}, peaks?: DevicePeaks | null): Promise<OpBenchRow> {
  const reps = Math.max(5, opts.reps ?? 7);
  const inst = c.setup(gpu, new Rng(1));
  try {
    let check: OpBenchRow['check'];
    if (opts.check) {
      const r = compare(await inst.run(), inst.reference(), c.tol, c.name);
      check = { ok: r.ok, report: r.report };
    }
    inst.encode(); // warm-up: pipeline compilation, first touch of buffers
    await gpu.sync();
    const useTs = gpu.features.timestamps;
    const prof = gpu.stream.profiler;
    const times: number[] = [];
    let labels: string[] = [];
    for (let r = 0; r < reps; r++) {
      if (useTs) {
        prof.enable(true);
        try {
          inst.encode();
          await gpu.sync();
          const t = await prof.collect();
          times.push(t.reduce((s, x) => s + x.ns, 0) / 1e6);
          labels = t.map((x) => x.label);
        } finally {
          prof.enable(false);
        }
      } else {
        const t0 = performance.now();
        inst.encode();
        await gpu.sync();
        times.push(performance.now() - t0);
      }
    }
    const wall = opts.wall === false ? null : await wallClock(c.name, async () => { inst.encode(); await gpu.sync(); }, { maxTime: opts.wallMaxTime ?? 1 });
    const time = summarize(times);
    const row: OpBenchRow = {
      name: c.name,
      op: c.op,
      shape: c.name.startsWith(c.op) ? c.name.slice(c.op.length).trim() : c.name,
      kernels: [...new Set(labels.map(kernelFile))],
      dispatches: labels.length,
      time,
      gpuTimed: useTs,
      wall,
      flops: inst.flops,
      bytes: inst.bytes,
      check,
    };
    // A kernel shorter than the timestamp resolution reads 0 ms: report no rate rather than an infinite one.
    if (inst.flops && time.median > 0) row.gflops = inst.flops / (time.median * 1e6);
    if (inst.bytes && time.median > 0) row.gbps = inst.bytes / (time.median * 1e6);
    if (inst.flops && inst.bytes) row.intensity = inst.flops / inst.bytes;
    if (peaks) {
      const ridge = peaks.gflops / peaks.gbps;
      if (row.intensity !== undefined) row.bound = row.intensity >= ridge ? 'compute' : 'bandwidth';
      else row.bound = row.gflops !== undefined ? 'compute' : row.gbps !== undefined ? 'bandwidth' : undefined;
      if (row.bound === 'compute' && row.gflops !== undefined) row.peakFraction = row.gflops / peaks.gflops;
      if (row.bound === 'bandwidth' && row.gbps !== undefined) row.peakFraction = row.gbps / peaks.gbps;
    }
    return row;
  } finally {
    inst.dispose();
  }
}

/** The table `runOpBench` prints. */
export function formatOpTable(rows: OpBenchRow[]): string[] {
  const head = ['kernel', 'case', 'median ms', 'min–max ms', 'MAD ms', 'wall ms', 'GFLOPS', 'GB/s', 'bound', '% peak'];
  const body = rows.map((r) => [
    r.kernels.join('+') || r.op,
    r.shape + (r.check ? (r.check.ok ? ' ✓' : ' ✗') : ''),
    fmt(r.time.median),
    `${fmt(r.time.min)}–${fmt(r.time.max)}`,
    fmt(r.time.mad),
    r.wall ? `${fmt(r.wall.median)} ±${fmt(r.wall.rme, 2)}%` : '-',
    fmt(r.gflops),
    fmt(r.gbps),
    r.bound ?? '-',
    r.peakFraction !== undefined ? `${(r.peakFraction * 100).toFixed(1)}%` : '-',
  ]);
  return formatTable(head, body);
}

/**
 * Benchmark the selected perf cases and print (via `log`) a header (adapter, LP_NUM_THREADS, node, date),
 * the measured peaks and a table: kernel, case, median GPU ms, min–max, MAD, wall ms (Benchmark.js median ±
 * rme), GFLOPS, GB/s, bound, % of measured peak. Returns the report (also written to `json` when given).
 */
export async function runOpBench(opts: OpBenchOptions = {}): Promise<OpBenchReport> {
  const log = opts.log === null ? () => {} : (opts.log ?? ((l: string) => console.log(l)));
  const ownGpu = !opts.gpu;
  if (ownGpu) pinLpNumThreads();
  const gpu = opts.gpu ?? (await Gpu.create());
  try {
    const header = benchHeader(gpu);
    for (const l of formatHeader(header)) log(l);
    const tuning = await loadTuning(gpu, { file: opts.tuneFile });
    log(`tuning: ${tuning.source ? `${tuning.source} (${tuning.entries} entries for this adapter)` : `defaults (${tuning.reason})`}`);
    const cases = selectCases(opts);
    if (cases.length === 0) log(`no perf case matches op=${String(opts.op ?? '*')} name=${String(opts.name ?? '*')}`);
    let peaks: DevicePeaks | PeakReport | null = null;
    if (opts.peaks === undefined || opts.peaks === 'measure') {
      const measured = await measurePeaks(gpu, opts.roofline);
      for (const l of formatPeaks(measured)) log(l);
      peaks = measured;
    } else if (opts.peaks !== 'none') {
      peaks = opts.peaks;
      log(`peaks (given): ${fmt(peaks.gflops)} GFLOPS, ${fmt(peaks.gbps)} GB/s`);
    }
    const rows: OpBenchRow[] = [];
    for (const c of cases) {
      log(`… ${c.name}`);
      rows.push(await benchCase(gpu, c, opts, peaks));
    }
    log('');
    for (const l of formatOpTable(rows)) log(l);
    log(`median/min–max/MAD: ${rows[0]?.gpuTimed === false ? 'wall clock' : 'GPU timestamps'} over ${Math.max(5, opts.reps ?? 7)} runs after 1 warm-up; wall: submit→done, Benchmark.js median ± rme`);
    const report: OpBenchReport = { header, peaks, rows };
    if (opts.json) {
      mkdirSync(path.dirname(path.resolve(opts.json)), { recursive: true });
      writeFileSync(opts.json, JSON.stringify(report, null, 2) + '\n');
      log(`wrote ${opts.json}`);
    }
    return report;
  } finally {
    if (ownGpu) gpu.destroy();
  }
}

export const OP_BENCH_USAGE = `options:
  --op REGEX       only cases whose op matches (e.g. linear)
  --name REGEX     only cases whose name matches (e.g. "f16|decode")
  --reps N         GPU-timed runs per case after one warm-up (default 7, min 5)
  --no-wall        skip the Benchmark.js wall-clock sampling
  --wall-time S    seconds of wall-clock sampling per case (default 1)
  --peaks G,B      use these peaks (GFLOPS,GB/s) instead of measuring them
  --no-peaks       do not measure peaks (no % of peak)
  --check          also compare each case's output with its f64 reference
  --json FILE      write the report as JSON
  --tune-file FILE tuning table to use (default: $QVLA_TUNE_FILE or ~/.cache/qvla/tune.json; none: defaults)`;

/** Parse `qvla bench kernels` / bench/kernels.ts flags (see OP_BENCH_USAGE). Throws on unknown flags. */
export function parseOpBenchArgs(argv: string[]): OpBenchOptions {
  const o: OpBenchOptions = {};
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    const val = () => {
      const v = argv[++k];
      if (v === undefined) throw new Error(`${a} needs a value\n${OP_BENCH_USAGE}`);
      return v;
    };
    if (a === '--op') o.op = val();
    else if (a === '--name') o.name = val();
    else if (a === '--reps') o.reps = Number(val());
    else if (a === '--no-wall') o.wall = false;
    else if (a === '--wall-time') o.wallMaxTime = Number(val());
    else if (a === '--no-peaks') o.peaks = 'none';
    else if (a === '--peaks') {
      const [g, b] = val().split(',').map(Number);
      if (!(g > 0 && b > 0)) throw new Error(`--peaks wants GFLOPS,GB/s, e.g. 25,3.5\n${OP_BENCH_USAGE}`);
      o.peaks = { gflops: g, gbps: b };
    } else if (a === '--check') o.check = true;
    else if (a === '--json') o.json = val();
    else if (a === '--tune-file') o.tuneFile = val();
    else throw new Error(`unknown option ${a}\n${OP_BENCH_USAGE}`);
  }
  return o;
}

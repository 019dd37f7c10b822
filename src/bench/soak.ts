// Soak test of the steady state: N consecutive Policy.act() calls with varying inputs, watching for leaks and
// latency drift. Used by tools/soak.ts (the long run, `node --expose-gc dist/tools/soak.js --calls 10000`) and
// by test/reliability/soak.test.ts (a short CI run).
//
// Inputs: a finite set of *scenarios* (embodiment × camera frames × instruction). Frames are the checkpoint's
// sample PNGs or random-noise frames of a few fixed sizes, whose pixels are drawn fresh on every call. Per
// call, the scenario, seed, number of steps, solver and state values are drawn at random. Because GPU buffers
// come from a size-class pool, a new prompt length may legitimately need a buffer class the pool has not seen,
// and (with stageTimings off) temporaries are recycled only at submits, so the most evaluations per call set
// how many buffers of a class are in flight. The scenario set is therefore finite and the warm-up runs every
// scenario with the heaviest (steps, solver) of the mix, every scenario once more at random, and some random
// calls, so that after warm-up any new GPU buffer is a leak, not a first-seen shape.
//
// Measured: act() wall time per call, summarised per window of calls (p50 / p99, to see drift); every
// `sampleEvery` calls, after a gc() (run node with --expose-gc), the JS heap used, RSS, external and
// arrayBuffers bytes, and the GPU pool (buffers created, bytes allocated, live), staging buffers and
// pipelines. Bounds (all configurable) decide PASS / FAIL.
import path from 'node:path';
import { Policy } from '../policy/policy.js';
import type { SolverName } from '../policy/samplers.js';
import { decodeImageFile, type RawImage } from '../preprocess/image.js';
import { Rng } from '../util/rng.js';
import { panelChart, type Scene } from '../plot/index.js';
import { percentile } from './stats.js';

export interface SoakBounds {
  /** New GPU buffers (pool + staging) after warm-up. */
  newBuffers: number;
  /** New pipelines after warm-up. */
  newPipelines: number;
  /** JS heap used (after gc) growth from the first post-warm-up sample to the last, MB. */
  heapGrowthMB: number;
  /** RSS growth over the same span, MB. */
  rssGrowthMB: number;
  /** external + arrayBuffers growth over the same span, MB. */
  externalGrowthMB: number;
  /** Last window p50 / first window p50 (null: not checked). */
  p50Drift: number | null;
  /** Last window p99 / first window p99 (null: not checked). */
  p99Drift: number | null;
}

export const DEFAULT_BOUNDS: SoakBounds = {
  newBuffers: 0,
  newPipelines: 0,
  heapGrowthMB: 16,
  rssGrowthMB: 96,
  externalGrowthMB: 16,
  p50Drift: 1.5,
  p99Drift: 3,
};

export interface SoakOptions {
  /** Checkpoint directory (default weights/tiny). */
  weights: string;
  /** Measured calls after warm-up. */
  calls: number;
  /** Extra random calls after one pass over every scenario (default 10). */
  warmupExtra?: number;
  /** Calls per latency window (default max(10, calls / 20)). */
  window?: number;
  /** Memory sample every this many calls (default = window). */
  sampleEvery?: number;
  seed?: number;
  /** Stop early (reported) once this much wall time is spent in the measured phase. */
  maxMinutes?: number;
  /** Steps per call are drawn from this list (default [1, 2, 3, 4, 6, 10]). */
  steps?: number[];
  solvers?: SolverName[];
  /** Policy option (default false: the lowest-latency mode a control loop would use). */
  stageTimings?: boolean;
  /** Fewer scenarios (CI): every embodiment, fewer frame variants and instructions. */
  small?: boolean;
  bounds?: Partial<SoakBounds>;
  log?: (line: string) => void;
  /** Reuse a loaded policy (not destroyed at the end); otherwise one is loaded and destroyed. */
  policy?: Policy;
}

export interface MemSample {
  call: number;
  heapUsedMB: number;
  rssMB: number;
  externalMB: number;
  arrayBuffersMB: number;
  gpuBuffersCreated: number;
  gpuPoolMB: number;
  gpuLive: number;
  stagingCreated: number;
  pipelines: number;
}

export interface WindowStats {
  from: number;
  to: number;
  p50: number;
  p99: number;
  mean: number;
}

export interface SoakCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SoakReport {
  scenarios: number;
  warmupCalls: number;
  calls: number;
  requestedCalls: number;
  stoppedEarly: boolean;
  measuredSeconds: number;
  msPerCall: number;
  windows: WindowStats[];
  samples: MemSample[];
  nonFinite: number;
  errors: string[];
  gcAvailable: boolean;
  checks: SoakCheck[];
  pass: boolean;
  /** Heap growth rate by least squares over the samples, KB per call. */
  heapSlopeKBPerCall: number;
}

interface FrameSpec {
  sample?: string;
  noise?: [number, number];
}

interface Scenario {
  embodiment: string;
  frames: FrameSpec[] | null; // null: text-only
  instruction: string;
}

const INSTRUCTIONS = [
  'pick up the red block',
  'put the cup on the plate and push the bowl to the left',
  'go to the door',
  'fold the towel in half, then place it next to the basket on the table',
];
const NOISE_SIZES: [number, number][] = [[64, 48], [131, 97], [224, 224], [320, 240], [97, 301]];

function scenarios(small: boolean): Scenario[] {
  const cams: Record<string, string[]> = {
    aloha: ['aloha_cam_high', 'aloha_cam_left_wrist', 'aloha_cam_right_wrist'],
    widowx: ['widowx_image_0'],
    nav: ['nav_front'],
  };
  const instr = small ? INSTRUCTIONS.slice(0, 2) : INSTRUCTIONS;
  const out: Scenario[] = [];
  for (const [emb, samples] of Object.entries(cams)) {
    const variants: (FrameSpec[] | null)[] = [samples.map((s) => ({ sample: s }))];
    const nNoise = small ? 1 : 3;
    for (let v = 0; v < nNoise; v++) {
      // camera k of variant v: a noise frame of size (v + k) mod |sizes|; in variant 0 one camera keeps its sample
      variants.push(samples.map((s, k) => (v === 0 && k === 0 && samples.length > 1 ? { sample: s } : { noise: NOISE_SIZES[(v * 2 + k) % NOISE_SIZES.length] })));
    }
    if (emb === 'nav') variants.push(null); // text-only (T2A)
    for (const frames of variants) for (const instruction of instr) out.push({ embodiment: emb, frames, instruction });
  }
  return out;
}

function windowStats(lat: number[], from: number): WindowStats {
  return { from, to: from + lat.length - 1, p50: percentile(lat, 50), p99: percentile(lat, 99), mean: lat.reduce((a, b) => a + b, 0) / lat.length };
}

const MB = 1024 * 1024;

function gc(): boolean {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) return false;
  g();
  g();
  return true;
}

function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0, den = 0;
  for (let k = 0; k < n; k++) {
    num += (xs[k] - mx) * (ys[k] - my);
    den += (xs[k] - mx) ** 2;
  }
  return den > 0 ? num / den : 0;
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? (() => undefined);
  const bounds: SoakBounds = { ...DEFAULT_BOUNDS, ...(opts.bounds ?? {}) };
  const rng = new Rng(opts.seed ?? 1);
  const stepsList = opts.steps ?? [1, 2, 3, 4, 6, 10];
  const solvers = opts.solvers ?? (['euler', 'heun', 'midpoint', 'rk4'] as SolverName[]);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.uniform() * xs.length)];
  const policy = opts.policy ?? (await Policy.load(opts.weights, { stageTimings: opts.stageTimings ?? false }));
  const ownPolicy = !opts.policy;
  const samples = new Map<string, RawImage>();
  const sampleDir = path.join(opts.weights, 'samples');
  const scen = scenarios(opts.small ?? false);
  for (const s of scen) for (const f of s.frames ?? []) {
    if (f.sample && !samples.has(f.sample)) samples.set(f.sample, await decodeImageFile(path.join(sampleDir, `${f.sample}.png`)));
  }

  const errors: string[] = [];
  let nonFinite = 0;
  // rk4 / heun / midpoint evaluate 4 / 2 / 2 times per step: their steps are capped to bound one call's cost
  const capSteps = (solver: SolverName, steps: number) => (solver === 'rk4' ? Math.min(steps, 3) : solver !== 'euler' ? Math.min(steps, 5) : steps);
  const evalsPerStep: Record<SolverName, number> = { euler: 1, heun: 2, midpoint: 2, rk4: 4 };
  // The heaviest (steps, solver) of the mix: with stageTimings off, a call's temporaries are only recycled at
  // submits, so the most evaluations per call sets how many buffers of each class the pool must hold.
  let heaviest: [number, SolverName] = [1, solvers[0]];
  for (const so of solvers) {
    const st = capSteps(so, Math.max(...stepsList));
    if (st * evalsPerStep[so] > heaviest[0] * evalsPerStep[heaviest[1]]) heaviest = [st, so];
  }
  const call = async (s: Scenario, fixed?: [number, SolverName]): Promise<number> => {
    const emb = policy.embodiment(s.embodiment);
    const images: Record<string, RawImage> = {};
    (s.frames ?? []).forEach((f, k) => {
      if (f.sample) images[emb.cameras[k]] = samples.get(f.sample)!;
      else {
        const [w, h] = f.noise!;
        const data = new Uint8Array(w * h * 3);
        for (let i = 0; i < data.length; i += 4) {
          const r = rng.nextU32();
          data[i] = r;
          data[i + 1] = r >>> 8;
          data[i + 2] = r >>> 16;
          if (i + 3 < data.length) data[i + 3] = r >>> 24;
        }
        images[emb.cameras[k]] = { width: w, height: h, channels: 3, data };
      }
    });
    const state = emb.state ? emb.state.names.map(() => rng.uniform() * 2 - 1) : undefined;
    const solver = fixed ? fixed[1] : pick(solvers);
    const steps = fixed ? fixed[0] : capSteps(solver, pick(stepsList));
    const t0 = performance.now();
    try {
      const r = await policy.act({
        images: s.frames ? images : undefined,
        instruction: s.instruction,
        embodiment: s.embodiment,
        state,
        seed: rng.nextU32(),
        steps,
        solver,
      });
      for (const v of r.actions.actions) if (!Number.isFinite(v)) nonFinite++;
      for (const v of r.raw) if (!Number.isFinite(v)) nonFinite++;
    } catch (e) {
      if (errors.length < 20) errors.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      else errors.push('…');
    }
    return performance.now() - t0;
  };

  const gpu = () => policy.gpu;
  const sample = (n: number): MemSample => {
    gc();
    const m = process.memoryUsage();
    const g = gpu();
    return {
      call: n,
      heapUsedMB: m.heapUsed / MB,
      rssMB: m.rss / MB,
      externalMB: m.external / MB,
      arrayBuffersMB: m.arrayBuffers / MB,
      gpuBuffersCreated: g.buffers.stats.created,
      gpuPoolMB: g.buffers.stats.bytesAllocated / MB,
      gpuLive: g.buffers.stats.live,
      stagingCreated: g.stream.stats.stagingCreated,
      pipelines: g.pipelines.size,
    };
  };

  try {
    // ---- warm-up: every scenario with the heaviest (steps, solver) of the mix, every scenario with a random
    // one, then some random calls
    const tw = performance.now();
    for (const s of scen) await call(s, heaviest);
    for (const s of scen) await call(s);
    const extra = opts.warmupExtra ?? 10;
    for (let k = 0; k < extra; k++) await call(pick(scen));
    const warmupCalls = 2 * scen.length + extra;
    log(`warm-up: ${warmupCalls} calls over ${scen.length} scenarios in ${((performance.now() - tw) / 1000).toFixed(1)} s` +
      ` (${gpu().buffers.stats.created} GPU buffers, ${(gpu().buffers.stats.bytesAllocated / MB).toFixed(1)} MB pool, ${gpu().pipelines.size} pipelines)`);

    // ---- measured phase
    const N = opts.calls;
    const W = opts.window ?? Math.max(10, Math.round(N / 20));
    const every = opts.sampleEvery ?? W;
    const samplesOut: MemSample[] = [sample(0)];
    const windows: WindowStats[] = [];
    let cur: number[] = [];
    let curFrom = 1;
    const t0 = performance.now();
    const deadline = opts.maxMinutes !== undefined ? t0 + opts.maxMinutes * 60_000 : Infinity;
    let done = 0;
    for (let n = 1; n <= N; n++) {
      cur.push(await call(pick(scen)));
      done = n;
      if (cur.length === W) {
        const w = windowStats(cur, curFrom);
        windows.push(w);
        cur = [];
        curFrom = n + 1;
      }
      if (n % every === 0) {
        const s = sample(n);
        samplesOut.push(s);
        const w = windows[windows.length - 1];
        log(`call ${n}/${N}: heap ${s.heapUsedMB.toFixed(1)} MB, rss ${s.rssMB.toFixed(0)} MB, ext ${s.externalMB.toFixed(1)} MB (ab ${s.arrayBuffersMB.toFixed(1)}), ` +
          `gpu buffers ${s.gpuBuffersCreated} (${s.gpuPoolMB.toFixed(1)} MB, live ${s.gpuLive}), staging ${s.stagingCreated}, pipelines ${s.pipelines}` +
          (w ? `; window ${w.from}-${w.to} p50 ${w.p50.toFixed(1)} ms p99 ${w.p99.toFixed(1)} ms` : ''));
      }
      if (performance.now() > deadline) break;
    }
    if (cur.length >= Math.max(2, W / 2)) windows.push(windowStats(cur, curFrom));
    if (samplesOut[samplesOut.length - 1].call !== done) samplesOut.push(sample(done));
    const measuredMs = performance.now() - t0;

    // ---- checks
    const first = samplesOut[0];
    const last = samplesOut[samplesOut.length - 1];
    const checks: SoakCheck[] = [];
    const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
    const newBuf = last.gpuBuffersCreated - first.gpuBuffersCreated + last.stagingCreated - first.stagingCreated;
    check('no new GPU buffers after warm-up', newBuf <= bounds.newBuffers,
      `pool ${first.gpuBuffersCreated} → ${last.gpuBuffersCreated}, staging ${first.stagingCreated} → ${last.stagingCreated} (bound +${bounds.newBuffers}); pool ${first.gpuPoolMB.toFixed(2)} → ${last.gpuPoolMB.toFixed(2)} MB`);
    check('no new pipelines after warm-up', last.pipelines - first.pipelines <= bounds.newPipelines, `${first.pipelines} → ${last.pipelines}`);
    check('no GPU tensors left live', last.gpuLive === first.gpuLive, `live ${first.gpuLive} → ${last.gpuLive}`);
    const hg = last.heapUsedMB - first.heapUsedMB;
    check('JS heap growth bounded', hg < bounds.heapGrowthMB, `${first.heapUsedMB.toFixed(1)} → ${last.heapUsedMB.toFixed(1)} MB (${hg >= 0 ? '+' : ''}${hg.toFixed(1)}, bound ${bounds.heapGrowthMB})`);
    const rg = last.rssMB - first.rssMB;
    check('RSS growth bounded', rg < bounds.rssGrowthMB, `${first.rssMB.toFixed(0)} → ${last.rssMB.toFixed(0)} MB (${rg >= 0 ? '+' : ''}${rg.toFixed(1)}, bound ${bounds.rssGrowthMB})`);
    const eg = last.externalMB + last.arrayBuffersMB - first.externalMB - first.arrayBuffersMB;
    check('external + arrayBuffers growth bounded', eg < bounds.externalGrowthMB,
      `external ${first.externalMB.toFixed(1)} → ${last.externalMB.toFixed(1)} MB, arrayBuffers ${first.arrayBuffersMB.toFixed(1)} → ${last.arrayBuffersMB.toFixed(1)} MB (bound ${bounds.externalGrowthMB})`);
    check('no non-finite actions', nonFinite === 0, `${nonFinite} non-finite values`);
    check('no failed calls', errors.length === 0, errors.length ? errors.slice(0, 3).join(' | ') : '0 errors');
    if (windows.length >= 2) {
      const w0 = windows[0], w1 = windows[windows.length - 1];
      if (bounds.p50Drift !== null) check('p50 latency drift bounded', w1.p50 / w0.p50 <= bounds.p50Drift, `first window ${w0.p50.toFixed(1)} ms → last ${w1.p50.toFixed(1)} ms (×${(w1.p50 / w0.p50).toFixed(2)}, bound ×${bounds.p50Drift})`);
      if (bounds.p99Drift !== null) check('p99 latency drift bounded', w1.p99 / w0.p99 <= bounds.p99Drift, `first window ${w0.p99.toFixed(1)} ms → last ${w1.p99.toFixed(1)} ms (×${(w1.p99 / w0.p99).toFixed(2)}, bound ×${bounds.p99Drift})`);
    }
    const heapSlope = slope(samplesOut.map((s) => s.call), samplesOut.map((s) => s.heapUsedMB * 1024));
    return {
      scenarios: scen.length,
      warmupCalls,
      calls: done,
      requestedCalls: N,
      stoppedEarly: done < N,
      measuredSeconds: measuredMs / 1000,
      msPerCall: measuredMs / Math.max(1, done),
      windows,
      samples: samplesOut,
      nonFinite,
      errors,
      gcAvailable: gc(),
      checks,
      pass: checks.every((c) => c.ok),
      heapSlopeKBPerCall: heapSlope,
    };
  } finally {
    if (ownPolicy) policy.destroy();
  }
}

export function formatSoakReport(r: SoakReport): string {
  const lines: string[] = [];
  lines.push(`soak: ${r.calls}/${r.requestedCalls} measured calls${r.stoppedEarly ? ' (stopped early: time budget)' : ''} after ${r.warmupCalls} warm-up calls over ${r.scenarios} scenarios; ` +
    `${r.measuredSeconds.toFixed(1)} s, ${r.msPerCall.toFixed(1)} ms/call`);
  if (!r.gcAvailable) lines.push('WARNING: gc() is not exposed (run node with --expose-gc): heap numbers include garbage');
  lines.push('latency per window (ms):   calls        p50      p99     mean');
  for (const w of r.windows) lines.push(`  ${`${w.from}-${w.to}`.padEnd(22)} ${w.p50.toFixed(1).padStart(8)} ${w.p99.toFixed(1).padStart(8)} ${w.mean.toFixed(1).padStart(8)}`);
  const f = r.samples[0], l = r.samples[r.samples.length - 1];
  lines.push(`memory (after gc): heap ${f.heapUsedMB.toFixed(1)} → ${l.heapUsedMB.toFixed(1)} MB (slope ${r.heapSlopeKBPerCall.toFixed(3)} KB/call), rss ${f.rssMB.toFixed(0)} → ${l.rssMB.toFixed(0)} MB, ` +
    `external ${f.externalMB.toFixed(1)} → ${l.externalMB.toFixed(1)} MB, arrayBuffers ${f.arrayBuffersMB.toFixed(1)} → ${l.arrayBuffersMB.toFixed(1)} MB`);
  lines.push(`GPU: buffers created ${f.gpuBuffersCreated} → ${l.gpuBuffersCreated}, pool ${f.gpuPoolMB.toFixed(2)} → ${l.gpuPoolMB.toFixed(2)} MB, staging ${f.stagingCreated} → ${l.stagingCreated}, pipelines ${f.pipelines} → ${l.pipelines}`);
  for (const c of r.checks) lines.push(`${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`);
  lines.push(r.pass ? 'PASS' : 'FAIL');
  return lines.join('\n');
}

/**
 * The soak at a glance: latency per window (p50, p99, mean) and memory after gc (JS heap, RSS, GPU pool) against
 * the call number. The y axes start at 0, so a flat line is flat relative to the whole quantity.
 */
export function soakChart(r: SoakReport, title = 'qvla soak: Policy.act() steady state'): Scene {
  const mid = (w: WindowStats): number => (w.from + w.to) / 2;
  const f = r.samples[0], l = r.samples[r.samples.length - 1];
  return panelChart({
    title,
    subtitle: `${r.calls} calls after ${r.warmupCalls} warm-up calls, ${r.msPerCall.toFixed(0)} ms/call; ` +
      `GPU buffers ${f.gpuBuffersCreated} -> ${l.gpuBuffersCreated}; ${r.nonFinite} non-finite; ${r.pass ? 'PASS' : 'FAIL'}`,
    xLabel: 'call',
    panels: [
      {
        label: 'act() latency per window (ms)',
        series: [
          { name: 'p50', points: r.windows.map((w) => [mid(w), w.p50]) },
          { name: 'p99', points: r.windows.map((w) => [mid(w), w.p99]) },
          { name: 'mean', points: r.windows.map((w) => [mid(w), w.mean]) },
        ],
      },
      {
        label: 'memory after gc (MB)',
        series: [
          { name: 'RSS', points: r.samples.map((s) => [s.call, s.rssMB]) },
          { name: 'GPU pool', points: r.samples.map((s) => [s.call, s.gpuPoolMB]) },
          { name: 'JS heap', points: r.samples.map((s) => [s.call, s.heapUsedMB]) },
        ],
      },
    ],
  });
}

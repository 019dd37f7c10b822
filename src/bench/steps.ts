// `qvla bench steps`: a sampling-step research tool. For one fixed observation and noise seed it runs every ODE
// solver at several step counts and reports, per (solver, N):
//   error     — max |Δ| and RMS over the valid (unpadded) [H_e, K_e] entries of the normalised chunk, against a
//               high-accuracy solution (RK4 at 128 steps from the same noise);
//   smoothness — mean squared second difference along the chunk rows, over the valid channels, of the
//               normalised chunk and of the unnormalised actions (physical units, after clipping / relative
//               offsets / gripper binarisation);
//   latency   — median (and min) wall time of the sampling part over a few runs, and the network evaluations.
//
// The observation is encoded once: this module drives the policy's lower-level pieces directly (the same ones
// Policy.act uses, in the same order): preprocessImage + buildActionPrompt → QwenVLM.prefill →
// ActionDecoder.prepareContext / stateToken → then, per (solver, N), only `integrate` with
// ActionDecoder.velocity from the masked noise, and the readback. Latency is therefore the sampling part only
// (noise upload → integrate → readback, no per-step syncs), not the VLM prefill or the decoder context.
// Policy.ts is unchanged; a cross-check compares this path with policy.act() for the config's default
// (solver, steps) from the same noise (`actCheck` in the report).
//
// Output: a table on stdout, a CSV (default bench/out/steps.csv) and a log-log plot of RMS error vs latency, one
// line per solver with markers labelled by N (default bench/out/steps.svg; .png works too), drawn with src/plot's
// scene primitives (it has no log axes: the data is plotted as log10 with decade ticks labelled by value).
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Policy } from '../policy/policy.js';
import { integrate, SOLVERS, GRIDS, evaluations, type SolverName, type GridName } from '../policy/samplers.js';
import { actionMask, normalizeState, unnormalizeActions, type Embodiment } from '../policy/embodiments.js';
import { preprocessImage, decodeImageFile } from '../preprocess/image.js';
import { buildActionPrompt } from '../text/prompt.js';
import { Tensor } from '../tensor.js';
import type { DiTContext } from '../model/actionDecoder.js';
import { Rng } from '../util/rng.js';
import { TINY_DIR } from '../testing/fixtures.js';
import { writePlot, type Item, type Scene } from '../plot/index.js';
import { PALETTE } from '../plot/scene.js';
import { HELP_OPT, UsageError, formatHelp, getNumber, getString, parseArgs, parseNumberList, type CommandSpec } from '../cli/args.js';
import { benchHeader, fmt, formatHeader, formatTable, pinLpNumThreads, type BenchHeader } from './env.js';
import { median } from './stats.js';

export const DEFAULT_STEP_COUNTS = [1, 2, 3, 4, 6, 8, 10, 16, 32];
export const DEFAULT_INSTRUCTION = 'put the red block in the blue bowl';
/** widowx state (x, y, z, roll, pitch, yaw, pad, gripper); other embodiments get zeros. */
export const DEFAULT_WIDOWX_STATE = [0.1, -0.3, 0.6, -0.9, 0.2, 0, 0, 0.7];

export interface StepsOptions {
  checkpoint?: string;
  embodiment?: string;
  instruction?: string;
  /** Image files in the embodiment's camera order (default: weights/tiny/samples/<embodiment>_<camera>.png). */
  images?: string[];
  /** Raw state (default: DEFAULT_WIDOWX_STATE for widowx, zeros otherwise, none when the embodiment has no state). */
  state?: number[] | null;
  seed?: number;
  solvers?: SolverName[];
  stepCounts?: number[];
  grid?: GridName;
  /** Reference solution (default rk4 × 128). */
  refSolver?: SolverName;
  refSteps?: number;
  /** Timed runs per (solver, N) (default 3; the median is reported). */
  reps?: number;
  weightDtype?: 'f32' | 'f16';
  /** Compute the reference twice and report the error between the two runs (determinism; should be 0). Default true. */
  refCheck?: boolean;
  /** Compare the sampling path with policy.act() (default solver/steps, same noise). Default true. */
  actCheck?: boolean;
  /** CSV path (default bench/out/steps.csv; null: none). */
  csv?: string | null;
  /** Plot path, .svg or .png (default bench/out/steps.svg; null: none). */
  plot?: string | null;
  json?: string | null;
  log?: (line: string) => void;
}

export interface StepsRow {
  solver: SolverName;
  steps: number;
  evaluations: number;
  maxAbsErr: number;
  rmsErr: number;
  /** mean squared second difference along rows, valid entries of the normalised chunk */
  smoothNorm: number;
  /** the same on the unnormalised actions [H_e, K_e] */
  smoothActions: number;
  latencyMs: number;
  latencyMinMs: number;
  msPerEval: number;
  /** the reference configuration itself, recomputed (its error is the run-to-run difference) */
  reference?: boolean;
}

export interface StepsReport {
  header: BenchHeader;
  checkpoint: string;
  embodiment: string;
  instruction: string;
  images: string[];
  state: number[] | null;
  seed: number;
  grid: GridName;
  weightDtype: 'f32' | 'f16';
  chunk: [number, number];
  promptTokens: number;
  reference: { solver: SolverName; steps: number; evaluations: number; latencyMs: number; smoothNorm: number; smoothActions: number };
  /** wall times of the once-per-observation part (not in the per-row latencies) */
  observationMs: { prefill: number; context: number };
  /** max |Δ| between this sampling path and policy.act() for the default solver / steps, same noise */
  actCheck: { solver: SolverName; steps: number; maxAbs: number } | null;
  rows: StepsRow[];
  csv: string | null;
  plot: string | null;
}

/** max |a − b| and RMS over the masked entries. */
export function maskedError(a: ArrayLike<number>, b: ArrayLike<number>, mask: ArrayLike<number>): { maxAbs: number; rms: number } {
  let mx = 0, ss = 0, n = 0;
  for (let k = 0; k < mask.length; k++) {
    if (!mask[k]) continue;
    const d = Math.abs(a[k]! - b[k]!);
    if (d > mx || Number.isNaN(d)) mx = d;
    ss += d * d;
    n++;
  }
  return { maxAbs: mx, rms: n ? Math.sqrt(ss / n) : 0 };
}

/** Mean squared second difference along rows (0..rows-1) of columns 0..cols-1 of a row-major [*, stride] array. */
export function secondDiffMeanSquare(x: ArrayLike<number>, rows: number, cols: number, stride = cols): number {
  let ss = 0, n = 0;
  for (let r = 1; r + 1 < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const d = x[(r + 1) * stride + c]! - 2 * x[r * stride + c]! + x[(r - 1) * stride + c]!;
      ss += d * d;
      n++;
    }
  }
  return n ? ss / n : 0;
}

function defaultState(emb: Embodiment): number[] | null {
  if (!emb.state) return null;
  return emb.state.names.map((_, k) => (emb.key === 'widowx' ? DEFAULT_WIDOWX_STATE[k] ?? 0 : 0));
}

async function defaultImages(checkpoint: string, emb: Embodiment): Promise<string[]> {
  const out: string[] = [];
  for (const cam of emb.cameras) {
    const own = path.join(checkpoint, 'samples', `${emb.key}_${cam}.png`);
    const tiny = path.join(TINY_DIR, 'samples', `${emb.key}_${cam}.png`);
    try {
      await fsp.access(own);
      out.push(own);
    } catch {
      out.push(tiny);
    }
  }
  return out;
}

/** The once-per-observation state the sampler needs (what Policy.act builds before its denoising loop). */
class Observation {
  private constructor(
    readonly policy: Policy,
    readonly emb: Embodiment,
    readonly ctx: DiTContext,
    readonly stateTok: Tensor,
    private readonly stateT: Tensor | null,
    readonly actionMaskT: Tensor,
    readonly rowMaskT: Tensor,
    readonly mask: Float32Array,
    readonly promptTokens: number,
    readonly prefillMs: number,
    readonly contextMs: number,
  ) {}

  static async build(policy: Policy, emb: Embodiment, instruction: string, images: string[], state: number[] | null): Promise<Observation> {
    const gpu = policy.gpu;
    const ae = policy.config.actionExpert!;
    const t0 = performance.now();
    const pre: { pixels: Float32Array; grid: { t: number; h: number; w: number } }[] = [];
    for (const f of images) {
      const p = preprocessImage(await decodeImageFile(f), policy.preprocessor);
      pre.push({ pixels: p.pixelValues, grid: p.grid });
    }
    const prompt = buildActionPrompt(
      policy.tokenizer, emb, instruction,
      pre.map((im, k) => ({ camera: emb.cameras[k] ?? `view${k}`, gridH: im.grid.h, gridW: im.grid.w })),
      { maxTokens: 4096, mergeSize: policy.config.vision.spatialMergeSize },
    );
    const N = policy.config.text.numHiddenLayers;
    const cache = policy.vlm.newCache(prompt.ids.length + 1);
    let cond: Tensor;
    try {
      const r = await policy.vlm.prefill(
        { ids: prompt.ids, mmTokenTypeIds: prompt.mmTokenTypeIds, images: pre },
        cache,
        { collect: ae.vlmLayer === N ? [] : [ae.vlmLayer] },
      );
      r.vision?.release();
      cond = ae.vlmLayer === N ? r.hidden : r.layers.get(ae.vlmLayer)!;
      if (cond !== r.hidden) r.hidden.release();
      await gpu.sync();
    } finally {
      cache.release();
    }
    const t1 = performance.now();
    const ctx = policy.decoder.prepareContext(cond);
    cond.release();
    const stateT = state ? Tensor.from(gpu, normalizeState(emb, state, ae.sMax), [ae.sMax], 'f32', 'state') : null;
    const stateTok = policy.decoder.stateToken(stateT);
    const mask = actionMask(emb, ae.hMax, ae.kMax);
    const rows = new Float32Array(1 + ae.hMax);
    rows.fill(1, 0, 1 + emb.control.chunk);
    const actionMaskT = Tensor.from(gpu, mask, [ae.hMax, ae.kMax], 'f32', 'steps.mask');
    const rowMaskT = Tensor.from(gpu, rows, [1 + ae.hMax], 'f32', 'steps.rowmask');
    await gpu.sync();
    const t2 = performance.now();
    return new Observation(policy, emb, ctx, stateTok, stateT, actionMaskT, rowMaskT, mask, prompt.ids.length, t1 - t0, t2 - t1);
  }

  /** Integrates from `noise` (masked here) and reads the chunk back; returns it and the wall time. */
  async sample(noise: Float32Array, solver: SolverName, steps: number, grid: GridName): Promise<{ raw: Float32Array; ms: number }> {
    const gpu = this.policy.gpu;
    const ae = this.policy.config.actionExpert!;
    const t0 = performance.now();
    const n = Float32Array.from(noise);
    for (let k = 0; k < n.length; k++) n[k] *= this.mask[k]!;
    const Y = Tensor.from(gpu, n, [ae.hMax, ae.kMax], 'f32', 'steps.chunk');
    try {
      await integrate(
        (y, tau, out) => this.policy.decoder.velocity(y, tau, this.ctx, this.stateTok, this.rowMaskT, out),
        Y, this.actionMaskT,
        { steps, solver, grid, shift: ae.timeShift },
      );
      const raw = await Y.readF32();
      return { raw, ms: performance.now() - t0 };
    } finally {
      Y.release();
    }
  }

  release(): void {
    this.ctx.release();
    if (this.stateT) {
      this.stateT.release();
      this.stateTok.release();
    }
    this.actionMaskT.release();
    this.rowMaskT.release();
  }
}

/** Runs the sweep (programmatic API). */
export async function runSteps(opts: StepsOptions = {}): Promise<StepsReport> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  pinLpNumThreads();
  const checkpoint = opts.checkpoint ?? TINY_DIR;
  const weightDtype = opts.weightDtype ?? 'f32';
  const seed = opts.seed ?? 0;
  const grid = opts.grid ?? 'uniform';
  const solvers = opts.solvers ?? [...SOLVERS];
  const stepCounts = opts.stepCounts ?? DEFAULT_STEP_COUNTS;
  const refSolver = opts.refSolver ?? 'rk4';
  const refSteps = opts.refSteps ?? 128;
  const reps = opts.reps ?? 3;
  const instruction = opts.instruction ?? DEFAULT_INSTRUCTION;
  const csvPath = opts.csv === undefined ? 'bench/out/steps.csv' : opts.csv;
  const plotPath = opts.plot === undefined ? 'bench/out/steps.svg' : opts.plot;

  const policy = await Policy.load(checkpoint, { weightDtype, stageTimings: false });
  let obs: Observation | null = null;
  try {
    const header = benchHeader(policy.gpu);
    const emb = policy.embodiment(opts.embodiment ?? 'widowx');
    const ae = policy.config.actionExpert!;
    const images = opts.images ?? (await defaultImages(checkpoint, emb));
    const state = opts.state === undefined ? defaultState(emb) : opts.state;
    const H = emb.control.chunk;
    const K = emb.action.names.length;
    obs = await Observation.build(policy, emb, instruction, images, state);
    const noise = new Rng(seed).normals(ae.hMax * ae.kMax);
    const smooth = (raw: Float32Array) => {
      const u = unnormalizeActions(emb, raw, ae.kMax, state);
      return { norm: secondDiffMeanSquare(raw, H, K, ae.kMax), act: secondDiffMeanSquare(u.actions, u.rows, u.dims) };
    };

    // Warm-up: compiles every pipeline the sweep uses (all solvers), so the first timed row is not penalised.
    for (const s of new Set<SolverName>([...solvers, refSolver])) await obs.sample(noise, s, 2, grid);

    log(`reference: ${refSolver} × ${refSteps} (${evaluations(refSolver, refSteps)} evaluations) ...`);
    const ref = await obs.sample(noise, refSolver, refSteps, grid);
    const refSmooth = smooth(ref.raw);
    const rows: StepsRow[] = [];
    const total = solvers.length * stepCounts.length;
    for (const solver of solvers) {
      for (const N of stepCounts) {
        const times: number[] = [];
        let raw: Float32Array | null = null;
        for (let k = 0; k < Math.max(1, reps); k++) {
          const r = await obs.sample(noise, solver, N, grid);
          times.push(r.ms);
          raw ??= r.raw;
        }
        const e = maskedError(raw!, ref.raw, obs.mask);
        const sm = smooth(raw!);
        const lat = median(times);
        const nfe = evaluations(solver, N);
        rows.push({
          solver, steps: N, evaluations: nfe, maxAbsErr: e.maxAbs, rmsErr: e.rms, smoothNorm: sm.norm, smoothActions: sm.act,
          latencyMs: lat, latencyMinMs: Math.min(...times), msPerEval: lat / nfe,
        });
        log(`  [${rows.length}/${total}] ${solver} N=${N}: rms ${fmt(e.rms)}, ${fmt(lat)} ms`);
      }
    }
    if (opts.refCheck ?? true) {
      const again = await obs.sample(noise, refSolver, refSteps, grid);
      const e = maskedError(again.raw, ref.raw, obs.mask);
      const nfe = evaluations(refSolver, refSteps);
      rows.push({
        solver: refSolver, steps: refSteps, evaluations: nfe, maxAbsErr: e.maxAbs, rmsErr: e.rms,
        smoothNorm: refSmooth.norm, smoothActions: refSmooth.act, latencyMs: again.ms, latencyMinMs: Math.min(again.ms, ref.ms),
        msPerEval: again.ms / nfe, reference: true,
      });
    }
    let actCheck: StepsReport['actCheck'] = null;
    if (opts.actCheck ?? true) {
      const solver = ae.defaultSolver as SolverName;
      const steps = ae.defaultSteps;
      const r = await policy.act({ images, instruction, embodiment: emb.key, state, noise, steps, solver, grid });
      const mine = await obs.sample(noise, solver, steps, grid);
      let mx = 0;
      for (let k = 0; k < mine.raw.length; k++) mx = Math.max(mx, Math.abs(mine.raw[k]! - r.raw[k]!));
      actCheck = { solver, steps, maxAbs: mx };
    }

    const report: StepsReport = {
      header, checkpoint, embodiment: emb.key, instruction, images, state, seed, grid, weightDtype,
      chunk: [H, K], promptTokens: obs.promptTokens,
      reference: {
        solver: refSolver, steps: refSteps, evaluations: evaluations(refSolver, refSteps), latencyMs: ref.ms,
        smoothNorm: refSmooth.norm, smoothActions: refSmooth.act,
      },
      observationMs: { prefill: obs.prefillMs, context: obs.contextMs },
      actCheck,
      rows,
      csv: csvPath,
      plot: plotPath,
    };
    if (csvPath) {
      await fsp.mkdir(path.dirname(path.resolve(csvPath)), { recursive: true });
      await fsp.writeFile(csvPath, stepsCsv(rows));
    }
    if (plotPath) {
      await fsp.mkdir(path.dirname(path.resolve(plotPath)), { recursive: true });
      await writePlot(plotPath, stepsChart(report));
    }
    if (opts.json) {
      await fsp.mkdir(path.dirname(path.resolve(opts.json)), { recursive: true });
      await fsp.writeFile(opts.json, JSON.stringify(report, null, 2) + '\n');
    }
    return report;
  } finally {
    obs?.release();
    policy.destroy();
  }
}

export const CSV_COLUMNS = [
  'solver', 'steps', 'evaluations', 'max_abs_err', 'rms_err', 'smooth_norm', 'smooth_actions', 'latency_ms_median', 'latency_ms_min', 'ms_per_eval', 'reference',
] as const;

export function stepsCsv(rows: readonly StepsRow[]): string {
  const num = (x: number) => (Number.isFinite(x) ? String(+x.toPrecision(6)) : '');
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of rows) {
    lines.push([
      r.solver, r.steps, r.evaluations, num(r.maxAbsErr), num(r.rmsErr), num(r.smoothNorm), num(r.smoothActions),
      num(r.latencyMs), num(r.latencyMinMs), num(r.msPerEval), r.reference ? 1 : 0,
    ].join(','));
  }
  return lines.join('\n') + '\n';
}

// ---- the log-log chart

function decadeTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) out.push(e);
  return out;
}

function decadeLabel(e: number): string {
  if (e >= 0 && e <= 4) return String(10 ** e);
  if (e < 0 && e >= -3) return (10 ** e).toFixed(-e);
  return `1e${e}`;
}

const INK = '#222222', MUTED = '#666666', GRID_C = '#e3e3e3', FRAME_C = '#999999';

function label(x: number, y: number, s: string, o: Partial<Extract<Item, { kind: 'text' }>> = {}): Item {
  return { kind: 'text', x, y, text: s, scale: 1, color: INK, anchor: 'start', baseline: 'bottom', ...o };
}

/** Tick positions (log10 units) and labels for a log axis over [lo, hi]: decades, plus 2 and 5 when it spans few. */
function logTicks(lo: number, hi: number, minor: boolean): { v: number; text: string }[] {
  const out: { v: number; text: string }[] = [];
  for (const e of decadeTicks(lo, hi)) {
    for (const m of minor ? [1, 2, 5] : [1]) {
      const v = e + Math.log10(m);
      if (v < lo - 1e-9 || v > hi + 1e-9) continue;
      out.push({ v, text: m === 1 ? decadeLabel(e) : String(+(10 ** v).toPrecision(2)) });
    }
  }
  return out;
}

interface Panel {
  left: number;
  title: string;
  xLabel: string;
  x: (row: StepsRow) => number;
}

/**
 * RMS error vs sampling latency (left) and vs network evaluations (right), both log-log, one line per solver,
 * markers labelled by N. src/plot has no log axes, so values are plotted as log10 with decade ticks labelled by
 * value. A zero error is drawn at a floor a decade below the smallest non-zero one.
 */
export function stepsChart(r: StepsReport): Scene {
  const rows = r.rows.filter((x) => !x.reference && Number.isFinite(x.latencyMs) && x.latencyMs > 0);
  const PW = 560, W = 2 * PW + 150, Hh = 560;
  const T = 78, B = Hh - 60;
  const items: Item[] = [];
  const pos = rows.map((x) => x.rmsErr).filter((e) => e > 0);
  const floorErr = pos.length ? Math.min(...pos) / 10 : 1e-8;
  const ly = rows.map((x) => Math.log10(Math.max(x.rmsErr, floorErr)));
  let y0 = ly.length ? Math.floor(Math.min(...ly)) : -3;
  let y1 = ly.length ? Math.ceil(Math.max(...ly)) : 0;
  if (y1 <= y0) y1 = y0 + 1;
  const yMinor = y1 - y0 <= 2;
  const sy = (v: number) => B - ((v - y0) / (y1 - y0)) * (B - T);
  const solvers = [...new Set(rows.map((x) => x.solver))];

  items.push(label(16, 12, 'Sampling error vs cost (log-log)', { scale: 2, baseline: 'top' }));
  items.push(label(16, 36, `${path.basename(r.checkpoint)} / ${r.embodiment}, seed ${r.seed}, ${r.grid} grid. y: RMS error vs ${r.reference.solver} x ${r.reference.steps} over the valid ${r.chunk[0]}x${r.chunk[1]} normalised chunk; labels: steps N`, { color: MUTED, baseline: 'top' }));
  items.push(label(16, 50, 'latency: sampling only (noise upload, integrate, readback), median; the observation (prefill, decoder context) is encoded once', { color: MUTED, baseline: 'top' }));

  const panels: Panel[] = [
    { left: 0, title: 'vs latency', xLabel: 'sampling latency per chunk (ms, median)', x: (q) => q.latencyMs },
    { left: PW, title: 'vs network evaluations', xLabel: 'network evaluations (NFE)', x: (q) => q.evaluations },
  ];
  for (const p of panels) {
    const L = p.left + 80, R = p.left + PW - 20;
    const lx = rows.map((q) => Math.log10(p.x(q)));
    let x0 = lx.length ? Math.floor(Math.min(...lx) * 2) / 2 : 0;
    let x1 = lx.length ? Math.ceil(Math.max(...lx) * 2) / 2 : 1;
    if (x1 - x0 < 0.5) x1 = x0 + 0.5;
    const sx = (v: number) => L + ((v - x0) / (x1 - x0)) * (R - L);
    for (const t of logTicks(x0, x1, x1 - x0 <= 4)) {
      const x = sx(t.v);
      items.push({ kind: 'line', points: [[x, T], [x, B]], color: GRID_C, width: 1 });
      items.push(label(x, B + 6, t.text, { anchor: 'middle', baseline: 'top', color: MUTED }));
    }
    for (const t of logTicks(y0, y1, yMinor)) {
      const y = sy(t.v);
      items.push({ kind: 'line', points: [[L, y], [R, y]], color: GRID_C, width: 1 });
      items.push(label(L - 6, y, t.text, { anchor: 'end', baseline: 'middle', color: MUTED }));
    }
    items.push({ kind: 'rect', x: L, y: T, w: R - L, h: B - T, stroke: FRAME_C, strokeWidth: 1 });
    items.push(label((L + R) / 2, B + 24, p.xLabel, { anchor: 'middle', baseline: 'top', color: MUTED }));
    items.push(label(L, T - 6, `RMS error ${p.title}`, { baseline: 'bottom' }));
    solvers.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length]!;
      const pts = rows.map((q, k) => ({ q, k })).filter(({ q }) => q.solver === s).sort((a, b) => a.q.steps - b.q.steps);
      const xy: [number, number][] = pts.map(({ k }) => [sx(lx[k]!), sy(ly[k]!)]);
      if (xy.length > 1) items.push({ kind: 'line', points: xy, color, width: 2 });
      pts.forEach(({ q }, j) => {
        const [px, py] = xy[j]!;
        items.push({ kind: 'circle', cx: px, cy: py, r: 3.5, fill: color });
        items.push(label(px + 5, py - 3, String(q.steps), { color }));
      });
    });
  }
  const LX = 2 * PW + 10;
  solvers.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const y = T + 10 + i * 18;
    items.push({ kind: 'line', points: [[LX, y], [LX + 24, y]], color, width: 2 });
    items.push({ kind: 'circle', cx: LX + 12, cy: y, r: 3.5, fill: color });
    items.push(label(LX + 30, y, s, { baseline: 'middle' }));
  });
  if (rows.some((x) => x.rmsErr <= 0)) items.push(label(LX, T + 14 + solvers.length * 18, `0 drawn at ${floorErr.toExponential(0)}`, { baseline: 'top', color: MUTED }));
  return { width: W, height: Hh, background: '#ffffff', items };
}

export function formatStepsReport(r: StepsReport): string[] {
  const out = [...formatHeader(r.header), `weights:        ${r.weightDtype} on the GPU`, ''];
  out.push(
    `checkpoint ${r.checkpoint}, embodiment ${r.embodiment} (valid chunk ${r.chunk[0]}x${r.chunk[1]}), seed ${r.seed}, ${r.grid} grid, ` +
      `${r.promptTokens} prompt tokens`,
  );
  out.push(`instruction: ${JSON.stringify(r.instruction)}; state: ${r.state ? `[${r.state.join(', ')}]` : 'none'}`);
  out.push(`observation encoded once: prefill ${fmt(r.observationMs.prefill)} ms, decoder context ${fmt(r.observationMs.context)} ms (not in the latencies below)`);
  out.push(
    `reference: ${r.reference.solver} x ${r.reference.steps} (${r.reference.evaluations} evaluations, ${fmt(r.reference.latencyMs)} ms), ` +
      `smoothness ${fmt(r.reference.smoothNorm)} (normalised) / ${fmt(r.reference.smoothActions)} (actions)`,
  );
  if (r.actCheck) out.push(`cross-check vs policy.act() (${r.actCheck.solver} x ${r.actCheck.steps}, same noise): max |diff| ${r.actCheck.maxAbs.toExponential(2)}`);
  out.push('');
  const rows = r.rows.map((x) => [
    x.reference ? `${x.solver} (ref again)` : x.solver, String(x.steps), String(x.evaluations), fmt(x.maxAbsErr), fmt(x.rmsErr),
    fmt(x.smoothNorm), fmt(x.smoothActions), fmt(x.latencyMs), fmt(x.latencyMinMs), fmt(x.msPerEval),
  ]);
  out.push(...formatTable(['solver', 'N', 'NFE', 'max|err|', 'rms err', 'smooth(norm)', 'smooth(act)', 'ms p50', 'ms min', 'ms/NFE'], rows));
  out.push('');
  out.push('err: vs the reference over the valid entries of the normalised chunk; smooth: mean squared 2nd difference along the chunk rows;');
  out.push('latency: sampling only (noise upload, integrate, readback), median of the timed runs.');
  if (r.csv) out.push(`wrote ${r.csv}`);
  if (r.plot) out.push(`wrote ${r.plot}`);
  return out;
}

export const STEPS_SPEC: CommandSpec = {
  name: 'bench steps',
  usage: 'bench steps [--checkpoint DIR] [--embodiment NAME] [--seed N] [options]',
  summary: 'Sampling-step research: error vs an RK4-128 reference, smoothness and latency for every solver and step count.',
  description: 'The observation is encoded once (VLM prefill + decoder context); each (solver, N) only integrates from the same noise.',
  options: [
    { name: 'checkpoint', type: 'string', metavar: 'DIR', help: 'checkpoint directory', defaultText: 'weights/tiny' },
    { name: 'embodiment', type: 'string', help: 'embodiment', defaultText: 'widowx' },
    { name: 'instruction', type: 'string', help: 'instruction', defaultText: JSON.stringify(DEFAULT_INSTRUCTION) },
    { name: 'image', type: 'list', metavar: 'FILE', help: "image per camera, in the embodiment's camera order", defaultText: 'weights/tiny/samples/<embodiment>_<camera>.png' },
    { name: 'state', type: 'string', metavar: 'V,V,...', help: 'raw state', defaultText: 'a fixed widowx state; zeros for others' },
    { name: 'seed', type: 'int', min: 0, help: 'noise seed', defaultText: '0' },
    { name: 'solvers', type: 'string', metavar: 'LIST', help: `comma-separated solvers (${SOLVERS.join(', ')})`, defaultText: 'all' },
    { name: 'steps', type: 'string', metavar: 'LIST', help: 'comma-separated step counts', defaultText: DEFAULT_STEP_COUNTS.join(',') },
    { name: 'grid', type: 'string', choices: GRIDS, help: 'time grid', defaultText: 'uniform' },
    { name: 'ref-steps', type: 'int', min: 1, help: 'steps of the RK4 reference', defaultText: '128' },
    { name: 'reps', type: 'int', min: 1, help: 'timed runs per (solver, N); the median is reported', defaultText: '3' },
    { name: 'weight-dtype', type: 'string', choices: ['f32', 'f16'], help: 'matrix storage on the GPU', defaultText: 'f32' },
    { name: 'csv', type: 'string', metavar: 'FILE', help: 'CSV output', defaultText: 'bench/out/steps.csv' },
    { name: 'plot', type: 'string', metavar: 'FILE', help: 'plot output (.svg or .png)', defaultText: 'bench/out/steps.svg' },
    { name: 'json', type: 'string', metavar: 'FILE', help: 'also write the report as JSON' },
    HELP_OPT,
  ],
  examples: ['qvla bench steps', 'qvla bench steps --embodiment aloha --solvers euler,heun --steps 1,2,4,8 --plot bench/out/steps-aloha.png'],
};

/** CLI entry (`qvla bench steps ...`): returns the exit code. */
export async function runStepsBench(args: string[]): Promise<number> {
  const p = parseArgs(STEPS_SPEC, args);
  if (p.help) {
    process.stdout.write(formatHelp(STEPS_SPEC));
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`qvla bench steps: unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const solversRaw = getString(p, 'solvers');
  const solvers = solversRaw?.split(',').map((s) => s.trim()).filter(Boolean) as SolverName[] | undefined;
  for (const s of solvers ?? []) if (!SOLVERS.includes(s)) throw new UsageError(`qvla bench steps: --solvers: unknown solver ${JSON.stringify(s)} (${SOLVERS.join(', ')})`);
  const stepsRaw = getString(p, 'steps');
  const stepCounts = stepsRaw ? parseNumberList(stepsRaw, 'qvla bench steps: --steps') : undefined;
  for (const n of stepCounts ?? []) if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError(`qvla bench steps: --steps: ${n} is not an integer in [1, 1000]`);
  const stateRaw = getString(p, 'state');
  const images = p.opts.get('image');
  const report = await runSteps({
    checkpoint: getString(p, 'checkpoint'),
    embodiment: getString(p, 'embodiment'),
    instruction: getString(p, 'instruction'),
    images: Array.isArray(images) && images.length > 0 ? images : undefined,
    state: stateRaw !== undefined ? parseNumberList(stateRaw, 'qvla bench steps: --state') : undefined,
    seed: getNumber(p, 'seed'),
    solvers,
    stepCounts,
    grid: getString(p, 'grid') as GridName | undefined,
    refSteps: getNumber(p, 'ref-steps'),
    reps: getNumber(p, 'reps'),
    weightDtype: getString(p, 'weight-dtype') as 'f32' | 'f16' | undefined,
    csv: getString(p, 'csv'),
    plot: getString(p, 'plot'),
    json: getString(p, 'json'),
  });
  process.stdout.write(`\n${formatStepsReport(report).join('\n')}\n`);
  return 0;
}

// `qvla bench steps`: a sampling-step research tool. For a set of observations (each with its own noise) it runs
// every ODE solver at several step counts and reports, per (solver, N), pooled over the observations:
//   error     — max |Δ| and RMS over the valid (unpadded) [H_e, K_e] entries of the normalised chunk, against a
//               high-accuracy solution (RK4 at 128 steps from the same noise); the RMS is also kept per observation;
//   order     — the observed convergence order p of each solver (RMS error ∝ N^−p): the least-squares slope of
//               log(RMS error) vs log(N) over the N where the error is above the reference's own error floor,
//               and the pairwise slopes between successive N (`convergenceOrder`);
//   smoothness — mean squared second difference along the chunk rows, over the valid channels, of the
//               normalised chunk and of the unnormalised actions (physical units, after clipping / relative
//               offsets / gripper binarisation), averaged over the observations;
//   latency   — median (and min) wall time of the sampling part, and the network evaluations.
//
// Observations. With a checkpoint trained on the toy worlds (default: weights/toy when it exists, else
// weights/tiny) they come from a world (src/worlds): `--world tabletop|nav|ball`, `--embodiment`, `--level`,
// `--seed` (first evaluation seed, default EVAL_SEED_BASE): observation k is the world reset at seed + k (advanced
// `--decision` decisions by the scripted expert), its frames, state and instruction, and the noise `qvla eval`
// draws for that decision (decisionSeed). With `--image FILE…` (or a checkpoint without the world embodiments,
// e.g. weights/tiny) the observation is the image files with a fixed state and instruction, and observation k is
// the same encoding with noise seed `--seed` + k (default 1 observation, seed 0: the tool's original behaviour).
//
// Reference floor. The reference (RK4 × 128) is also computed at half the steps; the RMS difference between the
// two bounds the reference's own error (an order-p solver's error at 128 steps is ≈ that / (2^p − 1); it also
// contains the float32 round-off). Errors within FLOOR_FACTOR × floor of it are not used for the order fit.
//
// Control. The same solvers, grid, masked noise and order fit run on an analytic smooth field (on the GPU,
// elementwise ops: v(Y, τ) = cos(2τ)·sigmoid(Y) − (0.25 + 0.5τ)·Y), where Euler must show p ≈ 1, Heun and
// midpoint ≈ 2 and RK4 ≈ 4 (float64 on the CPU, N = 1…32: 0.98, 2.11, 1.87, 4.25; pre-asymptotic at small N):
// a check of the integrator and of the fit, and the yardstick for a trained field (bench/RESULTS.md, "qvla bench
// steps", has what a trained checkpoint shows).
//
// Each observation is encoded once: this module drives the policy's lower-level pieces directly (the same ones
// Policy.act uses, in the same order): preprocessImage + buildActionPrompt → QwenVLM.prefill →
// ActionDecoder.prepareContext / stateToken → then, per (solver, N), only `integrate` with
// ActionDecoder.velocity from the masked noise, and the readback. Latency is therefore the sampling part only
// (noise upload → integrate → readback, no per-step syncs), not the VLM prefill or the decoder context; the
// first observation is timed `reps` times per (solver, N), the others once (all runs go into the median).
// Policy.ts is unchanged; a cross-check compares this path with policy.act() on the first observation for the
// config's default (solver, steps) from the same noise (`actCheck` in the report).
//
// Output: a table on stdout (rows, then the orders), a CSV (default bench/out/steps.csv) and a log-log plot of
// RMS error vs latency and vs NFE, one line per solver with markers labelled by N and the fitted order in the
// legend (default bench/out/steps.svg; .png works too), drawn with src/plot's scene primitives (it has no log
// axes: the data is plotted as log10 with decade ticks labelled by value); `--json` writes the whole report.
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Policy, type ImageInput } from '../policy/policy.js';
import { integrate, SOLVERS, GRIDS, evaluations, type SolverName, type GridName } from '../policy/samplers.js';
import { actionMask, normalizeState, unnormalizeActions, type Embodiment } from '../policy/embodiments.js';
import { preprocessImage, decodeImageFile, type RawImage } from '../preprocess/image.js';
import { buildActionPrompt } from '../text/prompt.js';
import { Tensor } from '../tensor.js';
import type { Gpu } from '../gpu/device.js';
import { axpy, scale, unary } from '../ops/elementwise.js';
import type { DiTContext } from '../model/actionDecoder.js';
import { Rng } from '../util/rng.js';
import { REPO_ROOT, TINY_DIR } from '../testing/fixtures.js';
import { EVAL_SEED_BASE, WORLD_NAMES, findWorldSpecs } from '../worlds/registry.js';
import type { WorldSpec } from '../worlds/types.js';
import { decisionSeed, embodimentMismatch } from '../eval/episodes.js';
import { writePlot, stepsChart } from '../plot/index.js';
import { HELP_OPT, UsageError, formatHelp, getNumber, getString, parseArgs, parseNumberList, type CommandSpec } from '../cli/args.js';
import { benchHeader, fmt, formatHeader, formatTable, pinLpNumThreads, type BenchHeader, writeJsonReport, fe, fo } from './env.js';
import { median } from './stats.js';

export const DEFAULT_STEP_COUNTS = [1, 2, 3, 4, 6, 8, 10, 16, 32];
export const DEFAULT_INSTRUCTION = 'put the red block in the blue bowl';
/** widowx state (x, y, z, roll, pitch, yaw, pad, gripper); other embodiments get zeros. */
export const DEFAULT_WIDOWX_STATE = [0.1, -0.3, 0.6, -0.9, 0.2, 0, 0, 0.7];
/** The trained toy-world checkpoint: the default checkpoint when it exists. */
export const TOY_DIR = path.join(REPO_ROOT, 'weights', 'toy');
/** Observations of a world sweep (seeds seed … seed + K − 1). */
export const DEFAULT_WORLD_OBSERVATIONS = 8;
/** Errors at most this many times the reference floor are left out of the order fit. */
export const FLOOR_FACTOR = 10;

/** weights/toy when it holds a checkpoint, else weights/tiny. */
export function defaultStepsCheckpoint(): string {
  return existsSync(path.join(TOY_DIR, 'config.json')) ? TOY_DIR : TINY_DIR;
}

export interface StepsOptions {
  /** Default: defaultStepsCheckpoint() (weights/toy, else weights/tiny). */
  checkpoint?: string;
  /** World of the observations (tabletop, nav, ball). Default: the embodiment's world, tabletop for none. */
  world?: string;
  embodiment?: string;
  /** World level (A, B, bimodal). Default A. */
  level?: string;
  /** Decisions the scripted expert takes before the observation (world mode). Default 0. */
  decision?: number;
  /** Instruction (default: the world's; DEFAULT_INSTRUCTION with image files). */
  instruction?: string;
  /** Image files in the embodiment's camera order: the image-file mode (default without world embodiments: weights/tiny/samples/<embodiment>_<camera>.png). */
  images?: string[];
  /** Raw state, image-file mode only (default: DEFAULT_WIDOWX_STATE for widowx, zeros otherwise, none when the embodiment has no state). */
  state?: number[] | null;
  /** World mode: the first evaluation seed (default EVAL_SEED_BASE). Image files: the first noise seed (default 0). */
  seed?: number;
  /** Observations averaged (default DEFAULT_WORLD_OBSERVATIONS in world mode, 1 with image files). */
  observations?: number;
  solvers?: SolverName[];
  stepCounts?: number[];
  grid?: GridName;
  /** Reference solution (default rk4 × 128). */
  refSolver?: SolverName;
  refSteps?: number;
  /** Order fit: errors above floorFactor × the reference floor (default FLOOR_FACTOR). */
  floorFactor?: number;
  /** Timed runs per (solver, N) on the first observation (default 3; the median over all runs is reported). */
  reps?: number;
  weightDtype?: 'f32' | 'f16';
  /** Compute the reference twice on the first observation and report the difference (determinism; should be 0). Default true. */
  refCheck?: boolean;
  /** Compare the sampling path with policy.act() (default solver/steps, same noise, first observation). Default true. */
  actCheck?: boolean;
  /** Run the sweep on the analytic smooth field too (`control` in the report). Default true. */
  control?: boolean;
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
  /** over all observations */
  maxAbsErr: number;
  /** pooled over all observations (root of the mean square over every valid entry of every observation) */
  rmsErr: number;
  /** RMS error of each observation, in observation order */
  rmsErrObs: number[];
  /** mean squared second difference along rows, valid entries of the normalised chunk (mean over observations) */
  smoothNorm: number;
  /** the same on the unnormalised actions [H_e, K_e] */
  smoothActions: number;
  latencyMs: number;
  latencyMinMs: number;
  msPerEval: number;
  /** observed order between the previous N of this solver and this one (null for the first N) */
  orderPair: number | null;
  /** this N is in the solver's order fit */
  inFit: boolean;
  /** the reference configuration itself, recomputed on the first observation (its error is the run-to-run difference) */
  reference?: boolean;
}

export interface OrderPair {
  from: number;
  to: number;
  /** −Δlog(err) / Δlog(N); null when an error is 0 or not finite */
  order: number | null;
  /** both errors above the fit threshold */
  aboveFloor: boolean;
}

export interface ConvergenceOrder {
  /** −slope of the least-squares line log(err) vs log(N) over `fitSteps`; null with fewer than 2 points */
  order: number | null;
  /** the N used: the first contiguous run (by N) of errors above `threshold` */
  fitSteps: number[];
  /** the same fit over the last 3 N of `fitSteps` (the most asymptotic part); null with fewer than 3 */
  tailOrder: number | null;
  /** between successive N (all of them) */
  pairwise: OrderPair[];
  /** factor × floor */
  threshold: number;
}

export interface SolverOrder extends ConvergenceOrder {
  solver: SolverName;
  /** the fit on each observation alone (its own errors and floor) */
  orderObs: (number | null)[];
}

export interface ObservationInfo {
  /** world mode: the episode seed; image files: the noise seed */
  seed: number;
  noiseSeed: number;
  instruction: string;
  state: number[] | null;
  /** world mode: decisions before the observation */
  decision?: number;
}

export interface ControlReport {
  field: string;
  floor: { steps: number; rms: number };
  rows: { solver: SolverName; steps: number; rmsErr: number }[];
  orders: ConvergenceOrder[];
  solvers: SolverName[];
}

export interface StepsReport {
  header: BenchHeader;
  checkpoint: string;
  /** training step of the checkpoint (training.json), when it says */
  checkpointStep: number | null;
  source: 'world' | 'images';
  world: { world: string; level: string; decision: number } | null;
  embodiment: string;
  /** the first observation's (all of them: `observations`) */
  instruction: string;
  /** image files (image-file mode), else [] */
  images: string[];
  state: number[] | null;
  seed: number;
  observations: ObservationInfo[];
  grid: GridName;
  weightDtype: 'f32' | 'f16';
  chunk: [number, number];
  promptTokens: number;
  reference: { solver: SolverName; steps: number; evaluations: number; latencyMs: number; smoothNorm: number; smoothActions: number };
  /** RMS / max |Δ| between the reference at half its steps and the reference (pooled; per observation) */
  floor: { steps: number; rms: number; maxAbs: number; rmsObs: number[]; factor: number };
  orders: SolverOrder[];
  control: ControlReport | null;
  /** wall times of the once-per-observation part (not in the per-row latencies), first observation */
  observationMs: { prefill: number; context: number };
  /** max |Δ| between this sampling path and policy.act() for the default solver / steps, same noise, first observation */
  actCheck: { solver: SolverName; steps: number; maxAbs: number } | null;
  rows: StepsRow[];
  csv: string | null;
  plot: string | null;
}

/** max |a − b| and RMS over the masked entries. */
export function maskedError(a: ArrayLike<number>, b: ArrayLike<number>, mask: ArrayLike<number>): { maxAbs: number; rms: number } {
  const s = maskedSq(a, b, mask);
  return { maxAbs: s.maxAbs, rms: s.n ? Math.sqrt(s.ss / s.n) : 0 };
}

function maskedSq(a: ArrayLike<number>, b: ArrayLike<number>, mask: ArrayLike<number>): { maxAbs: number; ss: number; n: number } {
  let mx = 0, ss = 0, n = 0;
  for (let k = 0; k < mask.length; k++) {
    if (!mask[k]) continue;
    const d = Math.abs(a[k]! - b[k]!);
    if (d > mx || Number.isNaN(d)) mx = d;
    ss += d * d;
    n++;
  }
  return { maxAbs: mx, ss, n };
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

/** Least-squares slope of y on x (null with fewer than 2 distinct x). */
function lsSlope(x: readonly number[], y: readonly number[]): number | null {
  const n = x.length;
  if (n < 2) return null;
  const mx = x.reduce((a, b) => a + b, 0) / n, my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
  }
  return sxx > 0 ? sxy / sxx : null;
}

/**
 * Observed convergence order of one solver from its (N, error) points: p in err ≈ C·N^−p, i.e. −slope of
 * log(err) vs log(N). The fit uses the first contiguous run (in increasing N) of errors above factor × floor
 * (below it the reference's own error and the round-off dominate); the pairwise orders cover every successive
 * pair and say whether both ends are above the threshold. Pure arithmetic (no GPU).
 */
export function convergenceOrder(points: readonly { steps: number; err: number }[], floor: number, factor = FLOOR_FACTOR): ConvergenceOrder {
  const pts = [...points].sort((a, b) => a.steps - b.steps).filter((p, i, a) => i === 0 || p.steps !== a[i - 1]!.steps);
  const threshold = factor * Math.max(0, Number.isFinite(floor) ? floor : 0);
  const ok = (e: number) => Number.isFinite(e) && e > 0;
  const above = (e: number) => ok(e) && e > threshold;
  const pairwise: OrderPair[] = [];
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!, b = pts[i]!;
    pairwise.push({
      from: a.steps, to: b.steps,
      order: ok(a.err) && ok(b.err) ? -Math.log(b.err / a.err) / Math.log(b.steps / a.steps) : null,
      aboveFloor: above(a.err) && above(b.err),
    });
  }
  let i0 = pts.findIndex((p) => above(p.err));
  const fit: { steps: number; err: number }[] = [];
  if (i0 >= 0) for (; i0 < pts.length && above(pts[i0]!.err); i0++) fit.push(pts[i0]!);
  const slope = (q: typeof fit) => {
    const s = lsSlope(q.map((p) => Math.log(p.steps)), q.map((p) => Math.log(p.err)));
    return s === null ? null : -s;
  };
  return {
    order: slope(fit),
    fitSteps: fit.map((p) => p.steps),
    tailOrder: fit.length >= 3 ? slope(fit.slice(-3)) : null,
    pairwise,
    threshold,
  };
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

/** A frame: a decoded image (world) or a file path. */
type Frame = (RawImage & { camera?: string }) | string;

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

  static async build(policy: Policy, emb: Embodiment, instruction: string, frames: Frame[], state: number[] | null): Promise<Observation> {
    const gpu = policy.gpu;
    const ae = policy.config.actionExpert!;
    const t0 = performance.now();
    const pre: { pixels: Float32Array; grid: { t: number; h: number; w: number } }[] = [];
    for (const f of frames) {
      const p = preprocessImage(typeof f === 'string' ? await decodeImageFile(f) : f, policy.preprocessor);
      pre.push({ pixels: p.pixelValues, grid: p.grid });
    }
    const prompt = buildActionPrompt(
      policy.tokenizer, emb, instruction,
      pre.map((im, k) => {
        const f = frames[k];
        const cam = typeof f === 'object' && f.camera !== undefined ? f.camera : emb.cameras[k] ?? `view${k}`;
        return { camera: cam, gridH: im.grid.h, gridW: im.grid.w };
      }),
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

export const CONTROL_FIELD = 'v(Y, t) = cos(2t) sigmoid(Y) - (0.25 + 0.5 t) Y';

/** Integrates the analytic control field from the masked noise and reads the result back. */
async function sampleControl(gpu: Gpu, noise: Float32Array, maskArr: Float32Array, maskT: Tensor, shape: [number, number],
  solver: SolverName, steps: number, grid: GridName, shift: number): Promise<Float32Array> {
  const n = Float32Array.from(noise);
  for (let k = 0; k < n.length; k++) n[k] *= maskArr[k]!;
  const Y = Tensor.from(gpu, n, shape, 'f32', 'steps.control');
  try {
    await integrate((y, tau, out) => {
      unary(y, 'sigmoid', out);
      scale(out, Math.cos(2 * tau), out);
      axpy(out, y, -(0.25 + 0.5 * tau));
    }, Y, maskT, { steps, solver, grid, shift });
    return await Y.readF32();
  } finally {
    Y.release();
  }
}

export interface ControlOptions {
  /** initial noise [rows·cols] (masked here) */
  noise: Float32Array;
  /** 1 = valid entry */
  mask: Float32Array;
  shape: [number, number];
  solvers: SolverName[];
  stepCounts: number[];
  grid?: GridName;
  shift?: number;
  refSolver?: SolverName;
  refSteps?: number;
  floorFactor?: number;
}

/**
 * The control sweep: the solvers / N / reference (and its half-step floor) / order fit of the bench, on the analytic
 * smooth field CONTROL_FIELD, integrated on the GPU with src/policy/samplers.ts `integrate`.
 */
export async function runControlSweep(gpu: Gpu, o: ControlOptions): Promise<ControlReport> {
  const grid = o.grid ?? 'uniform', shift = o.shift ?? 3, refSolver = o.refSolver ?? 'rk4', refSteps = o.refSteps ?? 128;
  const maskT = Tensor.from(gpu, o.mask, o.shape, 'f32', 'steps.control.mask');
  try {
    const run = (s: SolverName, n: number) => sampleControl(gpu, o.noise, o.mask, maskT, o.shape, s, n, grid, shift);
    const ref = await run(refSolver, refSteps);
    const halfSteps = Math.max(1, Math.floor(refSteps / 2));
    const floor = maskedError(await run(refSolver, halfSteps), ref, o.mask).rms;
    const rows: ControlReport['rows'] = [];
    for (const solver of o.solvers) {
      for (const N of o.stepCounts) rows.push({ solver, steps: N, rmsErr: maskedError(await run(solver, N), ref, o.mask).rms });
    }
    const orders = o.solvers.map((s) => convergenceOrder(rows.filter((r) => r.solver === s).map((r) => ({ steps: r.steps, err: r.rmsErr })), floor, o.floorFactor ?? FLOOR_FACTOR));
    return { field: CONTROL_FIELD, floor: { steps: halfSteps, rms: floor }, rows, orders, solvers: [...o.solvers] };
  } finally {
    maskT.release();
  }
}

/** One observation of the sweep: how to encode it and its noise. */
interface Case {
  info: ObservationInfo;
  frames: Frame[];
  /** index of the encoding it shares (image-file mode: all cases share encoding 0) */
  key: number;
}

interface Acc {
  solver: SolverName;
  steps: number;
  ss: number;
  n: number;
  maxAbs: number;
  rmsObs: number[];
  smoothNorm: number[];
  smoothAct: number[];
  times: number[];
}

async function checkpointStep(dir: string): Promise<number | null> {
  try {
    const j = JSON.parse(await fsp.readFile(path.join(dir, 'training.json'), 'utf8')) as { step?: unknown };
    return typeof j.step === 'number' ? j.step : null;
  } catch {
    return null;
  }
}

/** Option checks that need no checkpoint. */
function checkOptions(opts: StepsOptions): void {
  if (opts.images && opts.images.length > 0 && opts.world !== undefined) throw new UsageError('qvla bench steps: --world and --image exclude each other');
  if (opts.world !== undefined && !WORLD_NAMES.includes(opts.world as never)) {
    throw new UsageError(`qvla bench steps: --world: unknown world ${JSON.stringify(opts.world)} (${WORLD_NAMES.join(', ')})`);
  }
  if (opts.observations !== undefined && !(Number.isInteger(opts.observations) && opts.observations >= 1)) {
    throw new UsageError(`qvla bench steps: observations must be a positive integer, got ${opts.observations}`);
  }
  if (opts.refSteps !== undefined && !(Number.isInteger(opts.refSteps) && opts.refSteps >= 2)) {
    throw new UsageError(`qvla bench steps: the reference needs at least 2 steps (its floor is the same at half the steps), got ${opts.refSteps}`);
  }
}

/** The world spec of a world-mode sweep, or null for the image-file mode. */
function resolveWorld(policy: Policy, opts: StepsOptions): WorldSpec | null {
  const level = opts.level ?? 'A';
  if (opts.images && opts.images.length > 0) return null;
  const explicit = opts.world !== undefined;
  const candidates = explicit || opts.embodiment !== undefined
    ? findWorldSpecs(opts.world ?? (opts.embodiment === undefined ? 'tabletop' : undefined), opts.embodiment, level)
    : findWorldSpecs('tabletop', 'planar', level);
  const spec = candidates[0];
  if (!spec) {
    if (explicit) throw new UsageError(`qvla bench steps: no world ${opts.world}${opts.embodiment ? `/${opts.embodiment}` : ''} at level ${level}`);
    return null; // an embodiment that is not a world's (widowx …): image files
  }
  const why = embodimentMismatch(policy.embodiments, spec.embodiment);
  if (why) {
    if (explicit) throw new UsageError(`qvla bench steps: --world ${spec.world}: ${why}`);
    return null; // e.g. weights/tiny: no world embodiments
  }
  return spec;
}

/** Runs the sweep (programmatic API). */
export async function runSteps(opts: StepsOptions = {}): Promise<StepsReport> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  pinLpNumThreads();
  const checkpoint = opts.checkpoint ?? defaultStepsCheckpoint();
  const weightDtype = opts.weightDtype ?? 'f32';
  const grid = opts.grid ?? 'uniform';
  const solvers = opts.solvers ?? [...SOLVERS];
  const stepCounts = [...new Set(opts.stepCounts ?? DEFAULT_STEP_COUNTS)].sort((a, b) => a - b);
  const refSolver = opts.refSolver ?? 'rk4';
  const refSteps = opts.refSteps ?? 128;
  const halfSteps = Math.floor(refSteps / 2);
  const factor = opts.floorFactor ?? FLOOR_FACTOR;
  const reps = opts.reps ?? 3;
  const csvPath = opts.csv === undefined ? 'bench/out/steps.csv' : opts.csv;
  const plotPath = opts.plot === undefined ? 'bench/out/steps.svg' : opts.plot;

  checkOptions(opts);
  const policy = await Policy.load(checkpoint, { weightDtype, stageTimings: false });
  const encoded = new Map<number, Observation>();
  try {
    const header = benchHeader(policy.gpu);
    const ae = policy.config.actionExpert!;
    const spec = resolveWorld(policy, opts);
    const level = opts.level ?? 'A';
    const decision = opts.decision ?? 0;
    const emb = policy.embodiment(spec ? spec.embodiment : opts.embodiment ?? 'widowx');
    const K = opts.observations ?? (spec ? DEFAULT_WORLD_OBSERVATIONS : 1);

    const cases: Case[] = [];
    let images: string[] = [];
    if (spec) {
      if (opts.state !== undefined) throw new UsageError('qvla bench steps: --state applies to --image observations (a world reports its own state)');
      const seed0 = opts.seed ?? EVAL_SEED_BASE;
      for (let k = 0; k < K; k++) {
        const w = spec.create(seed0 + k);
        for (let d = 0; d < decision; d++) {
          if (w.done) break;
          w.step(w.expert());
        }
        if (w.done) throw new UsageError(`qvla bench steps: the ${spec.world}/${spec.embodiment} episode of seed ${seed0 + k} ends before decision ${decision}`);
        const o = w.observe();
        cases.push({
          key: k,
          frames: o.images.map(({ camera, image }) => ({ ...image, camera })),
          info: { seed: seed0 + k, noiseSeed: decisionSeed(w.seed, w.decisions), instruction: opts.instruction ?? o.instruction, state: o.state, decision: w.decisions },
        });
      }
    } else {
      images = opts.images && opts.images.length > 0 ? opts.images : await defaultImages(checkpoint, emb);
      const state = opts.state === undefined ? defaultState(emb) : opts.state;
      const seed0 = opts.seed ?? 0;
      for (let k = 0; k < K; k++) {
        cases.push({ key: 0, frames: images, info: { seed: seed0 + k, noiseSeed: seed0 + k, instruction: opts.instruction ?? DEFAULT_INSTRUCTION, state } });
      }
    }

    const H = emb.control.chunk;
    const Kc = emb.action.names.length;
    const smooth = (raw: Float32Array, state: number[] | null) => {
      const u = unnormalizeActions(emb, raw, ae.kMax, state);
      return { norm: secondDiffMeanSquare(raw, H, Kc, ae.kMax), act: secondDiffMeanSquare(u.actions, u.rows, u.dims) };
    };
    const accs = new Map<string, Acc>();
    for (const solver of solvers) {
      for (const N of stepCounts) accs.set(`${solver}/${N}`, { solver, steps: N, ss: 0, n: 0, maxAbs: 0, rmsObs: [], smoothNorm: [], smoothAct: [], times: [] });
    }
    const floorAcc = { ss: 0, n: 0, maxAbs: 0, rmsObs: [] as number[] };
    const refSmooth = { norm: [] as number[], act: [] as number[] };
    let refMs = 0, refAgain: { e: { maxAbs: number; rms: number }; ms: number } | null = null;
    let actCheck: StepsReport['actCheck'] = null;
    let control: ControlReport | null = null;
    let promptTokens = 0, observationMs = { prefill: 0, context: 0 };
    const total = cases.length * solvers.length * stepCounts.length;
    let done = 0;

    log(`${cases.length} observation(s) ${spec ? `from ${spec.world}/${spec.embodiment} level ${level}, seeds ${cases[0]!.info.seed}…${cases.at(-1)!.info.seed}, decision ${decision}` : `from ${images.join(', ')}, noise seeds ${cases[0]!.info.seed}…${cases.at(-1)!.info.seed}`}; reference ${refSolver} × ${refSteps} (${evaluations(refSolver, refSteps)} evaluations) and × ${halfSteps} (floor)`);
    for (const [ci, c] of cases.entries()) {
      let obs = encoded.get(c.key);
      if (!obs) {
        // world mode: one encoding at a time (released after its case); image files: one shared encoding
        for (const [k, o] of encoded) if (k !== c.key) { o.release(); encoded.delete(k); }
        obs = await Observation.build(policy, emb, c.info.instruction, c.frames, c.info.state);
        encoded.set(c.key, obs);
      }
      if (ci === 0) {
        promptTokens = obs.promptTokens;
        observationMs = { prefill: obs.prefillMs, context: obs.contextMs };
      }
      const noise = new Rng(c.info.noiseSeed).normals(ae.hMax * ae.kMax);
      // Warm-up: compiles every pipeline the sweep uses (all solvers), so the first timed row is not penalised.
      if (ci === 0) for (const s of new Set<SolverName>([...solvers, refSolver])) await obs.sample(noise, s, 2, grid);

      const ref = await obs.sample(noise, refSolver, refSteps, grid);
      if (ci === 0) refMs = ref.ms;
      const rs = smooth(ref.raw, c.info.state);
      refSmooth.norm.push(rs.norm);
      refSmooth.act.push(rs.act);
      const half = await obs.sample(noise, refSolver, halfSteps, grid);
      const fq = maskedSq(half.raw, ref.raw, obs.mask);
      floorAcc.ss += fq.ss;
      floorAcc.n += fq.n;
      floorAcc.maxAbs = Math.max(floorAcc.maxAbs, fq.maxAbs);
      floorAcc.rmsObs.push(fq.n ? Math.sqrt(fq.ss / fq.n) : 0);

      for (const solver of solvers) {
        for (const N of stepCounts) {
          const a = accs.get(`${solver}/${N}`)!;
          let raw: Float32Array | null = null;
          for (let k = 0; k < (ci === 0 ? Math.max(1, reps) : 1); k++) {
            const r = await obs.sample(noise, solver, N, grid);
            a.times.push(r.ms);
            raw ??= r.raw;
          }
          const q = maskedSq(raw!, ref.raw, obs.mask);
          a.ss += q.ss;
          a.n += q.n;
          if (q.maxAbs > a.maxAbs || Number.isNaN(q.maxAbs)) a.maxAbs = q.maxAbs;
          a.rmsObs.push(q.n ? Math.sqrt(q.ss / q.n) : 0);
          const sm = smooth(raw!, c.info.state);
          a.smoothNorm.push(sm.norm);
          a.smoothAct.push(sm.act);
          done++;
        }
      }
      log(`  [${done}/${total}] observation ${ci + 1}/${cases.length} (seed ${c.info.seed}): floor ${fe(floorAcc.rmsObs.at(-1)!)}, ` +
        solvers.map((s) => `${s} N=${stepCounts.at(-1)} rms ${fe(accs.get(`${s}/${stepCounts.at(-1)}`)!.rmsObs.at(-1)!)}`).join(', '));

      if (ci === 0) {
        if (opts.refCheck ?? true) {
          const again = await obs.sample(noise, refSolver, refSteps, grid);
          refAgain = { e: maskedError(again.raw, ref.raw, obs.mask), ms: again.ms };
        }
        if (opts.actCheck ?? true) {
          const solver = ae.defaultSolver as SolverName;
          const steps = ae.defaultSteps;
          const r = await policy.act({
            images: c.frames as ImageInput[], instruction: c.info.instruction, embodiment: emb.key, state: c.info.state, noise, steps, solver, grid,
          });
          const mine = await obs.sample(noise, solver, steps, grid);
          let mx = 0;
          for (let k = 0; k < mine.raw.length; k++) mx = Math.max(mx, Math.abs(mine.raw[k]! - r.raw[k]!));
          actCheck = { solver, steps, maxAbs: mx };
        }
        if (opts.control ?? true) {
          control = await runControlSweep(policy.gpu, {
            noise, mask: obs.mask, shape: [ae.hMax, ae.kMax], solvers, stepCounts, grid, shift: ae.timeShift, refSolver, refSteps, floorFactor: factor,
          });
          log(`  control (${CONTROL_FIELD}): ` + control.orders.map((o, i) => `${solvers[i]} p ${fmt(o.order)}`).join(', '));
        }
      }
    }

    const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / Math.max(1, x.length);
    const floor = { steps: halfSteps, rms: floorAcc.n ? Math.sqrt(floorAcc.ss / floorAcc.n) : 0, maxAbs: floorAcc.maxAbs, rmsObs: floorAcc.rmsObs, factor };
    const orders: SolverOrder[] = solvers.map((solver) => {
      const list = [...accs.values()].filter((a) => a.solver === solver);
      const o = convergenceOrder(list.map((a) => ({ steps: a.steps, err: Math.sqrt(a.ss / Math.max(1, a.n)) })), floor.rms, factor);
      const orderObs = cases.map((_, ci) => convergenceOrder(list.map((a) => ({ steps: a.steps, err: a.rmsObs[ci]! })), floor.rmsObs[ci]!, factor).order);
      return { solver, ...o, orderObs };
    });
    const rows: StepsRow[] = [];
    for (const a of accs.values()) {
      const o = orders.find((x) => x.solver === a.solver)!;
      const lat = median(a.times);
      const nfe = evaluations(a.solver, a.steps);
      rows.push({
        solver: a.solver, steps: a.steps, evaluations: nfe, maxAbsErr: a.maxAbs, rmsErr: Math.sqrt(a.ss / Math.max(1, a.n)), rmsErrObs: a.rmsObs,
        smoothNorm: mean(a.smoothNorm), smoothActions: mean(a.smoothAct), latencyMs: lat, latencyMinMs: Math.min(...a.times), msPerEval: lat / nfe,
        orderPair: o.pairwise.find((p) => p.to === a.steps)?.order ?? null, inFit: o.fitSteps.includes(a.steps),
      });
    }
    if (refAgain) {
      const nfe = evaluations(refSolver, refSteps);
      rows.push({
        solver: refSolver, steps: refSteps, evaluations: nfe, maxAbsErr: refAgain.e.maxAbs, rmsErr: refAgain.e.rms, rmsErrObs: [refAgain.e.rms],
        smoothNorm: refSmooth.norm[0]!, smoothActions: refSmooth.act[0]!, latencyMs: refAgain.ms, latencyMinMs: Math.min(refAgain.ms, refMs),
        msPerEval: refAgain.ms / nfe, orderPair: null, inFit: false, reference: true,
      });
    }

    const first = cases[0]!.info;
    const report: StepsReport = {
      header, checkpoint, checkpointStep: await checkpointStep(checkpoint),
      source: spec ? 'world' : 'images',
      world: spec ? { world: spec.world, level, decision } : null,
      embodiment: emb.key, instruction: first.instruction, images, state: first.state, seed: first.seed,
      observations: cases.map((c) => c.info),
      grid, weightDtype, chunk: [H, Kc], promptTokens,
      reference: {
        solver: refSolver, steps: refSteps, evaluations: evaluations(refSolver, refSteps), latencyMs: refMs,
        smoothNorm: mean(refSmooth.norm), smoothActions: mean(refSmooth.act),
      },
      floor, orders, control, observationMs, actCheck, rows,
      csv: csvPath,
      plot: plotPath,
    };
    if (csvPath) {
      await fsp.mkdir(path.dirname(path.resolve(csvPath)), { recursive: true });
      await fsp.writeFile(csvPath, stepsCsv(report));
    }
    if (plotPath) {
      await fsp.mkdir(path.dirname(path.resolve(plotPath)), { recursive: true });
      await writePlot(plotPath, stepsChart(report));
    }
    if (opts.json) await writeJsonReport(opts.json, report);
    return report;
  } finally {
    for (const o of encoded.values()) o.release();
    policy.destroy();
  }
}

export const CSV_COLUMNS = [
  'solver', 'steps', 'evaluations', 'max_abs_err', 'rms_err', 'rms_err_min_obs', 'rms_err_max_obs', 'smooth_norm', 'smooth_actions',
  'latency_ms_median', 'latency_ms_min', 'ms_per_eval', 'order_pair', 'in_fit', 'order_fit', 'order_fit_min_obs', 'order_fit_max_obs',
  'order_tail', 'control_rms_err', 'control_order_fit', 'reference',
] as const;

/** One line per (solver, N) and the reference row; the solver's orders are repeated on each of its lines. */
export function stepsCsv(r: Pick<StepsReport, 'rows' | 'orders' | 'control'>): string {
  const num = (x: number | null | undefined) => (x !== null && x !== undefined && Number.isFinite(x) ? String(+x.toPrecision(6)) : '');
  const lines = [CSV_COLUMNS.join(',')];
  for (const row of r.rows) {
    const o = row.reference ? undefined : r.orders.find((x) => x.solver === row.solver);
    const obs = o?.orderObs.filter((v): v is number => v !== null) ?? [];
    const ci = r.control && !row.reference ? r.control.solvers.indexOf(row.solver) : -1;
    const crow = ci >= 0 ? r.control!.rows.find((x) => x.solver === row.solver && x.steps === row.steps) : undefined;
    lines.push([
      row.solver, row.steps, row.evaluations, num(row.maxAbsErr), num(row.rmsErr), num(Math.min(...row.rmsErrObs)), num(Math.max(...row.rmsErrObs)),
      num(row.smoothNorm), num(row.smoothActions), num(row.latencyMs), num(row.latencyMinMs), num(row.msPerEval),
      num(row.orderPair), row.inFit ? 1 : 0, num(o?.order), num(obs.length ? Math.min(...obs) : null), num(obs.length ? Math.max(...obs) : null),
      num(o?.tailOrder), num(crow?.rmsErr), num(ci >= 0 ? r.control!.orders[ci]!.order : null), row.reference ? 1 : 0,
    ].join(','));
  }
  return lines.join('\n') + '\n';
}

/** The order table: one line per solver. */
export function formatOrders(r: StepsReport): string[] {
  const out: string[] = [];
  out.push(
    `observed convergence order p (RMS err ∝ N^-p): least squares of log(rms err) vs log(N) over the first run of N with err > ` +
      `${r.floor.factor} × ref floor = ${fe(r.floor.factor * r.floor.rms)}`,
  );
  out.push(
    `  ref floor: rms(${r.reference.solver} × ${r.floor.steps} − ${r.reference.solver} × ${r.reference.steps}) = ${fe(r.floor.rms)} pooled ` +
      `(max |Δ| ${fe(r.floor.maxAbs)}; per observation ${fe(Math.min(...r.floor.rmsObs))}..${fe(Math.max(...r.floor.rmsObs))})`,
  );
  const rows = r.orders.map((o) => {
    const obs = o.orderObs.filter((v): v is number => v !== null);
    const ci = r.control ? r.control.solvers.indexOf(o.solver) : -1;
    return [
      o.solver, fo(o.order), o.fitSteps.length ? `${o.fitSteps[0]}-${o.fitSteps.at(-1)} (${o.fitSteps.length})` : '-', fo(o.tailOrder),
      obs.length ? `${fo(Math.min(...obs))}..${fo(Math.max(...obs))}` : '-',
      ci >= 0 ? fo(r.control!.orders[ci]!.order) : '-',
      o.pairwise.map((p) => `${p.from}→${p.to} ${fo(p.order)}${p.aboveFloor ? '' : '*'}`).join('  '),
    ];
  });
  out.push(...formatTable(['solver', 'p fit', 'fit N (pts)', 'p last 3', 'p per obs', 'p smooth field', 'pairwise p (* = below the threshold)'], rows));
  if (r.control) {
    out.push(`  smooth field: ${r.control.field}, same solvers / N / noise / grid, reference floor ${fe(r.control.floor.rms)}.`);
  }
  return out;
}

export function formatStepsReport(r: StepsReport): string[] {
  const out = [...formatHeader(r.header), `weights:        ${r.weightDtype} on the GPU`, ''];
  const step = r.checkpointStep !== null ? ` (training step ${r.checkpointStep})` : '';
  out.push(`checkpoint ${r.checkpoint}${step}, embodiment ${r.embodiment} (valid chunk ${r.chunk[0]}x${r.chunk[1]}), ${r.grid} grid, ${r.promptTokens} prompt tokens (first observation)`);
  const n = r.observations.length;
  if (r.source === 'world' && r.world) {
    out.push(
      `${n} observation${n === 1 ? '' : 's'} from the ${r.world.world} world, level ${r.world.level}, evaluation seeds ${r.observations[0]!.seed}..${r.observations.at(-1)!.seed}, ` +
        `decision ${r.world.decision}; noise = qvla eval's for that decision`,
    );
    out.push(`first: instruction ${JSON.stringify(r.instruction)}; state ${r.state ? `[${r.state.map((v) => +v.toPrecision(4)).join(', ')}]` : 'none'}`);
  } else {
    out.push(`images ${r.images.join(', ')}; ${n} noise seed${n === 1 ? '' : 's'} ${r.observations[0]!.seed}..${r.observations.at(-1)!.seed}`);
    out.push(`instruction: ${JSON.stringify(r.instruction)}; state: ${r.state ? `[${r.state.join(', ')}]` : 'none'}`);
  }
  out.push(`observation encoded once: prefill ${fmt(r.observationMs.prefill)} ms, decoder context ${fmt(r.observationMs.context)} ms (not in the latencies below)`);
  out.push(
    `reference: ${r.reference.solver} x ${r.reference.steps} (${r.reference.evaluations} evaluations, ${fmt(r.reference.latencyMs)} ms), ` +
      `smoothness ${fmt(r.reference.smoothNorm)} (normalised) / ${fmt(r.reference.smoothActions)} (actions)`,
  );
  if (r.actCheck) out.push(`cross-check vs policy.act() (${r.actCheck.solver} x ${r.actCheck.steps}, same noise, first observation): max |diff| ${r.actCheck.maxAbs.toExponential(2)}`);
  out.push('');
  const rows = r.rows.map((x) => [
    x.reference ? `${x.solver} (ref again)` : x.solver, String(x.steps), String(x.evaluations), fe(x.maxAbsErr), fe(x.rmsErr),
    x.rmsErrObs.length > 1 ? `${fe(Math.min(...x.rmsErrObs))}..${fe(Math.max(...x.rmsErrObs))}` : '-',
    x.reference ? '' : `${fo(x.orderPair)}${x.orderPair !== null && !x.inFit ? '*' : ''}`,
    fmt(x.smoothNorm), fmt(x.smoothActions), fmt(x.latencyMs), fmt(x.latencyMinMs), fmt(x.msPerEval),
  ]);
  out.push(...formatTable(['solver', 'N', 'NFE', 'max|err|', 'rms err', 'rms per obs', 'p pair', 'smooth(norm)', 'smooth(act)', 'ms p50', 'ms min', 'ms/NFE'], rows));
  out.push('');
  out.push('err: vs the reference over the valid entries of the normalised chunk, pooled over the observations; p pair: order from the previous N');
  out.push('(* = this N is not in the fit); smooth: mean squared 2nd difference along the chunk rows; latency: sampling only, median of the timed runs.');
  out.push('');
  out.push(...formatOrders(r));
  if (r.csv) out.push(`wrote ${r.csv}`);
  if (r.plot) out.push(`wrote ${r.plot}`);
  return out;
}

export const STEPS_SPEC: CommandSpec = {
  name: 'bench steps',
  usage: 'bench steps [--checkpoint DIR] [--world W] [--embodiment NAME] [--seed N] [--observations K] [options]',
  summary: 'Sampling-step research: error vs an RK4-128 reference, observed convergence order, smoothness and latency for every solver and step count.',
  description:
    'Observations come from a toy world (frames, state, instruction; K evaluation seeds from --seed) when the checkpoint has the world embodiments, ' +
    'else from image files. Each observation is encoded once (VLM prefill + decoder context); each (solver, N) only integrates from its noise. ' +
    'The order p of each solver is the least-squares slope of log(RMS error) vs log(N) where the error is above the reference floor.',
  options: [
    { name: 'checkpoint', type: 'string', metavar: 'DIR', help: 'checkpoint directory', defaultText: 'weights/toy if it exists, else weights/tiny' },
    { name: 'world', type: 'string', choices: WORLD_NAMES, help: 'world of the observations', defaultText: "the embodiment's world; tabletop" },
    { name: 'embodiment', type: 'string', help: 'embodiment', defaultText: 'planar with a world checkpoint, widowx with image files' },
    { name: 'level', type: 'string', choices: ['A', 'B', 'bimodal'], help: 'world level', defaultText: 'A' },
    { name: 'decision', type: 'int', min: 0, help: 'scripted-expert decisions before the observation', defaultText: '0' },
    { name: 'observations', type: 'int', min: 1, metavar: 'K', help: 'observations averaged (world: seeds seed..seed+K-1; image files: noise seeds)', defaultText: `${DEFAULT_WORLD_OBSERVATIONS} (world), 1 (image files)` },
    { name: 'seed', type: 'int', min: 0, help: 'first evaluation seed (world) / noise seed (image files)', defaultText: `${EVAL_SEED_BASE} (EVAL_SEED_BASE) / 0` },
    { name: 'instruction', type: 'string', help: 'instruction', defaultText: `the world's; ${JSON.stringify(DEFAULT_INSTRUCTION)} with image files` },
    { name: 'image', type: 'list', metavar: 'FILE', help: "image per camera, in the embodiment's camera order (image-file mode)", defaultText: 'weights/tiny/samples/<embodiment>_<camera>.png without a world' },
    { name: 'state', type: 'string', metavar: 'V,V,...', help: 'raw state (image-file mode)', defaultText: 'a fixed widowx state; zeros for others' },
    { name: 'solvers', type: 'string', metavar: 'LIST', help: `comma-separated solvers (${SOLVERS.join(', ')})`, defaultText: 'all' },
    { name: 'steps', type: 'string', metavar: 'LIST', help: 'comma-separated step counts', defaultText: DEFAULT_STEP_COUNTS.join(',') },
    { name: 'grid', type: 'string', choices: GRIDS, help: 'time grid', defaultText: 'uniform' },
    { name: 'ref-steps', type: 'int', min: 2, help: 'steps of the RK4 reference (its floor: the same at half the steps)', defaultText: '128' },
    { name: 'floor-factor', type: 'number', min: 1, help: 'order fit: errors above this many times the reference floor', defaultText: String(FLOOR_FACTOR) },
    { name: 'reps', type: 'int', min: 1, help: 'timed runs per (solver, N) on the first observation; the median over all runs is reported', defaultText: '3' },
    { name: 'weight-dtype', type: 'string', choices: ['f32', 'f16'], help: 'matrix storage on the GPU', defaultText: 'f32' },
    { name: 'csv', type: 'string', metavar: 'FILE', help: 'CSV output', defaultText: 'bench/out/steps.csv' },
    { name: 'plot', type: 'string', metavar: 'FILE', help: 'plot output (.svg or .png)', defaultText: 'bench/out/steps.svg' },
    { name: 'json', type: 'string', metavar: 'FILE', help: 'also write the report as JSON' },
    HELP_OPT,
  ],
  examples: [
    'qvla bench steps',
    'qvla bench steps --world nav --observations 16 --json bench/out/steps-nav.json',
    'qvla bench steps --checkpoint weights/tiny --embodiment aloha --solvers euler,heun --steps 1,2,4,8 --plot bench/out/steps-aloha.png',
  ],
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
    world: getString(p, 'world'),
    embodiment: getString(p, 'embodiment'),
    level: getString(p, 'level'),
    decision: getNumber(p, 'decision'),
    observations: getNumber(p, 'observations'),
    instruction: getString(p, 'instruction'),
    images: Array.isArray(images) && images.length > 0 ? images : undefined,
    state: stateRaw !== undefined ? parseNumberList(stateRaw, 'qvla bench steps: --state') : undefined,
    seed: getNumber(p, 'seed'),
    solvers,
    stepCounts,
    grid: getString(p, 'grid') as GridName | undefined,
    refSteps: getNumber(p, 'ref-steps'),
    floorFactor: getNumber(p, 'floor-factor'),
    reps: getNumber(p, 'reps'),
    weightDtype: getString(p, 'weight-dtype') as 'f32' | 'f16' | undefined,
    csv: getString(p, 'csv'),
    plot: getString(p, 'plot'),
    json: getString(p, 'json'),
  });
  process.stdout.write(`\n${formatStepsReport(report).join('\n')}\n`);
  return 0;
}

// The chart lives with the other charts (src/plot/stepsChart.ts); re-exported for the benchmark's callers.
export { stepsChart };

// The GPU stages of act(): observation encoding on the device (vision tower → ragged prompt prefill → decoder
// context: vl_norm + every cross block's K/V, once per observation) and sampling (per group of rows sharing a
// sampling plan: token bases, the τ-only time conditioning for the whole loop, the denoising loop, then one
// readback of every chunk with its NaN-guard count).
//
// Submits and syncs: with stageTimings off, encoding ends with one submit (the GPU starts on it while the CPU
// encodes the denoising loop), the loop and the readback copy go in one more, and the only CPU wait is the
// readback's (a trajectory request adds a read per step). With stageTimings on, the GPU is synced at every stage
// and step boundary so each has its own wall time. `StageMeter` counts dispatches and submits per stage and the CPU
// time spent encoding each (the wall time up to its sync).
import type { Gpu } from '../gpu/device.js';
import { Tensor } from '../tensor.js';
import type { DiTContext, DiTRows } from '../model/actionDecoder.js';
import { integrate, evaluationTimes } from './samplers.js';
import { countNonFinite } from '../ops/checkFinite.js';
import type { DeviceState } from './session.js';
import type { EncodedInput, HostMasks, SamplingPlan } from './observation.js';

export const WORK_STAGES = ['vision', 'prefill', 'context', 'denoise', 'readback'] as const;
export type WorkStage = (typeof WORK_STAGES)[number];

/** What one stage cost: GPU dispatches and queue submits it issued, CPU milliseconds spent encoding it. */
export interface StageWork {
  dispatches: number;
  submits: number;
  encodeMs: number;
}
export type StageWorkMap = Record<WorkStage, StageWork>;

export function emptyWork(): StageWorkMap {
  return Object.fromEntries(WORK_STAGES.map((s) => [s, { dispatches: 0, submits: 0, encodeMs: 0 }])) as StageWorkMap;
}

export function nowMs(): number {
  return performance.now();
}

/** Counts per stage (see the header). A stage runs from the end of the previous one to `end(stage)`. */
export class StageMeter {
  readonly work = emptyWork();
  private d0 = 0;
  private s0 = 0;
  private t0 = 0;

  constructor(private readonly gpu: Gpu, private readonly sync: boolean) {
    this.restart();
  }

  restart(): void {
    this.d0 = this.gpu.stream.stats.dispatches;
    this.s0 = this.gpu.stream.stats.submits;
    this.t0 = nowMs();
  }

  /**
   * Ends `stage`: its encoding time (up to `encodedAt`, default now), then (stage-synced mode) the GPU wait;
   * returns the time after it.
   */
  async end(stage: WorkStage, encodedAt?: number): Promise<number> {
    const w = this.work[stage];
    w.encodeMs += (encodedAt ?? nowMs()) - this.t0;
    if (this.sync) await this.gpu.sync();
    w.dispatches += this.gpu.stream.stats.dispatches - this.d0;
    w.submits += this.gpu.stream.stats.submits - this.s0;
    this.restart();
    return nowMs();
  }
}

export interface EncodedContext {
  ctx: DiTContext;
  /** when the encoding ended (the stages' times partition [startMs, endMs]) */
  endMs: number;
  visionMs: number;
  prefillMs: number;
  contextMs: number;
  /** per input: prompt tokens served from the prompt-prefix cache (0: none) */
  prefixTokens: number[];
}

/** Vision + prefill + decoder context of `inputs` (their prompts concatenated along the token axis). */
export async function encodeOnDevice(d: DeviceState, inputs: EncodedInput[], meter: StageMeter, startMs = nowMs()): Promise<EncodedContext> {
  const ae = d.decoder.cfg;
  d.gpu.checkHealthy();
  const t0 = startMs;
  let tVision = t0;
  // Prompt prefixes from the cache (a miss computes the prefix alone, here, before the vision tower).
  const vin = inputs.map((r) => r.input);
  const looked = d.prefixes?.lookup(vin);
  const pre = await d.vlm.prefillRows(vin, ae.vlmLayer, { afterVision: async () => { tVision = await meter.end('vision'); }, prefixes: looked?.prefixes });
  d.prefixes?.trim(); // the prefixes' uses are encoded: evicting now is safe
  const tPrefill = await meter.end('prefill');
  const ctx = d.decoder.prepareContext(pre.hidden, undefined, pre.segments);
  pre.hidden.release();
  // One submit for the encoding: the GPU works on it while the CPU encodes the sampling.
  d.gpu.stream.flush();
  const tCtx = await meter.end('context');
  const prefixTokens = inputs.map((_, r) => looked?.prefixes[r]?.length ?? 0);
  return { ctx, visionMs: tVision - t0, prefillMs: tPrefill - tVision, contextMs: tCtx - tPrefill, endMs: tCtx, prefixTokens };
}

/** A row to sample: its observation (`ctxRow`: its index in the context's segments) and its sampling plan. */
export interface SampleRow {
  input: EncodedInput;
  plan: SamplingPlan;
  ctxRow: number;
}

export interface SampledRows {
  /** every row's raw chunk, row i at `slot[i]`·h_max·k_max */
  all: Float32Array;
  slot: Int32Array;
  /** row → group index */
  groupOf: Int32Array;
  /** per group: its rows (indices into the rows), step wall times, GPU non-finite count */
  groups: { rows: number[]; stepMs: number[]; nonFinite: number }[];
  trajectories: Map<number, Float32Array[]>;
  denoiseStartMs: number;
  denoiseEndMs: number;
  readbackEndMs: number;
}

/**
 * Samples every row's chunk: rows grouped by (solver, steps, grid, shift), a group one [B_g·h_max, k_max] chunk
 * integrated with one network evaluation per solver stage for all its rows, then one readback of all chunks and
 * the groups' NaN-guard counts.
 */
export async function sampleOnDevice(
  d: DeviceState, ctx: DiTContext, rows: SampleRow[], masks: (r: SampleRow) => HostMasks, meter: StageMeter,
  opts: { stepTimings: boolean; /** where the first step's time starts (default: now) */ startMs?: number },
): Promise<SampledRows> {
  const gpu = d.gpu;
  gpu.checkHealthy();
  const ae = d.decoder.cfg;
  const H = ae.hMax, K = ae.kMax, T = 1 + H, n = H * K;
  const byKey = new Map<string, number[]>();
  for (const [i, r] of rows.entries()) {
    const p = r.plan;
    const key = `${p.solver}|${p.steps}|${p.grid}|${p.shift}`;
    const g = byKey.get(key);
    if (g) g.push(i);
    else byKey.set(key, [i]);
  }
  const groupRows = [...byKey.values()];
  const owned: { release(): void }[] = [];
  let readback: Tensor | null = null;
  try {
    // Host uploads first (a write submits what is encoded before it), then the dispatches.
    const host = groupRows.map((g) => {
      const Bg = g.length;
      const withState = g.filter((i) => rows[i].input.normState);
      const stateRow = g.map((i) => (rows[i].input.normState ? withState.indexOf(i) : -1));
      let states: Tensor | null = null;
      if (withState.length) {
        const s = new Float32Array(withState.length * ae.sMax);
        withState.forEach((i, k) => s.set(rows[i].input.normState!, k * ae.sMax));
        states = Tensor.from(gpu, s, [withState.length, ae.sMax], 'f32', 'states');
        owned.push(states);
      }
      const rowMask = new Float32Array(Bg * T);
      const actMask = new Float32Array(Bg * n);
      const noise = new Float32Array(Bg * n);
      g.forEach((i, k) => {
        const hm = masks(rows[i]);
        rowMask.set(hm.rows, k * T);
        actMask.set(hm.action, k * n);
        noise.set(rows[i].plan.noise, k * n);
      });
      const t = {
        states, stateRow,
        rowMask: Tensor.from(gpu, rowMask, [Bg * T], 'f32', 'rowmask'),
        mask: Tensor.from(gpu, actMask, [Bg * H, K], 'f32', 'mask'),
        Y: Tensor.from(gpu, noise, [Bg * H, K], 'f32', 'chunk'),
      };
      owned.push(t.rowMask, t.mask, t.Y);
      return t;
    });
    const B = rows.length;
    readback = Tensor.empty(gpu, [B * n + groupRows.length], 'u32', 'chunk+flag');
    meter.restart(); // the uploads belong to no GPU stage
    const tDenoise = nowMs();
    const groups: SampledRows['groups'] = [];
    const trajectories = new Map<number, Float32Array[]>();
    const pendingReads: Promise<void>[] = [];
    let tStep = opts.startMs ?? tDenoise;
    for (const [gi, g] of groupRows.entries()) {
      const h = host[gi];
      const plan = rows[g[0]].plan;
      const base = d.decoder.tokenBase(h.states, h.stateRow);
      owned.push(base);
      const dit: DiTRows = { B: g.length, base, rowMask: h.rowMask, keyRanges: ctx.keyRanges(g.map((i) => rows[i].ctxRow)) };
      const cond = d.decoder.timeConditioning(evaluationTimes(plan));
      const ws = d.decoder.workspace(g.length);
      owned.push(cond, ws);
      const traj = g.filter((i) => rows[i].plan.returnTrajectory);
      for (const i of traj) trajectories.set(i, []);
      const stepMs: number[] = [];
      await integrate(
        (y, tau, out) => d.decoder.velocityRows(y, tau, ctx, dit, out, { cond, ws }),
        h.Y, h.mask,
        {
          steps: plan.steps, solver: plan.solver, grid: plan.grid, shift: plan.shift,
          onStep: traj.length || opts.stepTimings
            ? async (step) => {
              if (traj.length) {
                const copy = Tensor.empty(gpu, h.Y.shape, 'f32');
                gpu.stream.copy(h.Y.buffer, h.Y.offset, copy.buffer, 0, h.Y.byteLength);
                pendingReads.push(copy.readF32().then((v) => {
                  for (const i of traj) trajectories.get(i)![step] = v.slice(g.indexOf(i) * n, (g.indexOf(i) + 1) * n);
                  copy.release();
                }));
              }
              if (opts.stepTimings) await gpu.sync();
              const t = nowMs();
              stepMs[step] = t - tStep;
              tStep = t;
            }
            : undefined,
        },
      );
      if (!opts.stepTimings && !traj.length) {
        // no per-step syncs: the loop was only encoded; its steps share the loop's encoding time
        const t = nowMs();
        for (let s = 0; s < plan.steps; s++) stepMs[s] = (t - tStep) / plan.steps;
        tStep = t;
      }
      groups.push({ rows: g, stepMs, nonFinite: 0 });
    }
    await meter.end('denoise');
    const denoiseEndMs = tStep; // the steps' times partition [start, denoiseEndMs]
    // NaN guard: the chunks and, per group, their non-finite count (on the GPU) come back in one readback.
    const slot = new Int32Array(B);
    const groupOf = new Int32Array(B);
    let o = 0;
    for (const [gi, g] of groupRows.entries()) {
      const Y = host[gi].Y;
      gpu.stream.copy(Y.buffer, Y.offset, readback.buffer, readback.offset + o * n * 4, Y.byteLength);
      countNonFinite(Y, { out: readback, outOffset: B * n + gi });
      g.forEach((i, k) => { slot[i] = o + k; groupOf[i] = gi; });
      o += g.length;
    }
    const encodedAt = nowMs();
    const bytes = await gpu.stream.read(readback.buffer, readback.offset, (B * n + groupRows.length) * 4);
    await Promise.all(pendingReads);
    const readbackEndMs = await meter.end('readback', encodedAt);
    const flags = new Uint32Array(bytes, B * n * 4, groupRows.length);
    groups.forEach((g, gi) => { g.nonFinite = flags[gi]; });
    return { all: new Float32Array(bytes, 0, B * n), slot, groupOf, groups, trajectories, denoiseStartMs: tDenoise, denoiseEndMs, readbackEndMs };
  } finally {
    for (const t of owned) t.release();
    readback?.release();
  }
}

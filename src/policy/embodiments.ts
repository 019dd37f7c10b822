/**
 * embodiments.json: the embodiment registry (contract: weights/README.md "embodiments.json"; post-processing:
 * docs/action-decoder.md §3, §10). Loading validates every entry strictly against the
 * decoder limits (k_max, s_max, h_max); every error is a CheckpointError that names the file, the embodiment
 * and the field, e.g.
 *   `embodiments.json: embodiments.aloha.normalization.action.q99 has 13 values, expected 14`.
 *
 * Schema decisions (all checked):
 * - root `{version: 1, embodiments: {key: entry}}`; at least one embodiment.
 * - entry keys: name, task_type (manipulation | navigation | trajectory), description, cameras, control
 *   {mode, rate_hz, chunk, frame?}, action {names, relative, gripper, binarize_gripper}, state? {names},
 *   normalization {method, action, state?}, prompt? (string | null). Unknown keys are rejected at every level
 *   except inside the stats objects (which may carry the stats of other methods, e.g. both q01/q99 and
 *   mean/std; only the ones of `method` are read and checked).
 * - control.chunk in 1..h_max; 1 ≤ action.names.length ≤ k_max; 1 ≤ state.names.length ≤ s_max; names unique;
 *   navigation: exactly 3 action channels (x, y, yaw, in that order); trajectory: 2 or 3 (x, y[, z]).
 * - relative[i] true requires a state with a channel of the same name (the delta is added to it).
 * - gripper: unique channel indices in [0, K).
 * - normalisation stats: one finite number per channel; q01_q99 / min_max need lo ≤ hi; mean_std needs std > 0
 *   for the state (it is divided by) and std ≥ 0 for the action. Every stat, and every hi − lo span, must lie
 *   in float32 range, and a state divisor (std, or hi − lo when not 0) must be at least the smallest normal
 *   float32 (outputs are f32). The state stats are required iff a state is declared.
 *
 * Maths (float64, results stored as float32), as qvla_ref/embodiment.py:
 *   q01_q99 / min_max:  x = (clip(y, −1, 1) + 1) / 2 · (hi − lo) + lo;   state y = (x − lo) / (hi − lo) · 2 − 1
 *                       (a state channel with hi == lo normalises to 0 instead of dividing by zero)
 *   mean_std:           x = y · std + mean;                             state y = (x − mean) / std
 * then relative → absolute (x += current raw state of the same name), then, with binarize_gripper, every
 * gripper channel becomes 1 when x ≥ 0.5 and 0 otherwise.
 */
import { platform } from '../platform/index.js';
import { CheckpointError, describeValue } from '../io/errors.js';
import { SchemaReader, type Obj } from '../util/schema.js';

export type TaskType = 'manipulation' | 'navigation' | 'trajectory';
export type NormMethod = 'q01_q99' | 'min_max' | 'mean_std';

/** The decoder limits an embodiment must fit (ActionExpertConfig has these fields). */
export interface EmbodimentLimits {
  kMax: number;
  sMax: number;
  hMax: number;
}

/**
 * Per-channel statistics. q01_q99: a = q01, b = q99; min_max: a = min, b = max; mean_std: a = mean, b = std
 * (as `_stats` in qvla_ref/embodiment.py).
 */
export interface ChannelStats {
  a: number[];
  b: number[];
}

export interface Embodiment {
  /** The registry key (e.g. "aloha"). */
  key: string;
  name: string;
  taskType: TaskType;
  description: string;
  cameras: string[];
  control: { mode: string; rateHz: number; chunk: number; frame: string | null };
  action: { names: string[]; relative: boolean[]; gripper: number[]; binarizeGripper: boolean };
  /** null: no proprioception (the decoder uses state_null_token). */
  state: { names: string[] } | null;
  normalization: { method: NormMethod; action: ChannelStats; state: ChannelStats | null };
  /** Explicit embodiment text, or null (generated; see src/text/prompt.ts). */
  prompt: string | null;
  /** The limits it was validated against. */
  limits: EmbodimentLimits;
}

export class EmbodimentRegistry {
  constructor(
    /** The file it was read from (used in error messages). */
    readonly file: string,
    readonly version: number,
    readonly embodiments: ReadonlyMap<string, Embodiment>,
  ) {}

  keys(): string[] {
    return [...this.embodiments.keys()];
  }

  has(key: string): boolean {
    return this.embodiments.has(key);
  }

  /** The embodiment `key`; an error listing the known ones when absent. */
  get(key: string): Embodiment {
    const e = this.embodiments.get(key);
    if (e === undefined) {
      throw new CheckpointError(
        `unknown embodiment ${JSON.stringify(key)}; known embodiments: ${this.keys().join(', ')}`,
        { file: this.file },
      );
    }
    return e;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Validation

type V = SchemaReader;

const ENTRY_KEYS = ['name', 'task_type', 'description', 'cameras', 'control', 'action', 'state', 'normalization', 'prompt'] as const;
const CONTROL_KEYS = ['mode', 'rate_hz', 'chunk', 'frame'] as const;
const ACTION_KEYS = ['names', 'relative', 'gripper', 'binarize_gripper'] as const;
const STATE_KEYS = ['names'] as const;
const NORM_KEYS = ['method', 'action', 'state'] as const;
const TASK_TYPES: readonly TaskType[] = ['manipulation', 'navigation', 'trajectory'];
const F32_MAX = 3.4028234663852886e38;
const F32_MIN_NORMAL = 1.1754943508222875e-38;
const METHODS: readonly NormMethod[] = ['q01_q99', 'min_max', 'mean_std'];
const STAT_KEYS: Record<NormMethod, [string, string]> = {
  q01_q99: ['q01', 'q99'],
  min_max: ['min', 'max'],
  mean_std: ['mean', 'std'],
};

function checkLimits(limits: EmbodimentLimits): void {
  for (const k of ['kMax', 'sMax', 'hMax'] as const) {
    const v = limits?.[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new TypeError(`embodiment limits: ${k} must be a positive integer, got ${describeValue(v)}`);
  }
}

function parseStats(v: V, norm: Obj, part: 'action' | 'state', method: NormMethod, n: number, path: string): ChannelStats {
  const p = `${path}.${part}`;
  const s = v.object(v.required(norm, part, path), p);
  const [ka, kb] = STAT_KEYS[method];
  const a = v.numbers(s, ka, p, n);
  const b = v.numbers(s, kb, p, n);
  // Stats are applied in f64 but the actions leave as f32 and the normalised state goes to the GPU as f32:
  // a stat (or a q01..q99 span) outside f32 range would turn every output into ±Inf / NaN at act() time.
  for (const [k, l] of [[ka, a], [kb, b]] as const) {
    l.forEach((x, i) => {
      if (Math.abs(x) > F32_MAX) v.fail(`${p}.${k}[${i}]`, `(${x}) is outside the float32 range (|x| ≤ ${F32_MAX.toExponential(4)})`);
    });
  }
  for (let i = 0; i < n; i++) {
    if (method !== 'mean_std' && Math.abs(b[i]! - a[i]!) > F32_MAX) {
      v.fail(`${p}.${kb}[${i}]`, `− ${p}.${ka}[${i}] = ${b[i]! - a[i]!} is outside the float32 range`);
    }
    // The state is divided by std (mean_std) or by hi − lo (0 allowed: that channel normalises to 0).
    const divisor = method === 'mean_std' ? b[i]! : b[i]! - a[i]!;
    if (part === 'state' && divisor > 0 && divisor < F32_MIN_NORMAL) {
      const what = method === 'mean_std' ? `(${b[i]})` : `− ${p}.${ka}[${i}] = ${divisor}`;
      v.fail(`${p}.${kb}[${i}]`, `${what} is below the smallest normal float32 (${F32_MIN_NORMAL.toExponential(4)}); dividing the state by it overflows`);
    }
    if (method === 'mean_std') {
      const ok = part === 'state' ? b[i]! > 0 : b[i]! >= 0;
      if (!ok) v.fail(`${p}.${kb}[${i}]`, `must be ${part === 'state' ? '> 0' : '≥ 0'}, got ${b[i]}`);
    } else if (!(a[i]! <= b[i]!)) {
      v.fail(`${p}.${kb}[${i}]`, `(${b[i]}) must be ≥ ${p}.${ka}[${i}] (${a[i]})`);
    }
  }
  return { a: a.slice(), b: b.slice() };
}

function parseEntry(v: V, key: string, raw: unknown, limits: EmbodimentLimits): Embodiment {
  const path = `embodiments.${key}`;
  const o = v.object(raw, path);
  v.onlyKeys(o, ENTRY_KEYS, path);
  const name = v.str(o, 'name', path, { nonEmpty: true });
  const taskType = v.oneOf(o, 'task_type', path, TASK_TYPES);
  const description = v.str(o, 'description', path);
  const camList = v.list(o, 'cameras', path);
  const cameras = camList.map((c, i) => {
    if (typeof c !== 'string' || c.length === 0) v.fail(`${path}.cameras[${i}]`, `must be a non-empty string, got ${describeValue(c)}`);
    return c;
  });
  if (new Set(cameras).size !== cameras.length) v.fail(`${path}.cameras`, `has duplicate names (${cameras.join(', ')})`);

  const cp = `${path}.control`;
  const c = v.object(v.required(o, 'control', path), cp);
  v.onlyKeys(c, CONTROL_KEYS, cp);
  const control = {
    mode: v.str(c, 'mode', cp, { nonEmpty: true }),
    rateHz: v.num(c, 'rate_hz', cp, { positive: true }),
    chunk: v.int(c, 'chunk', cp, { min: 1, max: limits.hMax, maxName: 'h_max' }),
    frame: v.strOrNull(c, 'frame', cp),
  };

  const ap = `${path}.action`;
  const a = v.object(v.required(o, 'action', path), ap);
  v.onlyKeys(a, ACTION_KEYS, ap);
  const names = v.names(a, 'names', ap, limits.kMax, 'k_max');
  const K = names.length;
  if (taskType === 'navigation' && K !== 3) v.fail(`${ap}.names`, `has ${K} names; a navigation embodiment has 3 (x, y, yaw)`);
  if (taskType === 'trajectory' && K !== 2 && K !== 3) v.fail(`${ap}.names`, `has ${K} names; a trajectory embodiment has 2 or 3 (x, y[, z])`);
  const relList = v.list(a, 'relative', ap);
  if (relList.length !== K) v.fail(`${ap}.relative`, `has ${relList.length} values, expected ${K}`);
  const relative = relList.map((r, i) => {
    if (typeof r !== 'boolean') v.fail(`${ap}.relative[${i}]`, `must be true or false, got ${describeValue(r)}`);
    return r;
  });
  const gripList = v.list(a, 'gripper', ap);
  const gripper = gripList.map((g, i) => {
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 0 || g >= K) {
      v.fail(`${ap}.gripper[${i}]`, `must be an action channel index in [0, ${K}), got ${describeValue(g)}`);
    }
    return g;
  });
  if (new Set(gripper).size !== gripper.length) v.fail(`${ap}.gripper`, `has duplicate indices (${gripper.join(', ')})`);
  const binarizeGripper = v.bool(a, 'binarize_gripper', ap);

  let state: { names: string[] } | null = null;
  if (v.has(o, 'state') && o['state'] !== null) {
    const sp = `${path}.state`;
    const s = v.object(o['state'], sp);
    v.onlyKeys(s, STATE_KEYS, sp);
    state = { names: v.names(s, 'names', sp, limits.sMax, 's_max') };
  }
  relative.forEach((r, i) => {
    if (!r) return;
    if (state === null) v.fail(`${ap}.relative[${i}]`, `is true (channel ${JSON.stringify(names[i])}) but the embodiment has no state to add the delta to`);
    if (!state.names.includes(names[i]!)) {
      v.fail(`${ap}.relative[${i}]`, `is true but state.names has no channel ${JSON.stringify(names[i])} to add the delta to`);
    }
  });

  const np = `${path}.normalization`;
  const n = v.object(v.required(o, 'normalization', path), np);
  v.onlyKeys(n, NORM_KEYS, np);
  const method = v.oneOf(n, 'method', np, METHODS);
  const actionStats = parseStats(v, n, 'action', method, K, np);
  let stateStats: ChannelStats | null = null;
  if (state !== null) {
    stateStats = parseStats(v, n, 'state', method, state.names.length, np);
  } else if (v.has(n, 'state') && n['state'] !== null) {
    v.fail(`${np}.state`, 'is given but the embodiment declares no state');
  }

  let prompt: string | null = null;
  if (v.has(o, 'prompt') && o['prompt'] !== null) {
    if (typeof o['prompt'] !== 'string') v.fail(`${path}.prompt`, `must be a string or null, got ${describeValue(o['prompt'])}`);
    prompt = o['prompt'];
  }

  return {
    key, name, taskType, description, cameras, control,
    action: { names: names.slice(), relative, gripper, binarizeGripper },
    state: state === null ? null : { names: state.names.slice() },
    normalization: { method, action: actionStats, state: stateStats },
    prompt,
    limits: { kMax: limits.kMax, sMax: limits.sMax, hMax: limits.hMax },
  };
}

/** Validates a parsed embodiments.json object. `file` is used in error messages. */
export function parseEmbodiments(raw: unknown, limits: EmbodimentLimits, file = 'embodiments.json'): EmbodimentRegistry {
  checkLimits(limits);
  const v = new SchemaReader(file, { error: (field, msg) => new CheckpointError(`${field} ${msg}`, { file, field }) });
  const root = v.object(raw, '');
  v.onlyKeys(root, ['version', 'embodiments'], '');
  const version = v.required(root, 'version', '');
  if (version !== 1) v.fail('version', `must be 1, got ${describeValue(version)}`);
  const embs = v.object(v.required(root, 'embodiments', ''), 'embodiments');
  const keys = Object.keys(embs);
  if (keys.length === 0) v.fail('embodiments', 'is empty');
  const map = new Map<string, Embodiment>();
  for (const key of keys) map.set(key, parseEntry(v, key, embs[key], limits));
  return new EmbodimentRegistry(file, 1, map);
}

/** Reads, JSON-parses and validates an embodiments.json file. */
export async function loadEmbodiments(path: string, limits: EmbodimentLimits): Promise<EmbodimentRegistry> {
  let text: string;
  try {
    text = await platform().fs.readText(path);
  } catch (e) {
    throw new CheckpointError(`cannot read: ${e instanceof Error ? e.message : String(e)}`, { file: path, cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text) as unknown;
  } catch (e) {
    throw new CheckpointError(`is not valid JSON (${e instanceof Error ? e.message : String(e)})`, { file: path, cause: e });
  }
  return parseEmbodiments(raw, limits, path);
}

// ---------------------------------------------------------------------------------------------------------
// State / action maths

function checkVector(emb: Embodiment, x: ArrayLike<number>, names: string[], what: string): void {
  if (x === null || typeof x !== 'object' || typeof x.length !== 'number') {
    throw new TypeError(`embodiment ${emb.key}: ${what} must be a Float32Array or number[]`);
  }
  if (x.length !== names.length) {
    throw new RangeError(`embodiment ${emb.key}: ${what} has ${x.length} values, expected ${names.length} (${names.join(', ')})`);
  }
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new RangeError(`embodiment ${emb.key}: ${what} channel ${i} (${JSON.stringify(names[i])}) is ${v === undefined ? 'missing' : String(v)}, expected a finite number`);
    }
  }
}

/**
 * Normalised state, zero padded to sMax (default: the s_max the registry was validated against).
 * The raw state has one value per `state.names` entry. NaN/Inf, or a value whose normalised form overflows
 * float32, → error naming the channel.
 */
export function normalizeState(emb: Embodiment, state: Float32Array | ArrayLike<number>, sMax: number = emb.limits.sMax): Float32Array {
  if (emb.state === null || emb.normalization.state === null) {
    throw new Error(`embodiment ${emb.key} declares no state; pass no state (the decoder then uses state_null_token)`);
  }
  const names = emb.state.names;
  if (!Number.isInteger(sMax) || sMax < names.length) throw new RangeError(`normalizeState: sMax ${sMax} < ${names.length} state channels of ${emb.key}`);
  checkVector(emb, state, names, 'state');
  const { a, b } = emb.normalization.state;
  const out = new Float32Array(sMax);
  const meanStd = emb.normalization.method === 'mean_std';
  for (let i = 0; i < names.length; i++) {
    const x = state[i]!;
    if (meanStd) out[i] = (x - a[i]!) / b[i]!;
    else out[i] = b[i]! === a[i]! ? 0 : ((x - a[i]!) / (b[i]! - a[i]!)) * 2.0 - 1.0;
    if (!Number.isFinite(out[i]!)) {
      throw new RangeError(
        `embodiment ${emb.key}: state channel ${i} (${JSON.stringify(names[i])}) = ${x} normalises to ${out[i]} in float32 ` +
          `(${meanStd ? `mean ${a[i]}, std ${b[i]}` : `range [${a[i]}, ${b[i]}]`}): the value is far outside the embodiment's statistics`,
      );
    }
  }
  return out;
}

/** 1 on the valid state channels [0:S_e], 0 elsewhere (all 0 without a state). */
export function stateMask(emb: Embodiment, sMax: number = emb.limits.sMax): Float32Array {
  const m = new Float32Array(sMax);
  if (emb.state !== null) m.fill(1, 0, Math.min(emb.state.names.length, sMax));
  return m;
}

/** [hMax, kMax] mask: 1 on [0:H_e, 0:K_e] (H_e = control.chunk, K_e = action.names.length). */
export function actionMask(emb: Embodiment, hMax: number, kMax: number): Float32Array {
  const H = emb.control.chunk;
  const K = emb.action.names.length;
  if (H > hMax || K > kMax) throw new RangeError(`actionMask: embodiment ${emb.key} needs [${H}, ${K}], over [${hMax}, ${kMax}]`);
  const m = new Float32Array(hMax * kMax);
  for (let r = 0; r < H; r++) m.fill(1, r * kMax, r * kMax + K);
  return m;
}

export interface Waypoint {
  /** Forward, metres (robot frame). */
  x: number;
  /** Left, metres. */
  y: number;
  /** Radians. */
  yaw: number;
}

export interface TrajectoryPoint {
  x: number;
  y: number;
  /** Present for a 3-D trajectory. */
  z?: number;
}

export interface UnnormalizedActions {
  /** [rows, dims] row-major, physical units. */
  actions: Float32Array;
  /** Channel names (action.names). */
  names: string[];
  /** H_e (control.chunk). */
  rows: number;
  /** K_e. */
  dims: number;
  taskType: TaskType;
  /** navigation only: one (x, y, yaw) per row, robot frame. */
  waypoints?: Waypoint[];
  /** trajectory only: one point per row. */
  points?: TrajectoryPoint[];
}

/**
 * Post-processing of one decoded chunk (docs/action-decoder.md §10.2): slice [H_e, K_e] out of the raw
 * [rows ≥ H_e, kMax] chunk, clip (q01_q99 / min_max) and unnormalise, add the current raw state of the same
 * name to the relative channels, binarise the grippers when `binarize_gripper`. `state` (raw, one value per
 * state.names entry) is required when any channel is relative.
 */
export function unnormalizeActions(
  emb: Embodiment,
  chunk: Float32Array | ArrayLike<number>,
  kMax: number,
  state?: Float32Array | ArrayLike<number> | null,
): UnnormalizedActions {
  const H = emb.control.chunk;
  const names = emb.action.names;
  const K = names.length;
  if (!Number.isInteger(kMax) || kMax < K) throw new RangeError(`unnormalizeActions: kMax ${kMax} < ${K} action channels of ${emb.key}`);
  if (chunk.length % kMax !== 0 || chunk.length / kMax < H) {
    throw new RangeError(`unnormalizeActions: chunk has ${chunk.length} values, expected [rows ≥ ${H}, ${kMax}] for embodiment ${emb.key}`);
  }
  const anyRelative = emb.action.relative.some((r) => r);
  const relIndex = new Int32Array(K).fill(-1);
  if (anyRelative) {
    if (state === undefined || state === null) {
      throw new Error(`embodiment ${emb.key}: relative action channels need the current state (${emb.state!.names.join(', ')})`);
    }
    checkVector(emb, state, emb.state!.names, 'state');
    for (let c = 0; c < K; c++) if (emb.action.relative[c]) relIndex[c] = emb.state!.names.indexOf(names[c]!);
  } else if (state !== undefined && state !== null && emb.state !== null) {
    checkVector(emb, state, emb.state.names, 'state');
  }
  const { a, b } = emb.normalization.action;
  const meanStd = emb.normalization.method === 'mean_std';
  const grip = new Uint8Array(K);
  if (emb.action.binarizeGripper) for (const g of emb.action.gripper) grip[g] = 1;
  const out = new Float32Array(H * K);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < K; c++) {
      let y = chunk[r * kMax + c]!;
      let x: number;
      if (meanStd) {
        x = y * b[c]! + a[c]!;
      } else {
        y = y < -1 ? -1 : y > 1 ? 1 : y; // NaN stays NaN
        x = ((y + 1.0) / 2.0) * (b[c]! - a[c]!) + a[c]!;
      }
      if (relIndex[c]! >= 0) x += state![relIndex[c]!]!;
      if (grip[c]) x = x >= 0.5 ? 1 : 0;
      out[r * K + c] = x;
    }
  }
  const res: UnnormalizedActions = { actions: out, names: names.slice(), rows: H, dims: K, taskType: emb.taskType };
  if (emb.taskType === 'navigation') {
    res.waypoints = [];
    for (let r = 0; r < H; r++) res.waypoints.push({ x: out[r * K]!, y: out[r * K + 1]!, yaw: out[r * K + 2]! });
  } else if (emb.taskType === 'trajectory') {
    res.points = [];
    for (let r = 0; r < H; r++) {
      const p: TrajectoryPoint = { x: out[r * K]!, y: out[r * K + 1]! };
      if (K === 3) p.z = out[r * K + 2]!;
      res.points.push(p);
    }
  }
  return res;
}

/**
 * The inverse of {@link unnormalizeActions} for training labels: a physical chunk [H_e, K_e] (absolute targets, as
 * act() returns them) → the decoder's normalised chunk, zero-padded to [hMax, kMax]. Relative channels become
 * deltas from the raw `state`; q01_q99 / min_max values are clipped to [−1, 1] (the range act() can return).
 */
export function normalizeActions(
  emb: Embodiment,
  actions: Float32Array | ArrayLike<number>,
  hMax: number,
  kMax: number,
  state?: ArrayLike<number> | null,
): Float32Array {
  const H = emb.control.chunk;
  const K = emb.action.names.length;
  if (actions.length !== H * K) throw new RangeError(`normalizeActions: ${actions.length} values, expected ${H}×${K} for embodiment ${emb.key}`);
  if (hMax < H || kMax < K) throw new RangeError(`normalizeActions: [${hMax}, ${kMax}] is smaller than ${H}×${K} of ${emb.key}`);
  const rel = emb.action.relative.map((r, c) => (r ? emb.state!.names.indexOf(emb.action.names[c]!) : -1));
  if (rel.some((i) => i >= 0) && (state === undefined || state === null)) {
    throw new Error(`embodiment ${emb.key}: relative action channels need the current state`);
  }
  const { a, b } = emb.normalization.action;
  const meanStd = emb.normalization.method === 'mean_std';
  const out = new Float32Array(hMax * kMax);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < K; c++) {
      let x = actions[r * K + c]!;
      if (rel[c]! >= 0) x -= state![rel[c]!]!;
      let y: number;
      if (meanStd) y = b[c]! === 0 ? 0 : (x - a[c]!) / b[c]!;
      else y = b[c]! === a[c]! ? 0 : Math.min(1, Math.max(-1, ((x - a[c]!) / (b[c]! - a[c]!)) * 2 - 1));
      out[r * kMax + c] = y;
    }
  }
  return out;
}

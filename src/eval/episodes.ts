// Closed-loop evaluation: a policy (or the scripted expert) drives a world from its observations, episode by
// episode, and the episodes are summarised into one row (success rate with a Wilson 95 % interval + the world's
// own metrics). Used by `qvla eval`; written to be reused by the README demo, `qvla bench steps` and a browser
// playground (no file system, no process state here: rollouts are written through the hooks, src/eval/rollouts.ts).
//
// Episodes of one row run in parallel: all unfinished worlds are observed, the policy returns one chunk per world
// (one `actBatch` call per group of `batch` observations when the policy has it, else one `act()` per
// observation), then every world executes its chunk. The noise seed of a decision depends only on the episode
// seed and the decision index, so results do not depend on the batch size, the order or the other episodes, and
// the ablation conditions (blind, prompt-as) see the same noise as the plain policy (paired comparisons).
import type { ActRequest, ActResult } from '../policy/policy.js';
import type { Embodiment, EmbodimentRegistry, TaskType } from '../policy/embodiments.js';
import { evaluations, SOLVERS, type SolverName } from '../policy/samplers.js';
import { EVAL_SEED_BASE, worldEmbodiments } from '../worlds/registry.js';
import type { Chunk, Level, World, WorldName, WorldObservation, WorldSpec } from '../worlds/types.js';
import type { RgbImage } from '../preprocess/image.js';
import { wilsonInterval } from './wilson.js';

/** What runEpisodes needs of a Policy (a Policy fits; tests may pass a stub). */
export interface PolicyLike {
  act(req: ActRequest): Promise<ActResult>;
  /** Batched act(): one result per request, each row identical to act() (used when present). */
  actBatch?(reqs: ActRequest[]): Promise<ActResult[]>;
  /** When present, the world's embodiment is checked against it before the first call. */
  readonly embodiments?: EmbodimentRegistry;
}

/** The scripted expert instead of a policy (no GPU): the baseline row. */
export const EXPERT = 'expert' as const;
export type Actor = PolicyLike | typeof EXPERT;

/** "policy" | "blind" | "prompt-as:EMB" | "expert". */
export type Condition = string;

export const TASK_TYPES: Record<WorldName, TaskType> = { tabletop: 'manipulation', nav: 'navigation', ball: 'trajectory' };

export interface EpisodeOptions {
  episodes: number;
  /** First episode seed; episode e uses seed + e. Default EVAL_SEED_BASE (never a training seed). */
  seed?: number;
  solver?: SolverName;
  steps?: number;
  /** Every camera frame replaced by a black frame of the same size (same prompt length). */
  blind?: boolean;
  /** Prompt with this embodiment's text (ActRequest.promptAs); action space stays the world's. */
  promptAs?: string;
  /** At most this many observations per actBatch call (default 16); 1 = one act() per observation. */
  batch?: number;
  /** Cut episodes after this many decisions (smoke tests); a cut episode counts as it stands (usually a failure). */
  maxDecisions?: number;
  /** After every round of decisions and at the end. */
  onProgress?: (p: { done: number; total: number; successes: number }) => void;
  /** After observe() and before step(): the chunk about to be executed (rollout pictures). */
  onDecision?: (episode: number, world: World, chunk: Chunk) => void | Promise<void>;
  /** When an episode has ended. */
  onEpisodeEnd?: (episode: number, world: World, result: EpisodeResult) => void | Promise<void>;
}

export interface EpisodeResult {
  world: WorldName;
  embodiment: string;
  level: Level;
  taskType: TaskType;
  condition: Condition;
  /** null for the expert */
  solver: SolverName | null;
  steps: number | null;
  /** network evaluations per decision (0 for the expert) */
  nfe: number;
  seed: number;
  success: boolean;
  decisions: number;
  /** observations the policy decided (0 for the expert) */
  actCalls: number;
  /** world.metrics() at the end of the episode */
  metrics: Record<string, number>;
  /** ms from the start of the run until this episode ended (the run's wall time is the largest) */
  finishedMs: number;
}

/** The condition name of a run. */
export function conditionName(expert: boolean, o: Pick<EpisodeOptions, 'blind' | 'promptAs'>): Condition {
  if (expert) return 'expert';
  const parts: string[] = [];
  if (o.blind) parts.push('blind');
  if (o.promptAs !== undefined) parts.push(`prompt-as:${o.promptAs}`);
  return parts.length > 0 ? parts.join('+') : 'policy';
}

/** The noise seed of one decision: a hash of (episode seed, decision index), in [0, 2³²). */
export function decisionSeed(episodeSeed: number, decision: number): number {
  let h = ((episodeSeed >>> 0) ^ Math.imul(decision + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

type WorldEntry = { control: { chunk: number }; cameras: string[]; action: { names: string[] }; state?: { names: string[] } };

/**
 * Why a checkpoint's embodiment cannot drive the world's (null = it can): the world needs the same action
 * channels, cameras, state channels and at least its chunk rows (src/worlds/registry.ts worldEmbodiments()).
 */
export function embodimentMismatch(registry: EmbodimentRegistry, key: string): string | null {
  const want = (worldEmbodiments()['embodiments'] as Record<string, WorldEntry>)[key];
  if (!want) return `${JSON.stringify(key)} is not a world embodiment`;
  if (!registry.has(key)) {
    return `${registry.file} has no embodiment ${JSON.stringify(key)} (it has ${registry.keys().join(', ') || 'none'}); ` +
      'evaluating on the worlds needs a checkpoint trained on them, whose embodiments.json has the world embodiments (worldEmbodiments() in src/worlds/registry.ts)';
  }
  const e: Embodiment = registry.get(key);
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const where = `${registry.file}: embodiment ${key}`;
  if (!same(e.action.names, want.action.names)) return `${where} has action channels [${e.action.names.join(', ')}]; the world needs [${want.action.names.join(', ')}]`;
  if (!same(e.cameras, want.cameras)) return `${where} has cameras [${e.cameras.join(', ')}]; the world renders [${want.cameras.join(', ')}]`;
  if (!same(e.state?.names ?? [], want.state?.names ?? [])) return `${where} has state [${(e.state?.names ?? []).join(', ')}]; the world reports [${(want.state?.names ?? []).join(', ')}]`;
  if (e.control.chunk < want.control.chunk) return `${where} has a chunk of ${e.control.chunk} rows; the world needs ${want.control.chunk}`;
  return null;
}

function blackFrame(im: RgbImage): RgbImage {
  return { width: im.width, height: im.height, channels: 3, data: new Uint8Array(im.data.length) };
}

function request(spec: WorldSpec, obs: WorldObservation, seed: number, o: EpisodeOptions): ActRequest {
  const req: ActRequest = {
    images: obs.images.map(({ camera, image }) => ({ ...(o.blind ? blackFrame(image) : image), camera })),
    instruction: obs.instruction,
    embodiment: spec.embodiment,
    state: obs.state,
    seed,
  };
  if (o.solver !== undefined) req.solver = o.solver;
  if (o.steps !== undefined) req.steps = o.steps;
  if (o.promptAs !== undefined) req.promptAs = o.promptAs;
  return req;
}

/** One chunk per request: actBatch in groups of `batch` when the policy has it, else act() one by one. */
async function decide(policy: PolicyLike, reqs: ActRequest[], batch: number): Promise<ActResult[]> {
  if (typeof policy.actBatch === 'function' && batch > 1) {
    const out: ActResult[] = [];
    for (let i = 0; i < reqs.length; i += batch) {
      const group = reqs.slice(i, i + batch);
      const got = await policy.actBatch(group);
      if (got.length !== group.length) throw new Error(`actBatch returned ${got.length} results for ${group.length} requests`);
      out.push(...got);
    }
    return out;
  }
  // fallback (no actBatch, or batch 1): one act() per observation
  const out: ActResult[] = [];
  for (const r of reqs) out.push(await policy.act(r));
  return out;
}

function checkOptions(actor: Actor, spec: WorldSpec, o: EpisodeOptions): void {
  if (!Number.isInteger(o.episodes) || o.episodes < 1) throw new RangeError(`episodes must be a positive integer, got ${o.episodes}`);
  const seed = o.seed ?? EVAL_SEED_BASE;
  if (!Number.isInteger(seed) || seed < 0 || seed + o.episodes - 1 > 0xffffffff) throw new RangeError(`seeds ${seed}…${seed + o.episodes - 1} must lie in [0, 2^32)`);
  if (o.batch !== undefined && !(Number.isInteger(o.batch) && o.batch >= 1)) throw new RangeError(`batch must be a positive integer, got ${o.batch}`);
  if (o.maxDecisions !== undefined && !(Number.isInteger(o.maxDecisions) && o.maxDecisions >= 1)) throw new RangeError(`maxDecisions must be a positive integer, got ${o.maxDecisions}`);
  if (actor === EXPERT) {
    if (o.blind || o.promptAs !== undefined) throw new RangeError('the expert sees the world state, not frames or prompts: blind / promptAs apply to a policy only');
    return;
  }
  if (o.steps !== undefined && !(Number.isInteger(o.steps) && o.steps >= 1)) throw new RangeError(`steps must be a positive integer, got ${o.steps}`);
  if (o.solver !== undefined && !SOLVERS.includes(o.solver)) throw new RangeError(`solver must be one of ${SOLVERS.join(', ')}, got ${String(o.solver)}`);
  if (actor.embodiments) {
    const why = embodimentMismatch(actor.embodiments, spec.embodiment);
    if (why) throw new Error(why);
    if (o.promptAs !== undefined && !actor.embodiments.has(o.promptAs)) {
      throw new Error(`promptAs: ${actor.embodiments.file} has no embodiment ${JSON.stringify(o.promptAs)} (it has ${actor.embodiments.keys().join(', ')})`);
    }
  }
}

/**
 * Runs `opts.episodes` episodes of `spec` (seeds seed … seed + episodes − 1) with the policy or the scripted
 * expert and returns one result per episode, in seed order.
 */
export async function runEpisodes(actor: Actor, spec: WorldSpec, opts: EpisodeOptions): Promise<EpisodeResult[]> {
  checkOptions(actor, spec, opts);
  const t0 = performance.now();
  const seed0 = opts.seed ?? EVAL_SEED_BASE;
  const batch = opts.batch ?? 16;
  const condition = conditionName(actor === EXPERT, opts);
  const worlds: World[] = Array.from({ length: opts.episodes }, (_, e) => spec.create(seed0 + e));
  const results: (EpisodeResult | null)[] = worlds.map(() => null);
  const actCalls = new Int32Array(worlds.length);
  let solver: SolverName | null = actor === EXPERT ? null : (opts.solver ?? null);
  let steps: number | null = actor === EXPERT ? null : (opts.steps ?? null);
  let done = 0, successes = 0;

  const cut = (w: World) => opts.maxDecisions !== undefined && w.decisions >= opts.maxDecisions;
  const finish = async (e: number): Promise<void> => {
    const w = worlds[e]!;
    const r: EpisodeResult = {
      world: spec.world, embodiment: spec.embodiment, level: spec.level, taskType: TASK_TYPES[spec.world], condition,
      solver, steps, nfe: solver !== null && steps !== null ? evaluations(solver, steps) : 0,
      seed: w.seed, success: w.success, decisions: w.decisions, actCalls: actCalls[e]!, metrics: { ...w.metrics() },
      finishedMs: performance.now() - t0,
    };
    results[e] = r;
    done++;
    if (r.success) successes++;
    await opts.onEpisodeEnd?.(e, w, r);
  };

  for (;;) {
    // episodes that ended (or were cut) last round are finished in seed order; the others decide again
    const active: number[] = [];
    for (let e = 0; e < worlds.length; e++) {
      if (results[e] !== null) continue;
      if (worlds[e]!.done || cut(worlds[e]!)) await finish(e);
      else active.push(e);
    }
    opts.onProgress?.({ done, total: worlds.length, successes });
    if (active.length === 0) break;
    let chunks: Chunk[];
    if (actor === EXPERT) {
      chunks = active.map((e) => worlds[e]!.expert());
    } else {
      const reqs = active.map((e) => request(spec, worlds[e]!.observe(), decisionSeed(worlds[e]!.seed, worlds[e]!.decisions), opts));
      const res = await decide(actor, reqs, batch);
      chunks = res.map((r) => ({ rows: r.actions.rows, channels: r.actions.dims, data: r.actions.actions }));
      if (solver === null || steps === null) {
        solver = res[0]!.solver;
        steps = res[0]!.steps;
      }
      for (const e of active) actCalls[e]!++;
    }
    for (const [k, e] of active.entries()) {
      const w = worlds[e]!;
      await opts.onDecision?.(e, w, chunks[k]!);
      w.step(chunks[k]!);
    }
  }
  return results as EpisodeResult[];
}

/** One evaluation row: the episodes of one world × embodiment × level × condition × solver × steps. */
export interface EvalRow {
  world: WorldName;
  level: Level;
  embodiment: string;
  task_type: TaskType;
  condition: Condition;
  solver: SolverName | null;
  steps: number | null;
  nfe: number;
  episodes: number;
  successes: number;
  success_rate: number;
  /** Wilson 95 % interval of the success rate */
  ci95: [number, number];
  /**
   * Means over the episodes: decisions (all worlds); navigation sr, osr, spl (+ path, final_dist, stopped);
   * trajectory ade, fde and the constant-velocity baseline cv_ade, cv_fde, cv_success; manipulation ticks and
   * final distances. A world metric is averaged over the episodes that report it.
   */
  metrics: Record<string, number>;
  /** observations the policy decided (0 for the expert) */
  act_calls: number;
  seeds: [number, number];
  wall_s: number;
}

/** Summarises the results of one run (one row; all results must share world, embodiment, level, condition, solver, steps). */
export function summarise(results: readonly EpisodeResult[]): EvalRow {
  if (results.length === 0) throw new RangeError('summarise: no episodes');
  const r0 = results[0]!;
  for (const r of results) {
    for (const k of ['world', 'embodiment', 'level', 'condition', 'solver', 'steps'] as const) {
      if (r[k] !== r0[k]) throw new RangeError(`summarise: results mix ${k} ${String(r0[k])} and ${String(r[k])}; summarise one row at a time`);
    }
  }
  const n = results.length;
  const successes = results.filter((r) => r.success).length;
  const metrics: Record<string, number> = { decisions: results.reduce((s, r) => s + r.decisions, 0) / n };
  if (r0.taskType === 'navigation') metrics['sr'] = successes / n;
  const sums = new Map<string, { sum: number; count: number }>();
  for (const r of results) {
    for (const [k, v] of Object.entries(r.metrics)) {
      if (!Number.isFinite(v)) continue;
      const s = sums.get(k) ?? { sum: 0, count: 0 };
      s.sum += v;
      s.count++;
      sums.set(k, s);
    }
  }
  for (const [k, s] of sums) metrics[k] = s.sum / s.count;
  const seeds = results.map((r) => r.seed);
  return {
    world: r0.world, level: r0.level, embodiment: r0.embodiment, task_type: r0.taskType, condition: r0.condition,
    solver: r0.solver, steps: r0.steps, nfe: r0.nfe,
    episodes: n, successes, success_rate: successes / n, ci95: wilsonInterval(successes, n), metrics,
    act_calls: results.reduce((s, r) => s + r.actCalls, 0),
    seeds: [Math.min(...seeds), Math.max(...seeds)],
    wall_s: Math.max(...results.map((r) => r.finishedMs)) / 1000,
  };
}

/** The few metrics worth a table column, as text: "SR 40 % OSR 60 % SPL 0.31", "ADE 0.042 FDE 0.091 (cv 0.05/0.12)", "23.4 decisions". */
export function keyMetrics(row: EvalRow): string {
  const m = row.metrics;
  const f = (v: number | undefined, d = 3) => (v === undefined ? '-' : v.toFixed(d));
  const pct = (v: number | undefined) => (v === undefined ? '-' : `${(100 * v).toFixed(0)} %`);
  switch (row.task_type) {
    case 'navigation':
      return `SR ${pct(m['sr'])} OSR ${pct(m['osr'])} SPL ${f(m['spl'], 2)}`;
    case 'trajectory':
      return `ADE ${f(m['ade'])} FDE ${f(m['fde'])} (cv ${f(m['cv_ade'])}/${f(m['cv_fde'])})`;
    default:
      return `${f(m['decisions'], 1)} decisions`;
  }
}

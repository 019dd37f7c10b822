// `qvla bench e2e`: end-to-end act() latency, per stage, on the tiny checkpoint and the small (0.8B-shaped) one.
//
// Per config: load time (Policy.load on a fresh device), the first act() call (cold: WGSL pipeline compilation and
// first-use buffer creation included) with its stage breakdown, then warm calls in two modes of the same Policy:
//   staged — stageTimings: true, the GPU is synced between stages, so every stage has its own time;
//   fast   — stageTimings: false, no intermediate syncs (the lowest-latency mode), total only.
// (Both modes use one Policy: `policy.options.stageTimings` is read on every call, so it is switched in place
// rather than loading the weights twice.) Warm-up calls of both modes precede the measured ones; the buffer
// pool's `created` counter is read after warm-up and again at the end — steady-state calls must create no GPU
// buffers. Steady-state GPU memory = weight bytes + pool bytes (activations, caches, masks, staging are pool
// buffers; pipelines and the uniform arena are not counted).
//
// Work per act() (one warm fast-mode call, then one profiled): dispatches, queue submits and the CPU time spent
// encoding commands per stage, next to each stage's GPU time from timestamp queries (the profiled call's kernel
// times split by the stages' dispatch counts; null without timestamp-query). `dispatches_per_act`,
// `dispatches_per_layer_step` (dispatches inside the DiT blocks of one evaluation / num_layers) and friends are
// top-level fields of each config in --json.
//
// Percentiles are linear-interpolated (numpy's default); with n calls p99 is close to the maximum.
// The small checkpoint is generated once into os.tmpdir()/qvla-small, or `--gen-dir DIR` (src/bench/makeCheckpoint.ts:
// only into a new, empty or generator-stamped directory; anything else is refused, nothing deleted). `--checkpoint
// DIR` benchmarks an existing checkpoint as-is instead (read only, like every other command's --checkpoint).
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { Gpu } from '../gpu/device.js';
import { Policy, type ActRequest, type StageTimings } from '../policy/policy.js';
import { WORK_STAGES, type StageWork, type WorkStage } from '../policy/sampling.js';
import { prologueConfig, foldPrologue } from '../model/prologueLinear.js';
import { SOLVERS, evaluations, type SolverName } from '../policy/samplers.js';
import { TINY_DIR } from '../testing/fixtures.js';
import { HELP_OPT, UsageError, formatHelp, getNumber, getString, parseArgs, type CommandSpec } from '../cli/args.js';
import { benchHeader, fmt, formatHeader, formatTable, pinLpNumThreads, type BenchHeader } from './env.js';
import { claimGeneratorDir, ensureSmallCheckpoint, defaultSmallDir } from './makeCheckpoint.js';
import { DEFAULT_INSTRUCTION, DEFAULT_WIDOWX_STATE } from './steps.js';
import { percentile } from './stats.js';

/** tiny: weights/tiny; small: the generated 0.8B-shaped checkpoint; checkpoint: an existing directory, as-is. */
export type E2eConfigName = 'tiny' | 'small' | 'checkpoint';
/** The configs `--config both` (the default) runs. */
export const E2E_CONFIGS: readonly E2eConfigName[] = ['tiny', 'small'];

/** Default measured calls per mode; on a software adapter the small config takes fewer (see `planFor`). */
export const DEFAULT_CALLS = 50;
/** The small config on a software adapter (see `planFor`). */
export const SMALL_SOFTWARE = { calls: 1, warmup: 1, modes: ['staged', 'fast'] } as const;

export interface E2eOptions {
  configs?: E2eConfigName[];
  /** Measured calls per mode (default 50; the small config on a software adapter: SMALL_SOFTWARE.calls). */
  calls?: number;
  /** Warm-up calls per mode after the cold call (default 2). */
  warmup?: number;
  /** Checkpoint directory of the tiny config (default weights/tiny). */
  tinyDir?: string;
  /**
   * Where the small config's checkpoint is generated (default os.tmpdir()/qvla-small): a new, empty or
   * generator-stamped directory; any other is refused (GeneratorDirError) and left untouched.
   */
  genDir?: string;
  /** An existing checkpoint to benchmark as-is (config 'checkpoint'; the default configs become just that one). */
  checkpoint?: string;
  weightDtype?: 'f32' | 'f16';
  steps?: number;
  solver?: SolverName;
  embodiment?: string;
  /** Which modes to measure (default both). */
  modes?: ('staged' | 'fast')[];
  json?: string;
  /** Fold the DiT's norms and the text MLP's SwiGLU into the next linear (src/model/prologueLinear.ts): default auto. */
  fold?: 'auto' | 'on' | 'off';
  /** The policy's prompt-prefix cache (PolicyOptions.prefixCache): default on. */
  prefixCache?: boolean;
  log?: (line: string) => void;
  /** Recorded in the report (the CLI passes its command line). */
  command?: string;
}

export interface Percentiles {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export function percentiles(xs: readonly number[]): Percentiles {
  return {
    n: xs.length,
    p50: percentile(xs, 50),
    p90: percentile(xs, 90),
    p99: percentile(xs, 99),
    mean: xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length),
    min: xs.length ? Math.min(...xs) : NaN,
    max: xs.length ? Math.max(...xs) : NaN,
  };
}

export const STAGES = ['preprocess', 'vision', 'prefill', 'context', 'step', 'denoise', 'readback', 'postprocess', 'total'] as const;
export type StageName = (typeof STAGES)[number];

export interface E2eConfigReport {
  config: E2eConfigName;
  dir: string;
  weightDtype: 'f32' | 'f16';
  embodiment: string;
  steps: number;
  solver: SolverName;
  evaluations: number;
  promptTokens: number;
  /** whether the prompt-prefix cache was on, and the prompt tokens a warm call took from it */
  prefix_cache: boolean;
  prefix_tokens: number;
  /** seconds spent generating the checkpoint in this run (0 when cached / not generated) */
  generateSeconds: number;
  gpuCreateMs: number;
  loadMs: number;
  /** first act() (pipeline compilation included), stage-synced */
  cold: StageTimings;
  warmupCalls: number;
  /** per-stage percentiles over the staged calls; `step` pools every denoising step, `denoise` is their sum per call */
  staged: { calls: number; stages: Record<StageName, Percentiles> } | null;
  /** total latency with stageTimings: false */
  fast: { calls: number; total: Percentiles } | null;
  memory: {
    weightBytes: number;
    poolBytes: number;
    /** weights + pool */
    totalBytes: number;
    poolBuffersAfterWarmup: number;
    /** GPU buffers the pool created during the measured calls (must be 0) */
    buffersCreatedAfterWarmup: number;
  };
  /** one warm fast-mode act(): per stage dispatches, submits, CPU encoding ms, and GPU ms (profiled call) */
  work: Record<WorkStage, StageWork & { gpuMs: number | null }>;
  dispatches_per_act: number;
  submits_per_act: number;
  /** denoise-stage dispatches / steps (solver stages, the step's update and the loop's time conditioning share included) */
  dispatches_per_step: number;
  /** dispatches of one network evaluation */
  dispatches_per_evaluation: number;
  /** dispatches inside the DiT blocks (cross and self) of one evaluation / num_layers */
  dispatches_per_layer_step: number;
  num_layers: number;
  /** whether norms / SwiGLU were folded into the next linear in this run (prologueConfig) */
  folded: boolean;
  note?: string;
}

export interface E2eReport {
  header: BenchHeader;
  weightDtype: 'f32' | 'f16';
  command: string;
  configs: E2eConfigReport[];
}

function sampleRequest(embodiment: string, policy: Policy): ActRequest {
  const emb = policy.embodiment(embodiment);
  const sampleDir = path.join(TINY_DIR, 'samples');
  const images = emb.cameras.map((c) => path.join(sampleDir, `${emb.key}_${c}.png`));
  const state = emb.state ? emb.state.names.map((_, k) => (emb.key === 'widowx' ? DEFAULT_WIDOWX_STATE[k] ?? 0 : 0)) : undefined;
  return { images, instruction: DEFAULT_INSTRUCTION, embodiment, state, seed: 0 };
}

interface Plan {
  calls: number;
  warmup: number;
  modes: ('staged' | 'fast')[];
  note?: string;
}

/** Weights above this make a `--checkpoint` run count as slow on a software adapter (like the small config). */
const SLOW_CHECKPOINT_BYTES = 256 * 2 ** 20;

/**
 * Calls, warm-up and modes for one config. Defaults: 50 calls per mode after 2 warm-up calls, both modes. The small
 * config on a software adapter (lavapipe: ~1 min per small act() on 2 idle cores, several under load) defaults to
 * 1 warm-up + 1 measured call per mode (the cold call alone does not bring the buffer pool to steady state), and so
 * does a `--checkpoint` one with more than 256 MiB of weights; every explicit option wins.
 */
function planFor(cfg: E2eConfigName, software: boolean, opts: E2eOptions, weightBytes: number): Plan {
  const slow = software && (cfg === 'small' || (cfg === 'checkpoint' && weightBytes > SLOW_CHECKPOINT_BYTES));
  const plan: Plan = {
    calls: opts.calls ?? (slow ? SMALL_SOFTWARE.calls : DEFAULT_CALLS),
    warmup: opts.warmup ?? (slow ? SMALL_SOFTWARE.warmup : 2),
    modes: opts.modes ?? (slow ? [...SMALL_SOFTWARE.modes] : ['staged', 'fast']),
  };
  if (slow && (opts.calls === undefined || opts.warmup === undefined || opts.modes === undefined)) {
    plan.note =
      `software adapter: the ${cfg} config defaults to ${plan.calls} measured call(s) per mode (${plan.modes.join(', ')}) after ` +
      `${plan.warmup} warm-up call(s) per mode, instead of ${DEFAULT_CALLS}, so the run stays within minutes; --calls / --warmup / --mode change it`;
  }
  return plan;
}

function stageValues(t: StageTimings): Record<Exclude<StageName, 'step'>, number> {
  return {
    preprocess: t.preprocessMs,
    vision: t.visionMs,
    prefill: t.prefillMs,
    context: t.contextMs,
    denoise: t.stepMs.reduce((a, b) => a + b, 0),
    readback: t.readbackMs,
    postprocess: t.postprocessMs,
    total: t.totalMs,
  };
}

async function benchConfig(cfg: E2eConfigName, opts: E2eOptions, log: (l: string) => void): Promise<E2eConfigReport> {
  let dir: string;
  let generateSeconds = 0;
  if (cfg === 'tiny') {
    dir = opts.tinyDir ?? TINY_DIR;
  } else if (cfg === 'checkpoint') {
    if (opts.checkpoint === undefined) throw new Error("bench e2e: the 'checkpoint' config needs opts.checkpoint (an existing checkpoint directory)");
    dir = opts.checkpoint;
  } else {
    const want = opts.genDir ?? defaultSmallDir();
    const made = await ensureSmallCheckpoint(want, { log });
    dir = made.dir;
    generateSeconds = made.generated ? made.seconds : 0;
  }
  const weightDtype = opts.weightDtype ?? 'f32';
  let t = performance.now();
  const gpu = await Gpu.create();
  const gpuCreateMs = performance.now() - t;
  let policy: Policy | null = null;
  try {
    log(`[${cfg}] loading ${dir} (weights ${weightDtype}) ...`);
    t = performance.now();
    policy = await Policy.load(dir, { gpu, weightDtype, stageTimings: true, prefixCache: opts.prefixCache ?? true });
    const loadMs = performance.now() - t;
    const embodiment = opts.embodiment ?? 'widowx';
    const req: ActRequest = { ...sampleRequest(embodiment, policy), steps: opts.steps, solver: opts.solver };
    const { calls, warmup, modes, note } = planFor(cfg, gpu.isSoftware, opts, policy.weights.bytes);
    if (note) log(`[${cfg}] note: ${note}`);
    log(`[${cfg}] loaded in ${fmt(loadMs)} ms; cold call ...`);

    const cold = await policy.act(req);
    log(`[${cfg}] cold call ${fmt(cold.timings.totalMs)} ms (${cold.promptTokens} prompt tokens, ${cold.steps} × ${cold.solver}); warm-up ${warmup} per mode ...`);
    for (const m of modes) {
      policy.options.stageTimings = m === 'staged';
      for (let k = 0; k < warmup; k++) await policy.act(req);
    }
    await gpu.sync();
    const pool = gpu.buffers.stats;
    const createdAfterWarmup = pool.created;

    let staged: E2eConfigReport['staged'] = null;
    let fast: E2eConfigReport['fast'] = null;
    for (const m of modes) {
      policy.options.stageTimings = m === 'staged';
      log(`[${cfg}] ${calls} ${m} calls ...`);
      const runs: StageTimings[] = [];
      for (let k = 0; k < calls; k++) runs.push((await policy.act(req)).timings);
      if (m === 'staged') {
        const stages = {} as Record<StageName, Percentiles>;
        for (const s of STAGES) {
          stages[s] = s === 'step' ? percentiles(runs.flatMap((r) => r.stepMs)) : percentiles(runs.map((r) => stageValues(r)[s]));
        }
        staged = { calls, stages };
      } else {
        fast = { calls, total: percentiles(runs.map((r) => r.totalMs)) };
      }
    }
    const createdAfterMeasured = pool.created - createdAfterWarmup;
    // Work per act(): one warm fast-mode call for the counts, one profiled call for the GPU time per stage.
    policy.options.stageTimings = false;
    const counted = await policy.act(req);
    const evaluation = { ...policy.decoder.lastEvaluation };
    const gpuMs: Partial<Record<WorkStage, number>> = {};
    if (gpu.features.timestamps) {
      const prof = gpu.stream.profiler;
      prof.enable(true);
      let kernels: { ns: number }[] = [];
      let profiled: typeof counted;
      try {
        profiled = await policy.act(req);
        kernels = await prof.collect();
      } finally {
        prof.enable(false);
      }
      let at = 0;
      for (const st of WORK_STAGES) {
        const n = profiled.work[st].dispatches;
        gpuMs[st] = kernels.slice(at, at + n).reduce((a, k) => a + k.ns, 0) / 1e6;
        at += n;
      }
    }
    const work = {} as E2eConfigReport['work'];
    for (const st of WORK_STAGES) work[st] = { ...counted.work[st], gpuMs: gpuMs[st] ?? null };
    const sum = (k: 'dispatches' | 'submits') => WORK_STAGES.reduce((a, st) => a + counted.work[st][k], 0);
    const numLayers = policy.config.actionExpert!.numLayers;
    policy.options.stageTimings = true;
    await gpu.sync();
    const weightBytes = policy.weights.bytes;
    const report: E2eConfigReport = {
      config: cfg,
      dir,
      weightDtype,
      embodiment,
      steps: cold.steps,
      solver: cold.solver,
      evaluations: evaluations(cold.solver, cold.steps),
      promptTokens: cold.promptTokens,
      prefix_cache: opts.prefixCache ?? true,
      prefix_tokens: counted.prefixTokens,
      generateSeconds,
      gpuCreateMs,
      loadMs,
      cold: cold.timings,
      warmupCalls: warmup,
      staged,
      fast,
      memory: {
        weightBytes,
        poolBytes: pool.bytesAllocated,
        totalBytes: weightBytes + pool.bytesAllocated,
        poolBuffersAfterWarmup: createdAfterWarmup,
        buffersCreatedAfterWarmup: createdAfterMeasured,
      },
      work,
      dispatches_per_act: sum('dispatches'),
      submits_per_act: sum('submits'),
      dispatches_per_step: counted.work.denoise.dispatches / counted.steps,
      dispatches_per_evaluation: evaluation.dispatches,
      dispatches_per_layer_step: evaluation.blockDispatches / numLayers,
      num_layers: numLayers,
      folded: foldPrologue(gpu),
      ...(note ? { note } : {}),
    };
    return report;
  } finally {
    policy?.destroy();
    gpu.destroy();
  }
}

const MiB = (b: number) => `${fmt(b / 2 ** 20)} MiB`;

/** The human-readable report (also what the CLI prints). */
export function formatE2eReport(r: E2eReport): string[] {
  const out: string[] = [...formatHeader(r.header), `weights:        ${r.weightDtype} on the GPU`, `command:        ${r.command}`, ''];
  for (const c of r.configs) {
    out.push(`== ${c.config}: ${c.dir}`);
    out.push(
      `embodiment ${c.embodiment}, ${c.promptTokens} prompt tokens (${c.prefix_cache ? `${c.prefix_tokens} from the prompt-prefix cache` : 'prefix cache off'}), ${c.steps} × ${c.solver} (${c.evaluations} evaluations); ` +
        `device ${fmt(c.gpuCreateMs)} ms, load ${fmt(c.loadMs)} ms${c.generateSeconds ? `, checkpoint generated in ${fmt(c.generateSeconds)} s` : ''}`,
    );
    if (c.note) out.push(`note: ${c.note}`);
    const cold = stageValues(c.cold);
    const rows: string[][] = [];
    for (const s of STAGES) {
      const p = c.staged?.stages[s];
      const coldV = s === 'step' ? (c.cold.stepMs.length ? c.cold.stepMs.reduce((a, b) => a + b, 0) / c.cold.stepMs.length : NaN) : cold[s];
      rows.push([s === 'step' ? 'step (each)' : s, fmt(p?.p50), fmt(p?.p90), fmt(p?.p99), fmt(p?.mean), fmt(coldV)]);
    }
    if (c.fast) rows.push(['total, fast mode', fmt(c.fast.total.p50), fmt(c.fast.total.p90), fmt(c.fast.total.p99), fmt(c.fast.total.mean), '-']);
    out.push(
      `warm latency (ms): staged mode ${c.staged?.calls ?? 0} calls${c.fast ? `, fast mode ${c.fast.calls} calls` : ''}, after ${c.warmupCalls} warm-up calls per mode; cold = first call (step: mean)`,
    );
    out.push(...formatTable(['stage', 'p50', 'p90', 'p99', 'mean', 'cold'], rows));
    out.push(
      `work per act() (fast mode): ${c.dispatches_per_act} dispatches, ${c.submits_per_act} submits; ${fmt(c.dispatches_per_step)} dispatches per ` +
        `denoising step, ${c.dispatches_per_evaluation} per network evaluation, ${fmt(c.dispatches_per_layer_step)} per DiT layer-step (${c.num_layers} layers; ` +
        `norms ${c.folded ? 'folded into the next linear' : 'not folded: --fold on folds them'})`,
    );
    out.push(
      ...formatTable(
        ['stage', 'dispatches', 'submits', 'CPU encode ms', 'GPU ms'],
        WORK_STAGES.map((st) => [st, String(c.work[st].dispatches), String(c.work[st].submits), fmt(c.work[st].encodeMs), c.work[st].gpuMs === null ? '-' : fmt(c.work[st].gpuMs!)]),
      ),
    );
    const m = c.memory;
    out.push(
      `steady-state GPU memory: weights ${MiB(m.weightBytes)} + pool ${MiB(m.poolBytes)} = ${MiB(m.totalBytes)}; ` +
        `pool buffers ${m.poolBuffersAfterWarmup} after warm-up, created after warm-up: ${m.buffersCreatedAfterWarmup}`,
    );
    out.push('');
  }
  return out;
}

/** Runs the benchmark (programmatic API). */
export async function runE2e(opts: E2eOptions = {}): Promise<E2eReport> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const configs = opts.configs ?? (opts.checkpoint !== undefined ? ['checkpoint' as const] : [...E2E_CONFIGS]);
  if (opts.checkpoint !== undefined && !configs.includes('checkpoint')) {
    throw new Error(`bench e2e: opts.checkpoint ${opts.checkpoint} is given but configs (${configs.join(', ')}) do not include 'checkpoint'`);
  }
  // A directory the generator may not write into fails here, before any device work (and is left untouched).
  if (configs.includes('small')) await claimGeneratorDir(opts.genDir ?? defaultSmallDir());
  pinLpNumThreads();
  const headerGpu = await Gpu.create();
  const header = benchHeader(headerGpu);
  headerGpu.destroy();
  const reports: E2eConfigReport[] = [];
  const foldBefore = prologueConfig.fold;
  prologueConfig.fold = opts.fold === 'on' ? true : opts.fold === 'off' ? false : 'auto';
  try {
    for (const c of configs) reports.push(await benchConfig(c, opts, log));
  } finally {
    prologueConfig.fold = foldBefore;
  }
  const report: E2eReport = {
    header,
    weightDtype: opts.weightDtype ?? 'f32',
    command: opts.command ?? '(programmatic runE2e)',
    configs: reports,
  };
  if (opts.json) {
    await fsp.mkdir(path.dirname(path.resolve(opts.json)), { recursive: true });
    await fsp.writeFile(opts.json, JSON.stringify(report, null, 2) + '\n');
  }
  return report;
}

export const E2E_SPEC: CommandSpec = {
  name: 'bench e2e',
  usage: 'bench e2e [--config tiny|small|both | --checkpoint DIR] [--calls N] [options]',
  summary: 'End-to-end act() latency per stage (p50/p90/p99), cold first call, load time, steady-state GPU memory.',
  description:
    'Modes: staged (stageTimings: true, per-stage times) and fast (stageTimings: false, total only).\n' +
    `The small config (Qwen3.5-0.8B-shaped VLM + small DiT, random weights) is generated once into ${defaultSmallDir()}\n` +
    '(or --gen-dir DIR). The generator writes only into a new or empty directory, or one carrying its own stamp\n' +
    '(qvla-bench-checkpoint.json); any other directory is refused with an error and left untouched.\n' +
    '--checkpoint DIR benchmarks that existing checkpoint as-is (nothing is generated or written), instead of tiny/small.\n' +
    `Default: ${DEFAULT_CALLS} calls per mode after 2 warm-up calls per mode; on a software adapter (lavapipe: about a minute\n` +
    `per small act() on 2 idle cores) the small config defaults to ${SMALL_SOFTWARE.calls} call per mode after ${SMALL_SOFTWARE.warmup} warm-up call per mode.\n` +
    'LP_NUM_THREADS is pinned to the core count unless set.',
  options: [
    { name: 'config', type: 'string', choices: ['tiny', 'small', 'both'], help: 'which checkpoint(s)', defaultText: 'both' },
    { name: 'calls', type: 'int', min: 1, help: 'measured calls per mode', defaultText: `${DEFAULT_CALLS} (small on lavapipe: ${SMALL_SOFTWARE.calls})` },
    { name: 'warmup', type: 'int', min: 0, help: 'warm-up calls per mode after the cold call', defaultText: `2 (small on lavapipe: ${SMALL_SOFTWARE.warmup})` },
    { name: 'checkpoint', type: 'string', metavar: 'DIR', help: 'benchmark this existing checkpoint as-is (instead of --config; read only)' },
    { name: 'gen-dir', type: 'string', metavar: 'DIR', help: 'where the small checkpoint is generated (new, empty or generator-stamped)', defaultText: defaultSmallDir() },
    { name: 'tiny', type: 'string', metavar: 'DIR', help: 'directory of the tiny checkpoint', defaultText: 'weights/tiny' },
    { name: 'weight-dtype', type: 'string', choices: ['f32', 'f16'], help: 'matrix storage on the GPU', defaultText: 'f32' },
    { name: 'steps', type: 'int', min: 1, max: 1000, help: 'denoising steps', defaultText: "the config's default_steps" },
    { name: 'solver', type: 'string', choices: SOLVERS, help: 'ODE solver', defaultText: "the config's default_solver" },
    { name: 'embodiment', type: 'string', help: 'embodiment (sample images from weights/tiny/samples)', defaultText: 'widowx' },
    { name: 'mode', type: 'string', choices: ['staged', 'fast', 'both'], help: 'stageTimings true (staged), false (fast) or both', defaultText: 'both' },
    { name: 'json', type: 'string', metavar: 'FILE', help: 'also write the report as JSON' },
    { name: 'fold', type: 'string', choices: ['auto', 'on', 'off'], help: 'fold DiT norms / text SwiGLU into the next linear (auto: on GPUs, not on software adapters)', defaultText: 'auto' },
    { name: 'prefix-cache', type: 'string', choices: ['on', 'off'], help: "the policy's prompt-prefix cache (PolicyOptions.prefixCache)", defaultText: 'on' },
    HELP_OPT,
  ],
  examples: [
    'qvla bench e2e --config tiny --calls 100',
    'qvla bench e2e --config small --weight-dtype f16 --json bench/out/e2e-small.json',
    'qvla bench e2e --config small --gen-dir /data/qvla-small',
    'qvla bench e2e --checkpoint /models/qwen-vla --calls 10',
  ],
};

/** CLI entry (`qvla bench e2e ...`): returns the exit code. */
export async function runE2eBench(args: string[]): Promise<number> {
  const p = parseArgs(E2E_SPEC, args);
  if (p.help) {
    process.stdout.write(formatHelp(E2E_SPEC));
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`qvla bench e2e: unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const checkpoint = getString(p, 'checkpoint');
  if (checkpoint !== undefined) {
    for (const o of ['config', 'gen-dir', 'tiny']) {
      if (getString(p, o) !== undefined) {
        throw new UsageError(`qvla bench e2e: --checkpoint DIR benchmarks that checkpoint alone; drop --${o} (the generated small checkpoint's directory is --gen-dir)`);
      }
    }
    if (!existsSync(checkpoint)) throw new UsageError(`qvla bench e2e: --checkpoint ${checkpoint}: no such directory`);
    if (!statSync(checkpoint).isDirectory()) throw new UsageError(`qvla bench e2e: --checkpoint ${checkpoint}: not a directory`);
  }
  const cfg = getString(p, 'config') ?? 'both';
  const mode = getString(p, 'mode');
  const report = await runE2e({
    configs: checkpoint !== undefined ? ['checkpoint'] : cfg === 'both' ? [...E2E_CONFIGS] : [cfg as E2eConfigName],
    calls: getNumber(p, 'calls'),
    warmup: getNumber(p, 'warmup'),
    checkpoint: checkpoint === undefined ? undefined : path.resolve(checkpoint),
    genDir: getString(p, 'gen-dir'),
    tinyDir: getString(p, 'tiny'),
    weightDtype: getString(p, 'weight-dtype') as 'f32' | 'f16' | undefined,
    steps: getNumber(p, 'steps'),
    solver: getString(p, 'solver') as SolverName | undefined,
    embodiment: getString(p, 'embodiment'),
    modes: mode === undefined ? undefined : mode === 'both' ? ['staged', 'fast'] : [mode as 'staged' | 'fast'],
    json: getString(p, 'json'),
    fold: getString(p, 'fold') as E2eOptions['fold'],
    prefixCache: getString(p, 'prefix-cache') !== 'off',
    command: ['qvla bench e2e', ...args].join(' '),
  });
  process.stdout.write(`\n${formatE2eReport(report).join('\n')}\n`);
  if (report.configs.some((c) => c.memory.buffersCreatedAfterWarmup !== 0)) {
    process.stderr.write('qvla bench e2e: GPU buffers were created after warm-up (steady state should allocate none)\n');
    return 1;
  }
  return 0;
}

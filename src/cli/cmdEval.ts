// qvla eval: closed-loop evaluation of a checkpoint on the toy worlds (src/worlds), in-process on the WebGPU
// engine. The work is in src/eval/ (runEpisodes, summarise, report, rollouts); this file is the command line.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { findWorldSpecs, WORLD_SPECS, WORLD_NAMES, EVAL_SEED_BASE } from '../worlds/registry.js';
import type { WorldSpec } from '../worlds/types.js';
import { SOLVERS, evaluations, type SolverName } from '../policy/samplers.js';
import type { Policy } from '../policy/policy.js';
import {
  runEpisodes, summarise, embodimentMismatch, conditionName, EXPERT, type Actor, type EpisodeOptions, type EvalRow,
} from '../eval/episodes.js';
import { evalDocument, writeEvalJson, resultsTable, evalChart } from '../eval/report.js';
import { RolloutRecorder, rolloutFiles, assertAbsent } from '../eval/rollouts.js';
import { plotFormat, writePlot } from '../plot/index.js';
import {
  UsageError, getFlag, getNumber, getString, HELP_OPT, type CommandSpec, type Parsed,
} from './args.js';
import { CHECKPOINT_OPT, F16_OPT, MAX_PIXELS_OPT, WORLDS_CHECKPOINT_TEXT, loadPolicy, policyOptions, readRegistry, worldsCheckpointDir } from './common.js';

const LEVELS = ['A', 'B', 'bimodal', 'all'] as const;
const DEFAULT_EPISODES = 50;
const DEFAULT_BATCH = 16;

export const EVAL_SPEC: CommandSpec = {
  name: 'eval',
  usage: 'eval [--checkpoint DIR] [--world NAME|all] [--embodiment NAME] [--level A|B|bimodal|all] [--episodes N] [options]',
  summary: 'Closed-loop evaluation on the toy worlds: success rate with a Wilson 95 % interval and per-world metrics.',
  description: [
    'One row per world × embodiment × level × condition × solver × steps. The episodes of a row run in parallel:',
    'every unfinished world is observed, the policy returns one chunk per world (batched when the policy has',
    'actBatch), each world executes its chunk. The noise seed of a decision depends only on the episode seed and',
    'the decision index, so the same --seed gives the same results, and the ablation rows see the same worlds and',
    'noise as the policy row (paired).',
    '',
    `Seeds: episode e uses seed S + e, S = --seed (default ${EVAL_SEED_BASE}, the start of the evaluation range).`,
    `Training recordings use seeds below ${EVAL_SEED_BASE} (the recorder refuses seeds ≥ ${EVAL_SEED_BASE}),`,
    `so evaluation never sees a training episode; --seed below ${EVAL_SEED_BASE} is refused.`,
    '',
    'conditions: policy (always, unless --expert); --blind adds a row with every camera frame black (same size,',
    'same prompt length): what the policy does without vision; --prompt-as EMB adds a row prompted with',
    "embodiment EMB's text (action space and normalisation stay the world's; not for EMB's own worlds, where it is",
    'the policy row): does the embodiment prompt matter?',
    '--expert runs the scripted expert instead (no checkpoint, no GPU): the baseline row.',
    '',
    'metrics: success (all); navigation SR, OSR, SPL; trajectory ADE, FDE and the constant-velocity baseline',
    "cv_ade, cv_fde; manipulation decisions per episode; every row's wall time and act() calls (in --json).",
    'The checkpoint must have the world embodiments in its embodiments.json (worldEmbodiments() in',
    'src/worlds/registry.ts): planar, arm2, rover, tracker.',
  ].join('\n'),
  options: [
    { ...CHECKPOINT_OPT, defaultText: WORLDS_CHECKPOINT_TEXT },
    { name: 'world', type: 'string', metavar: 'NAME', choices: [...WORLD_NAMES, 'all'], help: `world (${WORLD_NAMES.join(', ')}, all)`, defaultText: 'all' },
    { name: 'embodiment', type: 'string', metavar: 'NAME', help: 'embodiment (planar, arm2, rover, tracker)', defaultText: 'every embodiment of the world' },
    { name: 'level', type: 'string', choices: LEVELS, help: 'level A (no colour binding), B (distractors), the bimodal variant (planar) or all', defaultText: 'A' },
    { name: 'episodes', type: 'int', metavar: 'N', min: 1, max: 1_000_000, help: 'episodes per row', defaultText: String(DEFAULT_EPISODES) },
    { name: 'seed', type: 'int', metavar: 'S', min: 0, max: 0xffffffff, help: `first episode seed (≥ ${EVAL_SEED_BASE})`, defaultText: String(EVAL_SEED_BASE) },
    { name: 'solver', type: 'string', metavar: 'LIST', help: `ODE solvers, comma-separated (${SOLVERS.join(', ')})`, defaultText: "the checkpoint's default_solver" },
    { name: 'steps', type: 'string', metavar: 'LIST', help: 'denoising step counts, comma-separated positive integers', defaultText: "the checkpoint's default_steps" },
    { name: 'blind', type: 'flag', help: 'add a row per setting with black camera frames' },
    { name: 'prompt-as', type: 'string', metavar: 'EMB', help: "add a row per setting prompted with embodiment EMB's text" },
    { name: 'expert', type: 'flag', help: 'the scripted expert instead of the policy (no checkpoint, no GPU)' },
    { name: 'json', type: 'string', metavar: 'FILE', help: 'write the results as JSON (atomically)' },
    { name: 'plot', type: 'string', metavar: 'FILE', help: 'success rate vs network evaluations per solver, .png or .svg' },
    { name: 'rollouts', type: 'string', metavar: 'DIR', help: 'per episode an animated GIF and a filmstrip PNG with the predicted chunks (never overwrites)' },
    { name: 'batch', type: 'int', metavar: 'N', min: 1, max: 4096, help: 'observations per actBatch call (1 = one act() call each)', defaultText: String(DEFAULT_BATCH) },
    F16_OPT,
    MAX_PIXELS_OPT,
    { name: 'quiet', short: 'q', type: 'flag', help: 'no progress on stderr' },
    HELP_OPT,
  ],
  examples: [
    'qvla eval --checkpoint weights/toy --episodes 100',
    'qvla eval --checkpoint weights/toy --world tabletop --embodiment planar --level bimodal --solver euler,heun --steps 1,2,4,8 --plot sr.png',
    'qvla eval --checkpoint weights/toy --world nav --blind --prompt-as planar --json nav.json',
    'qvla eval --expert --level all',
    'qvla eval --checkpoint weights/toy --world ball --episodes 10 --rollouts out/rollouts',
  ],
};

function specName(s: WorldSpec): string {
  return `${s.world}/${s.embodiment}/${s.level}`;
}

function parseList(raw: string | undefined, flag: string): string[] | undefined {
  if (raw === undefined) return undefined;
  const parts = raw.split(/[,\s]+/).filter((s) => s.length > 0);
  if (parts.length === 0) throw new UsageError(`qvla eval: --${flag} needs a comma-separated list, got ${JSON.stringify(raw)}`);
  return [...new Set(parts)];
}

function parseSolvers(p: Parsed): SolverName[] | undefined {
  const list = parseList(getString(p, 'solver'), 'solver');
  for (const s of list ?? []) {
    if (!SOLVERS.includes(s as SolverName)) throw new UsageError(`qvla eval: --solver: unknown solver ${JSON.stringify(s)}; one of ${SOLVERS.join(', ')}`);
  }
  return list as SolverName[] | undefined;
}

function parseSteps(p: Parsed): number[] | undefined {
  return parseList(getString(p, 'steps'), 'steps')?.map((s) => {
    if (!/^\d+$/.test(s) || !(Number(s) >= 1 && Number(s) <= 1000)) throw new UsageError(`qvla eval: --steps: ${JSON.stringify(s)} is not an integer in [1, 1000]`);
    return Number(s);
  });
}

function selectSpecs(p: Parsed): WorldSpec[] {
  const world = getString(p, 'world') ?? 'all';
  const emb = getString(p, 'embodiment');
  const level = getString(p, 'level') ?? 'A';
  if (emb !== undefined && !WORLD_SPECS.some((s) => s.embodiment === emb)) {
    throw new UsageError(`qvla eval: --embodiment: unknown embodiment ${JSON.stringify(emb)}; one of ${[...new Set(WORLD_SPECS.map((s) => s.embodiment))].join(', ')}`);
  }
  const specs = findWorldSpecs(world, emb, level === 'all' ? undefined : level);
  if (specs.length === 0) {
    throw new UsageError(`qvla eval: no world matches --world ${world}${emb ? ` --embodiment ${emb}` : ''} --level ${level}; see 'qvla worlds list'`);
  }
  return specs;
}

/** One row to run: a world spec and the settings of runEpisodes. */
interface Plan {
  spec: WorldSpec;
  opts: Pick<EpisodeOptions, 'solver' | 'steps' | 'blind' | 'promptAs'>;
  condition: string;
}

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_./:=,@+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** The command line as parsed (options in the order given, values shell-quoted). */
function commandLine(p: Parsed): string {
  const parts = ['qvla', 'eval'];
  for (const [k, v] of p.opts) {
    if (v === true) parts.push(`--${k}`);
    else if (Array.isArray(v)) for (const x of v) parts.push(`--${k}`, shellQuote(x));
    else if (v !== false) parts.push(`--${k}`, shellQuote(String(v)));
  }
  return parts.join(' ');
}

/** Progress on stderr: a live line on a TTY, otherwise a line per row (and every 15 s on long rows). */
function progress(quiet: boolean) {
  const tty = process.stderr.isTTY === true;
  let row = '';
  let last = 0;
  return {
    update(label: string, p: { done: number; total: number; successes: number }, final = false): void {
      if (quiet) return;
      const line = `${label}: ${p.done}/${p.total} episodes, ${p.successes} successes`;
      const now = performance.now();
      if (label !== row) {
        row = label;
        last = now;
      }
      if (tty) {
        process.stderr.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
      } else if (final || now - last > 15_000) {
        process.stderr.write(`${line}\n`);
        last = now;
      }
    },
  };
}

export async function cmdEval(p: Parsed): Promise<number> {
  if (p.positionals.length > 0) throw new UsageError(`qvla eval: unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const expert = getFlag(p, 'expert');
  const quiet = getFlag(p, 'quiet');
  const specs = selectSpecs(p);
  const episodes = getNumber(p, 'episodes') ?? DEFAULT_EPISODES;
  const seed = getNumber(p, 'seed') ?? EVAL_SEED_BASE;
  if (seed < EVAL_SEED_BASE) throw new UsageError(`qvla eval: --seed ${seed} is below ${EVAL_SEED_BASE}: seeds below it are training seeds (src/worlds/README.md)`);
  if (seed + episodes - 1 > 0xffffffff) throw new UsageError(`qvla eval: --seed ${seed} with --episodes ${episodes} runs past seed 2^32 − 1`);
  const solvers = parseSolvers(p);
  const stepsList = parseSteps(p);
  const blind = getFlag(p, 'blind');
  const promptAs = getString(p, 'prompt-as');
  const batch = getNumber(p, 'batch') ?? DEFAULT_BATCH;
  const jsonPath = getString(p, 'json');
  const plotPath = getString(p, 'plot');
  const rolloutDir = getString(p, 'rollouts');
  if (plotPath !== undefined && !plotFormat(plotPath)) throw new UsageError(`qvla eval: --plot: the file must end in .png or .svg, got ${JSON.stringify(plotPath)}`);
  if (expert) {
    for (const f of ['solver', 'steps', 'blind', 'prompt-as', 'batch', 'f16', 'max-pixels']) {
      if (p.opts.has(f)) throw new UsageError(`qvla eval: --${f} does not apply to --expert (the scripted expert needs no policy)`);
    }
    if (plotPath !== undefined) throw new UsageError('qvla eval: --plot draws success vs network evaluations of a policy; --expert rows have none');
  }

  // ---- the checkpoint, checked before anything is loaded onto the GPU
  let ckptDir: string | null = null;
  let defaults = { solver: 'euler' as SolverName, steps: 10 };
  if (!expert) {
    ckptDir = worldsCheckpointDir(p);
    const { config, registry } = await readRegistry(ckptDir);
    const ae = config.actionExpert!;
    defaults = { solver: ae.defaultSolver as SolverName, steps: ae.defaultSteps };
    for (const s of specs) {
      const why = embodimentMismatch(registry, s.embodiment);
      if (why) throw new UsageError(`qvla eval: --checkpoint ${ckptDir}: ${why}`);
    }
    if (promptAs !== undefined && !registry.has(promptAs)) {
      throw new UsageError(`qvla eval: --prompt-as: ${registry.file} has no embodiment ${JSON.stringify(promptAs)} (it has ${registry.keys().join(', ')})`);
    }
    if (promptAs !== undefined && specs.every((s) => s.embodiment === promptAs)) {
      throw new UsageError(`qvla eval: --prompt-as ${promptAs} names the embodiment being evaluated (its own prompt is the policy row); name another embodiment`);
    }
  }

  // ---- the rows
  const plans: Plan[] = [];
  for (const spec of specs) {
    if (expert) {
      plans.push({ spec, opts: {}, condition: 'expert' });
      continue;
    }
    const conds: Pick<EpisodeOptions, 'blind' | 'promptAs'>[] = [{}];
    if (blind) conds.push({ blind: true });
    if (promptAs !== undefined && promptAs !== spec.embodiment) conds.push({ promptAs }); // its own prompt = the policy row
    for (const solver of solvers ?? [defaults.solver]) {
      for (const steps of stepsList ?? [defaults.steps]) {
        for (const c of conds) plans.push({ spec, opts: { solver, steps, ...c }, condition: conditionName(false, c) });
      }
    }
  }

  // ---- rollouts: every target file checked before anything is written
  if (rolloutDir !== undefined) {
    await fsp.mkdir(rolloutDir, { recursive: true });
    const paths: string[] = [];
    for (const pl of plans) {
      for (let e = 0; e < episodes; e++) {
        const f = rolloutFiles(rolloutDir, {
          world: pl.spec.world, embodiment: pl.spec.embodiment, level: pl.spec.level, condition: pl.condition,
          solver: pl.opts.solver ?? null, steps: pl.opts.steps ?? null, seed: seed + e,
        });
        paths.push(f.gif, f.strip);
      }
    }
    await assertAbsent(paths);
  }

  let policy: Policy | null = null;
  let adapter: string | null = null;
  const rows: EvalRow[] = [];
  const prog = progress(quiet);
  try {
    if (ckptDir !== null) {
      policy = await loadPolicy(ckptDir, policyOptions(p), quiet);
      adapter = policy.gpu.description;
    }
    const actor: Actor = policy ?? EXPERT;
    for (const [i, pl] of plans.entries()) {
      const how = pl.opts.solver ? ` ${pl.opts.solver}×${pl.opts.steps} (NFE ${evaluations(pl.opts.solver, pl.opts.steps!)})` : '';
      const label = `[${i + 1}/${plans.length}] ${specName(pl.spec)} ${pl.condition}${how}`;
      const rec = rolloutDir !== undefined ? new RolloutRecorder(rolloutDir) : null;
      const results = await runEpisodes(actor, pl.spec, {
        episodes, seed, batch, ...pl.opts, ...(rec ? rec.hooks() : {}),
        onProgress: (x) => prog.update(label, x, x.done === x.total),
      });
      rows.push(summarise(results));
    }
  } finally {
    policy?.destroy();
  }

  process.stdout.write(`${resultsTable(rows)}\n`);
  const command = commandLine(p);
  if (jsonPath !== undefined) {
    await writeEvalJson(jsonPath, evalDocument({ checkpoint: ckptDir, adapter, command, results: rows }));
    if (!quiet) process.stderr.write(`wrote ${jsonPath}\n`);
  }
  if (plotPath !== undefined) {
    await fsp.mkdir(nodePath.dirname(nodePath.resolve(plotPath)), { recursive: true });
    await writePlot(plotPath, evalChart(rows));
    if (!quiet) process.stderr.write(`wrote ${plotPath}\n`);
  }
  if (rolloutDir !== undefined && !quiet) process.stderr.write(`wrote ${2 * episodes * plans.length} rollout files to ${rolloutDir}\n`);
  return 0;
}

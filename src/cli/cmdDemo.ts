// qvla demo: what `npm start` shows a newcomer. The adapter, then
// - with a checkpoint trained on the toy worlds (default: weights/toy): one closed-loop episode per world
//   (tabletop with both arms, navigation, ball trajectory), success, latency per act(), and rollouts (GIF +
//   filmstrip) written into a fresh directory;
// - with any other checkpoint (e.g. --checkpoint weights/tiny): act() on every embodiment with its sample
//   frames (samples/<embodiment>_<camera>.png), tables + latency breakdowns.
import * as nodePath from 'node:path';
import { mkdirSync } from 'node:fs';
import type { Policy } from '../policy/policy.js';
import type { EmbodimentRegistry } from '../policy/embodiments.js';
import { findWorldSpecs, EVAL_SEED_BASE } from '../worlds/registry.js';
import { runEpisodes, embodimentMismatch, keyMetrics, summarise, RolloutRecorder } from '../eval/index.js';
import { summarize } from '../bench/stats.js';
import { Gpu } from '../gpu/device.js';
import { SOLVERS, type SolverName } from '../policy/samplers.js';
import type { ActRequest } from '../policy/policy.js';
import { UsageError, getFlag, getNumber, getString, DEVICE_INFO_OPT, HELP_OPT, type CommandSpec, type Parsed } from './args.js';
import {
  CHECKPOINT_OPT, F16_OPT, WORLDS_CHECKPOINT_TEXT, defaultInstruction, worldsCheckpointDir, deviceInfo, isTinyCheckpoint, loadPolicy,
  plausibleState, policyOptions, readRegistry, sampleImages,
} from './common.js';
import { actHeadline, actionTable, fmtNum, latencyBreakdown } from './format.js';
import { writeResultPlots } from './plotResult.js';

export const DEMO_SPEC: CommandSpec = {
  name: 'demo',
  usage: 'demo [options]',
  summary: 'Closed-loop episodes of the trained toy policy in every world (default checkpoint weights/toy), or act() on every embodiment of another checkpoint with its sample frames.',
  options: [
    { ...CHECKPOINT_OPT, defaultText: WORLDS_CHECKPOINT_TEXT },
    { name: 'rollouts', type: 'string', metavar: 'DIR', help: 'worlds demo: write the rollouts (GIF + filmstrip) here; existing files are never overwritten', defaultText: 'a new qvla-demo/<time>/ directory' },
    { name: 'embodiment', short: 'e', type: 'string', metavar: 'NAME', help: 'only this embodiment', defaultText: 'all' },
    { name: 'steps', type: 'int', metavar: 'N', min: 1, max: 1000, help: 'denoising steps', defaultText: "the checkpoint's default_steps" },
    { name: 'solver', type: 'string', choices: SOLVERS, help: 'ODE solver', defaultText: "the checkpoint's default_solver" },
    { name: 'seed', type: 'int', metavar: 'N', min: 0, max: 0xffffffff, help: 'noise seed (worlds demo: the episode seed, ≥ the evaluation range start)', defaultText: `0 (worlds: ${EVAL_SEED_BASE})` },
    F16_OPT,
    { name: 'plot-dir', type: 'string', metavar: 'DIR', help: 'also write <embodiment>.png plots into DIR' },
    { name: 'no-warmup', type: 'flag', help: 'skip the untimed warm-up call (the first timings then include shader compilation)' },
    DEVICE_INFO_OPT,
    HELP_OPT,
  ],
};

const WORLD_DEMO = findWorldSpecs('all', undefined, 'A');

function hasWorlds(registry: EmbodimentRegistry): boolean {
  return WORLD_DEMO.every((s) => embodimentMismatch(registry, s.embodiment) === null);
}

export async function cmdDemo(p: Parsed): Promise<number> {
  const dir = worldsCheckpointDir(p);
  const { registry } = await readRegistry(dir);
  if (hasWorlds(registry)) return worldsDemo(p, dir);
  const only = getString(p, 'embodiment');
  if (only !== undefined && !registry.has(only)) throw new UsageError(`--embodiment ${only}: unknown embodiment (known: ${registry.keys().join(', ')})`);
  const keys = only !== undefined ? [only] : registry.keys();
  const plotDir = getString(p, 'plot-dir');
  const say = (s = '') => process.stdout.write(`${s}\n`);

  const gpu = await Gpu.create();
  try {
    say('qvla demo — the Qwen-VLA policy on WebGPU');
    say('');
    say(deviceInfo(gpu, false));
    say('');
    if (isTinyCheckpoint(dir)) {
      say('note: weights/tiny has RANDOM weights (a tiny-width copy of the architecture): every kernel and stage runs for real, but the actions mean nothing.');
    }
    const policy = await loadPolicy(dir, policyOptions(p, gpu));
    try {
      const reqs = keys.map((key): ActRequest => {
        const emb = registry.get(key);
        const images = sampleImages(dir, emb);
        const state = plausibleState(emb);
        const req: ActRequest = { images, instruction: defaultInstruction(emb), embodiment: key, seed: getNumber(p, 'seed') ?? 0 };
        if (state) req.state = state;
        const steps = getNumber(p, 'steps');
        if (steps !== undefined) req.steps = steps;
        const solver = getString(p, 'solver');
        if (solver !== undefined) req.solver = solver as SolverName;
        return req;
      });
      const warm = !getFlag(p, 'no-warmup');
      if (warm) for (const req of reqs) await policy.act(req); // compiles every pipeline each embodiment needs
      if (plotDir) mkdirSync(plotDir, { recursive: true });
      for (const req of reqs) {
        const emb = registry.get(req.embodiment);
        const r = await policy.act(req);
        say('');
        say(`=== ${actHeadline(r, emb)}`);
        const cams = Object.keys(req.images as Record<string, string>);
        say(`instruction: ${JSON.stringify(req.instruction)}`);
        say(`cameras: ${cams.length ? cams.map((c) => `${c} (${nodePath.relative(dir, (req.images as Record<string, string>)[c]!)})`).join(', ') : 'none'}`);
        if (req.state) say(`state: ${emb.state!.names.map((n, i) => `${n}=${fmtNum(Number(req.state![i]), 3)}`).join(' ')}`);
        say('');
        say(actionTable(r, emb));
        say('');
        say(latencyBreakdown(r.timings, warm ? ' — warm' : ''));
        if (plotDir) {
          const f = nodePath.join(plotDir, `${emb.key}.png`);
          await writeResultPlots([f], r, emb, req.instruction);
          say(`plot written: ${f}`);
        }
      }
      say('');
      say('next: `qvla run --help` for your own frames, `qvla serve` for an openpi-compatible policy server, `qvla inspect` for a checkpoint summary.');
    } finally {
      policy.destroy();
    }
  } finally {
    gpu.destroy();
  }
  return 0;
}

/** One closed-loop episode per world with rollouts; success and act() latency per world. */
async function worldsDemo(p: Parsed, dir: string): Promise<number> {
  const say = (s = '') => process.stdout.write(`${s}\n`);
  const seed = getNumber(p, 'seed') ?? EVAL_SEED_BASE;
  if (seed < EVAL_SEED_BASE) throw new UsageError(`--seed ${seed}: world episodes use evaluation seeds (≥ ${EVAL_SEED_BASE}); lower seeds were used for training`);
  const out = nodePath.resolve(getString(p, 'rollouts') ?? nodePath.join('qvla-demo', new Date().toISOString().replace(/[:.]/g, '-')));
  const steps = getNumber(p, 'steps');
  const solver = getString(p, 'solver') as SolverName | undefined;
  const gpu = await Gpu.create();
  try {
    say('qvla demo — the Qwen-VLA policy on WebGPU, trained on the toy worlds, in closed loop');
    say('');
    say(deviceInfo(gpu, false));
    say(`checkpoint: ${nodePath.relative(process.cwd(), dir) || dir}`);
    const policy = await loadPolicy(dir, policyOptions(p, gpu));
    try {
      mkdirSync(out, { recursive: true });
      const rec = new RolloutRecorder(out);
      for (const spec of WORLD_DEMO) {
        const times: number[] = [];
        const timed = timedPolicy(policy, times);
        if (!getFlag(p, 'no-warmup')) await runEpisodes(policy, spec, { episodes: 1, seed, steps, solver, maxDecisions: 1 });
        const [r] = await runEpisodes(timed, spec, { episodes: 1, seed, steps, solver, ...rec.hooks() });
        const world = spec.create(seed);
        const row = summarise([r!]);
        const lat = summarize(times);
        say('');
        say(`=== ${spec.world} / ${spec.embodiment}: "${world.observe().instruction}" (seed ${seed})`);
        say(`${r!.success ? 'SUCCESS' : 'failure'} after ${r!.decisions} decision(s); ${keyMetrics(row)}`);
        say(`act(): ${times.length} call(s), ${r!.solver} × ${r!.steps} steps, latency median ${fmtNum(lat.median, 4)} ms (min ${fmtNum(lat.min, 4)}, max ${fmtNum(lat.max, 4)})`);
      }
      say('');
      say(`rollouts (GIF + filmstrip per episode): ${nodePath.relative(process.cwd(), out) || out}/`);
      say('next: `qvla eval --help` for success rates over many episodes, `qvla worlds --help` for the worlds, `qvla serve` for a policy server.');
    } finally {
      policy.destroy();
    }
  } finally {
    gpu.destroy();
  }
  return 0;
}

/** The policy with every act()'s total latency recorded (per row of a batch: the batch's wall time). */
function timedPolicy(policy: Policy, times: number[]): Pick<Policy, 'act' | 'embodiments'> {
  return {
    embodiments: policy.embodiments,
    act: async (req) => {
      const r = await policy.act(req);
      times.push(r.timings.totalMs);
      return r;
    },
  };
}

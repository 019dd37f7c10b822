// qvla demo: what `npm start` shows a newcomer. The adapter, then act() on every embodiment of the checkpoint
// with its sample frames (samples/<embodiment>_<camera>.png), tables + latency breakdowns.
import * as nodePath from 'node:path';
import { mkdirSync } from 'node:fs';
import { Gpu } from '../gpu/device.js';
import { SOLVERS, type SolverName } from '../policy/samplers.js';
import type { ActRequest } from '../policy/policy.js';
import { UsageError, getFlag, getNumber, getString, DEVICE_INFO_OPT, HELP_OPT, type CommandSpec, type Parsed } from './args.js';
import {
  CHECKPOINT_OPT, F16_OPT, checkpointDir, defaultInstruction, deviceInfo, isTinyCheckpoint, loadPolicy,
  plausibleState, policyOptions, readRegistry, sampleImages,
} from './common.js';
import { actHeadline, actionTable, fmtNum, latencyBreakdown } from './format.js';
import { writeResultPlots } from './plotResult.js';

export const DEMO_SPEC: CommandSpec = {
  name: 'demo',
  usage: 'demo [options]',
  summary: 'Run the policy on every embodiment of a checkpoint (default: the bundled tiny one) with its sample frames, and print the actions and a latency breakdown.',
  options: [
    CHECKPOINT_OPT,
    { name: 'embodiment', short: 'e', type: 'string', metavar: 'NAME', help: 'only this embodiment', defaultText: 'all' },
    { name: 'steps', type: 'int', metavar: 'N', min: 1, max: 1000, help: 'denoising steps', defaultText: "the checkpoint's default_steps" },
    { name: 'solver', type: 'string', choices: SOLVERS, help: 'ODE solver', defaultText: "the checkpoint's default_solver" },
    { name: 'seed', type: 'int', metavar: 'N', min: 0, max: 0xffffffff, help: 'noise seed', defaultText: '0' },
    F16_OPT,
    { name: 'plot-dir', type: 'string', metavar: 'DIR', help: 'also write <embodiment>.png plots into DIR' },
    { name: 'no-warmup', type: 'flag', help: 'skip the untimed warm-up call (the first timings then include shader compilation)' },
    DEVICE_INFO_OPT,
    HELP_OPT,
  ],
};

export async function cmdDemo(p: Parsed): Promise<number> {
  const dir = checkpointDir(p);
  const { registry } = await readRegistry(dir);
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

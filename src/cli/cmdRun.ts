// qvla run: one observation → one action chunk.
import * as nodePath from 'node:path';
import { SOLVERS, GRIDS, type SolverName, type GridName } from '../policy/samplers.js';
import type { ActRequest, ActResult } from '../policy/policy.js';
import type { Embodiment } from '../policy/embodiments.js';
import {
  UsageError, getFlag, getList, getNumber, getString, DEVICE_INFO_OPT, HELP_OPT,
  type CommandSpec, type Parsed,
} from './args.js';
import {
  CHECKPOINT_OPT, F16_OPT, MAX_PIXELS_OPT, checkpointDir, imagesFromArgs, isTinyCheckpoint, loadPolicy,
  policyOptions, readRegistry, stateFromArg,
} from './common.js';
import { actHeadline, actionTable, latencyBreakdown, prettyJson, timingsJson } from './format.js';
import { checkPlotPaths, writeResultPlots } from './plotResult.js';

export const RUN_SPEC: CommandSpec = {
  name: 'run',
  usage: 'run --instruction TEXT [--embodiment NAME] [--image CAMERA=PATH ...] [options] [IMAGE ...]',
  summary: 'Run the policy once: camera frames + instruction (+ state) → one action chunk, printed as a table with a latency breakdown.',
  positionals: Infinity,
  positionalHelp: '  IMAGE ...                 PNG/JPEG frames in the embodiment\'s camera order (instead of --image)',
  options: [
    CHECKPOINT_OPT,
    { name: 'image', type: 'list', metavar: 'CAMERA=PATH', help: 'a camera frame (PNG/JPEG); CAMERA is one of the embodiment\'s cameras' },
    { name: 'instruction', short: 'i', type: 'string', metavar: 'TEXT', help: 'the task, in words (required)' },
    { name: 'embodiment', short: 'e', type: 'string', metavar: 'NAME', help: 'embodiment key from embodiments.json', defaultText: 'the first one' },
    { name: 'state', type: 'string', metavar: 'V1,V2,...', help: 'current proprioceptive state in physical units, state.names order' },
    { name: 'steps', type: 'int', metavar: 'N', min: 1, max: 1000, help: 'denoising steps', defaultText: "the checkpoint's default_steps" },
    { name: 'solver', type: 'string', choices: SOLVERS, help: 'ODE solver', defaultText: "the checkpoint's default_solver" },
    { name: 'grid', type: 'string', choices: GRIDS, help: 'time grid', defaultText: 'uniform' },
    { name: 'shift', type: 'number', metavar: 'S', min: 1e-6, help: 'parameter of the shift grid', defaultText: '3' },
    { name: 'seed', type: 'int', metavar: 'N', min: 0, max: 0xffffffff, help: 'noise seed', defaultText: '0' },
    F16_OPT,
    MAX_PIXELS_OPT,
    { name: 'warmup', type: 'int', metavar: 'N', min: 0, max: 100, help: 'untimed act() calls first, so the timings are of a warm engine', defaultText: '0' },
    { name: 'json', type: 'flag', help: 'print one JSON object (actions with names, raw chunk, timings) instead of tables' },
    { name: 'plot', type: 'list', metavar: 'FILE.png|FILE.svg', help: 'plot the chunk (channels over time; navigation: waypoints on the ground)' },
    { name: 'quiet', short: 'q', type: 'flag', help: 'no progress output on stderr' },
    DEVICE_INFO_OPT,
    HELP_OPT,
  ],
  examples: [
    'qvla run -e widowx -i "put the spoon in the bowl" --image image_0=weights/tiny/samples/widowx_image_0.png --state 0.3,0,0.1,0,0,0,0,1',
    'qvla run -e nav -i "go to the door" weights/tiny/samples/nav_front.png --plot path.png',
    'qvla run -e aloha -i "fold the towel" --json a.png b.png c.png > out.json',
  ],
};

export interface PreparedRun {
  dir: string;
  emb: Embodiment;
  req: ActRequest;
  plots: string[];
}

/** Validates the whole command line against the checkpoint (no GPU) and builds the act() request. */
export async function prepareRun(p: Parsed): Promise<PreparedRun> {
  const dir = checkpointDir(p);
  const instruction = getString(p, 'instruction');
  if (instruction === undefined) throw new UsageError('qvla run: --instruction TEXT is required');
  const plots = getList(p, 'plot');
  checkPlotPaths(plots);
  const { registry } = await readRegistry(dir);
  const key = getString(p, 'embodiment') ?? registry.keys()[0]!;
  if (!registry.has(key)) throw new UsageError(`--embodiment ${key}: unknown embodiment (known: ${registry.keys().join(', ')})`);
  const emb = registry.get(key);
  const images = imagesFromArgs(getList(p, 'image'), p.positionals, emb);
  const state = stateFromArg(getString(p, 'state'), emb);
  const mp = getNumber(p, 'max-pixels');
  if (mp !== undefined && mp < 1) throw new UsageError('--max-pixels must be positive');
  const req: ActRequest = { images, instruction, embodiment: key, seed: getNumber(p, 'seed') ?? 0 };
  if (state) req.state = state;
  const steps = getNumber(p, 'steps');
  if (steps !== undefined) req.steps = steps;
  const solver = getString(p, 'solver');
  if (solver !== undefined) req.solver = solver as SolverName;
  const grid = getString(p, 'grid');
  if (grid !== undefined) req.grid = grid as GridName;
  const shift = getNumber(p, 'shift');
  if (shift !== undefined) {
    if (grid !== 'shift') throw new UsageError('--shift only applies with --grid shift');
    req.shift = shift;
  }
  return { dir, emb, req, plots };
}

export function resultJson(r: ActResult, emb: Embodiment, extra: Record<string, unknown>): Record<string, unknown> {
  const a = r.actions;
  const rows: number[][] = [];
  for (let i = 0; i < a.rows; i++) rows.push(Array.from(a.actions.subarray(i * a.dims, (i + 1) * a.dims)));
  const [hMax, kMax] = r.rawShape;
  const raw: number[][] = [];
  for (let i = 0; i < hMax; i++) raw.push(Array.from(r.raw.subarray(i * kMax, (i + 1) * kMax)));
  const out: Record<string, unknown> = {
    embodiment: emb.key,
    name: emb.name,
    task_type: emb.taskType,
    rate_hz: emb.control.rateHz,
    action_names: a.names,
    rows: a.rows,
    dims: a.dims,
    actions: rows,
  };
  if (a.waypoints) out['waypoints'] = a.waypoints;
  if (a.points) out['points'] = a.points;
  Object.assign(out, {
    raw: { shape: [hMax, kMax], normalized: true, data: raw },
    timings_ms: timingsJson(r.timings),
    steps: r.steps,
    solver: r.solver,
    evaluations: r.evaluations,
    seed: r.seed,
    prompt_tokens: r.promptTokens,
    ...extra,
  });
  return out;
}

export async function cmdRun(p: Parsed): Promise<number> {
  const prep = await prepareRun(p);
  const json = getFlag(p, 'json');
  const quiet = getFlag(p, 'quiet');
  const opts = policyOptions(p);
  const policy = await loadPolicy(prep.dir, opts, quiet);
  try {
    const warm = getNumber(p, 'warmup') ?? 0;
    for (let k = 0; k < warm; k++) await policy.act(prep.req);
    const r = await policy.act(prep.req);
    await writeResultPlots(prep.plots, r, prep.emb, prep.req.instruction);
    if (json) {
      const extra = {
        instruction: prep.req.instruction,
        grid: prep.req.grid ?? 'uniform',
        cameras: Object.keys(prep.req.images as Record<string, string>),
        state: prep.req.state ? Array.from(prep.req.state) : null,
        checkpoint: prep.dir,
        weight_dtype: opts.weightDtype ?? 'f32',
        device: policy.gpu.description,
        warm: warm > 0,
        plots: prep.plots.map((f) => nodePath.resolve(f)),
      };
      process.stdout.write(`${prettyJson(resultJson(r, prep.emb, extra))}\n`);
    } else {
      const out: string[] = [];
      if (isTinyCheckpoint(prep.dir)) out.push('note: weights/tiny has random weights: every stage runs for real, but the actions mean nothing.');
      out.push(actHeadline(r, prep.emb));
      const cams = Object.keys(prep.req.images as Record<string, string>);
      out.push(`instruction: ${JSON.stringify(prep.req.instruction)}; cameras: ${cams.length ? cams.join(', ') : 'none (text only)'}${prep.req.state ? '; state given' : ''}`);
      out.push('');
      out.push(actionTable(r, prep.emb));
      out.push('');
      out.push(latencyBreakdown(r.timings, warm > 0 ? ` — warm, after ${warm} untimed call(s)` : ' — first call: includes shader compilation (use --warmup 1 for warm numbers)'));
      for (const f of prep.plots) out.push(`plot written: ${f}`);
      process.stdout.write(`${out.join('\n')}\n`);
    }
    return 0;
  } finally {
    policy.destroy();
  }
}

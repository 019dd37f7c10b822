// A controller loop with an action queue and background inference, built on Policy.encode / Policy.sample
// (docs/action-decoder.md, "Controller loop").
//
// The robot consumes one action per control tick (the embodiment's rate_hz) from an ActionQueue
// (src/policy/chunks.ts). When the queue runs low (≤ `refillAt` actions left) the newest observation is taken and a
// chunk is computed in the background — encode (CPU preprocessing, vision, prefill, decoder context) then sample
// (denoising, one readback) — while the robot keeps executing what is left. The new chunk replaces the queue minus
// the actions whose ticks passed while it was computed (latency compensation: they were planned for an
// observation that is now that many ticks old). If the queue empties before the chunk arrives, the robot holds
// (a stall, counted).
//
//   npx tsc -p tsconfig.json && node dist/examples/controller.js [--seconds 20] [--refill-at 2] [--hz 5]
//
// The "robot" here is a stand-in: it replays the checkpoint's sample frame and integrates the relative actions
// into its state. Replace `observe` / `execute` with a real driver.
import path from 'node:path';
import { Policy, type ActResult, type ObservationRequest } from '../src/policy/policy.js';
import { ActionQueue } from '../src/policy/chunks.js';
import { TINY_DIR } from '../src/testing/fixtures.js';

export interface ControllerOptions {
  /** newest observation (camera frames, instruction, embodiment, raw state) */
  observe: () => ObservationRequest | Promise<ObservationRequest>;
  /** send one action (physical units, the embodiment's action order) to the robot */
  execute: (action: Float32Array, tick: number) => void;
  /** control rate (default: the embodiment's rate_hz) */
  hz?: number;
  /** start inference when this many queued actions are left (default 1) */
  refillAt?: number;
  /** sampling options of every chunk (steps, solver, …); the seed advances per chunk */
  sample?: { steps?: number; solver?: 'euler' | 'heun' | 'midpoint' | 'rk4'; seed?: number };
}

export interface ControllerStats {
  ticks: number;
  executed: number;
  stalls: number;
  chunks: number;
  /** ticks of the actions dropped because they were planned for ticks that had passed */
  skipped: number;
  /** wall time of each chunk's inference (encode + sample), ms */
  inferenceMs: number[];
}

/** Runs the loop for `seconds` of wall time; returns what happened. One Policy, used by this loop only. */
export async function runController(policy: Policy, embodiment: string, seconds: number, opts: ControllerOptions): Promise<ControllerStats> {
  const emb = policy.embodiment(embodiment);
  const hz = opts.hz ?? emb.control.rateHz;
  const refillAt = opts.refillAt ?? 1;
  const stats: ControllerStats = { ticks: 0, executed: 0, stalls: 0, chunks: 0, skipped: 0, inferenceMs: [] };
  const queue = new ActionQueue(emb.action.names.length, refillAt);
  // set by the background inference's callbacks
  const bg: { inflight: Promise<unknown> | null; ready: { r: ActResult; tick: number; ms: number } | null; failure: unknown } = {
    inflight: null, ready: null, failure: null,
  };
  let seed = opts.sample?.seed ?? 0;

  const infer = async (tick: number) => {
    const t0 = performance.now();
    const obs = await policy.encode(await opts.observe());
    try {
      const r = await policy.sample(obs, { ...opts.sample, seed: seed++ });
      return { r, tick, ms: performance.now() - t0 };
    } finally {
      obs.release();
    }
  };

  const end = performance.now() + seconds * 1000;
  for (let tick = 0; performance.now() < end; tick++) {
    const tickStart = performance.now();
    stats.ticks++;
    if (bg.failure) throw bg.failure;
    const ready = bg.ready;
    if (ready) {
      // replace the queue; drop the actions planned for ticks that passed during inference
      const late = tick - ready.tick;
      const a = ready.r.actions;
      const rows = a.actions.length / a.dims;
      stats.skipped += Math.min(late, rows);
      queue.push(a.actions, rows, late);
      stats.chunks++;
      stats.inferenceMs.push(ready.ms);
      bg.ready = null;
    }
    if (!bg.inflight && queue.needsRefill) {
      bg.inflight = infer(tick).then((x) => { bg.ready = x; bg.inflight = null; }, (e: unknown) => { bg.failure = e; bg.inflight = null; });
    }
    const action = queue.next();
    if (action) {
      opts.execute(action.values, tick);
      stats.executed++;
    } else {
      stats.stalls++;
    }
    // wait for the next tick (the background inference runs meanwhile)
    await new Promise((res) => setTimeout(res, Math.max(0, tickStart + 1000 / hz - performance.now())));
  }
  while (bg.inflight) await bg.inflight;
  return stats;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string, dflt: number) => {
    const k = args.indexOf(`--${name}`);
    return k >= 0 ? Number(args[k + 1]) : dflt;
  };
  // stageTimings off: no GPU sync between stages, the lowest latency
  const policy = await Policy.load(TINY_DIR, { stageTimings: false });
  try {
    const emb = policy.embodiment('widowx');
    const state = new Float64Array(emb.state!.names.length);
    const frame = path.join(TINY_DIR, 'samples', 'widowx_image_0.png');
    const stats = await runController(policy, 'widowx', arg('seconds', 20), {
      hz: arg('hz', emb.control.rateHz),
      refillAt: arg('refill-at', 1),
      sample: { steps: 10 },
      observe: () => ({ images: [frame], instruction: 'put the red block in the bowl', embodiment: 'widowx', state: Array.from(state) }),
      execute: (a) => {
        // a stand-in robot: relative pose channels integrate, the gripper is absolute
        for (let k = 0; k < 6; k++) state[k] += a[k];
        state[7] = a[6];
      },
    });
    const ms = [...stats.inferenceMs].sort((x, y) => x - y);
    process.stdout.write(
      `ticks ${stats.ticks}, actions executed ${stats.executed}, stalls ${stats.stalls}, chunks ${stats.chunks}, ` +
        `actions skipped (latency compensation) ${stats.skipped}, inference median ${ms.length ? ms[Math.floor(ms.length / 2)].toFixed(0) : '-'} ms\n`,
    );
  } finally {
    policy.destroy();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]).endsWith(path.join('examples', 'controller.js'))) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  });
}

// `qvla bench steps` in world mode on the trained toy checkpoint: observations from the tabletop world at the
// evaluation seeds (frames, state, instruction, qvla eval's decision noise), pooled errors, per-observation errors
// and orders, and the cross-check with policy.act() on a world observation. A short sweep (2 observations,
// euler / heun at N = 2, 4, 8, RK4 × 128 reference, the bench default: a coarser one leaves the stage-4 weights'
// Euler errors within 10 × its floor, so no order is fitted): about 20 s on lavapipe.
//
// Runs against weights/toy (the default checkpoint of the bench once it exists) or QVLA_TOY_CKPT=DIR; skipped
// (with a message) when neither exists, so CI never depends on runs/. A training run's checkpoint as a stand-in:
//   cp -rL runs/toy-A/ckpt /tmp/toyckpt && QVLA_TOY_CKPT=/tmp/toyckpt nice -n 19 npx vitest run test/bench/steps.toy.test.ts
import { existsSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runSteps, TOY_DIR, defaultStepsCheckpoint, type StepsReport } from '../../src/bench/steps.js';
import { EVAL_SEED_BASE, findWorldSpecs } from '../../src/worlds/registry.js';
import { decisionSeed } from '../../src/eval/episodes.js';

const CKPT = process.env.QVLA_TOY_CKPT ? path.resolve(process.env.QVLA_TOY_CKPT) : TOY_DIR;
const SKIP = !existsSync(path.join(CKPT, 'config.json'));
if (SKIP) console.warn(`steps.toy: skipped — ${CKPT} has no checkpoint (weights/toy, or set QVLA_TOY_CKPT=DIR, e.g. a copy of runs/toy-A/ckpt)`);

describe.skipIf(SKIP)('bench steps, world mode, on the toy checkpoint', () => {
  let r: StepsReport;
  beforeAll(async () => {
    r = await runSteps({
      checkpoint: CKPT, observations: 2, solvers: ['euler', 'heun'], stepCounts: [2, 4, 8], refSteps: 128, reps: 1,
      control: false, csv: null, plot: null, log: () => undefined,
    });
  }, 600_000);

  it('the default checkpoint is weights/toy exactly when it exists', () => {
    expect(defaultStepsCheckpoint().endsWith(path.join('weights', existsSync(path.join(TOY_DIR, 'config.json')) ? 'toy' : 'tiny'))).toBe(true);
  });

  it('observations are the tabletop/planar world at EVAL_SEED_BASE + k, with qvla eval\'s decision noise', () => {
    expect(r.source).toBe('world');
    expect(r.world).toEqual({ world: 'tabletop', level: 'A', decision: 0 });
    expect(r.embodiment).toBe('planar');
    expect(r.chunk).toEqual([8, 3]);
    const spec = findWorldSpecs('tabletop', 'planar', 'A')[0]!;
    expect(r.observations).toHaveLength(2);
    r.observations.forEach((o, k) => {
      const obs = spec.create(EVAL_SEED_BASE + k).observe();
      expect(o.seed).toBe(EVAL_SEED_BASE + k);
      expect(o.noiseSeed).toBe(decisionSeed(EVAL_SEED_BASE + k, 0));
      expect(o.instruction).toBe(obs.instruction);
      expect(o.state).toEqual(obs.state);
    });
    expect(r.images).toEqual([]);
  });

  it('pooled and per-observation errors; the sampling path equals policy.act() on a world observation', () => {
    for (const x of r.rows.filter((q) => !q.reference)) {
      expect(x.rmsErrObs).toHaveLength(2);
      for (const e of x.rmsErrObs) expect(Number.isFinite(e)).toBe(true);
      // the pooled RMS (same entry count per observation) is the root mean square of the two
      expect(x.rmsErr).toBeCloseTo(Math.sqrt((x.rmsErrObs[0]! ** 2 + x.rmsErrObs[1]! ** 2) / 2), 12);
    }
    const e = (s: string, n: number) => r.rows.find((x) => !x.reference && x.solver === s && x.steps === n)!.rmsErr;
    expect(e('euler', 8)).toBeLessThan(e('euler', 2));
    expect(e('heun', 8)).toBeLessThan(e('heun', 2));
    expect(r.rows.find((x) => x.reference)!.rmsErr).toBe(0);
    expect(r.actCheck!.maxAbs).toBeLessThan(1e-5);
  });

  it('orders: per solver, pooled and per observation, pairwise over 2→4→8', () => {
    expect(r.floor.steps).toBe(64); // the reference at half its steps
    expect(r.floor.rmsObs).toHaveLength(2);
    for (const o of r.orders) {
      expect(o.pairwise.map((p) => `${p.from}-${p.to}`)).toEqual(['2-4', '4-8']);
      expect(o.orderObs).toHaveLength(2);
      for (const p of o.pairwise) expect(Number.isFinite(p.order!)).toBe(true);
    }
    // Euler's error stays above 10 × the floor here: an order is fitted (its value is what the bench reports)
    const eu = r.orders.find((o) => o.solver === 'euler')!;
    expect(eu.order).not.toBeNull();
    expect(eu.fitSteps[0]).toBe(2);
  });
});

// `qvla bench steps` on weights/tiny (image-file mode: the sample image, one noise seed) with N ∈ {1, 2, 4} and two
// solvers: the error falls with N, the RK4-128 reference reproduces itself exactly, the sampling path matches
// policy.act(), the orders and the reference floor are reported, and the CSV / SVG are written. Then the control
// sweep on the analytic smooth field through the GPU integrator: Euler ≈ 1, Heun / midpoint ≈ 2, RK4 ≈ 4.
// (The order arithmetic alone: steps.order.test.ts; a world sweep on the trained checkpoint: steps.toy.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runSteps, runControlSweep, formatStepsReport, CSV_COLUMNS, DEFAULT_STEP_COUNTS, maskedError, secondDiffMeanSquare, stepsChart, type StepsReport } from '../../src/bench/steps.js';
import { renderPng } from '../../src/plot/index.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { Gpu } from '../../src/gpu/device.js';
import { Rng } from '../../src/util/rng.js';
import { SOLVERS } from '../../src/policy/samplers.js';

const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'qvla-steps-test-'));
const csv = path.join(tmp, 'out', 'steps.csv');
const svg = path.join(tmp, 'out', 'steps.svg');
let r: StepsReport;
beforeAll(async () => {
  // explicit: the default is weights/toy once it exists
  r = await runSteps({ checkpoint: TINY_DIR, solvers: ['euler', 'heun'], stepCounts: [1, 2, 4], reps: 1, csv, plot: svg, control: false, log: () => undefined });
}, 600_000);
afterAll(() => fsp.rm(tmp, { recursive: true, force: true }));

describe('helpers', () => {
  it('masked error and second differences', () => {
    expect(maskedError([1, 2, 3, 4], [1, 0, 3, 0], [1, 1, 1, 0])).toEqual({ maxAbs: 2, rms: Math.sqrt(4 / 3) });
    // rows of a [3, 2] array with stride 3 (third column ignored): x = r², second difference 2
    const x = [0, 5, 9, 1, 5, 9, 4, 5, 9];
    expect(secondDiffMeanSquare(x, 3, 2, 3)).toBe((4 + 0) / 2);
    expect(secondDiffMeanSquare([1, 2], 2, 1)).toBe(0);
  });
});

const rms = (s: string, n: number) => r.rows.find((x) => !x.reference && x.solver === s && x.steps === n)!.rmsErr;

describe('bench steps on tiny', () => {
  it('rows for every (solver, N) with finite numbers, plus the reference row', () => {
    expect(r.rows.filter((x) => !x.reference).map((x) => `${x.solver}${x.steps}`)).toEqual(['euler1', 'euler2', 'euler4', 'heun1', 'heun2', 'heun4']);
    for (const x of r.rows) {
      for (const v of [x.maxAbsErr, x.rmsErr, x.smoothNorm, x.smoothActions, x.latencyMs, x.msPerEval]) expect(Number.isFinite(v)).toBe(true);
      expect(x.rmsErr).toBeLessThanOrEqual(x.maxAbsErr);
    }
    expect(r.rows.find((x) => x.solver === 'heun' && x.steps === 4)!.evaluations).toBe(7);
  });

  it('the error decreases from N=1 to N=4 (euler), and heun beats euler at N=4', () => {
    const e = (s: string, n: number) => r.rows.find((x) => !x.reference && x.solver === s && x.steps === n)!.rmsErr;
    expect(e('euler', 4)).toBeLessThan(e('euler', 1));
    expect(e('euler', 4)).toBeLessThan(e('euler', 2));
    expect(e('heun', 4)).toBeLessThan(e('euler', 4));
  });

  it('the RK4-128 reference against itself: error exactly 0; the sampling path equals policy.act()', () => {
    const ref = r.rows.find((x) => x.reference)!;
    expect(ref.solver).toBe('rk4');
    expect(ref.steps).toBe(128);
    expect(ref.evaluations).toBe(512);
    expect(ref.maxAbsErr).toBe(0);
    expect(ref.rmsErr).toBe(0);
    expect(r.actCheck!.maxAbs).toBeLessThan(1e-5);
  });

  it('image-file mode on tiny (no world embodiments): one observation, noise seed 0; floor and orders reported', () => {
    expect(r.source).toBe('images');
    expect(r.world).toBeNull();
    expect(r.embodiment).toBe('widowx');
    expect(r.observations).toHaveLength(1);
    expect(r.observations[0]).toMatchObject({ seed: 0, noiseSeed: 0 });
    expect(r.floor.steps).toBe(64);
    expect(r.floor.rms).toBeGreaterThan(0);
    expect(Number.isFinite(r.floor.rms)).toBe(true);
    expect(r.orders.map((o) => o.solver)).toEqual(['euler', 'heun']);
    for (const o of r.orders) {
      expect(o.pairwise.map((p) => `${p.from}-${p.to}`)).toEqual(['1-2', '2-4']);
      expect(o.threshold).toBeCloseTo(10 * r.floor.rms, 12);
      for (const p of o.pairwise) expect(p.order).toBeCloseTo(-Math.log(rms(o.solver, p.to) / rms(o.solver, p.from)) / Math.log(p.to / p.from), 10);
    }
    for (const x of r.rows.filter((q) => !q.reference)) {
      expect(x.rmsErrObs).toEqual([x.rmsErr]);
      expect(x.orderPair).toBe(r.orders.find((o) => o.solver === x.solver)!.pairwise.find((p) => p.to === x.steps)?.order ?? null);
    }
    expect(r.control).toBeNull();
  });

  it('CSV and SVG are written and well-formed', async () => {
    const lines = (await fsp.readFile(csv, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe(CSV_COLUMNS.join(','));
    expect(lines).toHaveLength(1 + r.rows.length);
    for (const l of lines.slice(1)) {
      const cells = l.split(',');
      expect(cells).toHaveLength(CSV_COLUMNS.length);
      for (const c of cells.slice(1)) expect(Number.isFinite(Number(c)), l).toBe(true);
    }
    const s = await fsp.readFile(svg, 'utf8');
    expect(s.trimStart().startsWith('<svg') || s.trimStart().startsWith('<?xml')).toBe(true);
    expect(s.trimEnd().endsWith('</svg>')).toBe(true);
    expect(s).toContain('euler');
    expect(s).toContain('heun');
    expect((s.match(/<circle/g) ?? []).length).toBeGreaterThanOrEqual(6);
    const png = renderPng(stepsChart(r));
    expect(Array.from(png.slice(1, 4))).toEqual([0x50, 0x4e, 0x47]);
    const text = formatStepsReport(r).join('\n');
    expect(text).toMatch(/ref again/);
    expect(text).toMatch(/observed convergence order/);
    expect(s).toContain('observed order');
  });
});

describe('control sweep: the GPU integrator on an analytic smooth field shows the nominal orders', () => {
  let gpu: Gpu;
  beforeAll(async () => { gpu = await Gpu.create(); });
  afterAll(() => gpu?.destroy());

  it('euler ≈ 1, heun ≈ 2, midpoint ≈ 2, rk4 ≈ 4 (least squares over N = 1…32, above 10 × the floor)', async () => {
    // an 8×3 valid chunk in a 16×16 padded one, as planar's
    const mask = new Float32Array(256);
    for (let h = 0; h < 8; h++) for (let k = 0; k < 3; k++) mask[h * 16 + k] = 1;
    const c = await runControlSweep(gpu, { noise: new Rng(7).normals(256), mask, shape: [16, 16], solvers: [...SOLVERS], stepCounts: DEFAULT_STEP_COUNTS });
    const p = Object.fromEntries(c.solvers.map((s, i) => [s, c.orders[i]!]));
    expect(c.floor.rms).toBeLessThan(1e-5); // float32 round-off, not truncation
    expect(p.euler!.order!).toBeGreaterThan(0.9);
    expect(p.euler!.order!).toBeLessThan(1.1);
    expect(p.heun!.order!).toBeGreaterThan(1.85);
    expect(p.heun!.order!).toBeLessThan(2.3);
    expect(p.midpoint!.order!).toBeGreaterThan(1.7);
    expect(p.midpoint!.order!).toBeLessThan(2.2);
    expect(p.rk4!.order!).toBeGreaterThan(3.6);
    expect(p.rk4!.order!).toBeLessThan(4.6);
    expect(p.euler!.fitSteps).toEqual(DEFAULT_STEP_COUNTS); // euler stays far above the floor
  }, 120_000);
});

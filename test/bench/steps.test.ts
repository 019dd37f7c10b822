// `qvla bench steps` on weights/tiny with N ∈ {1, 2, 4} and two solvers: the error falls with N, the RK4-128
// reference reproduces itself exactly, the sampling path matches policy.act(), and the CSV / SVG are written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runSteps, formatStepsReport, CSV_COLUMNS, maskedError, secondDiffMeanSquare, stepsChart, type StepsReport } from '../../src/bench/steps.js';
import { renderPng } from '../../src/plot/index.js';

const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'qvla-steps-test-'));
const csv = path.join(tmp, 'out', 'steps.csv');
const svg = path.join(tmp, 'out', 'steps.svg');
let r: StepsReport;
beforeAll(async () => {
  r = await runSteps({ solvers: ['euler', 'heun'], stepCounts: [1, 2, 4], reps: 1, csv, plot: svg, log: () => undefined });
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
    expect(formatStepsReport(r).join('\n')).toMatch(/ref again/);
  });
});

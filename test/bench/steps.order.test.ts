// `qvla bench steps`: the observed-convergence-order computation (convergenceOrder) on synthetic error curves,
// the CSV columns that carry it, and the order table. Pure arithmetic: no GPU, no checkpoint.
import { describe, expect, it } from 'vitest';
import { convergenceOrder, stepsCsv, runStepsBench, CSV_COLUMNS, FLOOR_FACTOR, type StepsRow, type SolverOrder } from '../../src/bench/steps.js';
import { UsageError } from '../../src/cli/args.js';

const NS = [1, 2, 3, 4, 6, 8, 10, 16, 32];
const curve = (c: number, p: number, ns = NS) => ns.map((steps) => ({ steps, err: c * steps ** -p }));

describe('convergenceOrder', () => {
  it('recovers p of err = C·N^-p exactly, in the fit and every pairwise slope', () => {
    for (const p of [1, 2, 4]) {
      const o = convergenceOrder(curve(0.7, p), 1e-12);
      expect(o.order).toBeCloseTo(p, 10);
      expect(o.tailOrder).toBeCloseTo(p, 10);
      expect(o.fitSteps).toEqual(NS);
      expect(o.pairwise.map((q) => `${q.from}-${q.to}`)).toEqual(NS.slice(1).map((n, i) => `${NS[i]}-${n}`));
      for (const q of o.pairwise) {
        expect(q.order).toBeCloseTo(p, 10);
        expect(q.aboveFloor).toBe(true);
      }
      expect(o.threshold).toBeCloseTo(FLOOR_FACTOR * 1e-12, 20);
    }
  });

  it('leaves out the N where the error is within factor × floor (a plateau at the reference error)', () => {
    // RK4-like: 0.5·N^-4 until it meets a floor of 1e-5 (round-off / reference error), then flat with jitter
    const pts = NS.map((steps, i) => ({ steps, err: Math.max(0.5 * steps ** -4, 1e-5 * (1 + 0.3 * Math.sin(i))) }));
    const o = convergenceOrder(pts, 1e-5, 10);
    // above 1e-4: 0.5·N^-4 > 1e-4 ⇔ N < 8.4
    expect(o.fitSteps).toEqual([1, 2, 3, 4, 6, 8]);
    expect(o.order).toBeCloseTo(4, 10);
    expect(o.pairwise.find((q) => q.to === 16)!.aboveFloor).toBe(false);
    expect(o.pairwise.find((q) => q.to === 32)!.aboveFloor).toBe(false);
    expect(Math.abs(o.pairwise.find((q) => q.to === 32)!.order!)).toBeLessThan(1); // the plateau's pairwise slope is still reported
    // the same curve fitted without a floor: the plateau drags the slope down
    expect(convergenceOrder(pts, 0).order!).toBeLessThan(3.5);
  });

  it('a pre-asymptotic start shows in the tail order and the pairwise slopes, not only in the fit', () => {
    // err = N^-1 (0.5 + 2·N^-1): order 2 at small N, 1 asymptotically
    const pts = NS.map((steps) => ({ steps, err: (0.5 + 2 / steps) / steps }));
    const o = convergenceOrder(pts, 0);
    const pair = o.pairwise.map((q) => q.order!);
    for (let i = 1; i < pair.length; i++) expect(pair[i]!).toBeLessThan(pair[i - 1]!);
    expect(pair[0]!).toBeGreaterThan(1.5);
    expect(pair.at(-1)!).toBeLessThan(1.2);
    expect(o.tailOrder!).toBeLessThan(o.order!);
    expect(o.tailOrder!).toBeGreaterThan(1);
  });

  it('fits the first contiguous run above the threshold; unsorted input and duplicate N are handled', () => {
    const pts = [
      { steps: 8, err: 1e-9 }, // below: ends the run
      { steps: 2, err: 0.25 },
      { steps: 1, err: 1 },
      { steps: 4, err: 0.0625 },
      { steps: 4, err: 123 }, // duplicate N: the first one (after sorting) is kept
      { steps: 16, err: 0.5 }, // above again, after the run ended: not in the fit
    ];
    const o = convergenceOrder(pts, 1e-8, 10);
    expect(o.fitSteps).toEqual([1, 2, 4]);
    expect(o.order).toBeCloseTo(2, 10);
    expect(o.pairwise).toHaveLength(4);
    expect(o.pairwise[3]).toMatchObject({ from: 8, to: 16, aboveFloor: false });
  });

  it('no order with fewer than two points above the floor; zero / NaN errors give null pairwise orders', () => {
    expect(convergenceOrder([{ steps: 4, err: 0.1 }], 0).order).toBeNull();
    const o = convergenceOrder([{ steps: 1, err: 1e-7 }, { steps: 2, err: 5e-8 }], 1e-7);
    expect(o.order).toBeNull();
    expect(o.fitSteps).toEqual([]);
    expect(o.pairwise[0]!.order).toBeCloseTo(1, 10); // still reported, flagged
    expect(o.pairwise[0]!.aboveFloor).toBe(false);
    const z = convergenceOrder([{ steps: 1, err: 0.1 }, { steps: 2, err: 0 }, { steps: 4, err: NaN }], 0);
    expect(z.pairwise.map((q) => q.order)).toEqual([null, null]);
    expect(z.order).toBeNull();
    expect(z.tailOrder).toBeNull();
  });

  it('noisy errors around C·N^-2: the least-squares fit is close to 2 while pairwise slopes scatter', () => {
    const jitter = [1.1, 0.92, 1.05, 0.9, 1.08, 0.95, 1.02, 0.97, 1.04];
    const pts = curve(0.3, 2).map((q, i) => ({ steps: q.steps, err: q.err * jitter[i]! }));
    const o = convergenceOrder(pts, 0);
    expect(Math.abs(o.order! - 2)).toBeLessThan(0.05);
    expect(Math.max(...o.pairwise.map((q) => Math.abs(q.order! - 2)))).toBeGreaterThan(0.2);
  });
});

describe('CSV order columns', () => {
  it('carries the pairwise order, the fit membership and the solver order on every row', () => {
    const row = (steps: number, err: number, orderPair: number | null, inFit: boolean): StepsRow => ({
      solver: 'euler', steps, evaluations: steps, maxAbsErr: 2 * err, rmsErr: err, rmsErrObs: [err * 0.9, err * 1.1],
      smoothNorm: 0.1, smoothActions: 0.2, latencyMs: steps, latencyMinMs: steps, msPerEval: 1, orderPair, inFit,
    });
    const o = convergenceOrder(curve(1, 1, [1, 2, 4]), 0);
    const orders: SolverOrder[] = [{ solver: 'euler', ...o, orderObs: [0.9, 1.2] }];
    const csv = stepsCsv({ rows: [row(1, 1, null, true), row(2, 0.5, 1, true), row(4, 0.25, 1, true)], orders, control: null });
    const lines = csv.trim().split('\n').map((l) => l.split(','));
    expect(lines[0]).toEqual([...CSV_COLUMNS]);
    const col = (name: (typeof CSV_COLUMNS)[number], r: number) => lines[r]![CSV_COLUMNS.indexOf(name)];
    expect(col('order_pair', 1)).toBe('');
    expect(col('order_pair', 2)).toBe('1');
    expect(col('in_fit', 3)).toBe('1');
    expect(Number(col('order_fit', 3))).toBeCloseTo(1, 5);
    expect(col('order_fit_min_obs', 1)).toBe('0.9');
    expect(col('order_fit_max_obs', 1)).toBe('1.2');
    expect(Number(col('rms_err_max_obs', 2))).toBeCloseTo(0.55, 10);
  });
});

describe('CLI option errors (before any checkpoint is loaded)', () => {
  it('rejects an unknown world, --world with --image, and a one-step reference', async () => {
    await expect(runStepsBench(['--world', 'moon'])).rejects.toBeInstanceOf(UsageError);
    await expect(runStepsBench(['--world', 'nav', '--image', 'x.png'])).rejects.toThrow(/exclude each other/);
    await expect(runStepsBench(['--ref-steps', '1'])).rejects.toBeInstanceOf(UsageError);
    await expect(runStepsBench(['--observations', '0'])).rejects.toBeInstanceOf(UsageError);
  });
});

// The Wilson interval against published values, and the scripted expert rows (no GPU).
import { describe, expect, it } from 'vitest';
import { wilsonInterval, Z95 } from '../../src/eval/wilson.js';
import { runEpisodes, summarise, decisionSeed, EXPERT } from '../../src/eval/episodes.js';
import { WORLD_SPECS, EVAL_SEED_BASE } from '../../src/worlds/registry.js';
import { evalChart } from '../../src/eval/report.js';
import { renderSvg } from '../../src/plot/index.js';
import type { EvalRow } from '../../src/eval/episodes.js';
import { qvla } from './helpers.js';

describe('wilsonInterval', () => {
  it('matches Newcombe (1998), Table I, method 3 (score interval without continuity correction)', () => {
    const cases: [number, number, number, number][] = [
      [81, 263, 0.2553, 0.3662],
      [15, 148, 0.0624, 0.1605],
      [0, 20, 0, 0.1611],
      [1, 29, 0.0061, 0.1718],
    ];
    for (const [k, n, lo, hi] of cases) {
      const [a, b] = wilsonInterval(k, n);
      expect(a, `${k}/${n} lower`).toBeCloseTo(lo, 4);
      expect(b, `${k}/${n} upper`).toBeCloseTo(hi, 4);
    }
  });

  it('closed forms at the ends, symmetry, z, n = 0 and bad input', () => {
    const z2 = Z95 * Z95;
    expect(wilsonInterval(0, 10)).toEqual([0, expect.closeTo(z2 / (10 + z2), 12)]);
    expect(wilsonInterval(10, 10)).toEqual([expect.closeTo(10 / (10 + z2), 12), 1]);
    const [lo, hi] = wilsonInterval(5, 10);
    expect(lo).toBeCloseTo(0.236593, 6);
    expect(lo + hi).toBeCloseTo(1, 12);
    const [a, b] = wilsonInterval(30, 70);
    const [c, d] = wilsonInterval(40, 70);
    expect(a).toBeCloseTo(1 - d, 12);
    expect(b).toBeCloseTo(1 - c, 12);
    expect(wilsonInterval(99, 100)[0]).toBeCloseTo(0.945514, 6);
    // a larger z gives a wider interval
    expect(wilsonInterval(5, 10, 2.576)[0]).toBeLessThan(lo);
    expect(wilsonInterval(0, 0)).toEqual([0, 1]);
    expect(() => wilsonInterval(3, 2)).toThrow(/successes/);
    expect(() => wilsonInterval(1, 2.5)).toThrow(/n must/);
    expect(() => wilsonInterval(-1, 2)).toThrow(/successes/);
  });
});

describe('expert rows', () => {
  it('the scripted expert succeeds in ≥ 99 % of 100 evaluation episodes of every world, and the row says so', async () => {
    for (const spec of WORLD_SPECS) {
      const results = await runEpisodes(EXPERT, spec, { episodes: 100 });
      expect(results.map((r) => r.seed)).toEqual(Array.from({ length: 100 }, (_, e) => EVAL_SEED_BASE + e));
      const row = summarise(results);
      const name = `${spec.world}/${spec.embodiment}/${spec.level}`;
      expect(row.success_rate, name).toBeGreaterThanOrEqual(0.99);
      expect(row).toMatchObject({ world: spec.world, embodiment: spec.embodiment, level: spec.level, condition: 'expert', solver: null, steps: null, nfe: 0, episodes: 100, act_calls: 0 });
      expect(row.ci95).toEqual(wilsonInterval(row.successes, 100));
      expect(row.metrics['decisions']).toBeGreaterThan(0);
      if (spec.world === 'nav') for (const k of ['sr', 'osr', 'spl']) expect(row.metrics[k], `${name} ${k}`).toBeGreaterThan(0.9);
      if (spec.world === 'ball') {
        expect(row.metrics['fde']).toBeLessThan(1e-6);
        expect(row.metrics['cv_fde']).toBeGreaterThan(0.08);
      }
    }
  });

  it('qvla eval --expert: a table row per world, exit 0; no GPU options accepted', async () => {
    const r = await qvla('eval', '--expert', '--level', 'all', '--episodes', '20', '--quiet');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1 + WORLD_SPECS.length);
    expect(lines[0]).toMatch(/world\s+embodiment\s+level\s+condition\s+solver\s+steps\s+NFE\s+episodes\s+success %/);
    for (const l of lines.slice(1)) expect(l).toMatch(/expert .* 100\.0 +\[83\.9, 100\.0\]/);
    const bad = await qvla('eval', '--expert', '--steps', '2');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--steps does not apply to --expert/);
  });

  it('decision seeds are deterministic, distinct per decision and per episode, and 32-bit', () => {
    const seen = new Set<number>();
    for (let e = 0; e < 50; e++) for (let d = 0; d < 40; d++) seen.add(decisionSeed(EVAL_SEED_BASE + e, d));
    expect(seen.size).toBe(2000);
    for (const s of seen) expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
    expect(decisionSeed(EVAL_SEED_BASE, 3)).toBe(decisionSeed(EVAL_SEED_BASE, 3));
  });
});

describe('evalChart', () => {
  it('one line per solver with Wilson whiskers, the expert as a reference line, NFE on a log2 axis', () => {
    const row = (solver: 'euler' | 'rk4' | null, steps: number | null, nfe: number, successes: number): EvalRow => ({
      world: 'tabletop', level: 'A', embodiment: 'planar', task_type: 'manipulation', condition: solver ? 'policy' : 'expert',
      solver, steps, nfe, episodes: 20, successes, success_rate: successes / 20, ci95: wilsonInterval(successes, 20),
      metrics: {}, act_calls: 0, seeds: [EVAL_SEED_BASE, EVAL_SEED_BASE + 19], wall_s: 1,
    });
    const rows = [row('euler', 1, 1, 4), row('euler', 2, 2, 9), row('euler', 8, 8, 15), row('rk4', 1, 4, 12), row('rk4', 2, 8, 16), row(null, null, 0, 20)];
    const scene = evalChart(rows);
    const svg = renderSvg(scene);
    for (const t of ['euler', 'rk4', 'expert 100.0 %', '(log2 scale)', 'Wilson 95 %']) expect(svg).toContain(t);
    for (const t of ['>1<', '>2<', '>4<', '>8<']) expect(svg).toContain(t);
    // a marker per policy row; the expert row is a line without markers
    expect(scene.items.filter((i) => i.kind === 'circle')).toHaveLength(5);
  });
});

// The benchmark code runs and returns finite positive numbers on tiny problems (no timing assertions).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { measurePeaks } from '../../src/bench/roofline.js';
import { parseOpBenchArgs, runOpBench, selectCases } from '../../src/bench/ops.js';
import { pinLpNumThreads } from '../../src/bench/env.js';
import { median, summarize } from '../../src/bench/stats.js';
import { linearCase } from '../../src/testing/cases/linear.js';

let gpu: Gpu;
beforeAll(async () => {
  pinLpNumThreads();
  gpu = await Gpu.create();
});
afterAll(() => gpu?.destroy());

const positive = (x: number) => Number.isFinite(x) && x > 0;

describe('bench', () => {
  it('stats: median, MAD', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const s = summarize([1, 2, 3, 4, 100]);
    expect(s.median).toBe(3);
    expect(s.mad).toBe(1);
    expect([s.min, s.max]).toEqual([1, 100]);
  });

  it('measurePeaks on a tiny problem', async () => {
    const p = await measurePeaks(gpu, {
      // sizes that last several lavapipe timestamp ticks (0.0655 ms): a 0 ms median would give no rate
      reps: 5, fmaInvocations: 256, fmaIters: 1024, readBytes: 4 << 20, readInvocations: 256, copyBytes: 8 << 20,
    });
    for (const x of [p.gflops, p.gbps, p.copyGBps, p.details.ridge]) expect(positive(x), String(x)).toBe(true);
    for (const m of [p.details.fma, p.details.read, p.details.copy]) {
      expect(m.time.n).toBe(5);
      expect(positive(m.time.median) && positive(m.wall.median) && positive(m.wallValue) && positive(m.work)).toBe(true);
    }
    expect(p.details.fma.config.iters).toBe(1024);
  });

  it('runOpBench on a tiny linear case, JSON out', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'qvla-bench-'));
    try {
      const json = path.join(dir, 'r.json');
      const lines: string[] = [];
      // big enough that each dispatch lasts well over the timestamp resolution (a 0 ms median reports no rate)
      const cases = [linearCase({ M: 64, N: 64, K: 128, perf: true }), linearCase({ M: 1, N: 256, K: 512, f16: true, perf: true })];
      const r = await runOpBench({ gpu, cases, reps: 5, wallMaxTime: 0.05, peaks: { gflops: 10, gbps: 1 }, check: true, json, log: (l) => lines.push(l) });
      expect(r.rows.length).toBe(2);
      for (const row of r.rows) {
        expect(row.check?.ok, row.check?.report).toBe(true);
        expect(positive(row.time.median) && positive(row.gflops!) && positive(row.gbps!) && positive(row.peakFraction!)).toBe(true);
        expect(row.wall && positive(row.wall.median)).toBe(true);
        expect(row.kernels.length).toBeGreaterThan(0);
      }
      expect(r.rows[1].kernels).toEqual(['linear_gemv']);
      expect(lines.some((l) => l.startsWith('adapter:'))).toBe(true);
      expect(lines.some((l) => l.startsWith('LP_NUM_THREADS:'))).toBe(true);
      const back = JSON.parse(readFileSync(json, 'utf8'));
      expect(back.rows.length).toBe(2);
      expect(back.header.adapter).toBe(gpu.description);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('argument parsing and case selection', () => {
    const o = parseOpBenchArgs(['--op', 'linear', '--name', 'f16', '--reps', '9', '--no-wall', '--peaks', '25,3.5', '--json', 'x.json']);
    expect(o).toMatchObject({ op: 'linear', name: 'f16', reps: 9, wall: false, peaks: { gflops: 25, gbps: 3.5 }, json: 'x.json' });
    expect(() => parseOpBenchArgs(['--bogus'])).toThrow(/unknown option/);
    const sel = selectCases({ op: '^linear$', name: 'decode' });
    expect(sel.length).toBeGreaterThan(0);
    expect(sel.every((c) => c.op === 'linear' && /decode/.test(c.name))).toBe(true);
  });
});

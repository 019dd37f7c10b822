// CI variant of the soak (tools/soak.ts runs the long one): ~150 act() calls on weights/tiny with varying
// camera frames (samples and random-noise frames of several sizes), instructions, embodiments (aloha, widowx,
// nav incl. text-only), seeds, solvers and steps. After warm-up: no new GPU buffers, no GPU tensors left live,
// JS heap growth after gc() < 16 MB, RSS growth bounded, no non-finite outputs, no failed call. Latency per
// window is reported, not asserted (a shared 2-core CI box makes lavapipe timings noisy).
// gc(): vitest forks do not expose it by default, so v8.setFlagsFromString('--expose-gc') is used.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { formatSoakReport, runSoak, soakChart } from '../../src/bench/soak.js';
import { renderSvg } from '../../src/plot/index.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';

if (!(globalThis as { gc?: unknown }).gc) {
  setFlagsFromString('--expose-gc');
  (globalThis as { gc?: unknown }).gc = runInNewContext('gc');
}

describe('soak (CI)', () => {
  it('150 consecutive act() calls: no GPU buffer, heap or RSS growth after warm-up, no NaN', async () => {
    const r = await runSoak({
      weights: TINY_DIR,
      calls: 150,
      window: 30,
      sampleEvery: 30,
      small: true,
      warmupExtra: 6,
      steps: [1, 2, 3],
      solvers: ['euler', 'midpoint', 'heun'],
      seed: 7,
      bounds: { heapGrowthMB: 16, rssGrowthMB: 96, p50Drift: null, p99Drift: null },
    });
    console.log(formatSoakReport(r));
    expect(r.gcAvailable).toBe(true);
    for (const c of r.checks) expect(c.ok, `${c.name}: ${c.detail}`).toBe(true);
    expect(r.calls).toBe(150);
    expect(r.nonFinite).toBe(0);
    // the report plots (what tools/soak.ts --plot writes): latency windows and memory samples, PASS in the subtitle
    const svg = renderSvg(soakChart(r));
    for (const s of ['act() latency per window (ms)', 'memory after gc (MB)', 'GPU pool', '150 calls', 'PASS']) expect(svg).toContain(s);
  }, 300_000);
});

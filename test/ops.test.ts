// Every kernel against its f64 CPU reference, on odd shapes (the op harness in test mode).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../src/gpu/device.js';
import { allCases } from '../src/testing/cases/index.js';
import { checkCase } from '../src/testing/opHarness.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

const byOp = new Map<string, typeof allCases>();
for (const c of allCases) byOp.set(c.op, [...(byOp.get(c.op) ?? []), c]);

for (const [op, cases] of byOp) {
  describe(`op ${op}`, () => {
    for (const c of cases) {
      it(c.name, async () => {
        const r = await checkCase(gpu, c);
        expect(r.ok, r.report).toBe(true);
      });
    }
  });
}

// The Gated DeltaNet chunk size as a tuned family (src/tune/deltaRuleChunk.ts, src/tune/deltaRuleFamily.ts): a table
// entry round-trips through a file and is what gatedDeltaRuleChunked runs when its caller names no chunk size; an
// unusable entry or none means DEFAULT_CHUNK; one tune() pass records one of the candidates. No timing is asserted.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { loadQvlaConfig } from '../../src/model/config.js';
import { DEFAULT_CHUNK, gatedDeltaNetConfig, gatedDeltaRuleChunked } from '../../src/ops/gatedDeltaNet.js';
import { Tensor } from '../../src/tensor.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { Rng } from '../../src/util/rng.js';
import { DELTA_RULE_CHUNK_CANDIDATES, DELTA_RULE_FAMILY, deltaRuleShapeClass, tunedDeltaRuleChunk } from '../../src/tune/deltaRuleChunk.js';
import { deltaRuleFamily } from '../../src/tune/deltaRuleFamily.js';
import { loadTuning } from '../../src/tune/load.js';
import { emptyTable, installTuning, setEntry } from '../../src/tune/table.js';
import { tune } from '../../src/tune/tune.js';

let gpu: Gpu;
let dir: string;
beforeAll(async () => {
  gpu = await Gpu.create();
  dir = mkdtempSync(path.join(os.tmpdir(), 'qvla-tune-gdn-'));
});
afterAll(() => {
  installTuning(gpu, null);
  gpu?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The weights/tiny head dims, a prompt of 40 tokens as one segment (the policy's ragged prefill).
const S = { L: 40, Hk: 2, Hv: 4, dk: 32, dv: 32 };

async function runDeltaRule(chunkSize?: number): Promise<Float32Array> {
  const rng = new Rng(7);
  const convDim = 2 * S.Hk * S.dk + S.Hv * S.dv;
  const mixed = Tensor.from(gpu, rng.normals(S.L * convDim, 0.3), [S.L, convDim]);
  const g = Tensor.from(gpu, rng.uniforms(S.L * S.Hv, -0.7, -0.01), [S.L, S.Hv]);
  const beta = Tensor.from(gpu, rng.uniforms(S.L * S.Hv, 0.05, 0.95), [S.L, S.Hv]);
  try {
    const out = gatedDeltaRuleChunked({
      q: { tensor: mixed, rowStride: convDim, offset: 0 },
      k: { tensor: mixed, rowStride: convDim, offset: S.Hk * S.dk },
      v: { tensor: mixed, rowStride: convDim, offset: 2 * S.Hk * S.dk },
      g, beta, state: null, segments: Int32Array.from([0, S.L]),
      L: S.L, numKeyHeads: S.Hk, numValueHeads: S.Hv, keyDim: S.dk, valueDim: S.dv, chunkSize,
    });
    const r = await out.read();
    out.release();
    return r;
  } finally {
    mixed.release(); g.release(); beta.release();
  }
}

describe('gated_delta_net chunk size from the tuning table', () => {
  it('a table entry round-trips through the file and sets the chunk size of calls that name none', async () => {
    const cls = deltaRuleShapeClass(S.dk, S.dv);
    expect(cls).toBe('chunk:dk32:dv32');
    installTuning(gpu, null);
    expect(tunedDeltaRuleChunk(gpu, S.dk, S.dv)).toBeUndefined();
    const c16 = await runDeltaRule(16);
    const c64 = await runDeltaRule(64);
    expect(await runDeltaRule()).toEqual(c64); // no table: DEFAULT_CHUNK
    expect(DEFAULT_CHUNK).toBe(64);
    expect(c16).not.toEqual(c64); // the two chunk sizes round differently, so the comparison below can tell them apart

    const t = emptyTable();
    setEntry(t, gpu.description, DELTA_RULE_FAMILY, cls, { config: { chunk: 16 } });
    setEntry(t, gpu.description, DELTA_RULE_FAMILY, deltaRuleShapeClass(64, 64), { config: { chunk: 32 } });
    const file = path.join(dir, 'tune.json');
    writeFileSync(file, JSON.stringify(t));
    expect(await loadTuning(gpu, { file })).toMatchObject({ source: file, entries: 2 });
    expect(tunedDeltaRuleChunk(gpu, S.dk, S.dv)).toBe(16);
    expect(tunedDeltaRuleChunk(gpu, 64, 64)).toBe(32);
    expect(tunedDeltaRuleChunk(gpu, 32, 64)).toBeUndefined(); // other head dims: no entry
    expect(await runDeltaRule()).toEqual(c16);
    expect(await runDeltaRule(64)).toEqual(c64); // an explicit chunk size wins
    // gatedDeltaNetConfig.chunk overrides the table
    gatedDeltaNetConfig.chunk = 64;
    try {
      expect(await runDeltaRule()).toEqual(c64);
    } finally {
      gatedDeltaNetConfig.chunk = 'auto';
    }
    installTuning(gpu, null);
  }, 60_000);

  it('an entry this op cannot use means the default', () => {
    for (const config of [{ chunk: 100 }, { chunk: 0 }, { chunk: 12.5 }, { chunk: '32' }, { size: 32 }]) {
      const t = emptyTable();
      setEntry(t, gpu.description, DELTA_RULE_FAMILY, deltaRuleShapeClass(S.dk, S.dv), { config });
      installTuning(gpu, t);
      expect(tunedDeltaRuleChunk(gpu, S.dk, S.dv)).toBeUndefined();
    }
    installTuning(gpu, null);
  });

  it('tune() times the candidates at the checkpoint shape (keyed by dk, dv only) and records one of them', async () => {
    const cfg = await loadQvlaConfig(path.join(TINY_DIR, 'config.json'));
    const shapes = deltaRuleFamily.shapes(cfg, { prefillRows: 24, weightDtype: 'f32' });
    expect(shapes.map((s) => s.shapeClass)).toEqual([deltaRuleShapeClass(cfg.text.linearKeyHeadDim, cfg.text.linearValueHeadDim)]);
    expect(deltaRuleFamily.shapes(cfg, { prefillRows: 600, weightDtype: 'f32' })[0].shapeClass).toBe(shapes[0].shapeClass); // not per L
    const t = emptyTable();
    const report = await tune(gpu, cfg, t, { families: [DELTA_RULE_FAMILY], reps: 1, prefillRows: 24, weightDtype: 'f32', maxBytes: 2 ** 30 });
    const rows = report.rows.filter((r) => r.ms !== null);
    expect(rows.map((r) => r.config).sort()).toEqual(DELTA_RULE_CHUNK_CANDIDATES.map((c) => `chunk ${c}`).sort());
    const entry = t.adapters[gpu.description][DELTA_RULE_FAMILY][shapes[0].shapeClass];
    expect(DELTA_RULE_CHUNK_CANDIDATES).toContain(entry.config.chunk);
    expect(`chunk ${entry.config.chunk}`).toBe(rows.find((r) => r.best)!.config);
    installTuning(gpu, t);
    expect(tunedDeltaRuleChunk(gpu, cfg.text.linearKeyHeadDim, cfg.text.linearValueHeadDim)).toBe(entry.config.chunk);
    installTuning(gpu, null);
  }, 120_000);
});

// The attention prefill kernel as a tuned family (src/tune/attentionPrefill.ts, src/tune/attentionFamily.ts): a table
// entry round-trips through a file and picks the kernel attention() runs (attentionConfig.prefill 'auto'); an unusable
// entry or none means the documented default; one tune() pass records one of the candidates. No timing is asserted.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import type { KernelSpec } from '../../src/gpu/pipelines.js';
import { loadQvlaConfig } from '../../src/model/config.js';
import { attention, attentionConfig } from '../../src/ops/attention.js';
import { Tensor } from '../../src/tensor.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { ATTENTION_FAMILY, attentionShapeClass, tunedAttentionPrefill } from '../../src/tune/attentionPrefill.js';
import { attentionTuneShapes } from '../../src/tune/attentionFamily.js';
import { loadTuning } from '../../src/tune/load.js';
import { emptyTable, installTuning, setEntry } from '../../src/tune/table.js';
import { tune } from '../../src/tune/tune.js';

let gpu: Gpu;
let dir: string;
beforeAll(async () => {
  gpu = await Gpu.create();
  dir = mkdtempSync(path.join(os.tmpdir(), 'qvla-tune-attn-'));
});
afterAll(() => {
  installTuning(gpu, null);
  gpu?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The kernel file attention() dispatches for a 24-token GQA prefill (4 query heads on 2 kv heads, d 16). */
async function prefillKernel(): Promise<string> {
  const L = 24, H = 4, Hkv = 2, hd = 16;
  const q = Tensor.from(gpu, new Float32Array(L * H * hd).fill(0.1), [L, H * hd]);
  const kv = Tensor.from(gpu, new Float32Array(L * 2 * Hkv * hd).fill(0.2), [L, 2 * Hkv * hd]);
  const spy = vi.spyOn(gpu.pipelines, 'get');
  try {
    const out = attention({
      q: { tensor: q, rowStride: H * hd, offset: 0 },
      k: { tensor: kv, rowStride: 2 * Hkv * hd, offset: 0 },
      v: { tensor: kv, rowStride: 2 * Hkv * hd, offset: Hkv * hd },
      Lq: L, Lk: L, numHeads: H, numKvHeads: Hkv, headDim: hd, scale: 0.25, causal: true,
    });
    const files = spy.mock.calls.map(([spec]) => (spec as KernelSpec).file);
    await out.read();
    out.release();
    expect(files).toHaveLength(1);
    return files[0];
  } finally {
    spy.mockRestore();
    q.release();
    kv.release();
  }
}

describe('attention prefill kernel from the tuning table', () => {
  it('a table entry round-trips through the file and picks the kernel; no / an unusable entry: the default', async () => {
    installTuning(gpu, null);
    const dflt = gpu.isSoftware ? 'attention_rows' : 'attention';
    expect(await prefillKernel()).toBe(dflt);
    for (const [variant, file] of [['tiles', 'attention'], ['rows', 'attention_rows']] as const) {
      const t = emptyTable();
      setEntry(t, gpu.description, ATTENTION_FAMILY, attentionShapeClass(16, 2), { config: { prefill: variant } });
      setEntry(t, gpu.description, ATTENTION_FAMILY, attentionShapeClass(16, 1), { config: { prefill: variant === 'rows' ? 'tiles' : 'rows' } });
      const f = path.join(dir, `tune-${variant}.json`);
      writeFileSync(f, JSON.stringify(t));
      expect(await loadTuning(gpu, { file: f })).toMatchObject({ source: f, entries: 2 });
      expect(tunedAttentionPrefill(gpu, 16, 2)).toBe(variant);
      expect(await prefillKernel()).toBe(file);
      // attentionConfig.prefill, when set, wins over the table
      attentionConfig.prefill = variant === 'rows' ? 'tiles' : 'rows';
      try {
        expect(await prefillKernel()).toBe(variant === 'rows' ? 'attention' : 'attention_rows');
      } finally {
        attentionConfig.prefill = 'auto';
      }
    }
    const bad = emptyTable();
    setEntry(bad, gpu.description, ATTENTION_FAMILY, attentionShapeClass(16, 2), { config: { prefill: 'warp' } });
    installTuning(gpu, bad);
    expect(tunedAttentionPrefill(gpu, 16, 2)).toBeUndefined();
    expect(await prefillKernel()).toBe(dflt);
    installTuning(gpu, null);
  }, 60_000);

  it('tune() covers the model\'s prefill-style calls per (head dim, GQA group) and records one of the kernels', async () => {
    const cfg = await loadQvlaConfig(path.join(TINY_DIR, 'config.json'));
    const shapes = attentionTuneShapes(cfg, { prefillRows: 24 });
    const t = cfg.text, ae = cfg.actionExpert!;
    const expected = new Set([
      attentionShapeClass(t.headDim, t.numAttentionHeads / t.numKeyValueHeads),
      attentionShapeClass(cfg.vision!.headDim, 1),
      attentionShapeClass(ae.headDim, 1),
    ]);
    expect(new Set(shapes.map((s) => s.shapeClass))).toEqual(expected);
    const table = emptyTable();
    const cls = attentionShapeClass(t.headDim, t.numAttentionHeads / t.numKeyValueHeads);
    const report = await tune(gpu, cfg, table, {
      families: [ATTENTION_FAMILY], reps: 1, prefillRows: 24, weightDtype: 'f32', maxBytes: 2 ** 30, classFilter: new RegExp(`^${cls}$`),
    });
    const rows = report.rows.filter((r) => r.ms !== null);
    expect(rows.map((r) => r.config).sort()).toEqual(['rows', 'tiles']);
    const entry = table.adapters[gpu.description][ATTENTION_FAMILY][cls];
    expect(entry.config.prefill).toBe(rows.find((r) => r.best)!.config);
    installTuning(gpu, table);
    expect(tunedAttentionPrefill(gpu, t.headDim, t.numAttentionHeads / t.numKeyValueHeads)).toBe(entry.config.prefill);
    installTuning(gpu, null);
  }, 120_000);
});

// `qvla bench e2e` on weights/tiny with a few calls: report structure, percentiles, steady-state allocation
// (no timing thresholds), and the random-checkpoint generator the small config uses (on the tiny config here).
import { afterAll, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runE2e, formatE2eReport, percentiles, STAGES, runE2eBench } from '../../src/bench/e2e.js';
import { percentile } from '../../src/bench/stats.js';
import { makeRandomCheckpoint, ensureSmallCheckpoint, fitConfig, initRule, STAMP_FILE } from '../../src/bench/makeCheckpoint.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { Policy } from '../../src/policy/policy.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { smallConfigJson } from '../../src/model/config.js';

const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'qvla-e2e-test-'));
afterAll(() => fsp.rm(tmp, { recursive: true, force: true }));

describe('percentiles', () => {
  it('linear interpolation like numpy', () => {
    const xs = [5, 1, 4, 2, 3];
    expect(percentile(xs, 50)).toBe(3);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile(xs, 100)).toBe(5);
    expect(percentile(xs, 90)).toBeCloseTo(4.6, 12);
    expect(percentile([7], 99)).toBe(7);
    const p = percentiles(xs);
    expect(p).toMatchObject({ n: 5, p50: 3, mean: 3, min: 1, max: 5 });
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });
});

describe('bench e2e on tiny', () => {
  it('3 calls per mode: finite numbers, p50 ≤ p90 ≤ p99, no buffers created after warm-up', async () => {
    const json = path.join(tmp, 'e2e.json');
    const lines: string[] = [];
    const r = await runE2e({ configs: ['tiny'], calls: 3, warmup: 1, json, log: (l) => lines.push(l) });
    expect(r.header.lpNumThreads).not.toBe('(unset)');
    expect(r.header.adapter.length).toBeGreaterThan(0);
    expect(r.configs).toHaveLength(1);
    const c = r.configs[0]!;
    expect(c.config).toBe('tiny');
    expect(c.promptTokens).toBeGreaterThan(0);
    expect(c.evaluations).toBe(c.steps); // euler default
    for (const v of [c.loadMs, c.gpuCreateMs, c.cold.totalMs, c.cold.prefillMs]) expect(Number.isFinite(v) && v >= 0).toBe(true);
    expect(c.cold.stepMs).toHaveLength(c.steps);
    expect(c.staged!.calls).toBe(3);
    for (const s of STAGES) {
      const p = c.staged!.stages[s];
      expect(p.n).toBe(s === 'step' ? 3 * c.steps : 3);
      for (const v of [p.p50, p.p90, p.p99, p.mean, p.min, p.max]) expect(Number.isFinite(v), s).toBe(true);
      expect(p.p50).toBeLessThanOrEqual(p.p90);
      expect(p.p90).toBeLessThanOrEqual(p.p99);
      expect(p.min).toBeLessThanOrEqual(p.p50);
      expect(p.p99).toBeLessThanOrEqual(p.max);
    }
    const st = c.staged!.stages;
    // the stages partition the total (per call), so the means add up
    const parts = st.preprocess.mean + st.vision.mean + st.prefill.mean + st.context.mean + st.denoise.mean + st.readback.mean + st.postprocess.mean;
    expect(parts).toBeCloseTo(st.total.mean, 6);
    expect(c.fast!.calls).toBe(3);
    expect(c.fast!.total.p50).toBeLessThanOrEqual(c.fast!.total.p99);
    expect(c.memory.buffersCreatedAfterWarmup).toBe(0);
    expect(c.memory.weightBytes).toBeGreaterThan(0);
    expect(c.memory.poolBytes).toBeGreaterThan(0);
    expect(c.memory.totalBytes).toBe(c.memory.weightBytes + c.memory.poolBytes);
    const onDisk = JSON.parse(await fsp.readFile(json, 'utf8'));
    expect(onDisk.configs[0].staged.stages.total.p50).toBe(st.total.p50);
    const text = formatE2eReport(r).join('\n');
    expect(text).toMatch(/LP_NUM_THREADS/);
    expect(text).toMatch(/created after warm-up: 0/);
  });

  it('CLI: --help and bad options', async () => {
    await expect(runE2eBench(['--config', 'huge'])).rejects.toThrow(/must be one of/);
    await expect(runE2eBench(['--calls', '0'])).rejects.toThrow(/≥ 1/);
  });
});

describe('random checkpoint generator', () => {
  it('fits the small config to the tiny tokenizer and embodiments', async () => {
    const cfg = await fitConfig(smallConfigJson(), TINY_DIR);
    const tc = cfg.text_config as Record<string, unknown>;
    expect(tc.vocab_size).toBe(3328);
    expect(tc.hidden_size).toBe(1024);
    expect(tc.num_hidden_layers).toBe(24);
    expect(cfg.image_token_id).toBe(3268);
    const ae = cfg.action_expert as Record<string, number>;
    expect(ae.k_max).toBeGreaterThanOrEqual(14);
    expect(ae.h_max).toBeGreaterThanOrEqual(16);
    expect(ae.vlm_layer).toBe(24);
  });

  it('init rules', () => {
    expect(initRule('model.language_model.layers.0.linear_attn.A_log', [16])).toEqual({ kind: 'a_log' });
    expect(initRule('model.language_model.layers.0.input_layernorm.weight', [8])).toEqual({ kind: 'normal', mean: 0, std: 0.1 });
    expect(initRule('model.language_model.layers.0.linear_attn.norm.weight', [8])).toEqual({ kind: 'normal', mean: 1, std: 0.1 });
    expect(initRule('model.visual.blocks.0.norm1.weight', [8])).toEqual({ kind: 'normal', mean: 1, std: 0.1 });
    expect(initRule('model.language_model.layers.0.mlp.up_proj.weight', [32, 64])).toEqual({ kind: 'normal', mean: 0, std: 1 / 8 });
    expect(initRule('action_expert.dit.blocks.0.norm1.linear.weight', [32, 16])).toEqual({ kind: 'normal', mean: 0, std: 0.125 });
  });

  it('writes a loadable sharded checkpoint (tiny config) that act() runs on; the cache stamp is reused', async () => {
    const cfg = JSON.parse(await fsp.readFile(path.join(TINY_DIR, 'config.json'), 'utf8'));
    const dir = path.join(tmp, 'ckpt');
    const made = await makeRandomCheckpoint(dir, cfg, { seed: 3, dtype: 'bf16', shardBytes: 1 << 20 });
    expect(made.files).toContain('model.safetensors.index.json');
    expect(made.files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    const ck = await openCheckpoint(dir, { requireEmbodiments: true });
    ck.bind(); // every expected tensor present with the right shape
    expect(ck.tensors.get('model.language_model.layers.0.linear_attn.A_log')!.info.dtype).toBe('F32');
    expect(ck.tensors.get('model.language_model.embed_tokens.weight')!.info.dtype).toBe('BF16');
    await ck.close();
    const policy = await Policy.load(dir);
    try {
      const r = await policy.act({ images: [path.join(TINY_DIR, 'samples', 'widowx_image_0.png')], instruction: 'go', embodiment: 'widowx', state: [0, 0, 0, 0, 0, 0, 0, 0], steps: 2 });
      expect(r.raw.every(Number.isFinite)).toBe(true);
    } finally {
      policy.destroy();
    }
    // ensureSmallCheckpoint with this config: generated once, then reused from its stamp
    const cdir = path.join(tmp, 'cached');
    const a = await ensureSmallCheckpoint(cdir, { configJson: cfg, shardBytes: 0 });
    expect(a.generated).toBe(true);
    await fsp.access(path.join(cdir, STAMP_FILE));
    await fsp.access(path.join(cdir, 'model.safetensors'));
    const b = await ensureSmallCheckpoint(cdir, { configJson: cfg, shardBytes: 0 });
    expect(b.generated).toBe(false);
    const c = await ensureSmallCheckpoint(cdir, { configJson: cfg, shardBytes: 0, seed: 1 });
    expect(c.generated).toBe(true);
  });
});

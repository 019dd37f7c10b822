// qvla quantize on the bundled tiny checkpoint: the output format, atomic writes, inspect's summary, loading it,
// and malformed quantised checkpoints → one clear error naming the tensor, from inspect and run alike.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { run } from '../../src/cli/main.js';
import { quantizeCheckpoint } from '../../src/quant/convert.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensorsWriter.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { bindQuantized } from '../../src/quant/load.js';
import { Gpu } from '../../src/gpu/device.js';
import { loadWeights } from '../../src/model/load.js';
import { isQuantized } from '../../src/quant/tensor.js';
import { dequantize } from '../../src/quant/tensor.js';
import { f16ToF32Array } from '../../src/tensor.js';
import { bf16ToF32, f16ToF32 } from '../../src/io/dtypes.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';

/** A float tensor of a file as f32 values. */
async function readF32(f: SafetensorsFile, name: string): Promise<Float32Array> {
  const info = f.tensors.get(name)!;
  const b = (await f.readTensor(name)).slice();
  if (info.dtype === 'F32') return new Float32Array(b.buffer);
  const u = new Uint16Array(b.buffer);
  const out = new Float32Array(u.length);
  (info.dtype === 'BF16' ? bf16ToF32 : f16ToF32)(u, out);
  return out;
}

const TINY = nodePath.resolve(__dirname, '..', '..', 'weights', 'tiny');
let tmp: string;
let q4: string;

/** Runs the CLI in-process; returns the exit code and what it printed. */
async function qvla(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await run(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

/** A copy of `src` with its weights rewritten by `edit` (and config.json by `cfg`). */
async function mutate(src: string, name: string, edit: (t: TensorToWrite[]) => TensorToWrite[], cfg?: (c: Record<string, any>) => void): Promise<string> {
  const dir = nodePath.join(tmp, name);
  cpSync(src, dir, { recursive: true });
  const f = await openSafetensors(nodePath.join(src, 'model.safetensors'));
  const ts: TensorToWrite[] = [];
  for (const info of f.tensors.values()) ts.push({ name: info.name, dtype: info.dtype, shape: [...info.shape], data: await f.readTensor(info.name) });
  await f.close();
  await writeSafetensors(nodePath.join(dir, 'model.safetensors'), edit(ts));
  if (cfg) {
    const c = JSON.parse(readFileSync(nodePath.join(dir, 'config.json'), 'utf8'));
    cfg(c);
    writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(c));
  }
  return dir;
}

beforeAll(async () => {
  tmp = mkdtempSync(nodePath.join(os.tmpdir(), 'qvla-quant-'));
  q4 = nodePath.join(tmp, 'tiny-q4');
  await quantizeCheckpoint(TINY, q4, { bits: 4, group: 32 });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('qvla quantize', () => {
  it('writes packed weights, f16 scales and the quantization section; keeps norms, embeddings and small tensors', async () => {
    const cfg = JSON.parse(readFileSync(nodePath.join(q4, 'config.json'), 'utf8'));
    expect(cfg.quantization).toMatchObject({ method: 'qvla_weight_only', bits: 4, group_size: 32, zero_point: false });
    const f = await openSafetensors(nodePath.join(q4, 'model.safetensors'));
    const t = f.tensors;
    const m = 'model.language_model.layers.0.mlp.up_proj';
    const orig = await openSafetensors(nodePath.join(TINY, 'model.safetensors'));
    const w = orig.tensors.get(`${m}.weight`)!;
    const [N, K] = w.shape as [number, number];
    expect(t.get(`${m}.weight`)).toBeUndefined();
    expect(t.get(`${m}.qweight`)).toMatchObject({ dtype: 'U8', shape: [N, K / 2] });
    expect(t.get(`${m}.scales`)).toMatchObject({ dtype: 'F16', shape: [N, K / 32] });
    for (const kept of ['model.language_model.embed_tokens.weight', 'model.language_model.norm.weight']) expect(t.get(kept)?.dtype).toBe(orig.tensors.get(kept)!.dtype);
    // the stored codes dequantise to within half a step of the original
    const qw = await f.readTensor(`${m}.qweight`);
    const sc = new Uint16Array((await f.readTensor(`${m}.scales`)).slice().buffer);
    const deq = dequantize({ bits: 4, N, K, group: 32, qweight: qw, scales: sc, qzeros: null });
    const ref = await readF32(orig, `${m}.weight`);
    const s = f16ToF32Array(sc);
    // within one step (the clamp at +7 of ggml's rule), half a step on average or better
    let steps = 0;
    for (let i = 0; i < ref.length; i++) {
      const step = Math.abs(s[Math.floor(i / 32)]!);
      expect(Math.abs(deq[i]! - ref[i]!)).toBeLessThanOrEqual(step * 1.001 + 1e-7);
      steps += Math.abs(deq[i]! - ref[i]!) / step;
    }
    expect(steps / ref.length).toBeLessThan(0.3);
    await f.close();
    await orig.close();
    expect(readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('refuses an existing OUT_DIR and leaves nothing behind when a tensor cannot be quantised', async () => {
    await expect(quantizeCheckpoint(TINY, q4, { bits: 8 })).rejects.toThrow(/already exists/);
    const nan = await mutate(TINY, 'nan', (ts) => ts.map((t) => {
      if (t.name !== 'model.language_model.layers.0.mlp.up_proj.weight') return t;
      const d = new Uint16Array((t.data as Uint8Array).slice().buffer);
      d[5] = 0x7fc0; // NaN in BF16 and F16 alike
      return { ...t, data: d };
    }));
    const out = nodePath.join(tmp, 'nan-q8');
    await expect(quantizeCheckpoint(nan, out, { bits: 8 })).rejects.toThrow(/up_proj\.weight.*non-finite/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('qvla quantize prints per-tensor error stats; inspect shows the quantisation and GPU memory', async () => {
    const r = await qvla('quantize', TINY, nodePath.join(tmp, 'tiny-q8'), '--bits', '8', '--skip', 'visual');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/mlp\.up_proj\.weight .*int8/);
    expect(r.out).toMatch(/‖ŵ−w‖\/‖w‖/);
    expect(r.out).not.toMatch(/model\.visual\.\S+ .*int8/);
    const i = await qvla('inspect', nodePath.join(tmp, 'tiny-q8'));
    expect(i.code, i.err).toBe(0);
    expect(i.out).toMatch(/quantised +qvla_weight_only int8, one scale per output channel/);
    expect(i.out).toMatch(/GPU memory +weights/);
  });

  it('loads: get() returns a quantised tensor whose values are the dequantised weights', async () => {
    const gpu = await Gpu.create();
    const ckpt = await openCheckpoint(q4);
    try {
      const store = await loadWeights(gpu, ckpt);
      const w = store.get('model.language_model.layers.0.mlp.up_proj.weight');
      expect(isQuantized(w)).toBe(true);
      expect(store.get('model.language_model.norm.weight').dtype).toBe('f32');
      const orig = await openSafetensors(nodePath.join(TINY, 'model.safetensors'));
      const ref = await readF32(orig, 'model.language_model.layers.0.mlp.up_proj.weight');
      await orig.close();
      const got = await w.readF32();
      let se = 0, ss = 0;
      for (let k = 0; k < ref.length; k++) { se += (got[k]! - ref[k]!) ** 2; ss += ref[k]! ** 2; }
      expect(Math.sqrt(se / ss)).toBeLessThan(0.15);
      store.destroy();
    } finally {
      await ckpt.close();
      gpu.destroy();
    }
  });
});

describe('malformed quantised checkpoints: inspect and run name the tensor', () => {
  const T = 'model.language_model.layers.0.mlp.up_proj';
  const cases: [string, () => Promise<string>, RegExp][] = [
    ['scales that do not match the shape', () => mutate(q4, 'bad-scales', (ts) => ts.map((t) => (t.name === `${T}.scales` ? { ...t, shape: [t.shape[0]! * t.shape[1]! / 2, 2] } : t))),
      new RegExp(`tensor "${T.replace(/\./g, '\\.')}\\.scales": shape \\[\\d+, 2\\] does not match`)],
    ['an unknown quantization method', () => mutate(q4, 'bad-method', (ts) => ts, (c) => { c.quantization.method = 'gptq'; }),
      /config\.json: quantization\.method: unknown quantization method "gptq"/],
    ['a group size that does not divide K', () => mutate(q4, 'bad-group', (ts) => ts.map((t) => (t.name === `${T}.qweight` ? { ...t, shape: [t.shape[0]! / 2, t.shape[1]! * 2 + 8], data: new Uint8Array((t.shape[0]! / 2) * (t.shape[1]! * 2 + 8)) } : t))),
      new RegExp(`tensor "${T.replace(/\./g, '\\.')}\\.qweight": group_size 32 does not divide K = \\d+`)],
  ];
  for (const [what, make, msg] of cases) {
    it(what, async () => {
      const dir = await make();
      const ckpt = await openCheckpoint(dir);
      expect(() => bindQuantized(ckpt)).toThrow(msg);
      await ckpt.close();
      const i = await qvla('inspect', dir);
      expect(i.code).toBe(1);
      expect(i.out).toMatch(msg);
      const r = await qvla('run', '--checkpoint', dir, '-i', 'pick', '-q');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(msg);
    });
  }
});

describe('Policy.load of a quantised checkpoint', () => {
  it('acts like the f32 checkpoint (text-only nav request, same seed), with fewer weight bytes; weightDtype f16 applies to the rest', async () => {
    const { Policy } = await import('../../src/policy/policy.js');
    const gpu = await Gpu.create();
    try {
      const q8 = nodePath.join(tmp, 'tiny-q8');
      if (!existsSync(q8)) await quantizeCheckpoint(TINY, q8, { bits: 8, skip: ['visual'] });
      const req = { instruction: 'go to the door', embodiment: 'nav', steps: 3, seed: 7 };
      const f = await Policy.load(TINY, { gpu });
      const ref = await f.act(req);
      const fBytes = f.weights.bytes;
      f.destroy();
      for (const weightDtype of ['f32', 'f16'] as const) {
        const q = await Policy.load(q8, { gpu, weightDtype });
        const got = await q.act(req);
        expect(q.weights.bytes).toBeLessThan(fBytes * (weightDtype === 'f32' ? 0.75 : 0.5));
        q.destroy();
        let se = 0, ss = 0;
        for (let k = 0; k < ref.raw.length; k++) { se += (got.raw[k]! - ref.raw[k]!) ** 2; ss += ref.raw[k]! ** 2; }
        expect(Math.sqrt(se / ss), `int8 (${weightDtype}) chunk vs f32`).toBeLessThan(0.05);
      }
    } finally {
      gpu.destroy();
    }
  });
});

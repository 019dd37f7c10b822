import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint, openWeights } from '../../src/io/checkpoint.js';
import { CheckpointError } from '../../src/io/errors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensorsWriter.js';
import { parseQvlaConfig } from '../../src/model/config.js';
import { expectedTensors } from '../../src/model/expectedTensors.js';
import { randomTensor, rng, tinyConfigJson, tmpDir } from './helpers.js';

let root: string;
beforeAll(async () => {
  root = await tmpDir('qvla-ckpt-');
});
afterAll(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

let dirCount = 0;
async function newDir(): Promise<string> {
  const d = nodePath.join(root, `c${dirCount++}`);
  await fsp.mkdir(d);
  return d;
}

/** Every tensor of the tiny config (BF16, A_log / linear_attn.norm F32 like the real checkpoints) + MTP. */
function tinyTensors(seed = 1): TensorToWrite[] {
  const r = rng(seed);
  const cfg = parseQvlaConfig(tinyConfigJson());
  const list = expectedTensors(cfg)
    .filter((t) => !t.optional)
    .map((t) => randomTensor(r, t.name, t.name.endsWith('A_log') || t.name.endsWith('linear_attn.norm.weight') ? 'F32' : 'BF16', t.shape));
  list.push(randomTensor(r, 'mtp.fc.weight', 'BF16', [64, 128]));
  return list;
}

async function writeAux(dir: string, opts: { tokenizer?: boolean; embodiments?: string | null; preprocessor?: unknown } = {}): Promise<void> {
  await fsp.writeFile(nodePath.join(dir, 'config.json'), JSON.stringify(tinyConfigJson()));
  if (opts.tokenizer ?? true) await fsp.writeFile(nodePath.join(dir, 'tokenizer.json'), '{"model":{}}');
  if (opts.embodiments !== null) await fsp.writeFile(nodePath.join(dir, 'embodiments.json'), opts.embodiments ?? '{"version":1,"embodiments":{}}');
  if (opts.preprocessor !== undefined) await fsp.writeFile(nodePath.join(dir, 'preprocessor_config.json'), JSON.stringify(opts.preprocessor));
}

/** Writes the tensors as 3 shards + index; returns the weight_map. */
async function writeSharded(dir: string, tensors: TensorToWrite[], n = 3): Promise<Record<string, string>> {
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < n; s++) {
    const file = `model-0000${s + 1}-of-0000${n}.safetensors`;
    const part = tensors.filter((_, i) => i % n === s);
    await writeSafetensors(nodePath.join(dir, file), part, { format: 'pt' });
    for (const t of part) weightMap[t.name] = file;
  }
  await writeIndex(dir, weightMap);
  return weightMap;
}

async function writeIndex(dir: string, weightMap: Record<string, unknown>): Promise<void> {
  await fsp.writeFile(nodePath.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
}

async function rejectsWith(p: Promise<unknown>, re: RegExp): Promise<CheckpointError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CheckpointError);
  expect((err as Error).message).toMatch(re);
  return err as CheckpointError;
}

describe('checkpoint directory', () => {
  it('loads a 3-shard checkpoint with its index, config, tokenizer, embodiments and binds every tensor', async () => {
    const dir = await newDir();
    const tensors = tinyTensors();
    await writeSharded(dir, tensors);
    await writeAux(dir, { preprocessor: { size: { shortest_edge: 1024, longest_edge: 4096 }, patch_size: 4, temporal_patch_size: 2, merge_size: 2 } });
    const ck = await openCheckpoint(dir);
    try {
      expect(ck.files.length).toBe(3);
      expect(ck.indexPath).toBe(nodePath.join(dir, 'model.safetensors.index.json'));
      expect(ck.tensors.size).toBe(tensors.length);
      expect(ck.config.text.hiddenSize).toBe(64);
      expect(ck.tokenizerPath).toBe(nodePath.join(dir, 'tokenizer.json'));
      expect(ck.embodiments).toEqual({ version: 1, embodiments: {} });
      expect(ck.preprocessor).toMatchObject({ minPixels: 1024, maxPixels: 4096, patchSize: 4 });
      const bound = ck.bind();
      expect(bound.size).toBe(tensors.length - 1); // all but mtp.*
      expect(bound.get('model.language_model.layers.0.linear_attn.A_log')?.dtype).toBe('F32');
      for (const t of [tensors[0]!, tensors[7]!, tensors[tensors.length - 1]!]) {
        expect(await ck.readTensor(t.name)).toEqual(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      }
      // the tensor's file is the shard the index names
      const idx = JSON.parse(await fsp.readFile(ck.indexPath!, 'utf8')) as { weight_map: Record<string, string> };
      for (const [name, e] of ck.tensors) expect(nodePath.basename(e.file.path)).toBe(idx.weight_map[name]);
    } finally {
      await ck.close();
    }
  });

  it('single model.safetensors; or the only *.safetensors; several without an index is an error', async () => {
    const tensors = tinyTensors(2);
    const d1 = await newDir();
    await writeSafetensors(nodePath.join(d1, 'model.safetensors'), tensors);
    await writeAux(d1, { embodiments: null });
    const c1 = await openCheckpoint(d1);
    expect(c1.indexPath).toBeNull();
    expect(c1.embodiments).toBeNull();
    expect(c1.preprocessor.maxPixels).toBe(16777216);
    c1.bind();
    await c1.close();
    await rejectsWith(openCheckpoint(d1, { requireEmbodiments: true }), /embodiments\.json: is missing/);

    const d2 = await newDir();
    await writeSafetensors(nodePath.join(d2, 'weights.safetensors'), tensors.slice(0, 3));
    const w2 = await openWeights(d2);
    expect(w2.tensors.size).toBe(3);
    await w2.close();
    await writeSafetensors(nodePath.join(d2, 'other.safetensors'), tensors.slice(3, 4));
    await rejectsWith(openWeights(d2), /has 2 \.safetensors files \(other\.safetensors, weights\.safetensors\) but no model\.safetensors\.index\.json/);
    const d3 = await newDir();
    await rejectsWith(openWeights(d3), /has no weights/);
  });

  it('index errors: missing shard, tensor in the wrong shard, tensor in two shards, unlisted tensor, bad names', async () => {
    const tensors = tinyTensors(3);
    const dir = await newDir();
    const wm = await writeSharded(dir, tensors);
    await writeAux(dir);
    const names = Object.keys(wm);

    await writeIndex(dir, { ...wm, [names[0]!]: 'model-00009-of-00009.safetensors' });
    let e = await rejectsWith(openCheckpoint(dir), /model\.safetensors\.index\.json: shard "model-00009-of-00009\.safetensors" listed in weight_map is missing/);
    expect(e.file).toBe(nodePath.join(dir, 'model.safetensors.index.json'));

    const other = names.find((n) => wm[n] !== wm[names[0]!])!;
    const esc = (x: string): string => x.replace(/\./g, '\\.');
    await writeIndex(dir, { ...wm, [names[0]!]: wm[other]! });
    e = await rejectsWith(openCheckpoint(dir), new RegExp(`tensor "${esc(names[0]!)}" is listed under ${esc(wm[other]!)} but is in ${esc(wm[names[0]!]!)}`));

    const missing = { ...wm, 'model.extra.weight': wm[names[0]!]! };
    await writeIndex(dir, missing);
    await rejectsWith(openCheckpoint(dir), /tensor "model\.extra\.weight" is listed under .* but no shard contains it/);

    const unlisted: Record<string, string> = { ...wm };
    delete unlisted[names[2]!];
    await writeIndex(dir, unlisted);
    await rejectsWith(openCheckpoint(dir), /is not listed in weight_map/);

    for (const bad of ['../x.safetensors', '/etc/passwd', '', 7]) {
      await writeIndex(dir, { ...wm, [names[0]!]: bad });
      await rejectsWith(openCheckpoint(dir), /must be a shard file name in the checkpoint directory/);
    }
    await fsp.writeFile(nodePath.join(dir, 'model.safetensors.index.json'), '{"weight_map": [1]}');
    await rejectsWith(openCheckpoint(dir), /weight_map must be an object/);
    await fsp.writeFile(nodePath.join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    await rejectsWith(openCheckpoint(dir), /model\.safetensors\.index\.json: is not valid JSON/);

    // a tensor present in two shards
    const d2 = await newDir();
    await writeAux(d2);
    await writeSafetensors(nodePath.join(d2, 'a.safetensors'), tensors.slice(0, 2));
    await writeSafetensors(nodePath.join(d2, 'b.safetensors'), tensors.slice(1, 3));
    await writeIndex(d2, { [names[0]!]: 'a.safetensors', [tensors[1]!.name]: 'a.safetensors', [tensors[2]!.name]: 'b.safetensors' });
    await rejectsWith(openCheckpoint(d2), new RegExp(`tensor "${tensors[1]!.name.replace(/\./g, '\\.')}" is in more than one shard: a\\.safetensors, b\\.safetensors`));

    // a corrupt shard is reported with the shard's name
    const d3 = await newDir();
    await writeAux(d3);
    await fsp.writeFile(nodePath.join(d3, 's.safetensors'), new Uint8Array(20));
    await writeIndex(d3, { x: 's.safetensors' });
    await rejectsWith(openCheckpoint(d3), /s\.safetensors: header length 0 is too small/);
  });

  it('directory-level errors name the file', async () => {
    await rejectsWith(openCheckpoint(nodePath.join(root, 'nope')), /nope: checkpoint directory does not exist/);
    const d = await newDir();
    await rejectsWith(openCheckpoint(d), /config\.json: is missing/);
    await writeAux(d, { tokenizer: false });
    await writeSafetensors(nodePath.join(d, 'model.safetensors'), tinyTensors(4));
    await rejectsWith(openCheckpoint(d), /tokenizer\.json: is missing/);
    await (await openCheckpoint(d, { requireTokenizer: false })).close();
    await writeAux(d, { embodiments: '{"version": 1,' });
    await rejectsWith(openCheckpoint(d), /embodiments\.json: is not valid JSON/);
    await writeAux(d, { embodiments: '[1]' });
    await rejectsWith(openCheckpoint(d), /embodiments\.json: must hold a JSON object/);
    await writeAux(d, { preprocessor: { patch_size: 16 } });
    await rejectsWith(openCheckpoint(d), /preprocessor_config\.json: patch_size must equal config\.json vision_config\.patch_size \(got 16 and 4\)/);
    await fsp.rm(nodePath.join(d, 'preprocessor_config.json'));
    const bad = tinyConfigJson() as Record<string, Record<string, unknown>>;
    bad['text_config']!['num_key_value_heads'] = 3;
    await fsp.writeFile(nodePath.join(d, 'config.json'), JSON.stringify(bad));
    await rejectsWith(openCheckpoint(d), /config\.json: text_config\.num_key_value_heads must divide num_attention_heads \(got 3 and 2\)/);
    await fsp.writeFile(nodePath.join(d, 'config.json'), '{');
    await rejectsWith(openCheckpoint(d), /config\.json: is not valid JSON/);
  });
});

describe('weights/tiny (the shipped checkpoint)', () => {
  it('opens, validates and binds completely', async () => {
    const dir = fileURLToPath(new URL('../../weights/tiny', import.meta.url));
    const ck = await openCheckpoint(dir, { requireEmbodiments: true });
    try {
      const bound = ck.bind();
      const ignored = [...ck.tensors.keys()].filter((n) => n.startsWith('mtp.'));
      expect(bound.size + ignored.length).toBe(ck.tensors.size);
      console.log(`weights/tiny: ${ck.tensors.size} tensors (${ignored.length} mtp.* ignored), dtypes ${[...new Set([...ck.tensorInfos.values()].map((t) => t.dtype))].join('/')}`);
    } finally {
      await ck.close();
    }
  });
});

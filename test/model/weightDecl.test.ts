// The text and vision weight declarations (src/model/textWeights.ts, visionWeights.ts) flatten to exactly the
// expected-tensor list the hand-written textTensors/visionTensors produced before them (fixtures generated from
// that code at commit 4e57984: name, group, shape, optional — in order), for weights/tiny and the 4B preset; and a
// lazily bound tree reads each leaf from the store by its declared name.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseQvlaConfig, qwen35_4bConfig, type QvlaConfig } from '../../src/model/config.js';
import { expectedTensors, textTensors, type ExpectedTensor } from '../../src/model/expectedTensors.js';
import { bindTextWeights, textWeightDecl } from '../../src/model/textWeights.js';
import { bindVisionWeights, visionWeightDecl } from '../../src/model/visionWeights.js';
import { flattenDecl } from '../../src/model/weightDecl.js';
import type { WeightStore } from '../../src/model/weights.js';

const fmt = (l: ExpectedTensor[]): string[] => l.map((t) => `${t.name} ${t.group} [${t.shape.join(',')}]${t.optional ? ' optional' : ''}`);
const fixture = (name: string): string[] => readFileSync(`test/model/fixtures/expected_tensors.${name}.txt`, 'utf8').trimEnd().split('\n');
const tiny = (): QvlaConfig => parseQvlaConfig(JSON.parse(readFileSync('weights/tiny/config.json', 'utf8')), 'weights/tiny/config.json');

describe('weight declarations', () => {
  it('weights/tiny: the expected-tensor list is unchanged', () => {
    expect(fmt(expectedTensors(tiny()))).toEqual(fixture('tiny'));
  });

  it('4B preset: the expected-tensor list is unchanged, tied and untied', () => {
    const c = qwen35_4bConfig();
    const want = fixture('qwen35_4b');
    expect(fmt(expectedTensors(c))).toEqual(want);
    // untied: the same text list, lm_head required
    const text = want.filter((l) => l.startsWith('model.language_model.') || l.startsWith('lm_head.')).map((l) => l.replace(/ optional$/, ''));
    expect(fmt(textTensors(c.text, !c.tieWordEmbeddings))).toEqual(text);
  });

  it('every declared name is distinct', () => {
    const c = qwen35_4bConfig();
    const names = [...flattenDecl(textWeightDecl(c.text, false)), ...flattenDecl(visionWeightDecl(c.vision))].map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('bound trees read the store lazily by declared name (split leaves as parts, an absent optional head as null)', () => {
    const c = tiny();
    const reads: string[] = [];
    const store = {
      has: (n: string) => n !== 'lm_head.weight',
      get: (n: string) => (reads.push(`get ${n}`), { name: n }),
      parts: (n: string) => (reads.push(`parts ${n}`), [{ name: n }]),
    } as unknown as WeightStore;
    const T = bindTextWeights(textWeightDecl(c.text, true), store);
    const V = bindVisionWeights(visionWeightDecl(c.vision), store);
    expect(reads).toEqual([]); // nothing is read at binding
    const full = c.text.layerTypes.indexOf('full_attention');
    const lin = c.text.layerTypes.indexOf('linear_attention');
    const attn = T.layers[full].attn;
    const gdn = T.layers[lin].attn;
    if (attn.kind !== 'full_attention' || gdn.kind !== 'linear_attention') throw new Error('layer kinds');
    expect(attn.oProj.w).toEqual({ name: `model.language_model.layers.${full}.self_attn.o_proj.weight` });
    expect(gdn.aLog).toEqual({ name: `model.language_model.layers.${lin}.linear_attn.A_log` });
    expect(T.layers[0].mlp.down.w).toEqual({ name: 'model.language_model.layers.0.mlp.down_proj.weight' });
    expect(T.embedTokens).toEqual([{ name: 'model.language_model.embed_tokens.weight' }]);
    expect(T.lmHead).toBeNull();
    expect(V.blocks[0].attn.qkv.b).toEqual({ name: 'model.visual.blocks.0.attn.qkv.bias' });
    expect(reads).toEqual([
      `get model.language_model.layers.${full}.self_attn.o_proj.weight`,
      `get model.language_model.layers.${lin}.linear_attn.A_log`,
      'get model.language_model.layers.0.mlp.down_proj.weight',
      'parts model.language_model.embed_tokens.weight',
      'get model.visual.blocks.0.attn.qkv.bias',
    ]);
  });
});

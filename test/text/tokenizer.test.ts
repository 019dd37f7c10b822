// QvlaTokenizer on weights/tiny/tokenizer.json against ids from the Python reference tokenizer
// (test/fixtures/prompts.json, made by tools/reference/make_prompt_fixtures.py).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/io/errors.js';
import { QvlaTokenizer, SPECIAL_TOKENS } from '../../src/text/tokenizer.js';

const fixtures = JSON.parse(readFileSync('test/fixtures/prompts.json', 'utf8')) as {
  special_ids: Record<string, number>;
  cases: { kind: string; text: string; ids: number[]; decoded: string }[];
};

let tok: QvlaTokenizer;
beforeAll(async () => {
  tok = await QvlaTokenizer.load('weights/tiny');
});

describe('QvlaTokenizer', () => {
  it('special ids come from the file and match the Python reference', () => {
    for (const [name, s] of Object.entries(SPECIAL_TOKENS)) {
      expect(tok.specialIds[name as keyof typeof SPECIAL_TOKENS], s).toBe(fixtures.special_ids[s]);
    }
    expect(tok.specialIds.imagePad).toBe(3268);
    expect(tok.specialIds.imStart).toBe(3257);
    expect(tok.vocabSize).toBe(3282);
  });

  it('encodes like the Python reference and round-trips', () => {
    const cases = fixtures.cases.filter((c) => c.kind === 'encode');
    expect(cases.length).toBeGreaterThan(5);
    for (const c of cases) {
      expect(tok.encode(c.text), c.text).toEqual(c.ids);
      expect(tok.decode(c.ids)).toBe(c.decoded);
      expect(tok.decode(tok.encode(c.text))).toBe(c.text.normalize('NFC'));
    }
  });

  it('keeps " ." and " \'s" on decode (clean_up_tokenization_spaces off) and adds no BOS/EOS', () => {
    const s = "a . b , c 's d ?";
    expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.encode('user')).toEqual([872]);
    expect(tok.encode('\n')).toEqual([198]);
    expect(tok.encode('\n\n')).toEqual([271]);
    expect(tok.encode('')).toEqual([]);
    expect(tok.decode([])).toBe('');
  });

  it('specials are single tokens inside text; skipSpecialTokens drops them', () => {
    const ids = tok.encode('<|im_start|>user\nhi<|im_end|>');
    expect(ids[0]).toBe(tok.specialIds.imStart);
    expect(ids[ids.length - 1]).toBe(tok.specialIds.imEnd);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nhi');
  });

  it('tokenId finds tokens and names a missing one', () => {
    expect(tok.tokenId('<|vision_start|>')).toBe(tok.specialIds.visionStart);
    expect(tok.tokenId('user')).toBe(872);
    expect(() => tok.tokenId('<|no_such_token|>')).toThrow(/"<\|no_such_token\|>" is not in the vocabulary/);
  });

  it('decode rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([5, 999999])).toThrow(/999999/);
    expect(() => tok.decode([-1])).toThrow(/-1/);
  });

  it('load errors name the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qvla-tok-'));
    await expect(QvlaTokenizer.load(dir)).rejects.toThrow(CheckpointError);
    await expect(QvlaTokenizer.load(dir)).rejects.toThrow(join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    await expect(QvlaTokenizer.load(dir)).rejects.toThrow(/tokenizer\.json: is not valid JSON/);
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    await expect(QvlaTokenizer.load(dir)).rejects.toThrow(/tokenizer\.json: model is missing/);
    const j = JSON.parse(readFileSync('weights/tiny/tokenizer.json', 'utf8')) as { added_tokens: { content: string }[] };
    j.added_tokens = j.added_tokens.filter((t) => t.content !== '<think>');
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(j));
    await expect(QvlaTokenizer.load(dir)).rejects.toThrow(/special token "<think>" is not in the vocabulary/);
  });
});

describe('tokenizer.json id bounds', () => {
  it('rejects vocabulary ids outside the i32 range with a CheckpointError naming the field', async () => {
    const { readFileSync } = await import('node:fs');
    const { QvlaTokenizer } = await import('../../src/text/tokenizer.js');
    const json = JSON.parse(readFileSync(new URL('../../weights/tiny/tokenizer.json', import.meta.url), 'utf8'));
    const first = Object.keys(json.model.vocab)[0];
    json.model.vocab[first] = 1e308;
    expect(() => QvlaTokenizer.fromJson(json, 'tokenizer.json')).toThrow(/model\.vocab.*\[0, 2\^31\)/);
  });
});

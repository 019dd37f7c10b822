// chat() on a checkpoint whose vocab_size is padded beyond the tokenizer's ids (weights/tiny: 3328 logit rows,
// 3282 token ids; real Qwen3.5 checkpoints pad too): generation never picks a padded row, and the reply decodes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Policy } from '../../src/policy/policy.js';
import { pickToken } from '../../src/model/vlm.js';
import { Rng } from '../../src/util/rng.js';
import { QvlaTokenizer } from '../../src/text/tokenizer.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';

describe('pickToken with an allowed-id mask', () => {
  // 8 logit rows, only ids 0..4 decodable; the padded rows hold the largest logits.
  const logits = Float32Array.of(0.1, 0.5, 0.2, 0.3, 0.4, 9, 8, 7);
  const allowed = Uint8Array.of(1, 1, 1, 1, 1);

  it('greedy takes the argmax among the allowed ids only', () => {
    expect(pickToken(logits, {}, new Rng(0))).toBe(5);
    expect(pickToken(logits, { allowed }, new Rng(0))).toBe(1);
    // a hole inside the range is masked too
    expect(pickToken(logits, { allowed: Uint8Array.of(1, 0, 1, 1, 1) }, new Rng(0))).toBe(4);
  });

  it('sampling (temperature, top-k, top-p) never returns a masked id, even with NaN logits', () => {
    const rng = new Rng(7);
    const nan = Float32Array.of(NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN);
    for (let i = 0; i < 500; i++) {
      for (const o of [{ temperature: 1 }, { temperature: 50, topK: 7 }, { temperature: 5, topP: 0.99 }]) {
        expect(pickToken(logits, { ...o, allowed }, rng)).toBeLessThan(5);
        expect(pickToken(nan, { ...o, allowed }, rng)).toBeLessThan(5);
      }
    }
  });

  it('an all-zero mask is an error, not a silent pick', () => {
    expect(() => pickToken(logits, { allowed: new Uint8Array(8) }, new Rng(0))).toThrow(/no allowed token/);
  });
});

describe('chat() on weights/tiny (padded vocab_size)', () => {
  let policy: Policy;
  beforeAll(async () => { policy = await Policy.load(TINY_DIR); });
  afterAll(() => policy?.destroy());

  it('the config pads the vocabulary beyond the tokenizer', () => {
    expect(policy.config.text.vocabSize).toBeGreaterThan(policy.tokenizer.vocabSize);
  });

  // widowx_image_0 + this prompt made greedy decoding pick id 3298 (a padded row) within 24 tokens, and chat()
  // threw "token id 3298 is not in the vocabulary (size 3282)".
  it('greedy and sampled replies return text and only ids the tokenizer can decode', async () => {
    const image = path.join(TINY_DIR, 'samples', 'widowx_image_0.png');
    const V = policy.tokenizer.vocabSize;
    for (const opts of [{ maxNewTokens: 24 }, { maxNewTokens: 24, temperature: 3, seed: 1 }]) {
      const r = await policy.chat([{ role: 'user', content: 'What is on the table?' }], [image], opts);
      expect(typeof r.text).toBe('string');
      expect(r.tokens.length).toBeGreaterThan(0);
      for (const id of r.tokens) {
        expect(id).toBeLessThan(V);
        expect(policy.tokenizer.hasId(id)).toBe(true);
      }
      expect(r.text).toBe(policy.tokenizer.decode(r.tokens));
    }
  });
});

describe('QvlaTokenizer.decode of unknown ids', () => {
  it("throws by default and writes U+FFFD with unknown: 'replace'", async () => {
    const tok = await QvlaTokenizer.load(TINY_DIR);
    const ids = tok.encode('hello world');
    expect(() => tok.decode([...ids, tok.vocabSize + 16])).toThrow(/not in the vocabulary/);
    expect(tok.decode([...ids, tok.vocabSize + 16, -1, ...ids], { unknown: 'replace' })).toBe('hello world\uFFFD\uFFFDhello world');
    expect(tok.decode(ids, { unknown: 'replace' })).toBe('hello world');
    const mask = tok.decodableMask();
    expect(mask.length).toBe(tok.vocabSize);
    expect(mask.every((m, id) => m === (tok.hasId(id) ? 1 : 0))).toBe(true);
  });
});

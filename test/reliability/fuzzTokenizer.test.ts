// Fuzzing QvlaTokenizer.fromJson (tokenizer.json) with structurally mutated JSON: every input is rejected with
// a CheckpointError whose message starts with the file, or accepted as a tokenizer that has all the special
// tokens and encodes / decodes a probe text. Never another exception, never a hang.
// Most cases use a reduced copy of weights/tiny/tokenizer.json (first 400 vocabulary entries, the merges among
// them, every added token) so that building one takes ~1 ms; a few hundred use the full file.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/io/errors.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { QvlaTokenizer, SPECIAL_TOKENS } from '../../src/text/tokenizer.js';
import { keyNames, mutate, rng } from './mutate.js';

const FILE = 'tokenizer.json';
const full = JSON.parse(readFileSync(path.join(TINY_DIR, FILE), 'utf8')) as Record<string, any>;

function reduced(): Record<string, any> {
  const keep = new Map(Object.entries(full.model.vocab as Record<string, number>).filter(([, id]) => id < 400));
  const merges = (full.model.merges as [string, string][]).filter(([a, b]) => keep.has(a) && keep.has(b) && keep.has(a + b));
  return { ...full, model: { ...full.model, vocab: Object.fromEntries(keep), merges } };
}

const PROBE = 'pick up the red block <|im_end|> and 42 cups!';

function fuzzTokenizer(base: Record<string, any>, n: number, seed: number): { accepted: number; rejected: number; probeErrors: string[]; examples: string[] } {
  const r = rng(seed);
  const pool = [...keyNames({ ...base, model: { ...base.model, vocab: {} } })];
  const out = { accepted: 0, rejected: 0, probeErrors: [] as string[], examples: [] as string[] };
  for (let i = 0; i < n; i++) {
    const m = mutate(r, base, pool);
    let tok: QvlaTokenizer;
    try {
      tok = QvlaTokenizer.fromJson(m.value, FILE);
    } catch (e) {
      if (!(e instanceof CheckpointError)) {
        throw new Error(`case ${i} (${m.what}): threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} instead of a CheckpointError`);
      }
      if (!e.message.startsWith(`${FILE}: `)) throw new Error(`case ${i} (${m.what}): message does not name the file: ${e.message}`);
      out.rejected++;
      if (out.examples.length < 8 && i % 53 === 0) out.examples.push(`${m.what} → ${e.message.slice(0, 120)}`);
      continue;
    }
    out.accepted++;
    for (const s of Object.values(SPECIAL_TOKENS)) expect(tok.tokenId(s), s).toBeGreaterThanOrEqual(0);
    // An accepted tokenizer should encode and decode; when a mutation makes it fail at use time instead, the
    // error must at least be an Error (act() wraps it into PolicyError('instruction')).
    try {
      const ids = tok.encode(PROBE);
      tok.decode(ids);
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
      if (out.probeErrors.length < 5) out.probeErrors.push(`${m.what}: ${(e as Error).message.slice(0, 100)}`);
    }
  }
  return out;
}

describe('tokenizer.json fuzzing', () => {
  it('2,000 mutations of a reduced tiny tokenizer → CheckpointError or a working tokenizer', () => {
    const base = reduced();
    QvlaTokenizer.fromJson(base, FILE); // the reduced base itself is valid
    const o = fuzzTokenizer(base, 2000, 21);
    console.log(`tokenizer (reduced): ${o.rejected} rejected, ${o.accepted} accepted; use-time errors of accepted ones: ${o.probeErrors.length ? o.probeErrors.join(' | ') : 'none'}\n  ${o.examples.join('\n  ')}`);
    expect(o.rejected).toBeGreaterThan(200);
  });

  it('200 mutations of the full tiny tokenizer', () => {
    const o = fuzzTokenizer(full, 200, 22);
    console.log(`tokenizer (full): ${o.rejected} rejected, ${o.accepted} accepted`);
    expect(o.rejected + o.accepted).toBe(200);
  });

  it('non-object roots and JSON-level garbage', () => {
    for (const v of [null, undefined, 1, 'x', [], [full], true, { model: null }, { model: [] }, { model: { vocab: {}, merges: {} } }]) {
      expect(() => QvlaTokenizer.fromJson(v, FILE)).toThrow(CheckpointError);
    }
  });
});

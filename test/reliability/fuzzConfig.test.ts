// Fuzzing the JSON parsers of a checkpoint directory with thousands of structurally mutated inputs each:
// config.json (parseQvlaConfig), preprocessor_config.json (parsePreprocessorConfig) and embodiments.json
// (parseEmbodiments). Seeded, in memory. Every input is either rejected with a CheckpointError whose message
// starts with the file and names the field (e.field, which the message contains), or accepted with a result
// that satisfies the parser's invariants (for embodiments: unnormalising finite decoder outputs with a finite
// state gives finite actions). Never another exception; never prototype pollution.
// The safetensors header parser has its own fuzzer: test/io/fuzz.test.ts (2,400 cases).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/io/errors.js';
import { parsePreprocessorConfig, parseQvlaConfig, qwen35_4bConfigJson, type QvlaConfig } from '../../src/model/config.js';
import { actionMask, normalizeState, parseEmbodiments, unnormalizeActions, type EmbodimentRegistry } from '../../src/policy/embodiments.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { keyNames, mutate, rng, type Mutation } from './mutate.js';

const readJson = (f: string): unknown => JSON.parse(readFileSync(path.join(TINY_DIR, f), 'utf8'));

interface Outcome {
  accepted: number;
  rejected: number;
  namesMutatedField: number;
  examples: string[];
}

/**
 * Runs `n` mutated inputs through `parse`; `check` validates an accepted result. Throws (failing the test) on
 * any other exception type or an error that does not name its field.
 */
function fuzz<T>(name: string, file: string, base: unknown, n: number, seed: number, parse: (raw: unknown) => T, check: (v: T, m: Mutation) => void): Outcome {
  const r = rng(seed);
  const pool = [...keyNames(base)];
  const out: Outcome = { accepted: 0, rejected: 0, namesMutatedField: 0, examples: [] };
  for (let i = 0; i < n; i++) {
    const m = mutate(r, base, pool);
    let v: T;
    try {
      v = parse(m.value);
    } catch (e) {
      const where = `${name} case ${i} (${m.what})`;
      if (!(e instanceof CheckpointError)) {
        throw new Error(`${where}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} instead of a CheckpointError`);
      }
      if (!e.message.startsWith(`${file}: `)) throw new Error(`${where}: message does not start with the file: ${e.message}`);
      if (typeof e.field !== 'string' || e.field.length === 0 || !e.message.includes(e.field)) {
        throw new Error(`${where}: the error names no field: ${e.message}`);
      }
      out.rejected++;
      const last = m.path.split(/[.[\]]/).filter(Boolean).pop();
      if (m.path === '' || (last && e.message.includes(last))) out.namesMutatedField++;
      if (out.examples.length < 6 && i % 97 === 0) out.examples.push(`${m.what} → ${e.message.slice(0, 140)}`);
      continue;
    }
    try {
      check(v, m);
    } catch (e) {
      throw new Error(`${name} case ${i} (${m.what}) was accepted but the result is inconsistent: ${e instanceof Error ? e.message : String(e)}`);
    }
    out.accepted++;
  }
  expect(({} as Record<string, unknown>)['polluted'], 'prototype pollution').toBeUndefined();
  expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'value')).toBe(false);
  return out;
}

function report(name: string, o: Outcome): void {
  console.log(`${name}: ${o.rejected} rejected (${((100 * o.namesMutatedField) / Math.max(1, o.rejected)).toFixed(0)}% name the mutated key itself), ${o.accepted} accepted\n  ${o.examples.join('\n  ')}`);
}

/** Every number in a parsed config is finite, every size a positive integer where it must be. */
function checkConfig(c: QvlaConfig): void {
  const walk = (v: unknown, p: string) => {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new Error(`${p} is ${v}`);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${p}[${i}]`));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${p}.${k}`);
  };
  walk(c, 'config');
  const t = c.text;
  for (const [k, v] of Object.entries({ hidden: t.hiddenSize, layers: t.numHiddenLayers, heads: t.numAttentionHeads, kv: t.numKeyValueHeads, headDim: t.headDim, vocab: t.vocabSize })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`text ${k} = ${v}`);
  }
  if (t.layerTypes.length !== t.numHiddenLayers) throw new Error('layer_types length');
  if (t.numAttentionHeads % t.numKeyValueHeads !== 0) throw new Error('heads % kv');
  if (!Number.isInteger(c.vision.numGridPerSide)) throw new Error('vision grid');
  const ae = c.actionExpert;
  if (ae && (ae.hiddenSize !== ae.numHeads * ae.headDim || ae.hMax > ae.maxSeqLen)) throw new Error('action_expert sizes');
}

const LIMITS = { kMax: 16, sMax: 16, hMax: 16 };

/**
 * parseEmbodiments rejects statistics outside float32 range, but statistics near its edge (say a std of 1e35)
 * are accepted and can still overflow ±Inf for ordinary decoder outputs: Policy.act() refuses such actions with
 * its NaN guard (badInputs.test.ts). Registries with a statistic above F32_SAFE are counted here, not checked.
 */
let overflowingStats = 0;
const F32_SAFE = 1e30;

/** An accepted registry maps finite decoder outputs + a finite state to finite actions. */
function checkRegistry(reg: EmbodimentRegistry, m: Mutation): void {
  const r = rng(m.what.length);
  for (const key of reg.keys()) {
    const e = reg.get(key);
    const stats = [e.normalization.action, ...(e.normalization.state ? [e.normalization.state] : [])].flatMap((s) => [...s.a, ...s.b]);
    if (stats.some((x) => Math.abs(x) > F32_SAFE)) {
      overflowingStats++;
      continue;
    }
    if (e.action.names.length > LIMITS.kMax || e.control.chunk > LIMITS.hMax) throw new Error(`${key}: exceeds the limits`);
    const raw = new Float32Array(LIMITS.hMax * LIMITS.kMax).map(() => r() * 2.4 - 1.2);
    const mask = actionMask(e, LIMITS.hMax, LIMITS.kMax);
    for (let k = 0; k < raw.length; k++) raw[k] *= mask[k];
    const state = e.state ? e.state.names.map(() => r() * 10 - 5) : null;
    if (state) {
      // finite, or (tiny divisors) a RangeError naming the channel; never a silent ±Inf
      let ns: Float32Array | null = null;
      try {
        ns = normalizeState(e, state, LIMITS.sMax);
      } catch (err) {
        if (!(err instanceof RangeError && /state channel \d+ .* normalises to/.test(err.message))) throw err;
      }
      for (const v of ns ?? []) if (!Number.isFinite(v)) throw new Error(`${key}: normalised state not finite`);
    }
    const a = unnormalizeActions(e, raw, LIMITS.kMax, state);
    for (const v of a.actions) if (!Number.isFinite(v)) throw new Error(`${key}: non-finite action`);
  }
}

describe('parser fuzzing (config / preprocessor / embodiments)', () => {
  it('config.json: 3,000 mutations of weights/tiny/config.json → CheckpointError naming the field, or a consistent config', () => {
    const o = fuzz('config.json', 'config.json', readJson('config.json'), 3000, 11, (raw) => parseQvlaConfig(raw, 'config.json'), (c) => checkConfig(c));
    report('config.json (tiny)', o);
    expect(o.rejected).toBeGreaterThan(1500);
    expect(o.namesMutatedField / o.rejected).toBeGreaterThan(0.6);
  });

  it('config.json: 1,500 mutations of the Qwen3.5-4B + full decoder config', () => {
    const o = fuzz('config.json', 'config.json', qwen35_4bConfigJson(), 1500, 12, (raw) => parseQvlaConfig(raw, 'config.json'), (c) => checkConfig(c));
    report('config.json (4B)', o);
    expect(o.rejected).toBeGreaterThan(700);
  });

  it('preprocessor_config.json: 2,000 mutations', () => {
    const o = fuzz('preprocessor', 'preprocessor_config.json', readJson('preprocessor_config.json'), 2000, 13, (raw) => parsePreprocessorConfig(raw, 'preprocessor_config.json'), (p) => {
      if (!(p.minPixels >= 1 && p.minPixels <= p.maxPixels)) throw new Error('pixels');
      for (const x of [...p.imageMean, ...p.imageStd]) if (!Number.isFinite(x)) throw new Error('mean/std');
      if (p.imageStd.some((x) => !(x > 0))) throw new Error('std');
    });
    report('preprocessor_config.json', o);
    expect(o.rejected).toBeGreaterThan(500);
  });

  it('embodiments.json: 3,000 mutations of weights/tiny/embodiments.json → CheckpointError naming the field, or a registry that unnormalises to finite actions', () => {
    const o = fuzz('embodiments.json', 'embodiments.json', readJson('embodiments.json'), 3000, 14, (raw) => parseEmbodiments(raw, LIMITS, 'embodiments.json'), checkRegistry);
    report('embodiments.json', o);
    console.log(`embodiments.json: ${overflowingStats} accepted embodiment(s) with statistics above ${F32_SAFE} (not checked: act() guards their outputs)`);
    expect(o.rejected).toBeGreaterThan(1500);
    expect(o.namesMutatedField / o.rejected).toBeGreaterThan(0.6);
  });
});

// The one schema reader (src/util/schema.ts), the one error family (src/util/errors.ts), the server's one
// error → reply mapping (src/server/errors.ts) and the one percentile (src/bench/stats.ts).
import { describe, expect, it } from 'vitest';
import { SchemaReader } from '../../src/util/schema.js';
import { QvlaError } from '../../src/util/errors.js';
import { CheckpointError } from '../../src/io/errors.js';
import { RequestError } from '../../src/server/observation.js';
import { WireError } from '../../src/server/msgpack.js';
import { UsageError, parseArgs, parseIntList } from '../../src/cli/args.js';
import { BATCH_SPEC, workloadOptions } from '../../src/bench/batch.js';
import { SERVE_BENCH_SPEC } from '../../src/bench/serve.js';
import { GeneratorDirError } from '../../src/bench/makeCheckpoint.js';
import { PromptError } from '../../src/text/prompt.js';
import { ImageError } from '../../src/preprocess/image.js';
import { PolicyError } from '../../src/policy/policy.js';
import { GpuError } from '../../src/gpu/device.js';
import { errorReply, serverError } from '../../src/server/errors.js';
import { median, percentile } from '../../src/bench/stats.js';
import { parseQvlaConfig, qwen35_4bConfigJson, smallConfigJson, fullActionExpertJson } from '../../src/model/config.js';

const reader = (file = 'x.json') => new SchemaReader(file, { error: (field, msg) => new CheckpointError(`${field} ${msg}`, { file, field }) });

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('did not throw');
}

describe('SchemaReader', () => {
  it('reads typed fields with defaults and names the file and field path in every error', () => {
    const r = reader();
    const o = { a: 3, b: 'x', c: [1, 2], d: true, nested: { e: 'hwc' } };
    expect(r.int(o, 'a', '')).toBe(3);
    expect(r.int(o, 'zz', '', { def: 7 })).toBe(7);
    expect(r.num(o, 'a', '')).toBe(3);
    expect(r.bool(o, 'd', '')).toBe(true);
    expect(r.str(o, 'b', '')).toBe('x');
    expect(r.numbers(o, 'c', '', 2)).toEqual([1, 2]);
    expect(r.oneOf(r.object(o['nested'], 'nested'), 'e', 'nested', ['hwc', 'chw'] as const)).toBe('hwc');
    const e = caught(() => r.int({ n: { k: 'v' } }['n'] as Record<string, unknown>, 'k', 'n')) as CheckpointError;
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e).toBeInstanceOf(QvlaError);
    expect(e.message).toBe('x.json: n.k must be an integer, got "v"');
    expect([e.file, e.field, e.code, e.retryable]).toEqual(['x.json', 'n.k', 'checkpoint', false]);
    expect(() => r.int(o, 'a', '', { max: 2, maxName: 'h_max' })).toThrow('a is 3, over h_max 2');
    expect(() => r.int(o, 'a', '', { min: 0, max: 2 })).toThrow('a must be in [0, 2], got 3');
    expect(() => r.required(o, 'missing', 'p')).toThrow('p.missing is required but missing');
    expect(() => r.onlyKeys(o, ['a'], '')).toThrow('b is not a known field (allowed: a)');
    expect(() => r.oneOf({ v: 'gelu' }, 'v', 'cfg', ['silu'] as const, { supported: true })).toThrow('cfg.v must be "silu" (the only supported value), got "gelu"');
    expect(() => r.object([], '')).toThrow('(root) must be an object, got []');
  });

  it('the presets are data files and parse', () => {
    const big = qwen35_4bConfigJson();
    expect(parseQvlaConfig(big).text.numHiddenLayers).toBe(32);
    (big['text_config'] as Record<string, unknown>)['hidden_size'] = 1; // a fresh copy per call
    expect((qwen35_4bConfigJson()['text_config'] as Record<string, unknown>)['hidden_size']).toBe(2560);
    expect(parseQvlaConfig(smallConfigJson()).vision.depth).toBe(12);
    expect(fullActionExpertJson(1024)['d_vlm']).toBe(1024);
  });
});

describe('QvlaError family', () => {
  it('every purposeful error class is a QvlaError with a code, keeping its name', () => {
    const all: [QvlaError, string, string][] = [
      [new CheckpointError('bad', { file: 'f' }), 'CheckpointError', 'checkpoint'],
      [new RequestError('bad', 'steps'), 'RequestError', 'invalid_request'],
      [new WireError('bad', 'k'), 'WireError', 'bad_frame'],
      [new UsageError('bad'), 'UsageError', 'usage'],
      [new GeneratorDirError('/d', 'not empty'), 'GeneratorDirError', 'generator_dir'],
      [new PromptError('bad'), 'PromptError', 'prompt'],
      [new ImageError('bad'), 'ImageError', 'image'],
    ];
    for (const [e, name, code] of all) {
      expect(e).toBeInstanceOf(QvlaError);
      expect([e.name, e.code, e.retryable]).toEqual([name, code, false]);
    }
  });

  it('the server maps errors to replies in one place', () => {
    expect(errorReply(new RequestError('must be an integer', 'steps'))).toEqual({ message: 'must be an integer', field: 'steps', outcome: 'invalid', retryable: false });
    expect(errorReply(new PolicyError('unknown embodiment', 'embodiment'))).toEqual({ message: 'unknown embodiment', field: 'embodiment', outcome: 'invalid', retryable: false });
    expect(errorReply(new GpuError('gone', 'lost'))).toMatchObject({ outcome: 'device_lost', retryable: true });
    expect(errorReply(serverError('busy', 'server busy'))).toEqual({ message: 'server busy', field: null, outcome: 'busy', retryable: true });
    expect(errorReply(serverError('draining', 'bye'))).toMatchObject({ outcome: 'draining', retryable: true });
    expect(errorReply(new GpuError('oops', 'validation'))).toBeNull();
    expect(errorReply(new TypeError('a bug'))).toBeNull();
  });
});

describe('percentile', () => {
  it('interpolates linearly between ranks (numpy "linear")', () => {
    expect(percentile([], 50)).toBeNaN();
    expect(percentile([5], 99)).toBe(5);
    expect(percentile([4, 1, 3, 2], 50)).toBe(2.5);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(percentile([0, 10], 99)).toBeCloseTo(9.9, 12);
    expect(percentile([1, 2, 3, 4, 5], 0)).toBe(1);
    expect(percentile([1, 2, 3, 4, 5], 100)).toBe(5);
  });

  it('integer lists for --batch / --clients', () => {
    expect(parseIntList('1, 8,32', '--batch')).toEqual([1, 8, 32]);
    expect(() => parseIntList('1,0', '--clients', 1, 256)).toThrow('--clients: value 1 (0) must be an integer in [1, 256]');
    expect(() => parseIntList('2.5', '--batch')).toThrow(UsageError);
  });

  it('bench batch and serve read the same workload options', () => {
    for (const spec of [BATCH_SPEC, SERVE_BENCH_SPEC]) {
      const o = workloadOptions(parseArgs(spec, ['--steps', '3', '--image-size', '64', '--weight-dtype', 'f16', '--json', 'r.json']));
      expect(o).toEqual({ steps: 3, imageSize: 64, checkpoint: undefined, weightDtype: 'f16', json: 'r.json' });
    }
  });
});

// The Prometheus text writer (src/server/metrics.ts) on its own: escaping, histogram layout, name rules; every
// rendering goes through the strict parser of promParse.ts. No GPU.
import { describe, expect, it } from 'vitest';
import { Registry, formatValue, escapeLabelValue } from '../../src/server/metrics.js';
import { parseExposition, sampleValue } from './promParse.js';

describe('metrics writer', () => {
  it('renders counters, gauges and labelled histograms that the strict parser accepts, with the values put in', () => {
    const r = new Registry();
    const c = r.counter('t_requests_total', 'Requests.\nSecond line with a \\ backslash.', ['outcome']).init({ outcome: 'ok' }, { outcome: 'bad' });
    const g = r.gauge('t_depth', 'Depth.');
    const h = r.histogram('t_latency_seconds', 'Latency.', [0.01, 0.1, 1], ['stage']).init({ stage: 'a' });
    c.inc({ outcome: 'ok' });
    c.inc({ outcome: 'ok' }, 2);
    c.inc({ outcome: 'we"ird\\la\nbel' });
    g.set(-1.5);
    for (const v of [0.005, 0.01, 0.05, 2, 0.5]) h.observe(v, { stage: 'a' });
    h.observe(0.2, { stage: 'b' });
    const text = r.render();
    const f = parseExposition(text);
    expect(f.get('t_requests_total')!.help).toBe('Requests.\nSecond line with a \\ backslash.');
    expect(sampleValue(f, 't_requests_total', { outcome: 'ok' })).toBe(3);
    expect(sampleValue(f, 't_requests_total', { outcome: 'bad' })).toBe(0);
    expect(sampleValue(f, 't_requests_total', { outcome: 'we"ird\\la\nbel' })).toBe(1);
    expect(sampleValue(f, 't_depth')).toBe(-1.5);
    expect(sampleValue(f, 't_latency_seconds_bucket', { stage: 'a', le: '0.01' })).toBe(2); // le is inclusive
    expect(sampleValue(f, 't_latency_seconds_bucket', { stage: 'a', le: '0.1' })).toBe(3);
    expect(sampleValue(f, 't_latency_seconds_bucket', { stage: 'a', le: '1' })).toBe(4);
    expect(sampleValue(f, 't_latency_seconds_bucket', { stage: 'a', le: '+Inf' })).toBe(5);
    expect(sampleValue(f, 't_latency_seconds_count', { stage: 'a' })).toBe(5);
    expect(sampleValue(f, 't_latency_seconds_sum', { stage: 'a' })).toBeCloseTo(2.565, 12);
    expect(sampleValue(f, 't_latency_seconds_count', { stage: 'b' })).toBe(1);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('formats Go floats and escapes label values', () => {
    expect([Infinity, -Infinity, NaN, 0, 1e-7, 123.5].map(formatValue)).toEqual(['+Inf', '-Inf', 'NaN', '0', '1e-7', '123.5']);
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
  });

  it('refuses bad names, reserved labels, duplicate families, unknown labels and shrinking counters', () => {
    const r = new Registry();
    expect(() => r.counter('1bad', 'x')).toThrow(/metric name/);
    expect(() => r.gauge('ok_name', 'x', ['__reserved'])).toThrow(/label name/);
    expect(() => r.histogram('h', 'x', [1, 2], ['le'])).toThrow(/reserved/);
    expect(() => r.histogram('h2', 'x', [2, 1])).toThrow(/increasing/);
    r.histogram('lat', 'x', [1]);
    expect(() => r.counter('lat_count', 'x')).toThrow(/twice/);
    const c = r.counter('c_total', 'x', ['a']);
    expect(() => c.inc({ b: '1' })).toThrow(/unknown label/);
    expect(() => c.inc({ a: '1' }, -1)).toThrow(/only grow/);
  });

  it('the strict parser itself refuses what Prometheus refuses', () => {
    expect(() => parseExposition('x 1')).toThrow(/newline/);
    expect(() => parseExposition('x 1\n')).toThrow(/no TYPE/);
    expect(() => parseExposition('# TYPE x counter\nx -1\n')).toThrow(/counter/);
    expect(() => parseExposition('# TYPE x gauge\nx{a="\\q"} 1\n')).toThrow(/escape/);
    expect(() => parseExposition('# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n')).toThrow(/contiguous/);
    expect(() => parseExposition('# TYPE x gauge\nx 1\nx 2\n')).toThrow(/duplicate/);
    expect(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/cumulative/);
    expect(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n')).toThrow(/\+Inf/);
    expect(() => parseExposition('# TYPE x gauge\nx one\n')).toThrow(/float/);
  });
});

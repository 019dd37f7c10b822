// dawn.node's GPU-wait polling, spin-then-defer (src/gpu/dawnPolling.ts): the rule against a fake clock and a fake
// poller, the global install / restore, and a real readback with the wrapper installed.
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_SPIN_MS, isDawnPollCallback, makeThrottledSetImmediate, restoreDawnPolling, throttleDawnPolling, type PollCounters,
} from '../../src/gpu/dawnPolling.js';
import { Gpu } from '../../src/gpu/device.js';

/** A scheduler that records what went where and runs nothing until told. */
function harness(spinMs: number) {
  let clock = 0;
  /** what reached the stock setImmediate: [callback, ...args] */
  const immediate: unknown[][] = [];
  const deferred: (() => void)[] = [];
  const counters: PollCounters = { immediate: 0, deferred: 0 };
  const poll = Object.assign((..._a: unknown[]) => undefined, { isPoll: true });
  const stock = (fn: (...a: unknown[]) => void, ...args: unknown[]) => {
    if ((fn as { isPoll?: boolean }).isPoll) throw new Error('a poll callback reached stock unwrapped');
    immediate.push([fn, ...args]);
    return 'stock';
  };
  const si = makeThrottledSetImmediate(stock, {
    spinMs: () => spinMs,
    isPoll: (f) => (f as { isPoll?: boolean }).isPoll === true,
    now: () => clock,
    defer: (run) => (deferred.push(run), 'timer'),
    counters,
  });
  return { si, immediate, deferred, counters, poll, advance: (ms: number) => (clock += ms) };
}

describe('spin-then-defer polling', () => {
  afterEach(() => restoreDawnPolling());

  it('re-arms at once for the first spinMs of a wait, then defers, and starts over after the wait ends', () => {
    const h = harness(1);
    // a poller that re-arms itself `left` more times (what dawn.node does while a promise is pending), 0.3 ms per poll
    let left = 6;
    const pollFn = Object.assign(() => {
      h.advance(0.3);
      if (left-- > 0) h.si(pollFn);
    }, { isPoll: true });
    h.si(pollFn);
    let runs = 0;
    for (;;) {
      const next = (h.immediate.shift()?.[0] as (() => void) | undefined) ?? h.deferred.shift();
      if (!next) break;
      runs++;
      next();
    }
    // polls armed at t = 0, 0.3, 0.6, 0.9 (< 1 ms: at once), 1.2, 1.5, 1.8 (deferred)
    expect(h.counters).toEqual({ immediate: 4, deferred: 3 });
    expect(runs).toBe(7);
    // the wait ended (the last run did not re-arm): the next wait spins first again
    h.si(h.poll);
    expect(h.counters.immediate).toBe(5);
    expect(h.immediate.length).toBe(1);
  });

  it('spinMs 0 defers every poll; other callbacks go to the stock setImmediate with their arguments', () => {
    const h = harness(0);
    h.si(h.poll);
    expect(h.counters).toEqual({ immediate: 0, deferred: 1 });
    const f = (a: number, b: string) => [a, b];
    expect(h.si(f as never, 1, 'x')).toBe('stock');
    expect(h.immediate).toEqual([[f, 1, 'x']]);
  });

  it("recognises dawn.node's poll callback: native and unnamed only", () => {
    expect(isDawnPollCallback(Function.prototype)).toBe(true); // native, unnamed: the shape of a Napi::Function
    expect(isDawnPollCallback(() => undefined)).toBe(false);
    expect(isDawnPollCallback(function named() {}.bind(null))).toBe(false); // "bound named"
    expect(isDawnPollCallback((() => undefined).bind(null))).toBe(false); // "bound "
    expect(isDawnPollCallback(Math.max)).toBe(false);
    expect(isDawnPollCallback('not a function')).toBe(false);
  });

  it('installs once over the global setImmediate, keeps promisify working, and restores it', async () => {
    const stock = globalThis.setImmediate;
    const c1 = throttleDawnPolling();
    const wrapped = globalThis.setImmediate;
    expect(wrapped).not.toBe(stock);
    expect(throttleDawnPolling({ spinMs: 2 })).toBe(c1); // idempotent
    expect(globalThis.setImmediate).toBe(wrapped);
    expect(await promisify(setImmediate)('value')).toBe('value');
    const got = await new Promise((r) => setImmediate((a: number, b: number) => r(a + b), 2, 3));
    expect(got).toBe(5);
    expect(() => throttleDawnPolling({ spinMs: -1 })).toThrow(/spinMs/);
    restoreDawnPolling();
    expect(globalThis.setImmediate).toBe(stock);
    expect(DEFAULT_SPIN_MS).toBeGreaterThan(0);
  });

  it('a GPU readback completes with the wrapper installed, and its polls went through it', async () => {
    const counters = throttleDawnPolling();
    const before = counters.immediate + counters.deferred;
    const gpu = await Gpu.create();
    try {
      const n = 1 << 16;
      const src = gpu.device.createBuffer({ size: n * 4, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      const dst = gpu.device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const data = Float32Array.from({ length: n }, (_, i) => i * 0.5);
      gpu.device.queue.writeBuffer(src, 0, data);
      const enc = gpu.device.createCommandEncoder();
      enc.copyBufferToBuffer(src, 0, dst, 0, n * 4);
      gpu.device.queue.submit([enc.finish()]);
      await dst.mapAsync(GPUMapMode.READ);
      expect(new Float32Array(dst.getMappedRange().slice(0))).toEqual(data);
      dst.unmap();
      expect(counters.immediate + counters.deferred).toBeGreaterThan(before);
    } finally {
      gpu.destroy();
    }
  });
});

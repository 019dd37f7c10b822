// Device loss: a call in flight fails promptly with GpuError kind 'lost' (never a hang, never a crash), even
// when the lost device leaves mapAsync / onSubmittedWorkDone pending forever; the policy then recovers
// (automatically on the next call when it owns its device, or through recover()) and reproduces the actions
// of before the loss bit for bit. The loss is simulated with GPUDevice.destroy().
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Gpu, GpuError } from '../../src/gpu/device.js';
import { Policy, PolicyError, type ActRequest } from '../../src/policy/policy.js';
import { decodeImageFile, type RawImage } from '../../src/preprocess/image.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { openFds, sameBits, within } from './helpers.js';

let policy: Policy;
let widowx: ActRequest;
const nav: ActRequest = { instruction: 'go to the door', embodiment: 'nav', steps: 2, seed: 7 };
let refW: Float32Array;
let refN: Float32Array;

beforeAll(async () => {
  policy = await Policy.load(TINY_DIR);
  const img: RawImage = await decodeImageFile(path.join(TINY_DIR, 'samples', 'widowx_image_0.png'));
  widowx = { instruction: 'put the red block in the blue bowl', embodiment: 'widowx', images: [img], state: [0.1, -0.3, 0.6, -0.9, 0.2, 0, 0, 0.7], steps: 3, seed: 42 };
  refW = (await policy.act(widowx)).raw;
  refN = (await policy.act(nav)).raw;
});
afterAll(() => policy?.destroy());

function expectLost(e: unknown, during: boolean): GpuError {
  expect(e).toBeInstanceOf(GpuError);
  const g = e as GpuError;
  expect(g.kind).toBe('lost');
  expect(g.message).toMatch(during ? /GPU device was lost during the call/ : /GPU device was lost/);
  expect(g.message).toMatch(/recover\(/);
  return g;
}

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

describe('device loss', () => {
  it('mid-call (device.destroy() from a timer): that call rejects with GpuError lost at once; the next call recovers by itself, bit-identical', async () => {
    const gpu0 = policy.gpu;
    let lostAt = 0;
    const timer = setTimeout(() => {
      lostAt = performance.now();
      gpu0.device.destroy();
    }, 300);
    // 1000 steps take minutes on any adapter we test on: the loss certainly comes mid-call
    const err = await within(policy.act({ ...nav, steps: 1000 }).then(() => null, (e: unknown) => e), 60_000, 'act() during a device loss');
    clearTimeout(timer);
    expect(lostAt).toBeGreaterThan(0);
    expectLost(err, true);
    expect(performance.now() - lostAt, 'rejection delay after the loss (ms)').toBeLessThan(5_000);
    expect(policy.deviceLost).toBe(true);
    expect(policy.stats.deviceLosses).toBe(1);

    const r = await policy.act(widowx);
    expect(policy.gpu).not.toBe(gpu0);
    expect(policy.deviceLost).toBe(false);
    expect(policy.stats.recoveries).toBe(1);
    expect(sameBits(r.raw, refW), 'same seed → same actions after recovery').toBe(true);
    expect(sameBits((await policy.act(nav)).raw, refN)).toBe(true);
  });

  it('mid-denoising with waits that never settle (hanging onSubmittedWorkDone and mapAsync): still rejects, no hang', async () => {
    const g = policy.gpu;
    const origSync = g.sync.bind(g);
    const proto = (globalThis as unknown as { GPUBuffer: { prototype: { mapAsync: unknown } } }).GPUBuffer.prototype;
    const origMap = proto.mapAsync;
    let syncs = 0;
    let lostAt = 0;
    // stageTimings syncs after every stage and every step: lose the device at the 5th (inside the denoising loop)
    g.sync = async () => {
      if (++syncs === 5) {
        lostAt = performance.now();
        g.device.destroy();
        // what a lost device is allowed to do: leave these pending forever
        (g.device.queue as { onSubmittedWorkDone: () => Promise<undefined> }).onSubmittedWorkDone = never;
        proto.mapAsync = never;
      }
      return origSync();
    };
    try {
      const err = await within(policy.act({ ...widowx, steps: 20 }).then(() => null, (e: unknown) => e), 30_000, 'act() with hanging waits');
      expectLost(err, true);
      expect(syncs).toBeGreaterThanOrEqual(5);
      expect(performance.now() - lostAt).toBeLessThan(5_000);
    } finally {
      proto.mapAsync = origMap;
    }
    const r = await policy.act(widowx);
    expect(sameBits(r.raw, refW)).toBe(true);
    expect(policy.stats.recoveries).toBe(2);
  });

  it('between calls: the next act() recovers first and succeeds; chat() recovers the same way', async () => {
    const chat0 = await policy.chat([{ role: 'user', content: 'what is on the table?' }], [], { maxNewTokens: 2 });
    policy.gpu.device.destroy();
    const r = await policy.act(widowx);
    expect(sameBits(r.raw, refW)).toBe(true);
    policy.gpu.device.destroy();
    const chat1 = await policy.chat([{ role: 'user', content: 'what is on the table?' }], [], { maxNewTokens: 2 });
    expect(chat1.tokens).toEqual(chat0.tokens);
    expect(policy.stats.recoveries).toBe(4);
  });

  it('recover() on a healthy policy is a fresh start; repeated loss/recovery leaks no file handles or listeners', async () => {
    const fds = openFds();
    for (let k = 0; k < 2; k++) {
      await policy.recover();
      policy.gpu.device.destroy();
      await policy.recover();
    }
    const r = await policy.act(widowx);
    expect(sameBits(r.raw, refW)).toBe(true);
    expect(openFds()).toBeLessThanOrEqual(fds);
    // every guard() wait removes its listener when it settles
    expect((policy.gpu as unknown as { lostListeners: Set<unknown> }).lostListeners.size).toBe(0);
  });

  it('a failed recovery (no adapter) is reported and retried by the next call', async () => {
    const create = Gpu.create;
    policy.gpu.device.destroy();
    (Gpu as { create: typeof Gpu.create }).create = async () => { throw new GpuError('No WebGPU adapter found (simulated)', 'adapter'); };
    try {
      await expect(policy.act(nav)).rejects.toThrow(/No WebGPU adapter found \(simulated\)/);
      await expect(policy.act(nav)).rejects.toThrow(/No WebGPU adapter found/);
    } finally {
      (Gpu as { create: typeof Gpu.create }).create = create;
    }
    expect(sameBits((await policy.act(nav)).raw, refN)).toBe(true);
  });

  it('recover() refuses to run concurrently with act()', async () => {
    const p = policy.act(nav);
    await expect(policy.recover()).rejects.toThrow(PolicyError);
    await p;
  });
});

describe('device loss with autoRecover off or a caller-supplied Gpu', () => {
  it('autoRecover: false → GpuError lost naming recover() until recover() is called; then bit-identical', async () => {
    const p = await Policy.load(TINY_DIR, { autoRecover: false });
    try {
      expect(sameBits((await p.act(nav)).raw, refN)).toBe(true);
      p.gpu.device.destroy();
      for (let k = 0; k < 2; k++) {
        const e = await within(p.act(nav).then(() => null, (x: unknown) => x), 10_000, 'act() on a lost device');
        expect(expectLost(e, false).message).toMatch(/autoRecover is off/);
      }
      await p.recover();
      expect(sameBits((await p.act(nav)).raw, refN)).toBe(true);
    } finally {
      p.destroy();
    }
    await expect(p.act(nav)).rejects.toThrow(/destroyed/);
  });

  it('caller-supplied Gpu: the error says to pass a new Gpu; recover() without one refuses; recover(gpu) works', async () => {
    const gpu = await Gpu.create();
    const p = await Policy.load(TINY_DIR, { gpu });
    let gpu2: Gpu | null = null;
    try {
      const timer = setTimeout(() => gpu.device.destroy(), 200);
      const e = await within(p.act({ ...nav, steps: 1000 }).then(() => null, (x: unknown) => x), 60_000, 'act() during a device loss');
      clearTimeout(timer);
      expect(expectLost(e, true).message).toMatch(/caller-supplied Gpu/);
      await expect(p.act(nav)).rejects.toThrow(/caller-supplied Gpu/); // no autoRecover with a borrowed device
      await expect(p.recover()).rejects.toThrow(/caller-supplied Gpu/);
      gpu2 = await Gpu.create();
      await p.recover(gpu2);
      expect(p.gpu).toBe(gpu2);
      expect(sameBits((await p.act(nav)).raw, refN)).toBe(true);
    } finally {
      p.destroy();
      expect(gpu2?.isLost ?? false, 'the policy does not destroy a Gpu it was given').toBe(false);
      gpu2?.destroy();
      gpu.destroy();
    }
  });
});

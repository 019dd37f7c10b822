// Policy.actBatch on weights/tiny: every row bit-identical to act() on that request alone (mixed embodiments,
// camera counts, text-only rows, prompt lengths, solvers, step counts, grids, seeds and caller noise; any batch
// composition and order), equal batches allocate no new GPU buffers, and errors name the request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Policy, PolicyError, type ActRequest, type ActResult } from '../../src/policy/policy.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { Rng } from '../../src/util/rng.js';

let policy: Policy;
beforeAll(async () => { policy = await Policy.load(TINY_DIR); });
afterAll(() => policy?.destroy());

const sample = (name: string) => path.join(TINY_DIR, 'samples', `${name}.png`);
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

const widowx = (instruction: string, seed: number, state: number[], extra: Partial<ActRequest> = {}): ActRequest => ({
  images: [sample('widowx_image_0')], instruction, embodiment: 'widowx', state, seed, steps: 4, ...extra,
});

const ROWS: ActRequest[] = [
  widowx('put the red block in the blue bowl', 0, [0.1, -0.3, 0.6, -0.9, 0.2, 0, 0, 0.7]),
  { instruction: 'go to the door', embodiment: 'nav', steps: 3, seed: 7 },
  {
    instruction: 'fold the towel', embodiment: 'aloha', steps: 2, solver: 'heun', seed: 3, state: new Array(14).fill(0.1),
    images: { cam_high: sample('aloha_cam_high'), cam_left_wrist: sample('aloha_cam_left_wrist'), cam_right_wrist: sample('aloha_cam_right_wrist') },
  },
  widowx('pick up the spoon and place it next to the plate on the left', 5, [0.2, -0.1, 0.5, -0.8, 0.1, 0.1, 0, 0.3]),
  { instruction: 'turn left at the end of the hallway and stop in front of the red chair', embodiment: 'nav', steps: 2, solver: 'rk4', seed: 1, returnTrajectory: true },
  widowx('open the drawer', 9, [0, 0, 0, 0, 0, 0, 0, 0.5], { solver: 'midpoint', steps: 3, grid: 'cosine', noise: new Rng(42).normals(16 * 16) }),
];

function expectSame(got: ActResult, want: ActResult, what: string): void {
  expect(bits(got.raw), `${what}: raw`).toEqual(bits(want.raw));
  expect(bits(got.actions.actions), `${what}: actions`).toEqual(bits(want.actions.actions));
  expect(got.actions.waypoints, `${what}: waypoints`).toEqual(want.actions.waypoints);
  for (const k of ['embodiment', 'steps', 'solver', 'evaluations', 'seed', 'promptTokens'] as const) expect(got[k], `${what}: ${k}`).toEqual(want[k]);
  expect(got.timings.stepMs).toHaveLength(want.steps);
  expect(got.trajectory?.length).toBe(want.trajectory?.length);
  want.trajectory?.forEach((t, n) => expect(bits(got.trajectory![n]), `${what}: trajectory[${n}]`).toEqual(bits(t)));
}

describe('actBatch', () => {
  it('every row is bit-identical to act() alone, whatever the batch composition and order', async () => {
    const alone: ActResult[] = [];
    for (const r of ROWS) alone.push(await policy.act(r));
    // the rows really differ (prompt lengths, embodiments), so identity is not trivial
    expect(new Set(alone.map((r) => r.promptTokens)).size).toBeGreaterThanOrEqual(5);
    const batch = await policy.actBatch(ROWS);
    expect(batch).toHaveLength(ROWS.length);
    batch.forEach((r, i) => expectSame(r, alone[i], `row ${i}`));
    // another composition: a subset, reordered, with a duplicate
    const order = [3, 0, 2, 3];
    const again = await policy.actBatch(order.map((i) => ROWS[i]));
    again.forEach((r, k) => expectSame(r, alone[order[k]], `reordered row ${k} (= ${order[k]})`));
    // split into passes of ≤ 300 prompt tokens
    policy.options.maxBatchTokens = 300;
    try {
      const split = await policy.actBatch(ROWS);
      split.forEach((r, i) => expectSame(r, alone[i], `row ${i} (passes of ≤ 300 tokens)`));
    } finally {
      delete policy.options.maxBatchTokens;
    }
  });

  it('a steady loop of equal batches allocates no new GPU buffers', async () => {
    const reqs = [0, 1, 3].map((i) => ({ ...ROWS[i], returnTrajectory: false }));
    for (let k = 0; k < 2; k++) await policy.actBatch(reqs.map((r, i) => ({ ...r, seed: k * 10 + i })));
    const created = policy.gpu.buffers.stats.created;
    const staging = policy.gpu.stream.stats.stagingCreated;
    for (let k = 0; k < 3; k++) await policy.actBatch(reqs.map((r, i) => ({ ...r, seed: 100 + k * 10 + i })));
    expect(policy.gpu.buffers.stats.created).toBe(created);
    expect(policy.gpu.stream.stats.stagingCreated).toBe(staging);
    expect(policy.gpu.buffers.stats.live).toBeLessThan(created);
  });

  it('errors name the request; an empty batch is empty; the policy stays usable', async () => {
    expect(await policy.actBatch([])).toEqual([]);
    await expect(policy.actBatch('nope' as never)).rejects.toBeInstanceOf(PolicyError);
    const bad: [ActRequest, RegExp, string][] = [
      [{ ...ROWS[0], state: [1, 2] }, /^requests\[1\]\.state: /, 'requests[1].state'],
      [{ ...ROWS[0], embodiment: 'spaceship' }, /^requests\[1\]: .*unknown embodiment "spaceship"/, 'requests[1]'],
      [{ ...ROWS[0], steps: 0 }, /^requests\[1\]\.steps: /, 'requests[1].steps'],
      [{ ...ROWS[0], images: [{ width: 4, height: 4, channels: 3, data: new Uint8Array(5) }] }, /^requests\[1\]\.images\[0\]: /, 'requests[1].images[0]'],
    ];
    for (const [req, re, field] of bad) {
      const e = await policy.actBatch([ROWS[1], req]).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(PolicyError);
      expect((e as PolicyError).message).toMatch(re);
      expect((e as PolicyError).field).toBe(field);
    }
    // act() keeps its unprefixed field names
    await expect(policy.act({ ...ROWS[0], steps: 0 })).rejects.toThrow(/^steps: /);
    const [ok] = await policy.actBatch([ROWS[1]]);
    expect(ok.actions.waypoints).toHaveLength(policy.embodiment('nav').control.chunk);
  });

  it('calls are serialised: actBatch while act() runs is refused', async () => {
    const running = policy.act(ROWS[1]);
    await expect(policy.actBatch([ROWS[1]])).rejects.toThrow(/already running/);
    await running;
  });
});

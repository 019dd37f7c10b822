// The server's batching queue (src/server/batcher.ts) against a fake policy: no GPU, timings in ms.
import { describe, expect, it } from 'vitest';
import { Batcher, type JobOutcome } from '../../src/server/batcher.js';
import { GpuError } from '../../src/gpu/device.js';
import { PolicyError, type ActRequest, type ActResult, type Policy } from '../../src/policy/policy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A policy whose act / actBatch take `ms` and return each request's seed as its result; `fail(req)` throws. */
function fakePolicy(ms: number, fail?: (r: ActRequest) => Error | null) {
  const calls: number[] = [];
  let running = 0;
  let overlap = false;
  const one = (r: ActRequest) => {
    const e = fail?.(r);
    if (e) throw e;
    return { seed: r.seed } as unknown as ActResult;
  };
  const p = {
    async act(r: ActRequest) {
      calls.push(1);
      if (running++) overlap = true;
      await sleep(ms);
      running--;
      return one(r);
    },
    async actBatch(rs: ActRequest[]) {
      calls.push(rs.length);
      if (running++) overlap = true;
      await sleep(ms);
      running--;
      return rs.map(one);
    },
  };
  return { policy: p as unknown as Policy, calls, overlap: () => overlap };
}

const req = (seed: number): ActRequest => ({ instruction: 'x', embodiment: 'e', seed });

describe('Batcher', () => {
  it('batches what arrives while the GPU is busy, caps at maxBatch, never overlaps calls, keeps FIFO order', async () => {
    const f = fakePolicy(30);
    const b = new Batcher(f.policy, { maxBatch: 4, maxWaitMs: 5 });
    const outs = await Promise.all(Array.from({ length: 9 }, (_, i) => b.submit(req(i))));
    expect(outs.map((o) => (o.ok ? (o.result as unknown as { seed: number }).seed : -1))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(f.calls).toEqual([4, 4, 1]); // submitted in one tick: no wait needed, batches of ≤ 4
    expect(f.overlap()).toBe(false);
    expect(b.pending).toBe(0);
  });

  it('closed-loop clients merge into one batch per turn (the wait counts from the end of the previous batch)', async () => {
    const C = 6;
    const f = fakePolicy(60);
    const b = new Batcher(f.policy, { maxBatch: 16, maxWaitMs: 40 }); // slack for a loaded machine's timers
    const client = async (k: number) => {
      await sleep(k * 35); // staggered start: without the rule, the first request runs alone and the rest form a second cohort
      for (let j = 0; j < 8; j++) {
        await b.submit(req(k * 100 + j));
        await sleep(2); // client turnaround
      }
    };
    await Promise.all(Array.from({ length: C }, (_, k) => client(k)));
    // after the staggered start, every turn carries all C clients (old rule: two cohorts, mean batch ≈ C/2)
    const full = f.calls.filter((n) => n === C).length;
    expect(full, `batch sizes ${f.calls.join(',')}`).toBeGreaterThanOrEqual(4);
    expect(f.calls.length, `batch sizes ${f.calls.join(',')}`).toBeLessThanOrEqual((C * 8) / C + 5);
  });

  it('clients slower than maxWaitMs to come back regroup: the batcher waits up to regroupFraction of the last batch for as many requests as it had rows', async () => {
    const C = 4;
    const run = async (regroupFraction: number) => {
      const f = fakePolicy(400);
      const b = new Batcher(f.policy, { maxBatch: 16, maxWaitMs: 5, regroupFraction });
      const client = async (k: number) => {
        for (let j = 0; j < 4; j++) {
          await b.submit(req(k * 100 + j));
          await sleep(20 + 15 * k); // turnaround 20…65 ms: longer than maxWaitMs, shorter than 0.5 × 400 ms
        }
      };
      await Promise.all(Array.from({ length: C }, (_, k) => client(k)));
      return f.calls;
    };
    const regrouped = await run(0.5);
    expect(regrouped, `batch sizes ${regrouped.join(',')}`).toEqual([C, C, C, C]);
    const split = await run(0); // maxWaitMs alone: the late clients miss the batch and wait a whole one
    expect(split.length, `batch sizes ${split.join(',')}`).toBeGreaterThan(4);
  });

  it('the regroup wait ends as soon as the last batch has all its clients back (the timer is re-armed earlier)', async () => {
    const C = 6;
    const f = fakePolicy(500);
    // regroup window: 1.0 × 500 ms after each batch; the clients come back within a few ms, the last one inside
    // maxWaitMs of the first (the case that left the first arrival's long timer armed)
    const b = new Batcher(f.policy, { maxBatch: 16, maxWaitMs: 40, regroupFraction: 1 });
    const gaps: number[] = [];
    let lastEnd = 0;
    const client = async (k: number) => {
      for (let j = 0; j < 3; j++) {
        const o = await b.submit(req(k * 100 + j));
        if (k === 0) {
          if (lastEnd > 0) gaps.push(o.startedAt - lastEnd);
          lastEnd = o.endedAt;
        }
        await sleep(k % 3);
      }
    };
    await Promise.all(Array.from({ length: C }, (_, k) => client(k)));
    expect(f.calls).toEqual([C, C, C]);
    // before the fix the first arrival's timer (≈ 500 ms) decided every start; now: the first arrival + maxWaitMs
    for (const g of gaps) expect(g, `gaps ${gaps.map((x) => x.toFixed(0)).join(', ')} ms`).toBeLessThan(250);
  });

  it('a batch that fails on one row re-runs its rows alone; a device loss fails every row; dead clients are dropped', async () => {
    const f = fakePolicy(5, (r) => (r.seed === 2 ? new PolicyError('too long', 'instruction') : null));
    const b = new Batcher(f.policy, { maxBatch: 8, maxWaitMs: 5 });
    const outs = await Promise.all([0, 1, 2, 3].map((i) => b.submit(req(i), { alive: () => i !== 3 })));
    expect(outs.map((o) => o.ok)).toEqual([true, true, false, false]);
    expect((outs[2] as Extract<JobOutcome, { ok: false }>).error).toBeInstanceOf(PolicyError);
    expect(outs[3]!.batch).toBeNull(); // dropped, never run
    expect(f.calls).toEqual([3, 1, 1, 1]); // the batch of 3, then each row alone
    expect(outs[0]!.batch!.whole).toBe(false);

    const lost = fakePolicy(5, () => new GpuError('gone', 'lost'));
    const b2 = new Batcher(lost.policy, { maxBatch: 8, maxWaitMs: 5 });
    const o2 = await Promise.all([0, 1, 2].map((i) => b2.submit(req(i))));
    expect(o2.every((o) => !o.ok && o.error instanceof GpuError)).toBe(true);
    expect(lost.calls).toEqual([3]); // no per-row re-run after a device loss
  });

  it('exclusive jobs run alone, in queue order; flush() stops waiting; idle() resolves when all is done', async () => {
    const f = fakePolicy(10);
    const b = new Batcher(f.policy, { maxBatch: 8, maxWaitMs: 10_000 });
    const order: string[] = [];
    const w = b.exclusive(async () => { order.push('warm'); await sleep(10); return 7; });
    const r = b.submit(req(1)).then(() => order.push('req'));
    expect(await w).toBe(7);
    await sleep(30);
    expect(order).toEqual(['warm']); // the request waits for company (10 s)…
    b.flush(); // …until flushed (draining)
    await r;
    await b.idle();
    expect(order).toEqual(['warm', 'req']);
    expect(f.calls).toEqual([1]);
  });
});

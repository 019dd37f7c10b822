// Cross-robot batching for the policy server: requests from every connection wait in one FIFO; whenever the GPU
// is free, the requests at the head of the queue (up to `maxBatch`) run as ONE `policy.actBatch` call.
//
// - A batch starts when the GPU is free and either `maxBatch` requests are waiting, or `maxWaitMs` have passed
//   since the later of (the oldest waiting request's arrival, the end of the previous batch), or the batcher is
//   flushing (draining). So requests that arrive while a batch runs are batched together, and a lone request
//   waits at most `maxWaitMs` for company (0: never waits).
//   Why from the end of the previous batch too: closed-loop clients (each sends its next request as soon as it
//   has its reply) otherwise settle into two cohorts that alternate on the GPU — the requests that arrived during
//   batch k run as batch k+1 while the clients of batch k are still sending theirs — so every batch carries about
//   half the clients (mean batch C/2). Waiting a few ms after a batch lets its clients' next requests join the
//   waiting ones, and the cohorts merge (mean batch ≈ C).
//   Stragglers: on a loaded host a batch's clients may take longer than maxWaitMs to send their next requests
//   (measured: mean batch 5.1–5.8 at 8 clients on the 2-core lavapipe VM, bench/RESULTS.md), and the late ones
//   then wait a whole batch. So after a batch of n rows the batcher also waits until n requests have arrived
//   since it ended, for at most `regroupFraction` (default 0.1) of that batch's duration: the GPU idles at most
//   that fraction of its time when the clients do not come back, and a batch's clients regroup when they do.
// - Rows of a batch may differ in everything (embodiment, cameras, prompt length, solver, steps, seed):
//   actBatch groups rows by (solver, steps, grid, shift) itself, and each row is bit-identical to act() alone —
//   so a reply does not depend on what it was batched with. `maxBatch` 1 is the unbatched server (act()).
// - Failure isolation: a device loss fails every row of the batch (retryable). Any other error of a batch of
//   several rows (a PolicyError naming requests[i], the NaN guard, an internal error) re-runs its rows one at a
//   time with act(), so each request gets its own outcome — the same one it would have had alone.
// - Jobs whose client has gone (`alive()` false) are dropped when a batch is formed, never run.
// - Exclusive jobs (`exclusive(fn)`, e.g. the warm-up) run alone, in queue order.
import { Policy, type ActRequest, type ActResult } from '../policy/policy.js';
import { GpuError } from '../gpu/device.js';

export const DEFAULT_MAX_BATCH = 16;
export const DEFAULT_MAX_WAIT_MS = 5;
/** Longest wait for the previous batch's clients, as a fraction of that batch's duration (see the header). */
export const DEFAULT_REGROUP_FRACTION = 0.1;

export interface BatchInfo {
  /** 1, 2, … in start order */
  id: number;
  /** rows in the batch (after dropping jobs of closed connections) */
  size: number;
  /** performance.now() at the start / end of the GPU call */
  startedAt: number;
  endedAt: number;
  /** the batch ran as a whole (false: rows were re-run one at a time after an error) */
  whole: boolean;
}

export type JobOutcome =
  | { ok: true; result: ActResult; batch: BatchInfo; startedAt: number; endedAt: number }
  | { ok: false; error: unknown; batch: BatchInfo; startedAt: number; endedAt: number }
  /** dropped before running: its client went away */
  | { ok: false; dropped: true; error: null; batch: null; startedAt: number; endedAt: number };

export interface BatcherOptions {
  maxBatch?: number;
  maxWaitMs?: number;
  /** Wait up to this fraction of the previous batch's duration for as many requests as it had rows (0: off). */
  regroupFraction?: number;
  /** Called right before a batch's GPU call, with the batch's job tags in row order. */
  onBatchStart?(tags: unknown[], info: BatchInfo): void;
  /** Called after it returned or threw. */
  onBatchEnd?(tags: unknown[], info: BatchInfo): void;
}

interface RequestJob {
  kind: 'request';
  req: ActRequest;
  tag: unknown;
  alive: () => boolean;
  enqueuedAt: number;
  resolve(o: JobOutcome): void;
}

interface ExclusiveJob {
  kind: 'exclusive';
  run: () => Promise<unknown>;
  enqueuedAt: number;
  resolve(v: { ok: true; value: unknown } | { ok: false; error: unknown }): void;
}

type Job = RequestJob | ExclusiveJob;

export class Batcher {
  readonly maxBatch: number;
  readonly maxWaitMs: number;
  private readonly queue: Job[] = [];
  private running = 0;
  private busy = false;
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() the armed timer is for */
  private timerAt = Infinity;
  private flushing = false;
  private batches = 0;
  /** performance.now() when the last batch ended (−∞ before the first). */
  private freeSince = -Infinity;
  /** Rows, duration (ms) and reply time (performance.now()) of the last batch of requests. */
  private lastRows = 0;
  private lastMs = 0;
  private lastEndedAt = -Infinity;
  readonly regroupFraction: number;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly policy: Policy, private readonly opts: BatcherOptions = {}) {
    this.maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
    this.maxWaitMs = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    this.regroupFraction = opts.regroupFraction ?? DEFAULT_REGROUP_FRACTION;
    if (!(this.regroupFraction >= 0 && this.regroupFraction <= 1)) throw new Error(`regroupFraction must be in [0, 1], got ${this.regroupFraction}`);
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new Error(`maxBatch must be an integer ≥ 1, got ${this.maxBatch}`);
    if (!(this.maxWaitMs >= 0 && Number.isFinite(this.maxWaitMs))) throw new Error(`maxWaitMs must be a finite number ≥ 0, got ${this.maxWaitMs}`);
  }

  /** Request jobs waiting (not yet in a batch). */
  get waiting(): number {
    let n = 0;
    for (const j of this.queue) if (j.kind === 'request') n++;
    return n;
  }

  /** Request jobs in the batch running now. */
  get inFlight(): number {
    return this.running;
  }

  /** Waiting + running requests. */
  get pending(): number {
    return this.waiting + this.running;
  }

  /** Queues one request; resolves (never rejects) with its outcome once its batch has run. */
  submit(req: ActRequest, opts: { tag?: unknown; alive?: () => boolean } = {}): Promise<JobOutcome> {
    return new Promise((resolve) => {
      this.queue.push({ kind: 'request', req, tag: opts.tag, alive: opts.alive ?? (() => true), enqueuedAt: performance.now(), resolve });
      this.kick();
    });
  }

  /** Runs `fn` alone (no batch runs meanwhile), after everything queued before it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        kind: 'exclusive', run: fn, enqueuedAt: performance.now(),
        resolve: (v) => (v.ok ? resolve(v.value as T) : reject(v.error)),
      });
      this.kick();
    });
  }

  /** From now on, batches start without waiting for company (used while draining). */
  flush(): void {
    this.flushing = true;
    this.kick();
  }

  /** Resolves once nothing is queued or running. */
  idle(): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private kick(): void {
    if (this.busy || this.queue.length === 0) return;
    const head = this.queue[0]!;
    if (head.kind === 'request' && !this.flushing && this.maxWaitMs > 0) {
      let n = 0;
      let arrived = 0; // requests that came after the last batch ended (its clients coming back)
      for (const j of this.queue) {
        if (j.kind !== 'request') break;
        n++;
        if (j.enqueuedAt >= this.lastEndedAt) arrived++;
      }
      let until = Math.max(head.enqueuedAt, this.freeSince) + this.maxWaitMs;
      if (arrived < this.lastRows) until = Math.max(until, this.lastEndedAt + this.regroupFraction * this.lastMs);
      const wait = until - performance.now();
      if (n < this.maxBatch && wait > 0) {
        // The deadline moves earlier when the last of the previous batch's clients comes back (the regroup wait
        // ends): a timer armed for a later deadline must be re-armed, else the GPU idles until it fires
        // (measured: 75–145 ms after every batch of 8, ≈ 8 % of the time; bench/RESULTS.md).
        if (this.timer && until < this.timerAt) {
          clearTimeout(this.timer);
          this.timer = null;
        }
        if (!this.timer) {
          this.timerAt = until;
          this.timer = setTimeout(() => {
            this.timer = null;
            this.kick();
          }, Math.ceil(wait));
        }
        return;
      }
    }
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.busy = true;
    void this.runNext().finally(() => {
      this.busy = false;
      this.running = 0;
      this.freeSince = performance.now();
      if (this.queue.length === 0) {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      } else {
        this.kick();
      }
    });
  }

  private async runNext(): Promise<void> {
    const head = this.queue[0]!;
    if (head.kind === 'exclusive') {
      this.queue.shift();
      try {
        head.resolve({ ok: true, value: await head.run() });
      } catch (error) {
        head.resolve({ ok: false, error });
      }
      return;
    }
    const jobs: RequestJob[] = [];
    while (jobs.length < this.maxBatch && this.queue.length > 0 && this.queue[0]!.kind === 'request') {
      const j = this.queue.shift() as RequestJob;
      if (!j.alive()) {
        const t = performance.now();
        j.resolve({ ok: false, dropped: true, error: null, batch: null, startedAt: t, endedAt: t });
        continue;
      }
      jobs.push(j);
    }
    if (jobs.length === 0) return;
    this.running = jobs.length;
    const info: BatchInfo = { id: ++this.batches, size: jobs.length, startedAt: performance.now(), endedAt: 0, whole: true };
    await this.runJobs(jobs, info);
  }

  /** Marks the batch done right before its replies go out (what the regroup wait counts from). */
  private ended(info: BatchInfo): void {
    info.endedAt = performance.now();
    this.running = 0;
    this.lastRows = info.size;
    this.lastEndedAt = info.endedAt;
    this.lastMs = info.endedAt - info.startedAt;
  }

  private async runJobs(jobs: RequestJob[], info: BatchInfo): Promise<void> {
    const tags = jobs.map((j) => j.tag);
    this.opts.onBatchStart?.(tags, info);
    let results: ActResult[] | null = null;
    let error: unknown = null;
    try {
      results = jobs.length === 1 ? [await this.policy.act(jobs[0]!.req)] : await this.policy.actBatch(jobs.map((j) => j.req));
    } catch (e) {
      error = e;
    }
    if (results) {
      this.ended(info);
      this.opts.onBatchEnd?.(tags, info);
      jobs.forEach((j, i) => j.resolve({ ok: true, result: results![i]!, batch: info, startedAt: info.startedAt, endedAt: info.endedAt }));
      return;
    }
    if (jobs.length === 1 || (error instanceof GpuError && error.kind === 'lost')) {
      this.ended(info);
      this.opts.onBatchEnd?.(tags, info);
      for (const j of jobs) j.resolve({ ok: false, error, batch: info, startedAt: info.startedAt, endedAt: info.endedAt });
      return;
    }
    // Some row failed the batch: give every row its own outcome, as if it had come alone.
    info.whole = false;
    const outcomes: JobOutcome[] = [];
    for (const j of jobs) {
      const t = performance.now();
      try {
        const r = await this.policy.act(j.req);
        outcomes.push({ ok: true, result: r, batch: info, startedAt: t, endedAt: performance.now() });
      } catch (e) {
        outcomes.push({ ok: false, error: e, batch: info, startedAt: t, endedAt: performance.now() });
      }
    }
    this.ended(info);
    this.opts.onBatchEnd?.(tags, info);
    jobs.forEach((j, i) => j.resolve(outcomes[i]!));
  }
}

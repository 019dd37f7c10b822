// dawn.node waits for the GPU by spinning the JS thread: while a mapAsync / onSubmittedWorkDone promise is pending,
// its AsyncRunner re-arms `setImmediate` with a fresh native callback that polls the device (ProcessEvents), on
// every turn of the event loop (dawn src/dawn/node/binding/AsyncRunner.cpp, its TODO crbug.com/dawn/1127). So a
// process waiting for a readback keeps one core at 100 % and allocates a function per turn (garbage collections).
// On a software adapter the "GPU" is lavapipe's worker threads on the same cores, and the spinning thread takes
// the cores from them: on the 2-core VM, 8 × act() ran 2.0× and actBatch(8) 2.6× faster with the poll deferred
// (bench/RESULTS.md, "`qvla bench serve` on a quiet machine"; `node bench/batching/poll.mjs`).
//
// dawn.node looks `setImmediate` up on the global object each time it re-arms, so wrapping the global is enough:
// a callback that is native and unnamed (what dawn.node passes; JS code passes JS functions, and bound functions
// are named "bound …") is re-armed at once for the first `spinMs` of a wait — a short wait stays as prompt as
// before, which matters on a real GPU — and after that with setTimeout(0) (≈ 1 ms, the event loop sleeps in the
// meantime). A wait ends when the callback runs without re-arming itself. Everything else goes to the original
// setImmediate untouched.
//
// Process-wide (it replaces a global), idempotent. `Gpu.create` (./device.ts) installs it on software adapters
// (GpuOptions.deferPolling; GPUs keep dawn.node's spin: not measured there); `qvla serve` installs it on any
// adapter (src/server/server.ts, option throttleGpuPolling).

/** Spin (re-arm at once) for this long at the start of a wait, then poll about once per millisecond. */
export const DEFAULT_SPIN_MS = 1;

const INSTALLED = Symbol.for('qvla.dawnPolling');

interface Installed {
  stock: typeof setImmediate;
  spinMs: number;
  counters: PollCounters;
}

type Callback = (...args: unknown[]) => void;

const fnToString = Function.prototype.toString;

/** A native, unnamed function: how dawn.node's poll callback looks (Napi::Function::New with no name). */
export function isDawnPollCallback(fn: unknown): fn is Callback {
  if (typeof fn !== 'function' || fn.name !== '') return false;
  return fnToString.call(fn).includes('[native code]');
}

export interface PollCounters {
  /** polls re-armed at once (the first spinMs of a wait) / deferred with setTimeout(0) */
  immediate: number;
  deferred: number;
}

type ScheduleFn = (fn: Callback, ...args: unknown[]) => unknown;

/**
 * A setImmediate that sends the callbacks `isPoll` accepts through the spin-then-defer rule above and everything
 * else to `stock` unchanged. `now` (ms) and `defer` are injectable for tests.
 */
export function makeThrottledSetImmediate(
  stock: ScheduleFn,
  opts: { spinMs: () => number; isPoll?: (fn: unknown) => boolean; now?: () => number; defer?: (run: () => void) => unknown; counters?: PollCounters },
): ScheduleFn {
  const isPoll = opts.isPoll ?? isDawnPollCallback;
  const now = opts.now ?? (() => performance.now());
  const defer = opts.defer ?? ((run: () => void) => setTimeout(run, 0)); // a Timeout: dawn.node never clears its poll
  const counters = opts.counters ?? { immediate: 0, deferred: 0 };
  /** when the current wait's first poll was armed; null between waits */
  let waitStart: number | null = null;
  let rearmed = false;
  return function setImmediate(fn: Callback, ...args: unknown[]) {
    if (!isPoll(fn)) return stock(fn, ...args);
    const t = now();
    waitStart ??= t;
    rearmed = true;
    const run = () => {
      rearmed = false;
      try {
        fn(...args);
      } finally {
        if (!rearmed) waitStart = null; // it did not re-arm: nothing is pending any more, the wait is over
      }
    };
    if (t - waitStart < opts.spinMs()) {
      counters.immediate++;
      return stock(run);
    }
    counters.deferred++;
    return defer(run);
  };
}

/**
 * Wraps the global setImmediate so dawn.node's GPU wait polls about once per millisecond after `spinMs` instead of
 * spinning (see the header). Calling it again only updates `spinMs`. Returns the installed wrapper's counters.
 */
export function throttleDawnPolling(opts: { spinMs?: number } = {}): Readonly<PollCounters> {
  const spinMs = opts.spinMs ?? DEFAULT_SPIN_MS;
  if (!(spinMs >= 0 && Number.isFinite(spinMs))) throw new Error(`spinMs must be a finite number ≥ 0, got ${spinMs}`);
  const g = globalThis as unknown as Record<symbol, Installed | undefined>;
  const have = g[INSTALLED];
  if (have) {
    have.spinMs = spinMs;
    return have.counters;
  }
  const stock = globalThis.setImmediate;
  const state: Installed = { stock, spinMs, counters: { immediate: 0, deferred: 0 } };
  const wrapped = makeThrottledSetImmediate(stock as unknown as ScheduleFn, { spinMs: () => state.spinMs, counters: state.counters });
  // keep what util.promisify and friends find on the original (symbol-keyed properties, __promisify__)
  for (const k of Reflect.ownKeys(stock)) {
    if (typeof k === 'symbol' || k === '__promisify__') Object.defineProperty(wrapped, k, Object.getOwnPropertyDescriptor(stock, k)!);
  }
  globalThis.setImmediate = wrapped as unknown as typeof setImmediate;
  g[INSTALLED] = state;
  return state.counters;
}

/** Puts the original setImmediate back (tests). */
export function restoreDawnPolling(): void {
  const g = globalThis as unknown as Record<symbol, Installed | undefined>;
  const have = g[INSTALLED];
  if (!have) return;
  globalThis.setImmediate = have.stock;
  g[INSTALLED] = undefined;
}

// Benchmark statistics: robust summaries of repeated timings, and wall-clock sampling through Benchmark.js.
//
// GPU times (timestamp queries) are summarised with our own median / MAD / min–max: the sample count is
// small and fixed (warm-up + reps). Wall-clock runs go through the `benchmark` package (deferred mode, since a
// run ends when the GPU says so), which picks the number of cycles itself and gives mean ± relative margin
// of error; we add the median and MAD of its samples.
import Benchmark from 'benchmark';

export interface Summary {
  n: number;
  median: number;
  /** median absolute deviation from the median (unscaled) */
  mad: number;
  min: number;
  max: number;
  mean: number;
  samples: number[];
}

/**
 * The q-th percentile (0…100) of `xs`, linearly interpolated between the two nearest ranks (numpy's default
 * "linear" method: position q/100 · (n − 1) in the sorted samples); NaN for no samples. The one percentile of
 * qvla's benchmarks: p50 / p90 / p99 latency, medians.
 */
export function percentile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (q / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/** The 50th percentile: the middle sample, or the mean of the middle two. */
export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

export function summarize(xs: readonly number[]): Summary {
  const med = median(xs);
  return {
    n: xs.length,
    median: med,
    mad: median(xs.map((x) => Math.abs(x - med))),
    min: Math.min(...xs),
    max: Math.max(...xs),
    mean: xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length),
    samples: [...xs],
  };
}

export interface WallClock extends Summary {
  /** Benchmark.js relative margin of error of the mean, in percent */
  rme: number;
  /** individual runs performed by Benchmark.js (cycles × count, calibration included) */
  runs: number;
}

export interface WallClockOptions {
  /** Seconds Benchmark.js may spend sampling (default 1; it still takes `minSamples`). */
  maxTime?: number;
  /** Minimum samples (default 5). */
  minSamples?: number;
}

/**
 * Wall-clock time of an async operation, in ms, sampled by Benchmark.js in deferred mode.
 * `run` must resolve when the operation is complete (e.g. encode, then `await gpu.sync()`).
 */
export function wallClock(name: string, run: () => Promise<void>, opts: WallClockOptions = {}): Promise<WallClock> {
  return new Promise((resolve, reject) => {
    let runs = 0;
    const bench = new Benchmark(name, {
      defer: true,
      async: true,
      initCount: 1,
      minSamples: opts.minSamples ?? 5,
      maxTime: opts.maxTime ?? 1,
      delay: 0,
      fn: (deferred: Benchmark.Deferred) => {
        runs++;
        run().then(
          () => deferred.resolve(),
          (e: unknown) => {
            bench.abort();
            reject(e);
          },
        );
      },
    });
    bench.on('complete', () => {
      if (bench.error) return reject(bench.error);
      const ms = bench.stats.sample.map((s) => s * 1000);
      resolve({ ...summarize(ms), rme: bench.stats.rme, runs });
    });
    bench.on('error', () => reject(bench.error ?? new Error(`benchmark ${name} failed`)));
    bench.run({ async: true });
  });
}

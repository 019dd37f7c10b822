// Benchmark code shared by `qvla bench`, bench/*.ts and bench/rivals/sidebyside.mjs.
export { measurePeaks, measureFma, measureRead, measureCopy, formatPeaks, hostLlcBytes, FMA_CHAINS, FMA_FLOPS_PER_ITER } from './roofline.js';
export type { PeakReport, PeakDetails, Measurement, RooflineOptions } from './roofline.js';
export { runOpBench, benchCase, selectCases, formatOpTable, parseOpBenchArgs, OP_BENCH_USAGE } from './ops.js';
export type { OpBenchOptions, OpBenchRow, OpBenchReport } from './ops.js';
export { pinLpNumThreads, benchHeader, formatHeader, formatTable, fmt } from './env.js';
export type { BenchHeader } from './env.js';
export { median, percentile, summarize, wallClock } from './stats.js';
export type { Summary, WallClock, WallClockOptions } from './stats.js';

// Kernel benchmark: measured roofline peaks, then linear at 1024³ and at the decode shape 1×4096·4096ᵀ
// (f32 and f16 weights) — time, GFLOPS / GB/s and % of measured peak, with the adapter description.
//
//   npm run build && node dist/bench/kernels.js [--op REGEX] [--name REGEX] [--reps N] [--json FILE] ...
//
// Defaults to the linear perf cases; `--op .` runs every perf case. LP_NUM_THREADS is pinned to the core
// count unless already set (lavapipe reads it when the device is created).
import { pinLpNumThreads } from '../src/bench/env.js';
import { OP_BENCH_USAGE, parseOpBenchArgs, runOpBench } from '../src/bench/ops.js';

pinLpNumThreads();
const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(`usage: node dist/bench/kernels.js [options]\n${OP_BENCH_USAGE}`);
  process.exit(0);
}
const opts = parseOpBenchArgs(argv);
opts.op ??= '^linear$';
try {
  const report = await runOpBench(opts);
  const bad = report.rows.filter((r) => r.check && !r.check.ok);
  for (const r of bad) console.error(r.check!.report);
  process.exit(bad.length ? 1 : 0);
} catch (e) {
  console.error(e);
  process.exit(1);
}

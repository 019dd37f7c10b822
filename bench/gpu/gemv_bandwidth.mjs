#!/usr/bin/env node
// Decode GEMV against the measured read bandwidth, in one run: the read peak (src/bench/roofline.ts measureRead)
// before and after, and between them every GEMV candidate of `qvla tune` (src/tune/linearFamily.ts; f16 weights
// also `wide`) at 1×K·[N, K]ᵀ, f32 and f16 weights, interleaved round-robin (a drift in machine load hits all
// alike), GPU timestamps, medians. Bytes counted: W + x + y. Measures only; asserts nothing.
//
//   node bench/gpu/gemv_bandwidth.mjs [--n 4096] [--k 4096] [--reps 9] [--dtype f16|f32|both] [--json FILE]
// (after `npx tsc -p tsconfig.json`)
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Gpu } from '../../dist/src/gpu/device.js';
import { linear, linearConfigName, linearConfigProblem } from '../../dist/src/ops/linear.js';
import { Tensor } from '../../dist/src/tensor.js';
import { measureRead } from '../../dist/src/bench/roofline.js';
import { benchHeader, formatHeader, pinLpNumThreads } from '../../dist/src/bench/env.js';
import { GEMV_CANDIDATES } from '../../dist/src/tune/linearFamily.js';
import { timedRun } from '../../dist/src/tune/tune.js';

const { values: a } = parseArgs({ options: { n: { type: 'string', default: '4096' }, k: { type: 'string', default: '4096' }, reps: { type: 'string', default: '9' }, dtype: { type: 'string', default: 'both' }, json: { type: 'string' } } });
const N = Number(a.n), K = Number(a.k), reps = Number(a.reps);
const dtypes = a.dtype === 'both' ? ['f32', 'f16'] : [a.dtype];
pinLpNumThreads();
const gpu = await Gpu.create();
for (const l of formatHeader(benchHeader(gpu))) console.log(l);
const median = (v) => { const s = [...v].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

const read0 = await measureRead(gpu, { reps: 5 });
console.log(`read peak before: ${read0.value.toFixed(2)} GB/s`);
const x = Tensor.from(gpu, new Float32Array(K).fill(0.01), [1, K]);
const y = Tensor.empty(gpu, [1, N]);
const runs = [];
const weights = {};
for (const dt of dtypes) {
  weights[dt] = dt === 'f16' ? Tensor.from(gpu, new Uint16Array(N * K).fill(0x2000), [N, K], 'f16') : Tensor.from(gpu, new Float32Array(N * K).fill(0.01), [N, K]);
  const cands = dt === 'f16' ? GEMV_CANDIDATES.flatMap((c) => [c, { ...c, wide: true }]) : GEMV_CANDIDATES;
  for (const config of cands) {
    if (linearConfigProblem(gpu, config, true) !== null) continue;
    const w = weights[dt];
    const run = { dtype: dt, config: linearConfigName(config), bytes: N * K * (dt === 'f16' ? 2 : 4) + 4 * (K + N), times: [], exec: () => timedRun(gpu, () => linear(x, w, { out: y, config })) };
    await run.exec(); // warm-up (compile)
    runs.push(run);
  }
}
for (let r = 0; r < reps; r++) for (const run of runs) run.times.push(await run.exec());
const read1 = await measureRead(gpu, { reps: 5 });
console.log(`read peak after: ${read1.value.toFixed(2)} GB/s`);
const peak = (read0.value + read1.value) / 2;
console.log(`\n1×${K}·[${N}, ${K}]ᵀ, ${reps} reps round-robin, ${gpu.features.timestamps ? 'GPU timestamps' : 'wall clock'}; % of the mean read peak ${peak.toFixed(2)} GB/s`);
const rows = runs.map((r) => { const ms = median(r.times); const gbps = r.bytes / ms / 1e6; return { dtype: r.dtype, config: r.config, ms, gbps, pctOfReadPeak: (100 * gbps) / peak }; });
for (const dt of dtypes) {
  for (const r of rows.filter((q) => q.dtype === dt).sort((p, q) => p.ms - q.ms)) {
    console.log(`  ${r.dtype}  ${r.config.padEnd(28)} ${r.ms.toFixed(2).padStart(8)} ms  ${r.gbps.toFixed(2).padStart(6)} GB/s  ${r.pctOfReadPeak.toFixed(0).padStart(4)} %`);
  }
}
if (a.json) writeFileSync(a.json, JSON.stringify({ header: benchHeader(gpu), N, K, reps, readPeakGBps: { before: read0.value, after: read1.value, mean: peak }, rows }, null, 2) + '\n');
x.release(); y.release(); for (const w of Object.values(weights)) w.release();
gpu.destroy();

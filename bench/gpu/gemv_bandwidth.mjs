#!/usr/bin/env node
// Decode GEMV against the measured read bandwidth, in one run: the read peak (src/bench/roofline.ts measureRead)
// before and after, and between them every GEMV candidate of `qvla tune` (src/tune/linearFamily.ts; f16 weights
// also `wide`) at 1×K·[N, K]ᵀ, f32 and f16 weights, interleaved round-robin (a drift in machine load hits all
// alike), GPU timestamps, medians. Bytes counted: W + x + y. Measures only; asserts nothing.
// Also, in the same round-robin, the GEMV's W stream alone (roofline.ts gemvStream, kernels/bench_gemv_stream.wgsl:
// the decode kernels' own streaming loop at `gemv wg<W> rows<R>`, no X loads, no FMAs): bytes only, and for f16
// bytes + widening; and the read benchmark's pass at the byte size of each weight matrix ("size-matched read").
// Together: bytes-only / +widening / full-GEMV time of one load pattern, against the read peak.
//
//   node bench/gpu/gemv_bandwidth.mjs [--n 4096] [--k 4096] [--reps 9] [--dtype f16|f32|both] [--stream-rows 8,4]
//                                     [--stream-wg 8] [--json FILE]
// (after `npx tsc -p tsconfig.json`)
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Gpu } from '../../dist/src/gpu/device.js';
import { linear, linearConfigName, linearConfigProblem } from '../../dist/src/ops/linear.js';
import { Tensor } from '../../dist/src/tensor.js';
import { gemvStream, measureRead, readPass } from '../../dist/src/bench/roofline.js';
import { benchHeader, formatHeader, pinLpNumThreads } from '../../dist/src/bench/env.js';
import { GEMV_CANDIDATES } from '../../dist/src/tune/linearFamily.js';
import { timedRun } from '../../dist/src/tune/tune.js';

const { values: a } = parseArgs({ options: {
  n: { type: 'string', default: '4096' }, k: { type: 'string', default: '4096' }, reps: { type: 'string', default: '9' },
  dtype: { type: 'string', default: 'both' }, 'stream-rows': { type: 'string', default: '8,4' }, 'stream-wg': { type: 'string', default: '8' }, json: { type: 'string' },
} });
const N = Number(a.n), K = Number(a.k), reps = Number(a.reps);
const dtypes = a.dtype === 'both' ? ['f32', 'f16'] : [a.dtype];
const streamRows = a['stream-rows'] ? a['stream-rows'].split(',').map(Number) : [];
const streamWg = Number(a['stream-wg']);
pinLpNumThreads();
const gpu = await Gpu.create();
for (const l of formatHeader(benchHeader(gpu))) console.log(l);
const median = (v) => { const s = [...v].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const wBytes = (dt) => N * K * (dt === 'f16' ? 2 : 4);

// A discarded read first: the first read measurement of a process ran at about half speed here (8.1 GB/s before,
// 15.1 after, in one run without it), which would lower the "before" peak and flatter every % below.
await measureRead(gpu, { reps: 2 });
const read0 = await measureRead(gpu, { reps: 5 });
console.log(`read peak before: ${read0.value.toFixed(2)} GB/s`);
const x = Tensor.from(gpu, new Float32Array(K).fill(0.01), [1, K]);
const y = Tensor.empty(gpu, [1, N]);
const runs = [];
const weights = {};
const streams = [];
for (const dt of dtypes) {
  const rp = readPass(gpu, { readBytes: wBytes(dt) });
  streams.push(rp);
  const sizedRun = { dtype: dt, config: `read ${(wBytes(dt) / 2 ** 20).toFixed(0)} MiB (bench_read)`, stream: true, bytes: rp.bytes, times: [], exec: () => timedRun(gpu, rp.encode) };
  await sizedRun.exec();
  await rp.check();
  runs.push(sizedRun);
  weights[dt] = dt === 'f16' ? Tensor.from(gpu, new Uint16Array(N * K).fill(0x2000), [N, K], 'f16') : Tensor.from(gpu, new Float32Array(N * K).fill(0.01), [N, K]);
  const cands = dt === 'f16' ? GEMV_CANDIDATES.flatMap((c) => [c, { ...c, wide: true }]) : GEMV_CANDIDATES;
  for (const config of cands) {
    if (linearConfigProblem(gpu, config, true) !== null) continue;
    const w = weights[dt];
    const run = { dtype: dt, config: linearConfigName(config), bytes: wBytes(dt) + 4 * (K + N), times: [], exec: () => timedRun(gpu, () => linear(x, w, { out: y, config })) };
    await run.exec(); // warm-up (compile)
    runs.push(run);
  }
  for (const rows of streamRows) {
    for (const widen of dt === 'f16' ? [false, true] : [false]) {
      const s = gemvStream(gpu, { N, K, f16: dt === 'f16', widen, rows, wg: streamWg });
      streams.push(s);
      const run = { dtype: dt, config: `stream wg${streamWg} rows${rows} ${widen ? '+widen' : 'bytes only'}`, stream: true, bytes: s.bytes, times: [], exec: () => timedRun(gpu, s.encode) };
      await run.exec();
      await s.check(); // the pass ran and summed exactly what it should
      runs.push(run);
    }
  }
}
for (let r = 0; r < reps; r++) for (const run of runs) run.times.push(await run.exec());
const read1 = await measureRead(gpu, { reps: 5 });
console.log(`read peak after: ${read1.value.toFixed(2)} GB/s`);
const peak = (read0.value + read1.value) / 2;
console.log(`\n1×${K}·[${N}, ${K}]ᵀ, ${reps} reps round-robin, ${gpu.features.timestamps ? 'GPU timestamps' : 'wall clock'}; % of the mean read peak ${peak.toFixed(2)} GB/s`);
const rows = runs.map((r) => { const ms = median(r.times); const gbps = r.bytes / ms / 1e6; return { dtype: r.dtype, config: r.config, stream: !!r.stream, ms, gbps, pctOfReadPeak: (100 * gbps) / peak }; });
const sized = Object.fromEntries(dtypes.map((dt) => [dt, rows.find((r) => r.dtype === dt && r.config.startsWith('read ')).gbps]));
for (const dt of dtypes) {
  for (const r of rows.filter((q) => q.dtype === dt).sort((p, q) => p.ms - q.ms)) {
    console.log(`  ${r.dtype}  ${r.config.padEnd(30)} ${r.ms.toFixed(2).padStart(8)} ms  ${r.gbps.toFixed(2).padStart(6)} GB/s  ${r.pctOfReadPeak.toFixed(0).padStart(4)} %`);
  }
}
// The breakdown of one load pattern: W bytes only → + widening (f16) → the full GEMV (X loads, FMAs, reduction).
const breakdown = [];
for (const dt of dtypes) {
  for (const rowsN of streamRows) {
    const pick = (name) => rows.find((r) => r.dtype === dt && r.config === name);
    const steps = [
      ['bytes only', pick(`stream wg${streamWg} rows${rowsN} bytes only`)],
      ...(dt === 'f16' ? [['+ widening', pick(`stream wg${streamWg} rows${rowsN} +widen`)]] : []),
      ['full GEMV', pick(`gemv wg${streamWg} rows${rowsN}${dt === 'f16' ? ' wide' : ''}`)],
    ].filter(([, r]) => r);
    if (steps.length < 2) continue;
    console.log(`\n${dt} W, pattern gemv wg${streamWg} rows${rowsN}${dt === 'f16' ? ' wide' : ''}: W bytes ${wBytes(dt)}`);
    for (const [what, r] of steps) {
      const wGbps = wBytes(dt) / r.ms / 1e6;
      console.log(`  ${what.padEnd(12)} ${r.ms.toFixed(2).padStart(8)} ms  ${wGbps.toFixed(2).padStart(6)} GB/s of W  ${((100 * wGbps) / peak).toFixed(0).padStart(4)} % of the read peak  ${((100 * wGbps) / sized[dt]).toFixed(0).padStart(4)} % of the size-matched read`);
      breakdown.push({ dtype: dt, pattern: `gemv wg${streamWg} rows${rowsN}`, step: what, ms: r.ms, wGBps: wGbps, pctOfReadPeak: (100 * wGbps) / peak, pctOfSizeMatchedRead: (100 * wGbps) / sized[dt] });
    }
  }
}
if (a.json) {
  writeFileSync(a.json, JSON.stringify({
    header: benchHeader(gpu), N, K, reps, readPeakGBps: { before: read0.value, after: read1.value, mean: peak },
    sizeMatchedReadGBps: sized,
    rows, breakdown,
  }, null, 2) + '\n');
}
x.release(); y.release(); for (const w of Object.values(weights)) w.release();
for (const s of streams) s.release();
gpu.destroy();

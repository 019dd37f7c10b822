// Decode GEMV 1×K·Nᵀ (default 4096 × 4096; or M rows, the tiled kernels past 4) with f32, f16, int8 and int4 weights, interleaved round-robin in one
// process (one run of each variant per round, so load from other processes hits all of them alike), medians,
// plus the measured read bandwidth (src/bench/roofline.ts) for effective GB/s. Run:
//   node dist/src/quant/benchGemv.js [--rounds R] [--m M] [--n N] [--k K] [--json FILE]   (M > 4: the tiled kernels)
// Results: bench/RESULTS.md, "Quantised weights".
import { writeFileSync } from 'node:fs';
import { Gpu } from '../gpu/device.js';
import { benchHeader, formatHeader, pinLpNumThreads } from '../bench/env.js';
import { measureRead } from '../bench/roofline.js';
import { linearCase } from '../testing/cases/linear.js';
import type { OpInstance } from '../testing/opHarness.js';
import { Rng } from '../util/rng.js';
import { linearQCase } from './cases.js';

export interface GemvRow { variant: string; weightBytes: number; bytes: number; medianMs: number; minMs: number; gbps: number; times: number[] }

async function timeOnce(gpu: Gpu, inst: OpInstance): Promise<number> {
  if (gpu.features.timestamps) {
    gpu.stream.profiler.enable(true);
    inst.encode();
    await gpu.sync();
    const t = await gpu.stream.profiler.collect();
    gpu.stream.profiler.enable(false);
    return t.reduce((s, x) => s + x.ns, 0) / 1e6;
  }
  const t0 = performance.now();
  inst.encode();
  await gpu.sync();
  return performance.now() - t0;
}

export async function benchGemv(opts: { rounds?: number; M?: number; N?: number; K?: number; log?: (l: string) => void } = {}) {
  const log = opts.log ?? ((l: string) => console.log(l));
  const M = opts.M ?? 1, N = opts.N ?? 4096, K = opts.K ?? 4096, rounds = opts.rounds ?? 15;
  pinLpNumThreads();
  const gpu = await Gpu.create();
  try {
    const header = benchHeader(gpu);
    for (const l of formatHeader(header)) log(l);
    const read = await measureRead(gpu);
    log(`measured read peak: ${read.value.toFixed(2)} GB/s (src/bench/roofline.ts measureRead, median of ${read.time.n ?? ''} runs)`);
    const variants: [string, OpInstance, number][] = [];
    const add = (name: string, c: ReturnType<typeof linearCase>, wBytes: number) => variants.push([name, c.setup(gpu, new Rng(1)), wBytes]);
    add('f32', linearCase({ M, N, K }), N * K * 4);
    if (gpu.features.f16) add('f16', linearCase({ M, N, K, f16: true }), N * K * 2);
    add('int8', linearQCase({ M, N, K, bits: 8 }), N * K + N * 2);
    add('int4 g32', linearQCase({ M, N, K, bits: 4, group: 32 }), N * K / 2 + (N * K / 32) * 2);
    add('int4 g128', linearQCase({ M, N, K, bits: 4, group: 128 }), N * K / 2 + (N * K / 128) * 2);
    add('int4 g64 zp', linearQCase({ M, N, K, bits: 4, group: 64, zero: true }), N * K / 2 + (N * K / 64) * 3);
    for (const [, inst] of variants) { inst.encode(); await gpu.sync(); } // compile + warm
    const times = variants.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      for (let v = 0; v < variants.length; v++) times[v]!.push(await timeOnce(gpu, variants[v]![1]));
      log(`round ${r + 1}/${rounds}`);
    }
    const rows: GemvRow[] = variants.map(([variant, inst, weightBytes], v) => {
      const t = [...times[v]!].sort((a, b) => a - b);
      const med = t[Math.floor(t.length / 2)]!;
      const bytes = weightBytes + M * (K + N) * 4;
      return { variant, weightBytes, bytes, medianMs: med, minMs: t[0]!, gbps: bytes / (med * 1e6), times: times[v]!, inst };
    }).map(({ inst, ...r }) => { inst.dispose(); return r; });
    const f32 = rows[0]!.medianMs;
    const f16 = rows.find((r) => r.variant === 'f16')?.medianMs;
    log('');
    log(`${M <= 4 ? 'decode GEMV' : 'tiled GEMM'} ${M}×${K}·${N}ᵀ, ${rounds} interleaved rounds, ${gpu.features.timestamps ? 'GPU timestamps' : 'wall clock'}; speed-up = median time ratio`);
    log('variant       weights MiB  median ms  min ms   vs f32   vs f16  eff. GB/s  % of read peak');
    for (const r of rows) {
      log(`${r.variant.padEnd(12)} ${(r.weightBytes / 2 ** 20).toFixed(2).padStart(12)} ${r.medianMs.toFixed(1).padStart(10)} ${r.minMs.toFixed(1).padStart(7)} ` +
        `${(f32 / r.medianMs).toFixed(2).padStart(7)}× ${f16 ? `${(f16 / r.medianMs).toFixed(2).padStart(7)}×` : '      -'} ${r.gbps.toFixed(3).padStart(10)} ${(100 * r.gbps / read.value).toFixed(1).padStart(14)} %`);
    }
    return { header, readPeakGBps: read.value, M, N, K, rounds, timestamps: gpu.features.timestamps, rows };
  } finally {
    gpu.destroy();
  }
}

const isMain = process.argv[1] && /benchGemv\.js$/.test(process.argv[1]);
if (isMain) {
  const a = process.argv.slice(2);
  const get = (f: string) => { const i = a.indexOf(f); return i >= 0 ? a[i + 1] : undefined; };
  const r = await benchGemv({ rounds: Number(get('--rounds') ?? 15), M: Number(get('--m') ?? 1), N: Number(get('--n') ?? 4096), K: Number(get('--k') ?? 4096) });
  const json = get('--json');
  if (json) writeFileSync(json, `${JSON.stringify({ command: `node dist/src/quant/benchGemv.js ${a.join(' ')}`, ...r }, null, 2)}\n`);
}

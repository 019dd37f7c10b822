// Gated DeltaNet prefill kernels, batched vs unbatched, at the shapes `Policy.actBatch` gives them on weights/tiny
// (convDim 256, Hk 2, Hv 4, dk = dv = 32; one GDN layer): B rows as one ragged call (cu_seqlens segments, one
// dispatch per kernel) against B calls of one segment each, in alternating order, GPU time per kernel family from
// timestamp queries, medians over rounds. Prints ms per row for each family and the ratio unbatched / batched
// (> 1: a batched row is cheaper). `cpu` is the process's CPU time (host encoding + lavapipe's threads, which run
// in-process) per row: on a CPU shared with other work it is steadier than the timestamps, which count wall time.
//
//   npx tsc -p tsconfig.json && node dist/bench/gdn-batch.js [--rows 145,139,152,...] [--reps 9] [--b 1,4,8]
import { pinLpNumThreads } from '../src/bench/env.js';
import { Gpu } from '../src/gpu/device.js';
import { Tensor } from '../src/tensor.js';
import { causalConv1dSilu, gatedDeltaNetConfig, gatedDeltaNetGates, gatedDeltaRule } from '../src/ops/gatedDeltaNet.js';
import { Rng } from '../src/util/rng.js';

pinLpNumThreads();
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const reps = Number(arg('reps', '9'));
const Bs = arg('b', '1,4,8').split(',').map(Number);
// Prompt lengths of widowx requests with one 128×128 frame are ~145 tokens; vary them a little (ragged).
const lens = arg('rows', '145,139,152,145,147,141,150,144').split(',').map(Number);

const Hk = 2, Hv = 4, dk = 32, dv = 32, K = 4;
const C = 2 * Hk * dk + Hv * dv;

const gpu = await Gpu.create();
const rng = new Rng(3);
const rand = (n: number, s = 1) => Float32Array.from(rng.normals(n), (x) => x * s);
const convW = Tensor.from(gpu, rand(C * K, 0.5), [C, 1, K]);
const aLog = Tensor.from(gpu, rand(Hv, 0.3), [Hv]);
const dtBias = Tensor.from(gpu, rand(Hv, 0.3), [Hv]);

/** One GDN layer's prefill kernels over `segs` (cu_seqlens) of the given tensors. */
function layer(mixed: Tensor, ab: Tensor, segs: Int32Array): void {
  const L = segs[segs.length - 1];
  gpu.scope(() => {
    const conv = causalConv1dSilu({ tensor: mixed, rowStride: C }, convW, null, { L, channels: C, kernel: K, segments: segs });
    const { g, beta } = gatedDeltaNetGates({ tensor: ab, rowStride: 2 * Hv }, { tensor: ab, rowStride: 2 * Hv, offset: Hv }, aLog, dtBias, { L, numValueHeads: Hv });
    gatedDeltaRule({
      q: { tensor: conv, rowStride: C, headStride: dk },
      k: { tensor: conv, rowStride: C, offset: Hk * dk, headStride: dk },
      v: { tensor: conv, rowStride: C, offset: 2 * Hk * dk, headStride: dv },
      g, beta, state: null, segments: segs, L, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
    });
  });
}

const family = (label: string) => label.replace(/^gatedDeltaNet\./, '');
async function timed(run: () => void): Promise<Map<string, number>> {
  const prof = gpu.stream.profiler;
  prof.enable(true);
  try {
    const c0 = process.cpuUsage();
    run();
    await gpu.sync();
    const c1 = process.cpuUsage(c0);
    const m = new Map<string, number>();
    m.set('cpu', (c1.user + c1.system) / 1e3);
    for (const t of await prof.collect()) m.set(family(t.label), (m.get(family(t.label)) ?? 0) + t.ns / 1e6);
    return m;
  } finally {
    prof.enable(false);
  }
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

console.log(`adapter ${gpu.description} LP_NUM_THREADS=${process.env.LP_NUM_THREADS} reps ${reps}`);
for (const B of Bs) {
  const rows = lens.slice(0, B);
  const L = rows.reduce((s, x) => s + x, 0);
  const cu = new Int32Array(B + 1);
  rows.forEach((n, i) => { cu[i + 1] = cu[i] + n; });
  const mixedAll = rand(L * C), abAll = rand(L * 2 * Hv);
  const bat = { mixed: Tensor.from(gpu, mixedAll, [L, C]), ab: Tensor.from(gpu, abAll, [L, 2 * Hv]) };
  const one = rows.map((n, i) => ({
    mixed: Tensor.from(gpu, mixedAll.slice(cu[i] * C, cu[i + 1] * C), [n, C]),
    ab: Tensor.from(gpu, abAll.slice(cu[i] * 2 * Hv, cu[i + 1] * 2 * Hv), [n, 2 * Hv]),
    segs: Int32Array.of(0, n),
  }));
  const runBatch = () => layer(bat.mixed, bat.ab, cu);
  let runRows = () => { for (const o of one) layer(o.mixed, o.ab, o.segs); };
  if (process.env.GDN_AB === 'rolled') {
    // A/B experiment: 'unbatched' column = batched with the unrolled (GPU) variant.
    runRows = () => { gatedDeltaNetConfig.rolled = false; try { runBatch(); } finally { gatedDeltaNetConfig.rolled = 'auto'; } };
  }
  await timed(runBatch);
  await timed(runRows); // warm-up
  const sb = new Map<string, number[]>(), sr = new Map<string, number[]>();
  const push = (s: Map<string, number[]>, m: Map<string, number>) => {
    let tot = 0;
    for (const [k, v] of m) { (s.get(k) ?? s.set(k, []).get(k)!).push(v); if (k !== 'cpu') tot += v; }
    (s.get('total') ?? s.set('total', []).get('total')!).push(tot);
  };
  for (let r = 0; r < reps; r++) {
    if (r % 2) { push(sb, await timed(runBatch)); push(sr, await timed(runRows)); }
    else { push(sr, await timed(runRows)); push(sb, await timed(runBatch)); }
  }
  console.log(`B=${B} rows ${rows.join(',')} (L=${L})`);
  for (const k of sb.keys()) {
    const b = median(sb.get(k)!) / B, u = median(sr.get(k)!) / B;
    console.log(`  ${k.padEnd(12)} unbatched ${u.toFixed(3).padStart(8)} ms/row  batched ${b.toFixed(3).padStart(8)} ms/row  ratio ${(u / b).toFixed(2)}`);
  }
  bat.mixed.release(); bat.ab.release();
  for (const o of one) { o.mixed.release(); o.ab.release(); }
}
gpu.destroy();

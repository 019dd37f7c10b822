// Gated DeltaNet prefill kernels, batched vs unbatched, at the shapes `Policy.actBatch` gives them on weights/tiny
// (convDim 256, Hk 2, Hv 4, dk = dv = 32; one GDN layer): B rows as one ragged call (cu_seqlens segments, one
// dispatch per kernel) against B calls of one segment each, per kernel family (conv, gates, delta rule = chunk
// prep + chunked, the gated RMSNorm after it), in alternating order; medians over rounds, ms per row.
// Two clocks: the process's CPU time (host encoding + lavapipe's worker threads, which run in-process) and the
// GPU timestamps. On a CPU shared with other work the timestamps count wall time, including the time lavapipe's
// threads wait for a core, and that wait is not the same for one long dispatch as for B short ones; the CPU time
// is the work itself, which is what limits a server's throughput on this device.
//   npx tsc -p tsconfig.json && node dist/bench/gdn-batch.js [--rows 145,139,152,...] [--reps 9] [--b 1,4,8]
import { pinLpNumThreads } from '../src/bench/env.js';
import { Gpu } from '../src/gpu/device.js';
import { Tensor } from '../src/tensor.js';
import { causalConv1dSilu, gatedDeltaNetGates, gatedDeltaRule } from '../src/ops/gatedDeltaNet.js';
import { rmsNormGated } from '../src/ops/norm.js';
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
const normW = Tensor.from(gpu, rand(dv, 0.3), [dv]);

interface Inputs { mixed: Tensor; ab: Tensor; z: Tensor; segs: Int32Array; conv?: Tensor; g?: Tensor; beta?: Tensor; o?: Tensor }
/** The kernel families of one GDN layer's prefill, each run on its own (inputs made once by `prepare`). */
const families: Record<string, (x: Inputs) => void> = {
  conv: (x) => causalConv1dSilu({ tensor: x.mixed, rowStride: C }, convW, null, { L: len(x), channels: C, kernel: K, segments: x.segs }).release(),
  gates: (x) => {
    const r = gatedDeltaNetGates({ tensor: x.ab, rowStride: 2 * Hv }, { tensor: x.ab, rowStride: 2 * Hv, offset: Hv }, aLog, dtBias, { L: len(x), numValueHeads: Hv });
    r.g.release(); r.beta.release();
  },
  rule: (x) => rule(x).release(),
  rmsNormGated: (x) => rmsNormGated(x.o!.reshape([len(x) * Hv, dv]), x.z.reshape([len(x) * Hv, dv]), normW, { eps: 1e-6 }).release(),
};
const len = (x: Inputs) => x.segs[x.segs.length - 1];
function rule(x: Inputs): Tensor {
  return gatedDeltaRule({
    q: { tensor: x.conv!, rowStride: C, headStride: dk },
    k: { tensor: x.conv!, rowStride: C, offset: Hk * dk, headStride: dk },
    v: { tensor: x.conv!, rowStride: C, offset: 2 * Hk * dk, headStride: dv },
    g: x.g!, beta: x.beta!, state: null, segments: x.segs, L: len(x), numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
  });
}
function prepare(x: Inputs): Inputs {
  const L = len(x);
  x.conv = causalConv1dSilu({ tensor: x.mixed, rowStride: C }, convW, null, { L, channels: C, kernel: K, segments: x.segs });
  Object.assign(x, gatedDeltaNetGates({ tensor: x.ab, rowStride: 2 * Hv }, { tensor: x.ab, rowStride: 2 * Hv, offset: Hv }, aLog, dtBias, { L, numValueHeads: Hv }));
  x.o = rule(x);
  return x;
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
  const mixedAll = rand(L * C), abAll = rand(L * 2 * Hv), zAll = rand(L * Hv * dv);
  const bat = prepare({ mixed: Tensor.from(gpu, mixedAll, [L, C]), ab: Tensor.from(gpu, abAll, [L, 2 * Hv]), z: Tensor.from(gpu, zAll, [L, Hv * dv]), segs: cu });
  const one = rows.map((n, i) => prepare({
    mixed: Tensor.from(gpu, mixedAll.slice(cu[i] * C, cu[i + 1] * C), [n, C]),
    ab: Tensor.from(gpu, abAll.slice(cu[i] * 2 * Hv, cu[i + 1] * 2 * Hv), [n, 2 * Hv]),
    z: Tensor.from(gpu, zAll.slice(cu[i] * Hv * dv, cu[i + 1] * Hv * dv), [n, Hv * dv]),
    segs: Int32Array.of(0, n),
  }));
  // family → per-round [cpu ms, gpu ms] for the batch and for the B single-row calls
  const sb = new Map<string, number[][]>(), sr = new Map<string, number[][]>();
  const push = (s: Map<string, number[][]>, k: string, m: Map<string, number>) => {
    let gpuMs = 0;
    for (const [f, v] of m) if (f !== 'cpu') gpuMs += v;
    (s.get(k) ?? s.set(k, []).get(k)!).push([m.get('cpu')!, gpuMs]);
  };
  for (let r = -1; r < reps; r++) { // r = -1: warm-up
    for (const [k, f] of Object.entries(families)) {
      const runBatch = () => f(bat);
      const runRows = () => { for (const o of one) f(o); };
      if (r % 2) { const a = await timed(runBatch), b = await timed(runRows); if (r >= 0) { push(sb, k, a); push(sr, k, b); } }
      else { const b = await timed(runRows), a = await timed(runBatch); if (r >= 0) { push(sb, k, a); push(sr, k, b); } }
    }
  }
  console.log(`B=${B} rows ${rows.join(',')} (L=${L}); ms per row, medians of ${reps} interleaved rounds; ratio = unbatched / batched`);
  for (const k of sb.keys()) {
    const cell = (s: Map<string, number[][]>, w: number) => median(s.get(k)!.map((x) => x[w])) / B;
    const [ub, bb, ug, bg] = [cell(sr, 0), cell(sb, 0), cell(sr, 1), cell(sb, 1)];
    console.log(`  ${k.padEnd(13)} CPU unbatched ${ub.toFixed(2).padStart(7)} batched ${bb.toFixed(2).padStart(7)} ratio ${(ub / bb).toFixed(2)}   GPU(ts) unbatched ${ug.toFixed(2).padStart(7)} batched ${bg.toFixed(2).padStart(7)} ratio ${(ug / bg).toFixed(2)}`);
  }
  for (const x of [bat, ...one]) for (const t of [x.mixed, x.ab, x.z, x.conv, x.g, x.beta, x.o]) t?.release();
}
gpu.destroy();

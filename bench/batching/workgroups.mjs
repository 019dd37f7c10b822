// Run from the repository root after `npm run build`: node bench/batching/workgroups.mjs [B]
// exploratory: llvmpipe runs a dispatch of ONE workgroup inline on its queue thread and splits bigger ones over
// its LP_NUM_THREADS workers, so only multi-workgroup dispatches can use both cores. GPU time (timestamps, wall per
// dispatch on lavapipe) of B × act() and of actBatch(B), by kernel family and by workgroups per dispatch.
import os from 'node:os';
import { Gpu } from '../../dist/src/gpu/device.js';
import { Policy } from '../../dist/src/policy/policy.js';
import { batchRequests } from '../../dist/src/bench/batch.js';
import { pinLpNumThreads } from '../../dist/src/bench/env.js';
pinLpNumThreads();
const B = Number(process.argv[2] ?? 8);
const gpu = await Gpu.create();
const p = await Policy.load(new URL('../../weights/tiny', import.meta.url).pathname, { gpu, stageTimings: false });
const reqs = batchRequests(B, { steps: 10, imageSize: 128 });
await p.actBatch(reqs); await p.act(reqs[0]);
const grids = [];
const orig = gpu.stream.dispatch.bind(gpu.stream);
gpu.stream.dispatch = (k, b, prm, wg, label) => {
  const [x, y = 1, z = 1] = wg;
  if (x * y * z > 0) grids.push(x * y * z);
  return orig(k, b, prm, wg, label);
};
const run = async (f) => {
  grids.length = 0;
  gpu.stream.profiler.enable(true);
  await f();
  const ks = await gpu.stream.profiler.collect();
  gpu.stream.profiler.enable(false);
  if (ks.length !== grids.length) throw new Error(`profiler ${ks.length} records vs ${grids.length} dispatches`);
  return ks.map((k, i) => ({ fam: k.label.replace(/\.\d+\./g, '.N.').replace(/\.\d+$/, '.N'), ms: k.ns / 1e6, wg: grids[i] }));
};
const seq = await run(async () => { for (const r of reqs) await p.act(r); });
const bat = await run(async () => { await p.actBatch(reqs); });
const bucket = (wg) => (wg === 1 ? '1' : wg < 4 ? '2-3' : wg < 16 ? '4-15' : '16+');
const summary = (rs) => {
  const m = {};
  for (const r of rs) { const b = bucket(r.wg); m[b] = (m[b] ?? 0) + r.ms; }
  return m;
};
const total = (rs) => rs.reduce((a, r) => a + r.ms, 0);
console.log(`load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, B = ${B}, LP_NUM_THREADS ${process.env.LP_NUM_THREADS}`);
console.log(`GPU ms by workgroups per dispatch: ${B} x act ${JSON.stringify(summary(seq), (k, v) => (typeof v === 'number' ? Math.round(v) : v))} total ${total(seq).toFixed(0)}`);
console.log(`                                   actBatch(${B}) ${JSON.stringify(summary(bat), (k, v) => (typeof v === 'number' ? Math.round(v) : v))} total ${total(bat).toFixed(0)}`);
const fam = new Map();
for (const [k, rs] of [['seq', seq], ['bat', bat]]) for (const r of rs) {
  const e = fam.get(r.fam) ?? { seq: 0, bat: 0, seqWg: new Set(), batWg: new Set() };
  e[k] += r.ms; e[`${k}Wg`].add(r.wg);
  fam.set(r.fam, e);
}
console.log('family                          act ms  batch ms  workgroups act -> batch');
for (const [f, e] of [...fam].sort((a, b) => b[1].bat - a[1].bat).slice(0, 30)) {
  const wg = (s) => { const a = [...s].sort((x, y) => x - y); return a.length > 3 ? `${a[0]}..${a[a.length - 1]}` : a.join(','); };
  console.log(f.slice(0, 30).padEnd(30), e.seq.toFixed(0).padStart(8), e.bat.toFixed(0).padStart(9), ' ', wg(e.seqWg), '->', wg(e.batWg));
}
p.destroy(); gpu.destroy();

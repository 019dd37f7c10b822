// Run from the repository root after `npm run build`: node bench/batching/mixed.mjs [rounds]
// padding vs grouping for mixed batches: process CPU ms (lavapipe runs in-process), interleaved reps, medians
import { Gpu } from '../../dist/src/gpu/device.js';
import { Policy } from '../../dist/src/policy/policy.js';
import { batchRequests } from '../../dist/src/bench/batch.js';
import { pinLpNumThreads } from '../../dist/src/bench/env.js';
pinLpNumThreads();
const gpu = await Gpu.create();
const p = await Policy.load(new URL('../../weights/tiny', import.meta.url).pathname, { gpu, weightDtype: 'f32', stageTimings: false });
const base = batchRequests(8, { steps: 10, imageSize: 128 });
const stepsMix = base.map((r, i) => (i < 4 ? r : { ...r, steps: 5 }));
const solverMix = base.map((r, i) => (i < 4 ? r : { ...r, solver: 'heun', steps: 5 }));
const variants = {
  'act x8 (steps mix)': async () => { for (const r of stepsMix) await p.act(r); },
  'steps mix: one call, grouped inside': async () => { await p.actBatch(stepsMix); },
  'steps mix: split by settings (2 calls)': async () => { await p.actBatch(stepsMix.slice(0, 4)); await p.actBatch(stepsMix.slice(4)); },
  'solver mix: one call, grouped inside': async () => { await p.actBatch(solverMix); },
  'solver mix: split by settings (2 calls)': async () => { await p.actBatch(solverMix.slice(0, 4)); await p.actBatch(solverMix.slice(4)); },
  'padded bound: one group, 10 evals x 8 rows': async () => { await p.actBatch(base); },
};
for (const f of Object.values(variants)) await f();
const res = {};
const reps = Number(process.argv[2] ?? 5);
for (let rep = 0; rep < reps; rep++) for (const [k, f] of Object.entries(variants)) {
  const c0 = process.cpuUsage(); const t0 = performance.now(); const d0 = gpu.stream.stats.dispatches;
  await f();
  const w = performance.now() - t0; const c = process.cpuUsage(c0);
  (res[k] ??= []).push([w, (c.user + c.system) / 1000, gpu.stream.stats.dispatches - d0]);
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
console.log('load', (await import('os')).loadavg());
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(44), 'cpu med', med(v.map((x) => x[1])).toFixed(0), 'wall med', med(v.map((x) => x[0])).toFixed(0), 'dispatches', v[0][2], 'cpu', v.map((x) => x[1].toFixed(0)).join(' '));
p.destroy(); gpu.destroy();

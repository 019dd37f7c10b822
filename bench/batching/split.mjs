// Run from the repository root after `npm run build`: node bench/batching/split.mjs [sync|nosync]
// exploratory: 8 requests as 8×act, actBatch(8), 2×actBatch(4), 4×actBatch(2); interleaved reps; wall + cpu
import { Gpu } from '../../dist/src/gpu/device.js';
import { Policy } from '../../dist/src/policy/policy.js';
import { batchRequests } from '../../dist/src/bench/batch.js';
import { pinLpNumThreads } from '../../dist/src/bench/env.js';
pinLpNumThreads();
const stageTimings = process.argv[2] !== 'nosync';
const gpu = await Gpu.create();
const p = await Policy.load(new URL('../../weights/tiny', import.meta.url).pathname, { gpu, weightDtype: 'f32', stageTimings });
const B = 8;
const reqs = batchRequests(B, { steps: 10, imageSize: 128 });
await p.actBatch(reqs); await p.act(reqs[0]);
for (const s of [4, 2]) for (let i = 0; i < B; i += s) await p.actBatch(reqs.slice(i, i + s));
const variants = {
  'act x8': async () => { for (const r of reqs) await p.act(r); },
  'batch 8': async () => { await p.actBatch(reqs); },
  'batch 4x2': async () => { for (let i = 0; i < B; i += 4) await p.actBatch(reqs.slice(i, i + 4)); },
  'batch 2x4': async () => { for (let i = 0; i < B; i += 2) await p.actBatch(reqs.slice(i, i + 2)); },
};
const res = {};
for (let rep = 0; rep < 5; rep++) for (const [k, f] of Object.entries(variants)) {
  const c0 = process.cpuUsage(); const t0 = performance.now();
  await f();
  const w = performance.now() - t0; const c = process.cpuUsage(c0);
  (res[k] ??= []).push([w, (c.user + c.system) / 1000]);
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
console.log('stageTimings', stageTimings, 'load', (await import('os')).loadavg());
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(10), 'wall med', med(v.map((x) => x[0])).toFixed(0), 'cpu med', med(v.map((x) => x[1])).toFixed(0), 'walls', v.map((x) => x[0].toFixed(0)).join(' '));
p.destroy(); gpu.destroy();

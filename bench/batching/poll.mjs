// Run from the repository root after `npm run build`: node bench/batching/poll.mjs [reps]
// exploratory: dawn.node waits for the GPU (mapAsync, onSubmittedWorkDone) by re-arming setImmediate and polling
// the device on every turn of the event loop (it looks `setImmediate` up on the global object each time): the JS
// thread spins at 100 % while lavapipe's workers run the kernels, on the same 2 cores. Variants, interleaved:
// the stock spin vs the poll deferred after its first millisecond (src/gpu/dawnPolling.ts, what qvla serve installs).
import os from 'node:os';
import { Gpu } from '../../dist/src/gpu/device.js';
import { Policy } from '../../dist/src/policy/policy.js';
import { batchRequests } from '../../dist/src/bench/batch.js';
import { pinLpNumThreads } from '../../dist/src/bench/env.js';
import { throttleDawnPolling, restoreDawnPolling } from '../../dist/src/gpu/dawnPolling.js';
pinLpNumThreads();
const reps = Number(process.argv[2] ?? 3);
const stageTimings = process.argv[3] !== 'nosync';
const gpu = await Gpu.create();
const p = await Policy.load(new URL('../../weights/tiny', import.meta.url).pathname, { gpu, stageTimings });
const reqs = batchRequests(8, { steps: 10, imageSize: 128 });
await p.actBatch(reqs); await p.act(reqs[0]);
const stock = () => restoreDawnPolling();
const throttled = () => throttleDawnPolling();
const variants = {
  '8 x act spin': [stock, async () => { for (const r of reqs) await p.act(r); }],
  'batch 8 spin': [stock, async () => { await p.actBatch(reqs); }],
  '8 x act throttled': [throttled, async () => { for (const r of reqs) await p.act(r); }],
  'batch 8 throttled': [throttled, async () => { await p.actBatch(reqs); }],
};
const res = {};
for (let rep = 0; rep < reps; rep++) for (const [k, [si, f]] of Object.entries(variants)) {
  si();
  const c0 = process.cpuUsage(); const t0 = performance.now();
  await f();
  const w = performance.now() - t0; const c = process.cpuUsage(c0);
  restoreDawnPolling();
  (res[k] ??= []).push([w, (c.user + c.system) / 1000]);
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
console.log(`load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, stageTimings ${stageTimings}, LP_NUM_THREADS ${process.env.LP_NUM_THREADS}`);
for (const [k, v] of Object.entries(res)) {
  const w = med(v.map((x) => x[0])), c = med(v.map((x) => x[1]));
  console.log(k.padEnd(18), 'wall med', w.toFixed(0), 'cpu med', c.toFixed(0), 'cores', (c / w).toFixed(2), 'walls', v.map((x) => x[0].toFixed(0)).join(' '));
}
p.destroy(); gpu.destroy();

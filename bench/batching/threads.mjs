// Run from the repository root after `npm run build`: node bench/batching/threads.mjs [reps]
// exploratory: how many cores does 8 × act() / actBatch(8) keep busy on lavapipe? Per-thread CPU time of this
// process (/proc/self/task/*/stat: the JS thread, lavapipe's queue thread and its compute workers) over each
// variant, interleaved, with stage timings on (the server default) and off (two policies, one device).
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { Gpu } from '../../dist/src/gpu/device.js';
import { Policy } from '../../dist/src/policy/policy.js';
import { batchRequests } from '../../dist/src/bench/batch.js';
import { pinLpNumThreads } from '../../dist/src/bench/env.js';
pinLpNumThreads();
const reps = Number(process.argv[2] ?? 3);
const gpu = await Gpu.create();
const dir = new URL('../../weights/tiny', import.meta.url).pathname;
const pol = { sync: await Policy.load(dir, { gpu, stageTimings: true }), nosync: await Policy.load(dir, { gpu, stageTimings: false }) };
const reqs = batchRequests(8, { steps: 10, imageSize: 128 });
for (const p of Object.values(pol)) { await p.actBatch(reqs); await p.act(reqs[0]); }
const threads = () => {
  const m = new Map();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const s = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      const name = Number(t) === process.pid ? "main" : `${s.slice(s.indexOf("(") + 1, s.lastIndexOf(")"))}${t}`;
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      m.set(`${t}:${name}`, (Number(f[11]) + Number(f[12])) * 10);
    } catch { /* thread gone */ }
  }
  return m;
};
const variants = {};
for (const [k, p] of Object.entries(pol)) {
  variants[`8 x act ${k}`] = async () => { for (const r of reqs) await p.act(r); };
  variants[`batch 8 ${k}`] = async () => { await p.actBatch(reqs); };
}
const res = {};
for (let rep = 0; rep < reps; rep++) for (const [k, f] of Object.entries(variants)) {
  const t0m = threads(); const t0 = performance.now();
  await f();
  const w = performance.now() - t0; const t1m = threads();
  const per = [...t1m].map(([n, v]) => [n, v - (t0m.get(n) ?? 0)]).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
  (res[k] ??= []).push({ w, cpu: per.reduce((a, [, v]) => a + v, 0), per });
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
console.log('load', os.loadavg().map((x) => x.toFixed(2)).join(' '), 'LP_NUM_THREADS', process.env.LP_NUM_THREADS);
for (const [k, v] of Object.entries(res)) {
  const w = med(v.map((x) => x.w)), c = med(v.map((x) => x.cpu));
  console.log(k.padEnd(16), 'wall', w.toFixed(0), 'cpu', c.toFixed(0), 'cores', (c / w).toFixed(2), 'walls', v.map((x) => x.w.toFixed(0)).join(' '));
  const last = v[v.length - 1];
  console.log('   threads (last rep, ms):', last.per.slice(0, 6).map(([n, x]) => `${n.split(':')[1]} ${x}`).join(', '));
}
for (const p of Object.values(pol)) p.destroy();
gpu.destroy();

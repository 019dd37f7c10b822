// Alternating A/B of tiny act() (widowx, 10 Euler steps): base build vs new build, one process, same device kind.
// usage: node bench/latency/ab_inprocess.mjs BASE_ROOT NEW_ROOT [calls]. Both policies live in one process (two
// devices); on this VM that biases against one of them (the same build against itself read 0.81), see bench/RESULTS.md.
import path from 'node:path';
const [baseRoot, newRoot] = process.argv.slice(2, 4).map((r) => path.resolve(r));
const calls = Number(process.argv[4] ?? 20);
async function make(root) {
  const { Policy } = await import(path.join(root, 'dist/src/policy/policy.js'));
  const p = await Policy.load(path.join(root, 'weights/tiny'), { stageTimings: false });
  const emb = p.embodiment('widowx');
  const req = { images: emb.cameras.map((c) => path.join(root, 'weights/tiny/samples', `widowx_${c}.png`)), instruction: 'pick up the red block', embodiment: 'widowx', state: emb.state.names.map(() => 0.1), seed: 0, steps: 10, solver: 'euler' };
  return { p, req };
}
const A = await make(baseRoot), B = await make(newRoot);
for (let i = 0; i < 3; i++) { await A.p.act(A.req); await B.p.act(B.req); }
const ta = [], tb = [];
let maxDiff = 0;
for (let i = 0; i < calls; i++) {
  const order = i % 2 ? [[A, ta], [B, tb]] : [[B, tb], [A, ta]];
  const raws = [];
  for (const [X, ts] of order) { const t0 = performance.now(); const r = await X.p.act(X.req); ts.push(performance.now() - t0); raws.push(r.raw); }
  for (let k = 0; k < raws[0].length; k++) maxDiff = Math.max(maxDiff, Math.abs(raws[0][k] - raws[1][k]));
}
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
console.log(JSON.stringify({ calls, baseMedianMs: +med(ta).toFixed(1), newMedianMs: +med(tb).toFixed(1), speedup: +(med(ta) / med(tb)).toFixed(2), maxAbsRawDiff: maxDiff }));
A.p.destroy(); B.p.destroy();

// Attention variants side by side, interleaved in one process (src/ops/attention.ts, compiled to dist/).
//
//   node bench/attention.mjs [--reps N] [--case REGEX] [--variants tiles,rows:32x8x1,rows:64x8x2:unrolled]
//
// Each variant is `tiles` or `rows:LANESxKEYSxROWS` (lanes per workgroup, keys per step, query rows per lane) (attentionConfig.prefill / .rowsTiles). Every rep runs each variant
// once, in turn, so load from other processes hits them alike; the table gives GPU-timestamp medians (the sum of
// the call's passes), the process CPU time of the call (lavapipe's worker threads run in this process: on a
// loaded machine the CPU time is the steadier number; on a GPU it is only the host's share) and each variant's
// max |difference| from the first one. The `batch` cases compare B
// segments in one call (cu_seqlens) with B separate calls, per row.
import { Gpu } from '../dist/src/gpu/device.js';
import { Tensor } from '../dist/src/tensor.js';
import { attention, attentionConfig } from '../dist/src/ops/attention.js';
import { Rng } from '../dist/src/util/rng.js';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
if (argv.includes('--help') || argv.includes('-h')) {
  console.log('usage: node bench/attention.mjs [--reps N] [--case REGEX] [--variants tiles,rows:32x8x2,…]');
  process.exit(0);
}
const reps = Number(arg('reps', 3));
const only = new RegExp(arg('case', '.'));
const variants = arg('variants', 'tiles,rows').split(',').map((v) => {
  const m = /^(tiles|rows(?::(\d+)x(\d+)x(\d))?)(:unrolled)?$/.exec(v);
  if (!m) throw new Error(`--variants: '${v}' is not tiles[:unrolled] or rows[:LANESxKEYSxROWS][:unrolled]`);
  const rolled = m[5] ? false : 'auto';
  if (m[1] === 'tiles') return { name: v, prefill: 'tiles', rolled };
  return { name: v, prefill: 'rows', rolled, rowsTiles: m[2] ? { lanes: Number(m[2]), keys: Number(m[3]), rowsPerLane: Number(m[4]) } : undefined };
});

const cases = [
  { name: 'prefill 4B L=600 H=16/4 d=256 causal', Lq: 600, Lk: 600, H: 16, Hkv: 4, d: 256, causal: true },
  { name: 'vision 4 images 2400 H=16 d=64 seg', Lq: 2400, Lk: 2400, H: 16, Hkv: 16, d: 64, segments: [0, 600, 1200, 1800, 2400] },
  { name: 'DiT cross 51x600 H=32 d=48 mask', Lq: 51, Lk: 600, H: 32, Hkv: 32, d: 48, mask: true },
  { name: 'DiT self 51 H=32 d=48', Lq: 51, Lk: 51, H: 32, Hkv: 32, d: 48 },
  { name: 'batch DiT self 8x51 H=32 d=48', Lq: 51, Lk: 51, H: 32, Hkv: 32, d: 48, batch: 8 },
  { name: 'batch DiT cross 8x(51→600) H=32 d=48', Lq: 51, Lk: 600, H: 32, Hkv: 32, d: 48, batch: 8, cross: true },
].filter((c) => only.test(c.name));

const gpu = await Gpu.create();
console.log(`adapter: ${gpu.description} software=${gpu.isSoftware}; reps ${reps} after 1 warm-up, variants interleaved`);
const rng = new Rng(5);
const base = { ...attentionConfig, rowsTiles: { ...attentionConfig.rowsTiles } };

/** One call (or B calls) of a case; returns a function running it once → { ms (GPU), out }. */
function prepare(c) {
  const B = c.batch ?? 1;
  const { Lq, Lk, H, Hkv, d } = c;
  const tensors = [];
  const T = (data, shape, dtype = 'f32') => { const t = Tensor.from(gpu, data, shape, dtype); tensors.push(t); return t; };
  const q = T(rng.normals(B * Lq * H * d), [B * Lq, H * d]);
  const k = T(rng.normals(B * Lk * Hkv * d), [B * Lk, Hkv * d]);
  const v = T(rng.normals(B * Lk * Hkv * d), [B * Lk, Hkv * d]);
  const mask = c.mask ? T(Uint32Array.from({ length: Lk }, () => (rng.uniform() < 0.3 ? 0 : 1)), [Lk], 'u32') : undefined;
  const out = T(new Float32Array(B * Lq * H * d), [B * Lq, H * d]);
  const common = { numHeads: H, numKvHeads: Hkv, headDim: d, scale: 1 / Math.sqrt(d), causal: c.causal, keyMask: mask };
  const view = (t, W, row) => ({ tensor: t, rowStride: W, offset: row * W });
  const batched = B > 1 ? {
    q: view(q, H * d, 0), k: view(k, Hkv * d, 0), v: view(v, Hkv * d, 0), Lq: B * Lq, Lk: B * Lk, out, ...common,
    segments: Int32Array.from({ length: B + 1 }, (_, b) => b * Lq),
    keyRanges: c.cross ? Int32Array.from({ length: 2 * B }, (_, i) => (i >> 1) * Lk + (i & 1) * Lk) : undefined,
  } : null;
  const single = (b) => {
    const o = Tensor.empty(gpu, [Lq, H * d], 'f32');
    return { args: { q: view(q, H * d, b * Lq), k: view(k, Hkv * d, b * Lk), v: view(v, Hkv * d, b * Lk), Lq, Lk, out: o, ...common }, o };
  };
  const singles = Array.from({ length: B }, (_, b) => single(b));
  const timed = async (encode, read) => {
    gpu.stream.profiler.enable(true);
    try {
      const c0 = process.cpuUsage();
      encode();
      const res = await read();
      const cu = process.cpuUsage(c0);
      const ks = await gpu.stream.profiler.collect();
      return { ms: ks.reduce((s, e) => s + e.ns, 0) / 1e6, cpu: (cu.user + cu.system) / 1e3, out: res };
    } finally {
      gpu.stream.profiler.enable(false);
    }
  };
  const runs = { one: () => timed(() => { for (const s of singles) attention(s.args); }, async () => {
    const parts = await Promise.all(singles.map((s) => s.o.read()));
    const all = new Float32Array(B * Lq * H * d);
    parts.forEach((p, b) => all.set(p, b * Lq * H * d));
    return all;
  }) };
  if (batched) runs.batched = () => timed(() => attention(batched), () => out.read());
  return { runs, dispose: () => { for (const t of tensors) t.release(); for (const s of singles) s.o.release(); } };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const maxDiff = (a, b) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

for (const c of cases) {
  const p = prepare(c);
  const modes = Object.keys(p.runs);
  const times = new Map();
  const outs = new Map();
  const cpus = new Map();
  for (let rep = 0; rep <= reps; rep++) {
    for (const v of variants) {
      Object.assign(attentionConfig, base, { prefill: v.prefill, rolled: v.rolled }, v.rowsTiles ? { rowsTiles: v.rowsTiles } : {});
      for (const mode of modes) {
        const key = `${v.name} ${mode}`;
        const r = await p.runs[mode]();
        if (rep === 0) { outs.set(key, r.out); continue; } // warm-up (compiles)
        times.set(key, [...(times.get(key) ?? []), r.ms]);
        cpus.set(key, [...(cpus.get(key) ?? []), r.cpu]);
      }
    }
  }
  Object.assign(attentionConfig, base);
  console.log(`\n${c.name}${c.batch ? ` (${c.batch} rows: one call with segments vs ${c.batch} calls)` : ''}`);
  const ref = outs.values().next().value;
  for (const [key, ts] of times) {
    const med = median(ts);
    const perRow = c.batch ? `  ${(med / c.batch).toFixed(2)} ms/row` : '';
    const bits = c.batch && key.endsWith('batched') ? `, bit-identical to per-row calls: ${maxDiff(outs.get(key), outs.get(key.replace('batched', 'one'))) === 0}` : '';
    const cpu = median(cpus.get(key));
    console.log(`  ${key.padEnd(22)} ${med.toFixed(2).padStart(10)} ms  [${ts.map((t) => t.toFixed(1)).join(' ')}]  cpu ${cpu.toFixed(0)} ms${perRow}  max|Δ| vs first ${maxDiff(outs.get(key), ref).toExponential(1)}${bits}`);
  }
  p.dispose();
}
gpu.destroy();

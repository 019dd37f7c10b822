#!/usr/bin/env node
// Side-by-side: our `linear` and `attention` vs tfjs-backend-webgpu, onnxruntime-web (WebGPU EP) and
// onnxruntime-node (CPU EP, the native CPU ceiling) — in ONE Node process, on the same WebGPU adapter.
//
//   npm run build                                            # our engine → dist/
//   npm install --prefix bench/rivals --ignore-scripts       # the rivals (dev-only, never installed by CI)
//   node bench/rivals/sidebyside.mjs [--reps N] [--only linear|attention] [--skip tfjs,ortweb,ortnode]
//                                    [--ort-node-webgpu] [--case REGEX] [--json FILE] [--tune-file FILE] [--no-peaks]
//
// Plain ESM JavaScript so it needs no build of its own: it imports the compiled engine from ../../dist/src/.
// Every engine runs the same inputs (generated once with our seeded Rng) and gets one warm-up run; then the
// engines of a case are timed round-robin for `reps` rounds (load drift hits all alike); the table shows
// medians. Timings:
//   wall   — from issuing the op to the result being readable on the host (ours: encode + Tensor.read();
//            tfjs: op + data(); ORT: session.run with CPU tensors in/out, weights baked in as initializers),
//   kernel — GPU time from timestamp queries where the engine exposes it (ours: profiler; tfjs: tf.time).
// "×ours" = rival median / our median (> 1: we are faster). Each result is checked on sampled entries against
// an f64 JS reference and against our output.
//
// Notes: tfjs and ORT-web get `navigator.gpu` = the very `create()` object our Gpu pinned, so all three request
// their own GPUDevice from the same Dawn instance and adapter. ORT-web passes views of its SharedArrayBuffer
// wasm heap to queue.writeBuffer, which dawn.node rejects: a shim copies those. ORT-node's optional WebGPU EP
// (--ort-node-webgpu) brings its own Dawn. LP_NUM_THREADS is pinned to the core count unless set.
// Our kernels run with the tuning table the engine would read (src/tune/load.ts: --tune-file, else
// $QVLA_TUNE_FILE, else ~/.cache/qvla/tune.json; none: the documented defaults); the header says which.
import { createRequire } from 'node:module';
import { writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';

const require = createRequire(import.meta.url);
const dist = new URL('../../dist/src/', import.meta.url);
if (!existsSync(fileURLToPath(new URL('bench/index.js', dist)))) {
  console.error('dist/ is missing: run `npm run build` in the repository root first.');
  process.exit(2);
}
const bench = await import(new URL('bench/index.js', dist).href);
bench.pinLpNumThreads(); // before the first Gpu.create()
const { Gpu } = await import(new URL('gpu/device.js', dist).href);
const { linear, chooseLinearConfig, linearConfigName } = await import(new URL('ops/linear.js', dist).href);
const { measureFma, measureRead } = await import(new URL('bench/roofline.js', dist).href);
const { Tensor, f32ToF16Array, f16ToF32Array } = await import(new URL('tensor.js', dist).href);
const { Rng } = await import(new URL('util/rng.js', dist).href);
const { loadTuning } = await import(new URL('tune/load.js', dist).href);
let attention = null;
let attentionMissing = '';
try {
  ({ attention } = await import(new URL('ops/attention.js', dist).href));
} catch (e) {
  attentionMissing = `our attention op is not available (${String(e.message ?? e).split('\n')[0]})`;
}

// ---------------------------------------------------------------- options
const args = process.argv.slice(2);
const opt = { reps: 5, only: null, skip: new Set(), ortNodeWebgpu: false, json: null, caseRe: null, tuneFile: null, peaks: true };
for (let k = 0; k < args.length; k++) {
  const a = args[k];
  if (a === '--reps') opt.reps = Math.max(1, Number(args[++k]));
  else if (a === '--only') opt.only = args[++k];
  else if (a === '--skip') for (const s of args[++k].split(',')) opt.skip.add(s);
  else if (a === '--ort-node-webgpu') opt.ortNodeWebgpu = true;
  else if (a === '--json') opt.json = args[++k];
  else if (a === '--case') opt.caseRe = new RegExp(args[++k], 'i');
  else if (a === '--tune-file') opt.tuneFile = args[++k];
  else if (a === '--no-peaks') opt.peaks = false;
  else if (a === '--help' || a === '-h') {
    console.log('usage: node bench/rivals/sidebyside.mjs [--reps N] [--only linear|attention] [--skip tfjs,ortweb,ortnode] [--ort-node-webgpu] [--case REGEX] [--json FILE] [--tune-file FILE] [--no-peaks]');
    process.exit(0);
  } else {
    console.error(`unknown option ${a}`);
    process.exit(2);
  }
}
const { fmt, summarize, formatTable, formatHeader, benchHeader } = bench;

// ---------------------------------------------------------------- our engine + shared GPU instance
const gpu = await Gpu.create();
const header = benchHeader(gpu);
for (const l of formatHeader(header)) console.log(l);
const tuning = await loadTuning(gpu, { file: opt.tuneFile });
header.tuning = tuning.source ? `${tuning.source} (${tuning.entries} entries for this adapter)` : `defaults (${tuning.reason})`;
console.log(`tuning: ${header.tuning}`);

// The adapter's own peaks (src/bench/roofline.ts), measured in this run before and after the cases (the CPU of a
// software adapter is shared, so the load can drift): "% FMA peak" / "% read BW" use their mean.
const peakRuns = [];
async function measurePeaksNow(when) {
  if (!opt.peaks) return;
  const fma = await measureFma(gpu, { reps: 5 });
  const read = await measureRead(gpu, { reps: 5 });
  peakRuns.push({ when, gflops: fma.value, gbps: read.value });
  console.log(`peaks (${when}): FMA ${fmt(fma.value)} GFLOPS, read ${fmt(read.value)} GB/s`);
}
console.log(`reps: ${opt.reps} after 1 warm-up; ${attentionMissing || 'attention: src/ops/attention.ts'}`);

// Pinned: our Gpu holds the create() object for the life of the process (Dawn crashes if it is collected).
const sharedInstance = gpu.instance;
Object.defineProperty(globalThis, 'navigator', { value: { gpu: sharedInstance, userAgent: 'node', hardwareConcurrency: os.availableParallelism(), language: 'en' }, configurable: true, writable: true });
// ORT-web (wasm threads) hands views of a SharedArrayBuffer to writeBuffer; dawn.node wants unshared memory.
{
  const proto = globalThis.GPUQueue.prototype;
  const orig = proto.writeBuffer;
  proto.writeBuffer = function (buffer, offset, data, dataOffset, size) {
    if (typeof SharedArrayBuffer !== 'undefined') {
      if (data instanceof SharedArrayBuffer) data = new Uint8Array(data).slice().buffer;
      else if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) data = data.slice();
    }
    return orig.call(this, buffer, offset, data, dataOffset, size);
  };
}

// ---------------------------------------------------------------- ONNX protobuf, hand-encoded
class Pb {
  constructor() { this.chunks = []; }
  varint(n) {
    const b = [];
    let v = BigInt(n);
    if (v < 0n) v += 1n << 64n;
    do { let byte = Number(v & 0x7fn); v >>= 7n; if (v) byte |= 0x80; b.push(byte); } while (v);
    this.chunks.push(Uint8Array.from(b));
    return this;
  }
  tag(field, wire) { return this.varint((field << 3) | wire); }
  int(field, v) { return this.tag(field, 0).varint(v); }
  bytes(field, u8) { this.tag(field, 2).varint(u8.length); this.chunks.push(u8); return this; }
  str(field, s) { return this.bytes(field, new TextEncoder().encode(s)); }
  msg(field, pb) { return this.bytes(field, pb.finish()); }
  f32(field, v) { this.tag(field, 5); const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); this.chunks.push(b); return this; }
  finish() {
    const n = this.chunks.reduce((s, c) => s + c.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.length; }
    return out;
  }
}
const ONNX_FLOAT = 1, ONNX_FLOAT16 = 10;
function valueInfo(name, elemType, dims) {
  const shape = new Pb();
  for (const d of dims) shape.msg(1, new Pb().int(1, d));
  return new Pb().str(1, name).msg(2, new Pb().msg(1, new Pb().int(1, elemType).msg(2, shape)));
}
function initializer(name, elemType, dims, data) {
  const t = new Pb();
  for (const d of dims) t.int(1, d);
  t.int(2, elemType).str(8, name).bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return t;
}
function node(op, inputs, outputs, attrs = []) {
  const n = new Pb();
  for (const i of inputs) n.str(1, i);
  for (const o of outputs) n.str(2, o);
  n.str(3, `${op}_${outputs[0]}`).str(4, op);
  for (const a of attrs) n.msg(5, a);
  return n;
}
const attrInt = (name, v) => new Pb().str(1, name).int(3, v).int(20, 2);
const attrF = (name, v) => new Pb().str(1, name).f32(2, v).int(20, 1);
function model({ nodes, inits, inputs, outputs }) {
  const g = new Pb();
  for (const n of nodes) g.msg(1, n);
  g.str(2, 'g');
  for (const t of inits) g.msg(5, t);
  for (const i of inputs) g.msg(11, i);
  for (const o of outputs) g.msg(12, o);
  return new Pb().int(1, 8).str(2, 'qvla-sidebyside').msg(7, g).msg(8, new Pb().str(1, '').int(2, 17)).finish();
}

/** Y[M,N] = X[M,K] · Wᵀ with W given as Wt [K,N] (an initializer); f16: X is cast to f16, Y back to f32. */
function linearModel(M, K, N, wt, f16) {
  const nodes = f16
    ? [node('Cast', ['X'], ['Xh'], [attrInt('to', ONNX_FLOAT16)]), node('MatMul', ['Xh', 'Wt'], ['Yh']), node('Cast', ['Yh'], ['Y'], [attrInt('to', ONNX_FLOAT)])]
    : [node('MatMul', ['X', 'Wt'], ['Y'])];
  return model({
    nodes,
    inits: [initializer('Wt', f16 ? ONNX_FLOAT16 : ONNX_FLOAT, [K, N], wt)],
    inputs: [valueInfo('X', ONNX_FLOAT, [M, K])],
    outputs: [valueInfo('Y', ONNX_FLOAT, [M, N])],
  });
}

/** O = softmax(scale · Q·Kᵀ + mask) · V per head; Q [H,Lq,d], KT [H,d,Lk], V [H,Lk,d]. */
function attentionModel(H, Lq, Lk, d, scale, mask) {
  const nodes = [node('MatMul', ['Q', 'KT'], ['S']), node('Mul', ['S', 'scale'], ['S1'])];
  const inits = [initializer('scale', ONNX_FLOAT, [], Float32Array.of(scale))];
  let s = 'S1';
  if (mask) {
    nodes.push(node('Add', ['S1', 'mask'], ['S2']));
    inits.push(initializer('mask', ONNX_FLOAT, [Lq, Lk], mask));
    s = 'S2';
  }
  nodes.push(node('Softmax', [s], ['P'], [attrInt('axis', -1)]), node('MatMul', ['P', 'V'], ['O']));
  return model({
    nodes,
    inits,
    inputs: [valueInfo('Q', ONNX_FLOAT, [H, Lq, d]), valueInfo('KT', ONNX_FLOAT, [H, d, Lk]), valueInfo('V', ONNX_FLOAT, [H, Lk, d])],
    outputs: [valueInfo('O', ONNX_FLOAT, [H, Lq, d])],
  });
}
void attrF;

// ---------------------------------------------------------------- rivals: loading
const rivals = {};
const notes = [];
async function loadTfjs() {
  const tf = require('@tensorflow/tfjs-core');
  require('@tensorflow/tfjs-backend-webgpu'); // registers itself because navigator.gpu exists now
  await tf.setBackend('webgpu');
  await tf.ready();
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  return tf;
}
async function loadOrtWeb() {
  const ort = await import('onnxruntime-web/webgpu');
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  return ort;
}
function loadOrtNode() {
  const ort = require('onnxruntime-node');
  ort.env.logLevel = 'error';
  return ort;
}
for (const [key, load] of [['tfjs', loadTfjs], ['ortweb', loadOrtWeb], ['ortnode', loadOrtNode]]) {
  if (opt.skip.has(key)) continue;
  try {
    rivals[key] = await load();
  } catch (e) {
    notes.push(`${key}: not loaded (${String(e.message ?? e).split('\n')[0]}); install with npm install --prefix bench/rivals --ignore-scripts`);
  }
}
for (const n of notes) console.log(n);

// ---------------------------------------------------------------- timing + checking helpers
// An engine entry: { engine, note?, prepare: async () => ({ once, at, dispose? }) } where once() runs the op and
// returns { wall, kernel? } in ms, and at(i) reads the latest result at our output index i. All engines of a
// case are prepared and warmed up first, then timed round-robin (ours, tfjs, ort-web, ort-node, ours, ...), so
// a drift in machine load hits every engine alike.
async function runEngines(c, engines, refAt, idx) {
  const live = [];
  for (const e of engines) {
    if (e.skip) { record(c, e.engine, null, undefined, undefined, e.skip); continue; }
    try {
      const r = await e.prepare();
      await r.once(); // warm-up: compilation, allocation, first touch
      live.push({ ...e, ...r, wall: [], kernel: [] });
    } catch (err) {
      record(c, e.engine, null, undefined, undefined, `failed: ${String(err.message ?? err).split('\n')[0].slice(0, 160)}`);
    }
  }
  for (let rep = 0; rep < opt.reps; rep++) {
    for (const e of live) {
      if (e.error) continue;
      try {
        const t = await e.once();
        e.wall.push(t.wall);
        if (t.kernel !== undefined) e.kernel.push(t.kernel);
      } catch (err) {
        e.error = `failed: ${String(err.message ?? err).split('\n')[0].slice(0, 160)}`;
      }
    }
  }
  const ours = live.find((e) => e.engine === 'ours' && !e.error);
  for (const e of live) {
    if (e.error) { record(c, e.engine, null, undefined, undefined, e.error); continue; }
    const t = { wall: summarize(e.wall), kernel: e.kernel.length ? summarize(e.kernel) : null };
    record(c, e.engine, t, relErr(e.at, refAt, idx), e.engine === 'ours' ? 0 : ours ? relErr(e.at, ours.at, idx) : undefined, e.note);
    await e.dispose?.();
  }
  await gpu.sync();
}

/** max |a[i] − b[i]| over sampled i, relative to max |b[i]|. */
function relErr(got, ref, idx) {
  let d = 0, m = 0;
  for (const i of idx) {
    const g = got(i), r = ref(i);
    d = Math.max(d, Number.isFinite(g) ? Math.abs(g - r) : Infinity);
    m = Math.max(m, Math.abs(r));
  }
  return d / Math.max(m, 1e-30);
}

function sampleIndices(rng, total, n = 64) {
  const s = new Set([0, total - 1]);
  while (s.size < Math.min(total, n)) s.add(Math.floor(rng.uniform() * total));
  return [...s];
}

const results = [];
function record(c, engine, t, err, errOurs, extra = '') {
  const r = { case: c.name, kind: c.kind, engine, flops: c.flops, wall: t?.wall ?? null, kernel: t?.kernel ?? null, errRef: err, errOurs, note: extra };
  results.push(r);
  const w = t ? `${fmt(t.wall.median)} ms wall` : 'n/a';
  const k = t?.kernel ? `, ${fmt(t.kernel.median)} ms kernel` : '';
  console.log(`  ${engine.padEnd(18)} ${w}${k}${err !== undefined ? `, err vs ref ${err.toExponential(2)}` : ''}${extra ? `  (${extra})` : ''}`);
  return r;
}

/** Our op under the profiler: wall = issue → result read back; kernel = Σ GPU pass times. */
function oursOnce(run) {
  return async () => {
    gpu.stream.profiler.enable(true);
    try {
      const t0 = performance.now();
      await run();
      const wall = performance.now() - t0;
      const ks = await gpu.stream.profiler.collect();
      return { wall, kernel: ks.reduce((s, e) => s + e.ns, 0) / 1e6 };
    } finally {
      gpu.stream.profiler.enable(false);
    }
  };
}

/** tfjs: wall = op issued → data() resolved; kernel = tf.time().kernelMs (timestamp queries). */
function tfjsOnce(tf, op, keep) {
  return async () => {
    const t0 = performance.now();
    let y;
    const info = await tf.time(() => { y = op(); });
    keep.out = await y.data();
    const wall = performance.now() - t0;
    y.dispose();
    return { wall, kernel: typeof info.kernelMs === 'number' ? info.kernelMs : undefined };
  };
}

/** ONNX Runtime engine entries (web WebGPU, node CPU, optionally node WebGPU) for one model. */
function ortEngines(bytesFn, feedsFn, outName, atFn, note) {
  const list = [];
  const add = (ort, engine, sessOpts) => list.push({
    engine, note,
    prepare: async () => {
      const sess = await ort.InferenceSession.create(bytesFn(), sessOpts);
      const feeds = feedsFn(ort);
      const keep = {};
      return {
        once: async () => {
          const t0 = performance.now();
          const r = await sess.run(feeds);
          keep.out = r[outName].data;
          return { wall: performance.now() - t0 };
        },
        at: (i) => atFn(keep.out, i),
        dispose: () => sess.release?.(),
      };
    },
  });
  if (rivals.ortweb) add(rivals.ortweb, 'ort-web webgpu', { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
  if (rivals.ortnode) {
    add(rivals.ortnode, 'ort-node cpu', { executionProviders: ['cpu'], intraOpNumThreads: os.availableParallelism(), graphOptimizationLevel: 'all' });
    if (opt.ortNodeWebgpu) add(rivals.ortnode, 'ort-node webgpu', { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
  }
  return list;
}

// ---------------------------------------------------------------- linear
async function runLinear(c) {
  const { M, K, N, f16 } = c;
  console.log(`\n${c.name}: ${fmt(c.flops / 1e9)} GFLOP, weights ${fmt((N * K * (f16 ? 2 : 4)) / 2 ** 20)} MiB`);
  const rng = new Rng(7);
  const x = rng.normals(M * K);
  let w = rng.normals(N * K, 1 / Math.sqrt(K));
  const wData = f16 ? f32ToF16Array(w) : w;
  if (f16) w = f16ToF32Array(wData); // everybody sees the rounded weights
  const idx = sampleIndices(rng, M * N);
  const ref = new Map(idx.map((i) => {
    const m = Math.floor(i / N), n = i % N;
    let s = 0;
    for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
    return [i, s];
  }));

  const chosen = linearConfigName(chooseLinearConfig(gpu, { M, N, K, f16: !!f16 }));
  const engines = [{
    engine: 'ours',
    note: chosen,
    prepare: async () => {
      const tx = Tensor.from(gpu, x, [M, K]);
      const tw = Tensor.from(gpu, wData, [N, K], f16 ? 'f16' : 'f32');
      const ty = Tensor.empty(gpu, [M, N]);
      let out;
      return {
        once: oursOnce(async () => { linear(tx, tw, { out: ty }); out = await ty.read(); }),
        at: (i) => out[i],
        dispose: () => { tx.release(); tw.release(); ty.release(); },
      };
    },
  }];
  if (rivals.tfjs) {
    engines.push({
      engine: 'tfjs-webgpu',
      skip: f16 ? 'no f16 dtype in tfjs' : undefined,
      prepare: async () => {
        const tf = rivals.tfjs;
        const a = tf.tensor2d(x, [M, K]);
        const b = tf.tensor2d(w, [N, K]);
        const keep = {};
        return { once: tfjsOnce(tf, () => tf.matMul(a, b, false, true), keep), at: (i) => keep.out[i], dispose: () => { a.dispose(); b.dispose(); } };
      },
    });
  }
  // ONNX Runtime: MatMul with the transposed weight baked in as an initializer.
  const modelBytes = () => {
    const t = f16 ? new Uint16Array(K * N) : new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = wData[n * K + k];
    return linearModel(M, K, N, t, f16);
  };
  engines.push(...ortEngines(modelBytes, (ort) => ({ X: new ort.Tensor('float32', x, [M, K]) }), 'Y', (out, i) => out[i], f16 ? 'Cast→MatMul(f16)→Cast' : ''));
  await runEngines(c, engines, (i) => ref.get(i), idx);
}

// ---------------------------------------------------------------- attention
async function runAttention(c) {
  const { Lq, Lk, H, Hkv, d, causal } = c;
  console.log(`\n${c.name}: ${fmt(c.flops / 1e9)} GFLOP (counted as 4·H·Lq·Lk·d, causal or not)`);
  const G = H / Hkv;
  const scale = 1 / Math.sqrt(d);
  const rng = new Rng(11);
  // Our layout: rows of tokens, heads side by side: q [Lq, H·d], k/v [Lk, Hkv·d].
  const q = rng.normals(Lq * H * d);
  const k = rng.normals(Lk * Hkv * d);
  const v = rng.normals(Lk * Hkv * d);
  const causalOff = Lk - Lq; // query t sees keys j ≤ t + causalOff (our default causalOffset)
  // Sampled reference: outputs (t, h, j) at our layout index i = t·H·d + h·d + j.
  const idx = sampleIndices(rng, Lq * H * d, 48);
  const ref = new Map();
  for (const i of idx) {
    const t = Math.floor(i / (H * d)), h = Math.floor((i % (H * d)) / d), jj = i % d, hk = Math.floor(h / G);
    const lim = causal ? Math.min(Lk, t + causalOff + 1) : Lk;
    const s = new Float64Array(lim);
    let mx = -Infinity;
    for (let j = 0; j < lim; j++) {
      let acc = 0;
      for (let e = 0; e < d; e++) acc += q[t * H * d + h * d + e] * k[j * Hkv * d + hk * d + e];
      s[j] = acc * scale;
      mx = Math.max(mx, s[j]);
    }
    let sum = 0, o = 0;
    for (let j = 0; j < lim; j++) { const p = Math.exp(s[j] - mx); sum += p; o += p * v[j * Hkv * d + hk * d + jj]; }
    ref.set(i, o / sum);
  }

  const engines = [{
    engine: 'ours',
    skip: attention ? undefined : attentionMissing,
    prepare: async () => {
      const tq = Tensor.from(gpu, q, [Lq, H * d]);
      const tk = Tensor.from(gpu, k, [Lk, Hkv * d]);
      const tv = Tensor.from(gpu, v, [Lk, Hkv * d]);
      const args = { q: { tensor: tq, rowStride: H * d }, k: { tensor: tk, rowStride: Hkv * d }, v: { tensor: tv, rowStride: Hkv * d }, Lq, Lk, numHeads: H, numKvHeads: Hkv, headDim: d, scale, causal };
      let out;
      return {
        once: oursOnce(async () => { const o = attention(args); out = await o.readF32(); o.release(); }),
        at: (i) => out[i],
        dispose: () => { tq.release(); tk.release(); tv.release(); },
      };
    },
  }];
  // Rival layout [H, L, d] (K/V heads repeated for GQA; Kᵀ for ONNX), built outside the timed region.
  const toHeads = (src, L, heads, rep) => {
    const out = new Float32Array(H * L * d);
    for (let h = 0; h < H; h++) {
      const hs = Math.floor(h / rep);
      for (let t = 0; t < L; t++) out.set(src.subarray(t * heads * d + hs * d, t * heads * d + hs * d + d), (h * L + t) * d);
    }
    return out;
  };
  const qh = toHeads(q, Lq, H, 1), kh = toHeads(k, Lk, Hkv, G), vh = toHeads(v, Lk, Hkv, G);
  let mask = null;
  if (causal && causalOff < Lk - 1) { // some query cannot see every key
    mask = new Float32Array(Lq * Lk);
    for (let t = 0; t < Lq; t++) for (let j = t + causalOff + 1; j < Lk; j++) mask[t * Lk + j] = -1e9;
  }
  // rival output [H, Lq, d] read at our index i
  const rivalAt = (out, i) => {
    const t = Math.floor(i / (H * d)), h = Math.floor((i % (H * d)) / d), jj = i % d;
    return out[(h * Lq + t) * d + jj];
  };
  if (rivals.tfjs) {
    engines.push({
      engine: 'tfjs-webgpu',
      note: 'matMul→mul→' + (mask ? 'add→' : '') + 'softmax→matMul',
      prepare: async () => {
        const tf = rivals.tfjs;
        const tq = tf.tensor3d(qh, [H, Lq, d]), tk = tf.tensor3d(kh, [H, Lk, d]), tv = tf.tensor3d(vh, [H, Lk, d]);
        const tm = mask ? tf.tensor2d(mask, [Lq, Lk]) : null;
        const keep = {};
        const op = () => tf.tidy(() => {
          let s = tf.mul(tf.matMul(tq, tk, false, true), scale);
          if (tm) s = tf.add(s, tm);
          return tf.matMul(tf.softmax(s), tv);
        });
        return { once: tfjsOnce(tf, op, keep), at: (i) => rivalAt(keep.out, i), dispose: () => { for (const x of [tq, tk, tv, tm]) x?.dispose(); } };
      },
    });
  }
  const kt = new Float32Array(H * d * Lk);
  for (let h = 0; h < H; h++) for (let j = 0; j < Lk; j++) for (let e = 0; e < d; e++) kt[(h * d + e) * Lk + j] = kh[(h * Lk + j) * d + e];
  engines.push(...ortEngines(
    () => attentionModel(H, Lq, Lk, d, scale, mask),
    (ort) => ({ Q: new ort.Tensor('float32', qh, [H, Lq, d]), KT: new ort.Tensor('float32', kt, [H, d, Lk]), V: new ort.Tensor('float32', vh, [H, Lk, d]) }),
    'O', rivalAt, 'MatMul→Mul→' + (mask ? 'Add→' : '') + 'Softmax→MatMul',
  ));
  await runEngines(c, engines, (i) => ref.get(i), idx);
}

// ---------------------------------------------------------------- the cases
const cases = [
  { kind: 'linear', name: 'linear prefill M=600 K=2560 N=2560', M: 600, K: 2560, N: 2560 },
  { kind: 'linear', name: 'linear 1024³', M: 1024, K: 1024, N: 1024 },
  { kind: 'linear', name: 'linear decode 1×4096·4096ᵀ', M: 1, K: 4096, N: 4096 },
  { kind: 'linear', name: 'linear decode 1×4096·4096ᵀ f16 weights', M: 1, K: 4096, N: 4096, f16: true },
  // Qwen3.5-4B full-attention layer at a ~600-token prefill: 16 query heads, 4 KV heads, head_dim 256.
  { kind: 'attention', name: 'attention prefill Lq=Lk=600 H=16 Hkv=4 d=256 causal', Lq: 600, Lk: 600, H: 16, Hkv: 4, d: 256, causal: true },
  // One decode step against that 600-token cache (our engine routes Lq ≤ 4 to split-K flash-decoding).
  { kind: 'attention', name: 'attention decode Lq=1 Lk=600 H=16 Hkv=4 d=256', Lq: 1, Lk: 600, H: 16, Hkv: 4, d: 256, causal: true },
].filter((c) => (!opt.only || c.kind === opt.only) && (!opt.caseRe || opt.caseRe.test(c.name)));
await measurePeaksNow('before');
for (const c of cases) {
  c.flops = c.kind === 'linear' ? 2 * c.M * c.N * c.K : 4 * c.H * c.Lq * c.Lk * c.d;
  c.bytes = c.kind === 'linear' ? c.N * c.K * (c.f16 ? 2 : 4) + 4 * (c.M * c.K + c.M * c.N) : undefined;
  if (c.kind === 'linear') await runLinear(c);
  else await runAttention(c);
}
await measurePeaksNow('after');
const peaks = peakRuns.length ? { gflops: peakRuns.reduce((s, p) => s + p.gflops, 0) / peakRuns.length, gbps: peakRuns.reduce((s, p) => s + p.gbps, 0) / peakRuns.length, runs: peakRuns } : null;
for (const r of results) {
  const c = cases.find((x) => x.name === r.case);
  if (!r.wall || !c) continue;
  r.gflops = c.flops / (r.wall.median * 1e6);
  if (c.bytes) r.gbps = c.bytes / (r.wall.median * 1e6);
  if (peaks) {
    r.pctFmaPeak = (100 * r.gflops) / peaks.gflops;
    if (r.gbps !== undefined) r.pctReadPeak = (100 * r.gbps) / peaks.gbps;
  }
}

// ---------------------------------------------------------------- table
const rows = [];
for (const c of cases) {
  const mine = results.find((r) => r.case === c.name && r.engine === 'ours');
  const order = ['ours', 'tfjs-webgpu', 'ort-web webgpu', 'ort-node cpu', 'ort-node webgpu'];
  for (const r of results.filter((x) => x.case === c.name).sort((a, b) => order.indexOf(a.engine) - order.indexOf(b.engine))) {
    const ratio = r.wall && mine?.wall ? r.wall.median / mine.wall.median : undefined;
    const kratio = r.kernel && mine?.kernel ? r.kernel.median / mine.kernel.median : undefined;
    rows.push([
      c.name.replace(/^(linear|attention) /, `${c.kind} `),
      r.engine,
      r.wall ? fmt(r.wall.median) : 'n/a',
      r.wall ? `${fmt(r.wall.min)}–${fmt(r.wall.max)}` : '-',
      r.kernel ? fmt(r.kernel.median) : '-',
      r.wall ? fmt(c.flops / (r.wall.median * 1e6)) : '-',
      r.pctFmaPeak !== undefined ? fmt(r.pctFmaPeak) : '-',
      r.pctReadPeak !== undefined ? fmt(r.pctReadPeak) : '-',
      r.engine === 'ours' ? (r.wall ? '1' : '-') : ratio !== undefined ? fmt(ratio) : '-',
      r.engine === 'ours' ? (r.kernel ? '1' : '-') : kratio !== undefined ? fmt(kratio) : '-',
      r.errRef !== undefined ? r.errRef.toExponential(1) : '-',
      r.errOurs !== undefined && r.engine !== 'ours' ? r.errOurs.toExponential(1) : '-',
      r.note ?? '',
    ]);
  }
}
console.log('');
for (const l of formatTable(['case', 'engine', 'wall ms', 'min–max', 'kernel ms', 'GFLOPS', '% FMA peak', '% read BW', '×ours wall', '×ours kernel', 'err ref', 'err ours', 'note'], rows)) console.log(l);
console.log(`medians of ${opt.reps} runs after 1 warm-up. wall: issue → result on host; kernel: GPU timestamps. ×ours = rival / ours (> 1: ours faster).`);
console.log('err: max |Δ| / max |ref| over sampled entries (ref = f64 JS reference; ours = our output).');
if (peaks) console.log(`% FMA peak / % read BW: of the mean peaks measured in this run (FMA ${fmt(peaks.gflops)} GFLOPS, read ${fmt(peaks.gbps)} GB/s); read BW counts W + X + Y bytes once.`);
const bad = results.filter((r) => r.errRef !== undefined && !(r.errRef < (r.case.includes('f16') ? 2e-2 : 1e-3)));
for (const r of bad) console.log(`CHECK FAILED: ${r.engine} on ${r.case}: err vs ref ${r.errRef}`);
if (opt.json) {
  mkdirSync(path.dirname(path.resolve(opt.json)), { recursive: true });
  writeFileSync(opt.json, JSON.stringify({ header, reps: opt.reps, notes, peaks, results }, null, 2) + '\n');
  console.log(`wrote ${opt.json}`);
}
process.exit(bad.length ? 1 : 0);

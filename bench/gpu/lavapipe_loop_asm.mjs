#!/usr/bin/env node
// Static instruction counts of the hot loop of the decode GEMV kernels and their roofline passes as lavapipe compiles
// them (llvmpipe's GALLIVM_DEBUG=asm dump, shader cache off): for each kernel, the longest loop body in the compute
// shader (instructions between a backward jump's target and the jump) and how many per-lane bounds checks
// (`cmpl` + `jae`, one per gathered 32-bit element) it holds. lavapipe turns every storage load whose address differs
// per lane into such a per-element sequence, so instructions per byte of W predict the streaming time
// (bench/RESULTS.md, "Decode GEMV: bytes-only / widening / full"). Software adapters only; counts, not timings.
//
//   node bench/gpu/lavapipe_loop_asm.mjs        (after `npx tsc -p tsconfig.json`)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const KERNELS = {
  'read (bench_read, 512 B per iteration)': { read: true, bytesPerIter: 512 },
  'stream f32 wg8 rows8 bytes only': { stream: { f16: false, widen: false, rows: 8, wg: 8 }, bytesPerIter: 1024 },
  'stream f16 wg8 rows8 +widen': { stream: { f16: true, widen: true, rows: 8, wg: 8 }, bytesPerIter: 1024 },
  'gemv wg8 rows8 (f32)': { gemv: { kernel: 'gemv', wg: 8, rows: 8 }, f16: false, bytesPerIter: 1024 },
  'gemv_sg groups1 rows8 (f32)': { gemv: { kernel: 'gemv_sg', groups: 1, rows: 8 }, f16: false, bytesPerIter: 1024 },
  'gemv wg8 rows8 wide (f16)': { gemv: { kernel: 'gemv', wg: 8, rows: 8, wide: true }, f16: true, bytesPerIter: 1024 },
};

if (process.env.QVLA_LOOP_ASM_CHILD) {
  // Child: compile and run one kernel on tiny data; llvmpipe prints its assembly.
  const { Gpu } = await import('../../dist/src/gpu/device.js');
  const { gemvStream, readPass } = await import('../../dist/src/bench/roofline.js');
  const { linear } = await import('../../dist/src/ops/linear.js');
  const { Tensor } = await import('../../dist/src/tensor.js');
  const k = KERNELS[process.env.QVLA_LOOP_ASM_CHILD];
  const gpu = await Gpu.create();
  if (k.read || k.stream) {
    const p = k.read ? readPass(gpu, { readBytes: 1 << 20, readInvocations: 256 }) : gemvStream(gpu, { N: 64, K: 256, ...k.stream });
    p.encode();
    await p.check();
    p.release();
  } else {
    const N = 64, K = 256;
    const x = Tensor.from(gpu, new Float32Array(K).fill(0.01), [1, K]);
    const w = k.f16 ? Tensor.from(gpu, new Uint16Array(N * K).fill(0x2000), [N, K], 'f16') : Tensor.from(gpu, new Float32Array(N * K).fill(0.01), [N, K]);
    await linear(x, w, { config: k.gemv }).read();
  }
  gpu.destroy();
  process.exit(0);
}

/** The longest loop body of the compute-shader functions (cs_*) in an llvmpipe asm dump. */
function hotLoop(dump) {
  let best = null;
  let fn = null, ins = [];
  const flush = () => {
    if (!fn?.startsWith('cs')) return;
    const at = new Map(ins.map((x, i) => [x.off, i]));
    for (let i = 0; i + 1 < ins.length; i++) {
      const m = /^j\w+$/.test(ins[i].op) && /^(-?\d+)$/.exec(ins[i].arg);
      if (!m) continue;
      const target = ins[i + 1].off + Number(m[1]); // rel32/rel8: relative to the next instruction
      if (target >= ins[i].off || !at.has(target)) continue;
      const body = ins.slice(at.get(target), i + 1);
      if (!best || body.length > best.length) best = body;
    }
  };
  for (const line of dump.split('\n')) {
    if (/^[A-Za-z_][\w.]*:$/.test(line)) { flush(); fn = line.slice(0, -1); ins = []; continue; }
    const m = /^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$/.exec(line);
    if (m) ins.push({ off: parseInt(m[1], 16), op: m[2], arg: m[3].trim() });
  }
  flush();
  return best;
}

const self = fileURLToPath(import.meta.url);
console.log('kernel                                   loop instrs  bounds checks  branches  instrs per byte of W');
for (const [name, k] of Object.entries(KERNELS)) {
  const r = spawnSync(process.execPath, [self], {
    env: { ...process.env, QVLA_LOOP_ASM_CHILD: name, GALLIVM_DEBUG: 'asm', MESA_SHADER_CACHE_DISABLE: 'true' }, encoding: 'utf8', maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`${name}: child failed\n${r.stderr}`);
  const body = hotLoop(r.stdout + r.stderr);
  if (!body) { console.log(`${name.padEnd(40)} (no asm dump: not llvmpipe, or GALLIVM_DEBUG unsupported)`); continue; }
  const checks = body.filter((x) => x.op === 'jae').length;
  const branches = body.filter((x) => x.op.startsWith('j')).length;
  console.log(`${name.padEnd(40)} ${String(body.length).padStart(11)}  ${String(checks).padStart(13)}  ${String(branches).padStart(8)}  ${(body.length / k.bytesPerIter).toFixed(2).padStart(20)}`);
}

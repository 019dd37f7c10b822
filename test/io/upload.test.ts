import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import * as os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { create, globals } from 'webgpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToF16, type Dtype } from '../../src/io/dtypes.js';
import { CheckpointError } from '../../src/io/errors.js';
import { openSafetensors, type SafetensorsFile, type TensorSource } from '../../src/io/safetensors.js';
import { encodeSafetensorsHeader, writeSafetensors, type TensorToWrite } from '../../src/io/safetensorsWriter.js';
import { destroyUploaded, keepsF32, uploadTensors, type UploadedTensor, type UploadProgress } from '../../src/io/upload.js';
import type { ExpectedTensor } from '../../src/model/expectedTensors.js';
import { randomTensor, rng, tmpDir } from './helpers.js';

Object.assign(globalThis, globals);
// Keep the GPU object referenced for the whole file (Dawn crashes if it is collected).
const gpu = create([]);
let device: GPUDevice;
let dir: string;

beforeAll(async () => {
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  device = await adapter.requestDevice({
    requiredLimits: {
      maxBufferSize: adapter.limits.maxBufferSize,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    },
  });
  dir = await tmpDir('qvla-up-');
});
afterAll(async () => {
  device?.destroy();
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A device whose createBuffer is counted and whose buffers count their destroy() calls. */
function countingDevice(): { dev: GPUDevice; created: () => number; destroyed: () => number } {
  let created = 0;
  let destroyed = 0;
  const dev = new Proxy(device, {
    get(t, k) {
      if (k === 'createBuffer') {
        return (d: GPUBufferDescriptor) => {
          created++;
          const b = t.createBuffer(d);
          const orig = b.destroy.bind(b);
          b.destroy = () => {
            destroyed++;
            orig();
          };
          return b;
        };
      }
      const v = Reflect.get(t, k) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
  return { dev, created: () => created, destroyed: () => destroyed };
}

async function readBack(buf: GPUBuffer, offset: number, size: number): Promise<Uint8Array> {
  const sz = Math.ceil(size / 4) * 4;
  const rb = device.createBuffer({ size: sz, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, offset, rb, 0, sz);
  device.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const out = new Uint8Array(rb.getMappedRange()).slice(0, size);
  rb.unmap();
  rb.destroy();
  return out;
}

async function readTensorBack(t: UploadedTensor): Promise<Uint8Array> {
  const out = new Uint8Array(t.byteLength);
  let o = 0;
  for (const p of t.parts) {
    out.set(await readBack(p.buffer, 0, p.byteLength), o);
    o += p.byteLength;
  }
  return out;
}

const u8 = (v: ArrayBufferView): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/** CPU expectation of the GPU bytes. */
function expectedBytes(t: TensorToWrite, out: string): Uint8Array {
  const src = u8(t.data);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const asF32 = (): Float32Array => {
    if (t.dtype === 'F32') return new Float32Array(src.slice().buffer);
    const f = new Float32Array(n);
    const h = new Uint16Array(src.slice().buffer);
    if (t.dtype === 'BF16') bf16ToF32(h, f);
    else f16ToF32(h, f);
    return f;
  };
  if (out === 'f32') return u8(asF32());
  if (out === 'f16') {
    if (t.dtype === 'F16') return src;
    const h = new Uint16Array(n);
    f32ToF16(asF32(), h);
    return u8(h);
  }
  return src;
}

function specialBf16(): TensorToWrite {
  // inf, -inf, NaN, ±0, bf16 subnormal, f16-subnormal range, beyond f16 max, ties
  const vals = [0x7f80, 0xff80, 0x7fc1, 0x0000, 0x8000, 0x0001, 0x3380, 0x3400, 0x4780, 0x477f, 0xc77f, 0x3f80, 0x3f81, 0x3fff, 0x4049, 0xbf00];
  const a = new Uint16Array(vals.length * 2);
  a.set(vals);
  a.set(vals.map((v) => v ^ 0x0003), vals.length);
  return { name: 'special.weight', dtype: 'BF16', shape: [2, vals.length], data: a };
}

/** Writes header + data section (f32 element i = i mod 2^24) in 8 MiB pieces; its buffers die on return. */
async function writeCountingFile(p: string, header: Uint8Array, dataSize: number): Promise<void> {
  const h = await fsp.open(p, 'w');
  try {
    await h.write(header);
    const piece = new Float32Array(2 * 1024 * 1024);
    for (let e0 = 0; e0 < dataSize / 4; e0 += piece.length) {
      const n = Math.min(piece.length, dataSize / 4 - e0);
      for (let i = 0; i < n; i++) piece[i] = (e0 + i) % 16777216;
      await h.write(new Uint8Array(piece.buffer, 0, n * 4));
    }
  } finally {
    await h.close();
  }
}

describe('uploadTensors', () => {
  let file: SafetensorsFile;
  let tensors: TensorToWrite[];
  beforeAll(async () => {
    const r = rng(5);
    tensors = [
      randomTensor(r, 'w.bf16', 'BF16', [33, 7]),
      randomTensor(r, 'w.f16', 'F16', [5, 3]),
      randomTensor(r, 'w.f32', 'F32', [4, 6]),
      randomTensor(r, 'norm.weight', 'BF16', [17]),
      randomTensor(r, 'conv.weight', 'BF16', [6, 1, 4]),
      randomTensor(r, 'scalar', 'F16', []),
      randomTensor(r, 'layers.0.linear_attn.A_log', 'F32', [2, 3]),
      randomTensor(r, 'layers.0.linear_attn.norm.weight', 'F32', [2, 8]),
      randomTensor(r, 'ids', 'I32', [5]),
      randomTensor(r, 'mask', 'BOOL', [7]),
      randomTensor(r, 'bytes', 'U8', [3, 3]),
      randomTensor(r, 'empty', 'BF16', [0, 4]),
      specialBf16(),
    ];
    await writeSafetensors(nodePath.join(dir, 'mix.safetensors'), tensors);
    file = await openSafetensors(nodePath.join(dir, 'mix.safetensors'));
  });
  afterAll(async () => {
    await file.close();
  });

  for (const weightDtype of ['f32', 'f16'] as const) {
    it(`round-trips every dtype to ${weightDtype} (bf16/f16/f32 converted; 1-D, A_log, linear_attn.norm kept f32; ints raw)`, async () => {
      const progress: UploadProgress[] = [];
      const names = tensors.map((t) => t.name);
      const up = await uploadTensors(device, file, names, { weightDtype, chunkBytes: 48, onProgress: (p) => progress.push(p) });
      try {
        expect([...up.keys()]).toEqual(names);
        for (const t of tensors) {
          const u = up.get(t.name)!;
          const isFloat = ['F32', 'F16', 'BF16'].includes(t.dtype);
          const want = isFloat ? (keepsF32(t.name, t.shape) ? 'f32' : weightDtype) : t.dtype.toLowerCase();
          expect(u.dtype, t.name).toBe(want);
          expect(u.sourceDtype).toBe(t.dtype);
          expect(u.shape).toEqual(t.shape);
          expect(u.parts.length).toBe(1);
          expect(u.parts[0]!.buffer.size).toBe(Math.max(4, Math.ceil(u.byteLength / 4) * 4));
          expect(u.parts[0]!.buffer.usage).toBe(GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC);
          const got = await readTensorBack(u);
          expect(got, t.name).toEqual(expectedBytes(t, want));
        }
        expect(up.get('layers.0.linear_attn.A_log')!.dtype).toBe('f32');
        // special values: bf16 → f16 overflow becomes inf, NaN stays NaN
        if (weightDtype === 'f16') {
          const sp = new Uint16Array((await readTensorBack(up.get('special.weight')!)).buffer);
          expect(sp[0]).toBe(0x7c00);
          expect(sp[1]).toBe(0xfc00);
          expect(sp[2]! & 0x7c00).toBe(0x7c00);
          expect(sp[2]! & 0x3ff).not.toBe(0);
          expect(sp[8]).toBe(0x7c00); // 65536 → inf
        }
        // progress is monotonic and complete
        const total = tensors.reduce((s, t) => s + t.data.byteLength, 0);
        for (let i = 1; i < progress.length; i++) expect(progress[i]!.bytes).toBeGreaterThanOrEqual(progress[i - 1]!.bytes);
        expect(progress.at(-1)).toMatchObject({ bytes: total, totalBytes: total, tensors: tensors.length, totalTensors: tensors.length });
        expect(progress.length).toBeGreaterThan(tensors.length); // several chunks for the bigger tensors
      } finally {
        destroyUploaded(up);
      }
    });
  }

  it('splits tensors larger than maxBindingBytes along dim 0', async () => {
    const r = rng(9);
    const big = randomTensor(r, 'big', 'F32', [100, 16]);
    const bigBf = randomTensor(r, 'bigbf', 'BF16', [10, 3]);
    const p = nodePath.join(dir, 'split.safetensors');
    await writeSafetensors(p, [big, bigBf]);
    const f = await openSafetensors(p);
    try {
      const up = await uploadTensors(device, f, ['big', 'bigbf'], { weightDtype: 'f16', maxBindingBytes: 1000, chunkBytes: 100 });
      const b = up.get('big')!;
      // f16 rows are 32 bytes → 31 rows (992 bytes) per part
      expect(b.parts.map((x) => [x.rowStart, x.rows, x.byteLength])).toEqual([[0, 31, 992], [31, 31, 992], [62, 31, 992], [93, 7, 224]]);
      for (const x of b.parts) expect(x.buffer.size).toBeLessThanOrEqual(1000);
      expect(await readTensorBack(b)).toEqual(expectedBytes(big, 'f16'));
      expect(await readTensorBack(up.get('bigbf')!)).toEqual(expectedBytes(bigBf, 'f16'));
      destroyUploaded(up);

      const up2 = await uploadTensors(device, f, ['big', 'bigbf'], { weightDtype: 'f32', maxBindingBytes: 1000, chunkBytes: 64 });
      expect(up2.get('big')!.parts.map((x) => x.rows)).toEqual([15, 15, 15, 15, 15, 15, 10]);
      expect(await readTensorBack(up2.get('big')!)).toEqual(expectedBytes(big, 'f32'));
      // odd-sized rows: 3 f32 = 12-byte rows, 1000-byte limit → one part; with a 16-byte limit, 1 row per part
      const up3 = await uploadTensors(device, f, ['bigbf'], { weightDtype: 'f16', maxBindingBytes: 16 });
      const t3 = up3.get('bigbf')!;
      expect(t3.parts.map((x) => [x.rows, x.byteLength, x.buffer.size])).toEqual(Array.from({ length: 5 }, () => [2, 12, 12]));
      expect(await readTensorBack(t3)).toEqual(expectedBytes(bigBf, 'f16'));
      destroyUploaded(up2);
      destroyUploaded(up3);
    } finally {
      await f.close();
    }
  });

  it('creates no GPU buffer for a rejected request or checkpoint', async () => {
    const { dev, created } = countingDevice();
    // a row that cannot fit the binding limit
    await expect(uploadTensors(dev, file, ['w.bf16', 'w.f32'], { weightDtype: 'f32', maxBindingBytes: 16 })).rejects.toThrow(
      /"w\.bf16": one dim-0 row is 28 bytes as f32 \(shape \[33, 7\]\), more than maxBindingBytes 16/,
    );
    // unknown names, duplicates: all reported together
    const e = await uploadTensors(dev, file, ['w.f32', 'nope', 'w.f32'], { weightDtype: 'f16', source: 'mix' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CheckpointError);
    expect((e as Error).message).toMatch(/^mix: cannot upload 2 tensor\(s\):\n {2}"nope": not in the checkpoint\n {2}"w\.f32": requested twice/);
    // a checkpoint that does not match the expected tensors
    const expected: ExpectedTensor[] = tensors.map((t) => ({ name: t.name, shape: t.name === 'w.f16' ? [3, 5] : [...t.shape], group: 'text' }));
    await expect(uploadTensors(dev, file, ['w.f32'], { weightDtype: 'f16', expected })).rejects.toThrow(
      /mis-shaped tensor\(s\):\n {2}w\.f16: expected \[3, 5\], found \[5, 3\][\s\S]*unsupported dtype:\n {2}ids: I32/,
    );
    // F64 is refused
    const p = nodePath.join(dir, 'f64.safetensors');
    await writeSafetensors(p, [{ name: 'd', dtype: 'F64', shape: [2], data: new Float64Array(2) }]);
    const f = await openSafetensors(p);
    await expect(uploadTensors(dev, f, ['d'], { weightDtype: 'f32' })).rejects.toThrow(/"d": dtype F64 is not supported/);
    await f.close();
    expect(created()).toBe(0);
  });

  it('destroys the buffers already created when a read fails mid-stream', async () => {
    const { dev, created, destroyed } = countingDevice();
    let reads = 0;
    const failing: TensorSource = {
      tensorInfos: file.tensorInfos,
      readRange: async (name, start, length, into) => {
        if (++reads === 6) throw new CheckpointError('read failed (simulated EIO)', { file: file.path, tensor: name });
        return file.readRange(name, start, length, into);
      },
    };
    const names = tensors.map((t) => t.name);
    await expect(uploadTensors(dev, failing, names, { weightDtype: 'f16', chunkBytes: 32 })).rejects.toThrow(/read failed \(simulated EIO\)/);
    expect(created()).toBeGreaterThan(0);
    expect(destroyed()).toBe(created());
    // a non-CheckpointError from the source is wrapped
    const throwing: TensorSource = { tensorInfos: file.tensorInfos, readRange: async () => { throw new Error('boom'); } };
    const e = await uploadTensors(dev, throwing, ['w.f32'], { weightDtype: 'f32', source: 'src' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CheckpointError);
    expect((e as Error).message).toBe('src: upload failed: boom');
    expect(destroyed()).toBe(created());
  });

  it('uploads a ~300 MB checkpoint with bounded JS memory', async () => {
    const MiB = 1024 * 1024;
    const entries: { name: string; dtype: Dtype; shape: number[] }[] = [
      { name: 'big.weight', dtype: 'F32', shape: [40960, 1024] }, // 160 MiB: above the 128 MiB binding limit of most adapters
      { name: 'mid.weight', dtype: 'F32', shape: [28672, 1024] }, // 112 MiB
      { name: 'small.weight', dtype: 'F32', shape: [4096, 1024] }, // 16 MiB
      { name: 'bias', dtype: 'F32', shape: [1024] },
    ];
    const enc = encodeSafetensorsHeader(entries);
    const p = nodePath.join(os.tmpdir(), `qvla-heap-${process.pid}.safetensors`);
    // stream the file out in 8 MiB pieces: element i of the data section is i (as f32), so any range is checkable
    await writeCountingFile(p, enc.bytes, enc.dataSize);
    const f = await openSafetensors(p);
    try {
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as () => void;
      for (const weightDtype of ['f32', 'f16'] as const) {
        let up: Map<string, UploadedTensor> | null = null;
        try {
          gc();
          const base = process.memoryUsage();
          const peak = { heapUsed: 0, arrayBuffers: 0, sum: 0, rss: 0 };
          const sample = (): void => {
            const m = process.memoryUsage();
            peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
            peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
            peak.sum = Math.max(peak.sum, m.heapUsed + m.arrayBuffers);
            peak.rss = Math.max(peak.rss, m.rss);
          };
          const timer = setInterval(sample, 5);
          const t0 = performance.now();
          try {
            up = await uploadTensors(device, f, entries.map((e) => e.name), { weightDtype, onProgress: sample });
          } finally {
            clearInterval(timer);
          }
          const secs = (performance.now() - t0) / 1000;
          sample();
          const growth = peak.sum - (base.heapUsed + base.arrayBuffers);
          const fmt = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;
          console.log(
            `heap-bounded upload (F32 → ${weightDtype}) of ${fmt(enc.dataSize)} in ${secs.toFixed(2)} s (${(enc.dataSize / MiB / secs).toFixed(0)} MiB/s), binding limit ${fmt(device.limits.maxStorageBufferBindingSize)}:\n` +
              `  baseline heapUsed ${fmt(base.heapUsed)}, arrayBuffers ${fmt(base.arrayBuffers)}, rss ${fmt(base.rss)}\n` +
              `  peak     heapUsed ${fmt(peak.heapUsed)}, arrayBuffers ${fmt(peak.arrayBuffers)}, rss ${fmt(peak.rss)}\n` +
              `  growth   heapUsed+arrayBuffers ${fmt(growth)}, rss ${fmt(peak.rss - base.rss)} (rss includes the GPU buffers themselves on a CPU adapter)`,
          );
          expect(growth).toBeLessThan(64 * MiB);

          const outElem = weightDtype === 'f32' ? 4 : 2;
          const big = up.get('big.weight')!;
          const limit = device.limits.maxStorageBufferBindingSize;
          const rowsPerPart = Math.floor(limit / (1024 * outElem));
          expect(big.parts.length).toBe(Math.ceil(40960 / rowsPerPart));
          // spot-check the first and last 1024 elements of every part
          let elem0 = 0;
          for (const name of entries.map((e) => e.name)) {
            const t = up.get(name)!;
            const elemBytes = t.dtype === 'f32' ? 4 : 2;
            for (const part of t.parts) {
              const first = elem0 + (part.rowStart * t.rowBytes) / elemBytes;
              for (const off of [0, part.byteLength - 1024 * elemBytes]) {
                if (off < 0) continue;
                const raw = await readBack(part.buffer, off, 1024 * elemBytes);
                let got: Float32Array;
                if (elemBytes === 4) got = new Float32Array(raw.buffer);
                else {
                  got = new Float32Array(1024);
                  f16ToF32(new Uint16Array(raw.buffer), got);
                }
                const e = first + off / elemBytes;
                const want = (k: number): number => {
                  const v = (e + k) % 16777216;
                  if (elemBytes === 4) return v;
                  const h = new Uint16Array(1);
                  const o = new Float32Array(1);
                  f32ToF16(new Float32Array([v]), h);
                  f16ToF32(h, o);
                  return o[0]!;
                };
                expect([got[0], got[1023]]).toEqual([want(0), want(1023)]);
              }
            }
            elem0 += t.byteLength / elemBytes;
          }
        } finally {
          if (up) destroyUploaded(up);
        }
      }
    } finally {
      await f.close();
      await fsp.rm(p, { force: true });
    }
  }, 60_000);
});

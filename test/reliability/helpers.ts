// Shared helpers of the reliability tests: throwaway copies of weights/tiny to corrupt, safetensors rewrites,
// open-file counting, and a hang detector.
import { promises as fsp, readdirSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { openSafetensors } from '../../src/io/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensorsWriter.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';

/** A fresh copy of weights/tiny in a temp dir (the caller removes it with `rmTmp`). */
export async function copyTiny(prefix = 'qvla-rel-'): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  for (const f of await fsp.readdir(TINY_DIR)) {
    const src = path.join(TINY_DIR, f);
    if ((await fsp.stat(src)).isFile()) await fsp.copyFile(src, path.join(dir, f));
  }
  return dir;
}

export async function rmTmp(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}

/** Every tensor of a safetensors file, with its bytes. */
export async function readAllTensors(file: string): Promise<{ tensors: TensorToWrite[]; metadata: Record<string, string> | null }> {
  const f = await openSafetensors(file);
  try {
    const tensors: TensorToWrite[] = [];
    for (const [name, info] of f.tensors) {
      tensors.push({ name, dtype: info.dtype, shape: [...info.shape], data: (await f.readTensor(name)).slice() });
    }
    return { tensors, metadata: f.metadata ? { ...f.metadata } : null };
  } finally {
    await f.close();
  }
}

/** Rewrites dir/model.safetensors through `edit` (which may drop, reshape or change tensors). */
export async function rewriteWeights(dir: string, edit: (ts: TensorToWrite[]) => TensorToWrite[]): Promise<void> {
  const file = path.join(dir, 'model.safetensors');
  const { tensors, metadata } = await readAllTensors(file);
  await writeSafetensors(file, edit(tensors), metadata);
}

export async function editJson(file: string, edit: (j: any) => unknown): Promise<void> {
  const j = JSON.parse(await fsp.readFile(file, 'utf8'));
  const out = edit(j);
  await fsp.writeFile(file, JSON.stringify(out === undefined ? j : out));
}

/** Open file descriptors of this process (Linux). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** `p`, or a rejection naming `what` after `ms` (a hang is a test failure, not a stuck run). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang)`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Bitwise equality of two float arrays (NaN-safe, −0 ≠ 0). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return false;
  return true;
}

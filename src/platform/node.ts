// The Node platform: node:fs for checkpoint and image files, Dawn (the `webgpu` npm package) for WebGPU, kernels
// read from the package's kernels/ directory.
import { readFileSync, promises as fsp } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as nodePath from 'node:path';
import type { FileSystem, PathKind, Platform } from './types.js';

const here = nodePath.dirname(fileURLToPath(import.meta.url));
/** kernels/ lives at the package root; this file is src/platform/ (or dist/src/platform/ when built). */
export const KERNEL_DIR = (() => {
  for (const up of ['../..', '../../..']) {
    const p = nodePath.resolve(here, up, 'kernels');
    try {
      readFileSync(nodePath.join(p, 'README.md'));
      return p;
    } catch {
      /* try the next */
    }
  }
  return nodePath.resolve(here, '../../kernels');
})();

export const nodeFs: FileSystem = {
  join: (...parts) => nodePath.join(...parts),
  async kind(p): Promise<PathKind> {
    try {
      const st = await fsp.stat(p);
      return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
    } catch {
      return null;
    }
  },
  readText: (p) => fsp.readFile(p, 'utf8'),
  readBytes: (p) => fsp.readFile(p),
  list: (d) => fsp.readdir(d),
  open: (p) => fsp.open(p, 'r'),
};

// Module-level pins: one `create()` result per flag set, never released (Dawn crashes if it is collected).
const pinnedInstances = new Map<string, GPU>();
let globalsInstalled = false;
let dawn: Promise<typeof import('webgpu')> | null = null;

/** Dawn's instance for a flag set. The `webgpu` package (a native addon) loads on first use, not on import. */
async function dawnInstance(flags: readonly string[]): Promise<GPU> {
  const { create, globals } = await (dawn ??= import('webgpu'));
  if (!globalsInstalled) {
    // dawn.node's classes (GPUBufferUsage, GPUShaderStage, ...) are not globals in Node.
    for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    globalsInstalled = true;
  }
  const key = flags.join('\n');
  let inst = pinnedInstances.get(key);
  if (!inst) {
    inst = create([...flags]);
    pinnedInstances.set(key, inst);
  }
  return inst;
}

export const nodePlatform: Platform = {
  name: 'node',
  fs: nodeFs,
  gpu: dawnInstance,
  kernelSource: (file) => readFileSync(nodePath.join(KERNEL_DIR, `${file}.wgsl`), 'utf8'),
};

// Shared pieces of the eval tests: a tiny checkpoint with the world embodiments, the CLI run in-process with its
// output captured, a minimal GIF reader.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import * as os from 'node:os';
import { vi } from 'vitest';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { worldEmbodiments } from '../../src/worlds/registry.js';
import { run } from '../../src/cli/main.js';

/** weights/tiny (random weights) copied to a temp dir, its embodiments.json replaced by the world embodiments. */
export async function worldCheckpoint(): Promise<string> {
  const dir = await fsp.mkdtemp(nodePath.join(os.tmpdir(), 'qvla-eval-ckpt-'));
  for (const f of await fsp.readdir(TINY_DIR)) {
    const st = await fsp.stat(nodePath.join(TINY_DIR, f));
    if (st.isFile()) await fsp.copyFile(nodePath.join(TINY_DIR, f), nodePath.join(dir, f));
  }
  await fsp.writeFile(nodePath.join(dir, 'embodiments.json'), `${JSON.stringify(worldEmbodiments(), null, 2)}\n`);
  return dir;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `qvla …` in this process, stdout/stderr captured (Dawn's native warnings bypass process.stderr). */
export async function qvla(...argv: string[]): Promise<CliResult> {
  let stdout = '', stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    stdout += String(s);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  });
  try {
    const code = await run(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** Frames and size of a GIF (header, logical screen, blocks; enough to check what gifenc wrote). */
export function readGif(b: Uint8Array): { width: number; height: number; frames: number; delays: number[] } {
  const sig = String.fromCharCode(...b.subarray(0, 6));
  if (sig !== 'GIF89a' && sig !== 'GIF87a') throw new Error(`not a GIF: ${JSON.stringify(sig)}`);
  const width = b[6]! | (b[7]! << 8), height = b[8]! | (b[9]! << 8);
  let p = 13;
  if (b[10]! & 0x80) p += 3 * (1 << ((b[10]! & 7) + 1));
  const skipSubBlocks = () => {
    while (b[p]! !== 0) p += b[p]! + 1;
    p++;
  };
  let frames = 0;
  const delays: number[] = [];
  for (;;) {
    const t = b[p++];
    if (t === 0x3b) break;
    if (t === 0x21) {
      const label = b[p++];
      if (label === 0xf9) delays.push((b[p + 2]! | (b[p + 3]! << 8)) * 10);
      skipSubBlocks();
    } else if (t === 0x2c) {
      const flags = b[p + 8]!;
      p += 9;
      if (flags & 0x80) p += 3 * (1 << ((flags & 7) + 1));
      p++; // LZW minimum code size
      skipSubBlocks();
      frames++;
    } else {
      throw new Error(`GIF: unexpected block 0x${(t ?? 0).toString(16)} at ${p - 1}`);
    }
    if (p > b.length) throw new Error('GIF: truncated');
  }
  return { width, height, frames, delays };
}

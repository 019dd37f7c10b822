// Rollout pictures of evaluation episodes: per episode an animated GIF (gifenc) and a filmstrip PNG of the
// decisions, each frame the world's picture with the chunk about to be executed drawn over it, plus the final
// state. Files are never overwritten: the targets are checked before a run (assertAbsent) and written with
// exclusive create.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import * as gifNs from 'gifenc';
import type { RgbImage } from '../preprocess/image.js';
import { encodeRgbPng, hstack } from '../worlds/png.js';
import type { Chunk, World } from '../worlds/types.js';
import type { EpisodeOptions, EpisodeResult } from './episodes.js';
import { QvlaError } from '../util/errors.js';

/** What names a rollout file. */
export type RolloutKey = Pick<EpisodeResult, 'world' | 'embodiment' | 'level' | 'condition' | 'solver' | 'steps' | 'seed'>;

/** `tabletop-planar-A-policy-euler2-1000000000` (the condition with anything but [A-Za-z0-9_.-] as '-'). */
export function rolloutStem(k: RolloutKey): string {
  const cond = k.condition.replace(/[^A-Za-z0-9_.-]+/g, '-');
  const how = k.solver === null ? '' : `-${k.solver}${k.steps ?? ''}`;
  return `${k.world}-${k.embodiment}-${k.level}-${cond}${how}-${k.seed}`;
}

export interface RolloutFiles {
  gif: string;
  strip: string;
}

export function rolloutFiles(dir: string, k: RolloutKey): RolloutFiles {
  const stem = nodePath.join(dir, rolloutStem(k));
  return { gif: `${stem}.gif`, strip: `${stem}-strip.png` };
}

export class FileExistsError extends QvlaError {
  constructor(readonly path: string, what = 'rollout file') {
    super(`${what} ${path} already exists; it is never overwritten (choose another --rollouts directory or move it away)`, { code: 'file_exists', file: path });
    this.name = 'FileExistsError';
  }
}

/** Throws FileExistsError naming the first path that exists (or appears twice in `paths`). */
export async function assertAbsent(paths: readonly string[]): Promise<void> {
  const seen = new Set<string>();
  for (const p of paths) {
    if (seen.has(p)) throw new Error(`rollout file ${p} would be written twice (the same episode twice in one run)`);
    seen.add(p);
    const exists = await fsp.lstat(p).then(() => true, (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    });
    if (exists) throw new FileExistsError(p);
  }
}

/** Writes a new file; an existing one is an error (FileExistsError), never replaced. */
export async function writeNewFile(path: string, data: Uint8Array): Promise<void> {
  try {
    await fsp.writeFile(path, data, { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new FileExistsError(path);
    throw e;
  }
}

// Node's ESM loader exposes gifenc's CommonJS build as `default`; bundlers (and vitest) its ESM build's names.
type Gifenc = Pick<typeof gifNs, 'GIFEncoder' | 'quantize' | 'applyPalette'>;
const gifenc: Gifenc = typeof gifNs.quantize === 'function' ? gifNs : (gifNs.default as Gifenc);

function rgba(im: RgbImage): Uint8Array {
  const n = im.width * im.height;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    out[4 * i] = im.data[3 * i]!;
    out[4 * i + 1] = im.data[3 * i + 1]!;
    out[4 * i + 2] = im.data[3 * i + 2]!;
    out[4 * i + 3] = 255;
  }
  return out;
}

/** An animated GIF being written frame by frame (each frame its own 256-colour palette; loops forever). */
export class GifWriter {
  private gif: gifNs.GifStream = gifenc.GIFEncoder();
  frames = 0;

  add(im: RgbImage, delayMs: number): void {
    const px = rgba(im);
    const palette = gifenc.quantize(px, 256, { format: 'rgb565' });
    this.gif.writeFrame(gifenc.applyPalette(px, palette, 'rgb565'), im.width, im.height, { palette, delay: delayMs, repeat: 0 });
    this.frames++;
  }

  finish(): Uint8Array {
    this.gif.finish();
    return this.gif.bytes();
  }
}

/** Frames in a grid, `perRow` per row, left to right then top to bottom, `gap` white pixels apart. */
export function filmstrip(frames: RgbImage[], perRow = 10, gap = 4): RgbImage {
  if (frames.length === 0) throw new RangeError('filmstrip: no frames');
  const rows: RgbImage[] = [];
  for (let i = 0; i < frames.length; i += perRow) rows.push(hstack(frames.slice(i, i + perRow), gap));
  const w = Math.max(...rows.map((r) => r.width));
  const h = rows.reduce((s, r) => s + r.height, 0) + gap * (rows.length - 1);
  const data = new Uint8Array(w * h * 3).fill(255);
  let y0 = 0;
  for (const r of rows) {
    for (let y = 0; y < r.height; y++) data.set(r.data.subarray(y * r.width * 3, (y + 1) * r.width * 3), (y0 + y) * w * 3);
    y0 += r.height + gap;
  }
  return { width: w, height: h, channels: 3, data };
}

export interface RolloutOptions {
  /** Upscale of the GIF frames (default 2); the filmstrip frames are drawn at scale 1. */
  scale?: number;
  /** GIF delay per decision (default 600 ms); the final frame stays 3× as long. */
  delayMs?: number;
  /** Filmstrip frames per row (default 10). */
  perRow?: number;
}

/**
 * Collects the pictures of a run's episodes through runEpisodes' hooks and writes `<stem>.gif` and
 * `<stem>-strip.png` into `dir` when an episode ends. Memory: the GIF is encoded as frames arrive; the filmstrip
 * keeps its (scale 1) frames until the episode ends.
 */
export class RolloutRecorder {
  readonly files: string[] = [];
  private gifs = new Map<number, GifWriter>();
  private strips = new Map<number, RgbImage[]>();
  private readonly scale: number;
  private readonly delay: number;

  constructor(readonly dir: string, private readonly opts: RolloutOptions = {}) {
    this.scale = opts.scale ?? 2;
    this.delay = opts.delayMs ?? 600;
  }

  private frame(episode: number, world: World, chunk: Chunk | null, delay: number): void {
    let g = this.gifs.get(episode);
    if (!g) this.gifs.set(episode, (g = new GifWriter()));
    g.add(world.picture(chunk, this.scale), delay);
    let s = this.strips.get(episode);
    if (!s) this.strips.set(episode, (s = []));
    s.push(world.picture(chunk, 1));
  }

  /** The hooks to spread into runEpisodes' options. */
  hooks(): Pick<EpisodeOptions, 'onDecision' | 'onEpisodeEnd'> {
    return {
      onDecision: (e, w, chunk) => this.frame(e, w, chunk, this.delay),
      onEpisodeEnd: async (e, w, r) => {
        this.frame(e, w, null, 3 * this.delay);
        const f = rolloutFiles(this.dir, r);
        const gif = this.gifs.get(e)!.finish();
        const strip = filmstrip(this.strips.get(e)!, this.opts.perRow ?? 10);
        this.gifs.delete(e);
        this.strips.delete(e);
        await writeNewFile(f.gif, gif);
        this.files.push(f.gif);
        await writeNewFile(f.strip, encodeRgbPng(strip));
        this.files.push(f.strip);
      },
    };
  }
}

// The contract every world implements (src/worlds/README.md has the worlds, their embodiments and rules).
import type { RgbImage } from '../preprocess/image.js';
import type { Rng } from '../util/rng.js';

export type WorldName = 'tabletop' | 'nav' | 'ball';
export type Level = 'A' | 'B' | 'bimodal';

/** What a policy sees at one decision. */
export interface WorldObservation {
  /** Camera frames in the embodiment's camera order (copies: they never change afterwards). */
  images: { camera: string; image: RgbImage }[];
  /** Raw proprioceptive state in physical units (the embodiment's state.names order), or null. */
  state: number[] | null;
  instruction: string;
}

/** A chunk in physical units as act() returns it: rows × channels, row-major. */
export interface Chunk {
  rows: number;
  channels: number;
  data: Float32Array;
}

export interface World {
  readonly world: WorldName;
  readonly embodiment: string;
  readonly level: Level;
  readonly seed: number;
  /** Decisions after which the episode ends regardless. */
  readonly maxDecisions: number;
  /** Decisions taken so far. */
  readonly decisions: number;
  readonly done: boolean;
  readonly success: boolean;
  observe(): WorldObservation;
  /** The scripted expert's clean chunk for the current state (physical units, absolute targets). */
  expert(): Chunk;
  /** Executes a chunk (its first `executed` rows); ends the episode on success or the stop rule. */
  step(chunk: Chunk): void;
  /** World-specific metrics of the episode so far (nav: osr, spl, path; ball: ade, fde, cv_ade, cv_fde …). */
  metrics(): Record<string, number>;
  /** A picture for rollouts: the main camera frame with the chunk (if any) drawn over it, upscaled ×`scale`. */
  picture(chunk: Chunk | null, scale: number): RgbImage;
  /** A question about the current frame and its answer (VQA training data), drawn with `rng`. */
  question(rng: Rng): [string, string];
}

/** How to make a world: `create(seed)` is deterministic. */
export interface WorldSpec {
  world: WorldName;
  embodiment: string;
  level: Level;
  create(seed: number): World;
  /** Default DART perturbation of an executed expert chunk, for recording (mutates `chunk`). */
  perturb(chunk: Chunk, rng: Rng): void;
}

export function chunkAt(c: Chunk, row: number, ch: number): number {
  return c.data[row * c.channels + ch]!;
}

export function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/** A uniform draw in [lo, hi). */
export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.uniform();
}

/** A uniform integer in [0, n). */
export function randint(rng: Rng, n: number): number {
  return Math.min(n - 1, Math.floor(rng.uniform() * n));
}

/** Wraps an angle to (−π, π]. */
export function wrapAngle(a: number): number {
  let x = a % (2 * Math.PI);
  if (x <= -Math.PI) x += 2 * Math.PI;
  if (x > Math.PI) x -= 2 * Math.PI;
  return x;
}

/** The 3×3 grid name of a point of the unit square (VQA answers): "top left", "center", "bottom", … */
export function gridName(x: number, y: number): string {
  const col = x < 1 / 3 ? 'left' : x < 2 / 3 ? '' : 'right';
  const row = y > 2 / 3 ? 'top' : y > 1 / 3 ? '' : 'bottom';
  if (!col && !row) return 'center';
  return [row, col].filter(Boolean).join(' ');
}

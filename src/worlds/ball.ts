// Trajectory prediction: a ball (or two) moving in a box, seen from above with a fading trail of its last
// positions; the chunk is its next 12 positions. Motions that constant velocity gets wrong: wall bounces,
// gravity arcs with a floor bounce, constant-turn curves. Rules and metrics: src/worlds/README.md.
import { Rng } from '../util/rng.js';
import type { RgbImage } from '../preprocess/image.js';
import { Canvas, COLORS, COLOR_NAMES, type ColorName } from './canvas.js';
import {
  chunkAt, gridName, randint, uniform,
  type Chunk, type Level, type World, type WorldObservation,
} from './types.js';

export const BALL_R = 0.03;
export const BALL_DT = 0.1;
/** Observed positions (the current one and three before it). */
export const OBSERVED = 4;
export const HORIZON = 12;
export const FDE_SUCCESS = 0.08;
/** Seeds are redrawn until the constant-velocity guess misses by more than this at the horizon. */
const MIN_CV_FDE = 0.12;
const SUBSTEPS = 20;
const IMG = 128;
export type Motion = 'bounce' | 'gravity' | 'curve';
const MOTIONS: Motion[] = ['bounce', 'gravity', 'curve'];

interface Track {
  color: ColorName;
  motion: Motion;
  /** OBSERVED + HORIZON positions, every BALL_DT */
  pts: [number, number][];
}

/** Simulates one ball from a random start; positions every BALL_DT. */
function simulate(rng: Rng, motion: Motion, n: number): [number, number][] {
  let x = uniform(rng, 0.15, 0.85), y = uniform(rng, 0.15, 0.85);
  let vx: number, vy: number;
  let omega = 0;
  const g = motion === 'gravity' ? -2.0 : 0;
  if (motion === 'gravity') {
    vx = uniform(rng, 0.2, 0.6) * (rng.uniform() < 0.5 ? -1 : 1);
    vy = uniform(rng, -0.5, 0.8);
  } else {
    const speed = motion === 'bounce' ? uniform(rng, 0.4, 0.9) : uniform(rng, 0.35, 0.7);
    const dir = uniform(rng, -Math.PI, Math.PI);
    vx = speed * Math.cos(dir);
    vy = speed * Math.sin(dir);
    if (motion === 'curve') omega = uniform(rng, 2, 4) * (rng.uniform() < 0.5 ? -1 : 1);
  }
  const lo = BALL_R, hi = 1 - BALL_R, h = BALL_DT / SUBSTEPS;
  const pts: [number, number][] = [[x, y]];
  for (let i = 1; i < n; i++) {
    for (let k = 0; k < SUBSTEPS; k++) {
      if (omega !== 0) {
        const c = Math.cos(omega * h), s = Math.sin(omega * h);
        [vx, vy] = [c * vx - s * vy, s * vx + c * vy];
      }
      vy += g * h;
      x += vx * h;
      y += vy * h;
      if (x < lo) [x, vx] = [2 * lo - x, -vx];
      if (x > hi) [x, vx] = [2 * hi - x, -vx];
      if (y > hi) [y, vy] = [2 * hi - y, -vy];
      if (y < lo) [y, vy] = [2 * lo - y, motion === 'gravity' ? -0.85 * vy : -vy];
    }
    pts.push([x, y]);
  }
  return pts;
}

/** Constant-velocity extrapolation of the last two observed positions. */
export function constantVelocity(pts: readonly [number, number][]): [number, number][] {
  const [x1, y1] = pts[OBSERVED - 1]!, [x0, y0] = pts[OBSERVED - 2]!;
  return Array.from({ length: HORIZON }, (_, k) => [x1 + (k + 1) * (x1 - x0), y1 + (k + 1) * (y1 - y0)] as [number, number]);
}

function displacement(pred: readonly [number, number][], truth: readonly [number, number][]): { ade: number; fde: number } {
  let s = 0;
  for (let k = 0; k < HORIZON; k++) s += Math.hypot(pred[k]![0] - truth[k]![0], pred[k]![1] - truth[k]![1]);
  const last = HORIZON - 1;
  return { ade: s / HORIZON, fde: Math.hypot(pred[last]![0] - truth[last]![0], pred[last]![1] - truth[last]![1]) };
}

export class BallWorld implements World {
  readonly world = 'ball' as const;
  readonly embodiment = 'tracker';
  readonly maxDecisions = 1;
  decisions = 0;
  done = false;
  success = false;
  readonly instruction: string;
  readonly tracks: Track[];
  readonly target: number;
  private result: { ade: number; fde: number } | null = null;

  constructor(readonly level: Level, readonly seed: number) {
    if (level === 'bimodal') throw new Error('ball: no bimodal variant');
    const rng = new Rng(seed);
    const n = level === 'A' ? 1 : 2;
    const colors = [...COLOR_NAMES];
    this.tracks = [];
    for (let i = 0; i < n; i++) {
      const color = level === 'A' ? 'yellow' : colors.splice(randint(rng, colors.length), 1)[0]!;
      const motion = MOTIONS[randint(rng, MOTIONS.length)]!;
      let pts: [number, number][];
      for (;;) {
        pts = simulate(rng, motion, OBSERVED + HORIZON);
        const cv = constantVelocity(pts);
        if (displacement(cv, pts.slice(OBSERVED)).fde > MIN_CV_FDE) break;
      }
      this.tracks.push({ color, motion, pts });
    }
    this.target = randint(rng, n);
    this.instruction = level === 'A' ? 'predict the path of the ball' : `predict the path of the ${this.tracks[this.target]!.color} ball`;
  }

  get motion(): Motion {
    return this.tracks[this.target]!.motion;
  }

  private truth(): [number, number][] {
    return this.tracks[this.target]!.pts.slice(OBSERVED);
  }

  observe(): WorldObservation {
    return { images: [{ camera: 'top', image: this.render(1).snapshot() }], state: null, instruction: this.instruction };
  }

  expert(): Chunk {
    const data = new Float32Array(HORIZON * 2);
    this.truth().forEach(([x, y], k) => {
      data[2 * k] = x;
      data[2 * k + 1] = y;
    });
    return { rows: HORIZON, channels: 2, data };
  }

  step(chunk: Chunk): void {
    if (this.done) throw new Error('ball: step() after the episode ended');
    if (chunk.channels !== 2 || chunk.rows < HORIZON) throw new Error(`ball: chunk is ${chunk.rows}×${chunk.channels}, expected ${HORIZON}×2`);
    const pred = Array.from({ length: HORIZON }, (_, k) => [chunkAt(chunk, k, 0), chunkAt(chunk, k, 1)] as [number, number]);
    this.result = displacement(pred, this.truth());
    this.success = this.result.fde < FDE_SUCCESS;
    this.decisions = 1;
    this.done = true;
  }

  metrics(): Record<string, number> {
    const t = this.tracks[this.target]!;
    const cv = displacement(constantVelocity(t.pts), this.truth());
    const m: Record<string, number> = { cv_ade: cv.ade, cv_fde: cv.fde, cv_success: cv.fde < FDE_SUCCESS ? 1 : 0 };
    if (this.result) Object.assign(m, this.result);
    return m;
  }

  question(rng: Rng): [string, string] {
    const t = this.tracks[randint(rng, this.tracks.length)]!;
    const name = this.level === 'A' ? 'the ball' : `the ${t.color} ball`;
    const [x1, y1] = t.pts[OBSERVED - 1]!, [x0, y0] = t.pts[OBSERVED - 2]!;
    const k = randint(rng, 3);
    if (k === 0) return [`Where is ${name}?`, gridName(x1, y1)];
    if (k === 1) return [`Is ${name} moving left or right?`, x1 >= x0 ? 'right' : 'left'];
    return [`Is ${name} moving up or down?`, y1 >= y0 ? 'up' : 'down'];
  }

  private render(scale: number): Canvas {
    const S = IMG * scale;
    const c = new Canvas(S, S, [24, 26, 34]);
    c.strokeRect(0, 0, S, S, 2 * scale, [120, 120, 130]);
    // trail: oldest first, smaller and fainter; the current position last, full size
    const alpha = [0.22, 0.4, 0.65, 1];
    const radius = [0.45, 0.6, 0.8, 1];
    for (const t of this.tracks) {
      for (let i = 0; i < OBSERVED; i++) {
        const [x, y] = t.pts[i]!;
        c.fillCircle(x * S, (1 - y) * S, BALL_R * S * radius[i]!, COLORS[t.color], 0, alpha[i]!);
      }
    }
    return c;
  }

  picture(chunk: Chunk | null, scale: number): RgbImage {
    const c = this.render(scale);
    const S = IMG * scale;
    if (this.done) for (const [x, y] of this.truth()) c.fillCircle(x * S, (1 - y) * S, 1.2 * scale, [255, 255, 255]);
    if (chunk) for (let k = 0; k < chunk.rows; k++) c.fillCircle(chunkAt(chunk, k, 0) * S, (1 - chunkAt(chunk, k, 1)) * S, 1.5 * scale, [230, 0, 200]);
    return c.snapshot();
  }
}

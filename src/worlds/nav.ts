// Navigation: a robot in a 4 m × 4 m room with coloured pillars sees a first-person ray-cast frame and outputs
// waypoints (x forward, y left, yaw) in its own frame. Rules, levels and metrics: src/worlds/README.md.
import { Rng } from '../util/rng.js';
import type { RgbImage } from '../preprocess/image.js';
import { Canvas, COLORS, COLOR_NAMES, type ColorName, type Rgb } from './canvas.js';
import {
  chunkAt, clamp, randint, uniform, wrapAngle,
  type Chunk, type Level, type World, type WorldObservation,
} from './types.js';

export const ROOM = 4;
export const PILLAR_R = 0.15;
export const ROBOT_R = 0.15;
/** Goal point distance from the pillar's centre, toward the robot's start. */
export const GOAL_OFFSET = 0.45;
export const SUCCESS_RADIUS = 0.5;
export const NAV_ROWS = 8;
export const NAV_EXECUTED = 4;
/** Seconds between waypoints (2 Hz). */
export const NAV_DT = 0.5;
export const MAX_SPEED = 0.5;
export const MAX_TURN = 0.8;
const FOV = Math.PI / 2;
const W = 128, H = 96;
const FOCAL = W / 2 / Math.tan(FOV / 2);
const CAM_H = 0.5, WALL_H = 1.0, PILLAR_H = 1.4;
const WALL_COLORS: Rgb[] = [[150, 150, 162], [132, 146, 134], [164, 150, 138], [140, 138, 152]];

interface Pillar {
  x: number;
  y: number;
  color: ColorName;
}

interface Pose {
  x: number;
  y: number;
  yaw: number;
}

/** Robot-frame offset of `p` seen from `from`. */
function toRobot(from: Pose, x: number, y: number): [number, number] {
  const dx = x - from.x, dy = y - from.y;
  const c = Math.cos(from.yaw), s = Math.sin(from.yaw);
  return [c * dx + s * dy, -s * dx + c * dy];
}

function fromRobot(from: Pose, fx: number, fy: number, fyaw: number): Pose {
  const c = Math.cos(from.yaw), s = Math.sin(from.yaw);
  return { x: from.x + c * fx - s * fy, y: from.y + s * fx + c * fy, yaw: wrapAngle(from.yaw + fyaw) };
}

/** A chunk whose last executed waypoint is within 0.05 m and 0.05 rad of the robot: the robot stops there. */
export function isStop(chunk: Chunk): boolean {
  const n = Math.min(NAV_EXECUTED, chunk.rows);
  return Math.hypot(chunkAt(chunk, n - 1, 0), chunkAt(chunk, n - 1, 1)) <= 0.05 && Math.abs(chunkAt(chunk, n - 1, 2)) <= 0.05;
}

export class NavWorld implements World {
  readonly world = 'nav' as const;
  readonly embodiment = 'rover';
  readonly maxDecisions = 25;
  decisions = 0;
  done = false;
  success = false;
  stopped = false;
  readonly instruction: string;
  readonly pillars: Pillar[];
  readonly target: number;
  readonly goal: [number, number];
  private pose!: Pose;
  private readonly start: Pose;
  private path = 0;
  private everWithin = false;
  readonly trail: Pose[] = [];

  constructor(readonly level: Level, readonly seed: number) {
    if (level === 'bimodal') throw new Error('nav: no bimodal variant');
    const rng = new Rng(seed);
    const n = level === 'A' ? 1 : 3;
    const colors = [...COLOR_NAMES];
    const pillars: Pillar[] = [];
    while (pillars.length < n) {
      const x = uniform(rng, 0.6, ROOM - 0.6), y = uniform(rng, 0.6, ROOM - 0.6);
      if (pillars.some((p) => Math.hypot(p.x - x, p.y - y) < 1.0)) continue;
      pillars.push({ x, y, color: colors.splice(randint(rng, colors.length), 1)[0]! });
    }
    this.pillars = pillars;
    this.target = randint(rng, n);
    const t = pillars[this.target]!;
    for (;;) {
      const x = uniform(rng, 0.4, ROOM - 0.4), y = uniform(rng, 0.4, ROOM - 0.4);
      const d = Math.hypot(t.x - x, t.y - y);
      if (d < 1.3 || d > 3.2) continue;
      if (pillars.some((p) => Math.hypot(p.x - x, p.y - y) < 0.6)) continue;
      const bearing = Math.atan2(t.y - y, t.x - x);
      this.pose = { x, y, yaw: wrapAngle(bearing + uniform(rng, -0.6, 0.6)) };
      break;
    }
    this.start = { ...this.pose! };
    const d = Math.hypot(this.start.x - t.x, this.start.y - t.y);
    this.goal = [t.x + ((this.start.x - t.x) / d) * GOAL_OFFSET, t.y + ((this.start.y - t.y) / d) * GOAL_OFFSET];
    this.instruction = `go to the ${t.color} pillar`;
    this.trail.push({ ...this.pose! });
    this.everWithin = this.goalDist() <= SUCCESS_RADIUS;
  }

  private goalDist(p: Pose = this.pose): number {
    return Math.hypot(p.x - this.goal[0], p.y - this.goal[1]);
  }

  observe(): WorldObservation {
    return { images: [{ camera: 'front', image: this.renderView(this.pose) }], state: null, instruction: this.instruction };
  }

  /** Moves to a pose, bounded per waypoint and kept out of walls and pillars. */
  private moveTo(p: Pose): void {
    const cur = this.pose;
    let dx = p.x - cur.x, dy = p.y - cur.y;
    const d = Math.hypot(dx, dy), maxD = MAX_SPEED * NAV_DT * 1.4;
    if (d > maxD) {
      dx *= maxD / d;
      dy *= maxD / d;
    }
    const dyaw = clamp(wrapAngle(p.yaw - cur.yaw), -MAX_TURN * NAV_DT * 1.4, MAX_TURN * NAV_DT * 1.4);
    let x = clamp(cur.x + dx, ROBOT_R, ROOM - ROBOT_R), y = clamp(cur.y + dy, ROBOT_R, ROOM - ROBOT_R);
    for (const pl of this.pillars) {
      const ox = x - pl.x, oy = y - pl.y, od = Math.hypot(ox, oy), min = PILLAR_R + ROBOT_R;
      if (od < min) {
        const k = od > 1e-9 ? min / od : 0;
        x = od > 1e-9 ? pl.x + ox * k : pl.x + min;
        y = od > 1e-9 ? pl.y + oy * k : pl.y;
      }
    }
    this.path += Math.hypot(x - cur.x, y - cur.y);
    this.pose = { x, y, yaw: wrapAngle(cur.yaw + dyaw) };
    this.trail.push({ ...this.pose });
    if (this.goalDist() <= SUCCESS_RADIUS) this.everWithin = true;
  }

  step(chunk: Chunk): void {
    if (this.done) throw new Error('nav: step() after the episode ended');
    if (chunk.channels !== 3) throw new Error(`nav: chunk has ${chunk.channels} channels, expected 3`);
    const origin = { ...this.pose };
    const n = Math.min(NAV_EXECUTED, chunk.rows);
    if (isStop(chunk)) this.stopped = true;
    else for (let r = 0; r < n; r++) this.moveTo(fromRobot(origin, chunkAt(chunk, r, 0), chunkAt(chunk, r, 1), chunkAt(chunk, r, 2)));
    this.decisions++;
    if (this.stopped || this.decisions >= this.maxDecisions) {
      this.done = true;
      this.success = this.goalDist() <= SUCCESS_RADIUS;
    }
  }

  /** A unicycle controller toward the goal point, simulated in 0.1 s substeps; waypoints every 0.5 s. */
  expert(): Chunk {
    const data = new Float32Array(NAV_ROWS * 3);
    const origin = { ...this.pose };
    let p = { ...this.pose };
    const sub = 5, dt = NAV_DT / sub;
    for (let r = 0; r < NAV_ROWS; r++) {
      for (let k = 0; k < sub; k++) {
        const dx = this.goal[0] - p.x, dy = this.goal[1] - p.y, dist = Math.hypot(dx, dy);
        if (dist < 0.08) break;
        const err = wrapAngle(Math.atan2(dy, dx) - p.yaw);
        const v = Math.min(MAX_SPEED, 0.8 * dist) * Math.max(0, Math.cos(err));
        const w = clamp(2 * err, -MAX_TURN, MAX_TURN);
        p = { x: p.x + v * Math.cos(p.yaw) * dt, y: p.y + v * Math.sin(p.yaw) * dt, yaw: wrapAngle(p.yaw + w * dt) };
      }
      const [fx, fy] = toRobot(origin, p.x, p.y);
      data[r * 3] = fx;
      data[r * 3 + 1] = fy;
      data[r * 3 + 2] = wrapAngle(p.yaw - origin.yaw);
    }
    return { rows: NAV_ROWS, channels: 3, data };
  }

  metrics(): Record<string, number> {
    const shortest = Math.hypot(this.start.x - this.goal[0], this.start.y - this.goal[1]);
    const spl = this.done && this.success ? shortest / Math.max(this.path, shortest) : 0;
    return { osr: this.everWithin ? 1 : 0, spl, path: this.path, shortest, final_dist: this.goalDist(), stopped: this.stopped ? 1 : 0 };
  }

  question(rng: Rng): [string, string] {
    const p = this.pillars[randint(rng, this.pillars.length)]!;
    const [fx, fy] = toRobot(this.pose, p.x, p.y);
    const bearing = Math.atan2(fy, fx);
    if (randint(rng, 2) === 0) {
      const where = Math.abs(bearing) > FOV / 2 ? 'behind' : bearing > 0.2 ? 'on the left' : bearing < -0.2 ? 'on the right' : 'ahead';
      return [`Where is the ${p.color} pillar?`, where];
    }
    return [`Is the ${p.color} pillar near or far?`, Math.hypot(fx, fy) < 1.5 ? 'near' : 'far'];
  }

  /** First-person ray cast: per column, the nearest wall and (if nearer) pillar, shaded by distance. */
  private renderView(pose: Pose): RgbImage {
    const c = new Canvas(W, H, [208, 214, 224]);
    c.fillRect(0, H / 2, W, H, [92, 86, 80]);
    for (let col = 0; col < W; col++) {
      const off = FOV / 2 - ((col + 0.5) / W) * FOV;
      const a = pose.yaw + off;
      const dx = Math.cos(a), dy = Math.sin(a);
      // walls
      let wallD = Infinity, wall = 0;
      const cand: [number, number][] = [
        [dy < 0 ? -pose.y / dy : Infinity, 0],
        [dx > 0 ? (ROOM - pose.x) / dx : Infinity, 1],
        [dy > 0 ? (ROOM - pose.y) / dy : Infinity, 2],
        [dx < 0 ? -pose.x / dx : Infinity, 3],
      ];
      for (const [d, w] of cand) if (d < wallD) [wallD, wall] = [d, w];
      this.drawSpan(c, col, wallD * Math.cos(off), WALL_H, WALL_COLORS[wall]!, wallD);
      // pillars (nearest hit)
      let pd = Infinity, pc: Rgb | null = null, shade = 1;
      for (const p of this.pillars) {
        const ox = pose.x - p.x, oy = pose.y - p.y;
        const b = ox * dx + oy * dy, cc = ox * ox + oy * oy - PILLAR_R * PILLAR_R;
        const disc = b * b - cc;
        if (disc < 0) continue;
        const t = -b - Math.sqrt(disc);
        if (t > 1e-6 && t < pd && t < wallD) {
          pd = t;
          pc = COLORS[p.color];
          const nx = (ox + t * dx) / PILLAR_R, ny = (oy + t * dy) / PILLAR_R;
          shade = 0.55 + 0.45 * Math.max(0, -(nx * dx + ny * dy));
        }
      }
      if (pc) this.drawSpan(c, col, pd * Math.cos(off), PILLAR_H, [pc[0] * shade, pc[1] * shade, pc[2] * shade], pd);
    }
    return c.snapshot();
  }

  private drawSpan(c: Canvas, col: number, perp: number, height: number, color: Rgb, dist: number): void {
    const p = Math.max(perp, 0.05);
    const top = H / 2 - (FOCAL * (height - CAM_H)) / p;
    const bot = H / 2 + (FOCAL * CAM_H) / p;
    const f = 1 / (1 + 0.12 * dist);
    const rgb: Rgb = [Math.round(color[0] * f), Math.round(color[1] * f), Math.round(color[2] * f)];
    c.fillRect(col, top, col + 1, bot, rgb);
  }

  /** Top-down map (with the trail, the goal disc and the chunk's waypoints) above the first-person frame. */
  picture(chunk: Chunk | null, scale: number): RgbImage {
    const S = W * scale;
    const map = new Canvas(S, S + H * scale, [235, 235, 235]);
    const px = (x: number): number => (x / ROOM) * S;
    const py = (y: number): number => (1 - y / ROOM) * S;
    map.fillRect(0, S, S, S + H * scale, [0, 0, 0]);
    map.fillCircle(px(this.goal[0]), py(this.goal[1]), (SUCCESS_RADIUS / ROOM) * S, [190, 230, 190]);
    for (const p of this.pillars) map.fillCircle(px(p.x), py(p.y), (PILLAR_R / ROOM) * S, COLORS[p.color]);
    for (let i = 1; i < this.trail.length; i++) {
      const a = this.trail[i - 1]!, b = this.trail[i]!;
      map.line(px(a.x), py(a.y), px(b.x), py(b.y), Math.max(1, scale), [90, 90, 200]);
    }
    const pose = this.pose;
    map.fillCircle(px(pose.x), py(pose.y), (ROBOT_R / ROOM) * S, [40, 40, 60]);
    map.line(px(pose.x), py(pose.y), px(pose.x + 0.3 * Math.cos(pose.yaw)), py(pose.y + 0.3 * Math.sin(pose.yaw)), Math.max(1, scale), [255, 255, 255]);
    if (chunk) {
      for (let r = 0; r < chunk.rows; r++) {
        const q = fromRobot(pose, chunkAt(chunk, r, 0), chunkAt(chunk, r, 1), chunkAt(chunk, r, 2));
        map.fillCircle(px(q.x), py(q.y), 1.5 * scale, r < NAV_EXECUTED ? [230, 0, 200] : [255, 140, 230]);
      }
    }
    const view = this.renderView(pose);
    for (let y = 0; y < H * scale; y++) {
      for (let x = 0; x < S; x++) {
        const o = 3 * (Math.floor(y / scale) * W + Math.floor(x / scale));
        map.set(x, S + y, [view.data[o]!, view.data[o + 1]!, view.data[o + 2]!]);
      }
    }
    return map.snapshot();
  }
}

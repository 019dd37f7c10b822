// Tabletop manipulation seen from above: pick an object and place it in a named square. Two embodiments share the
// table: `planar` (an end effector driven by x/y targets) and `arm2` (a two-link arm driven by joint targets).
// Rules, levels and seeds: src/worlds/README.md.
import { Rng } from '../util/rng.js';
import type { RgbImage } from '../preprocess/image.js';
import { Canvas, COLORS, COLOR_NAMES, type ColorName, type Rgb } from './canvas.js';
import {
  chunkAt, clamp, gridName, randint, uniform,
  type Chunk, type Level, type World, type WorldObservation,
} from './types.js';

export const GOALS = {
  'top left': [0.2, 0.8],
  'top right': [0.8, 0.8],
  'bottom left': [0.2, 0.2],
  'bottom right': [0.8, 0.2],
} as const satisfies Record<string, readonly [number, number]>;
export type GoalName = keyof typeof GOALS;
const GOAL_NAMES = Object.keys(GOALS) as GoalName[];
/** Half side of a goal square; an object is in the square when its centre is. */
export const GOAL_HALF = 0.12;
/** Gripper closing within this distance of an object's centre picks it up. */
export const GRASP_RADIUS = 0.05;
export const PLANAR_SPEED = 0.05;
export const ARM_SPEED = 0.12;
export const ARM_BASE = [0.5, -0.15] as const;
export const ARM_L1 = 0.6;
export const ARM_L2 = 0.55;
const Q1_RANGE = [-0.6, Math.PI + 0.6] as const;
const Q2_RANGE = [-2.95, -0.05] as const;
const IMG = 128;

export type Shape = 'block' | 'disc' | 'triangle';
const SHAPES: Shape[] = ['block', 'disc', 'triangle'];

interface Obj {
  x: number;
  y: number;
  color: ColorName;
  shape: Shape;
}

export type TabletopEmbodiment = 'planar' | 'arm2';

export function armForward(q1: number, q2: number): [number, number] {
  return [
    ARM_BASE[0] + ARM_L1 * Math.cos(q1) + ARM_L2 * Math.cos(q1 + q2),
    ARM_BASE[1] + ARM_L1 * Math.sin(q1) + ARM_L2 * Math.sin(q1 + q2),
  ];
}

/** Inverse kinematics on the elbow branch q2 < 0 (the one the arm starts on); the point is clipped to the reach. */
export function armInverse(x: number, y: number): [number, number] {
  let dx = x - ARM_BASE[0], dy = y - ARM_BASE[1];
  let d = Math.hypot(dx, dy);
  const dMax = ARM_L1 + ARM_L2 - 1e-6, dMin = Math.abs(ARM_L1 - ARM_L2) + 1e-6;
  if (d > dMax || d < dMin) {
    const s = clamp(d, dMin, dMax) / (d || 1);
    dx *= s;
    dy *= s;
    d = Math.hypot(dx, dy);
  }
  const c2 = clamp((d * d - ARM_L1 * ARM_L1 - ARM_L2 * ARM_L2) / (2 * ARM_L1 * ARM_L2), -1, 1);
  const q2 = -Math.acos(c2);
  const q1 = Math.atan2(dy, dx) - Math.atan2(ARM_L2 * Math.sin(q2), ARM_L1 + ARM_L2 * Math.cos(q2));
  return [q1, q2];
}

/** Moves `from` toward `to` by at most `speed` (Euclidean for planar; joint vectors scaled together for the arm). */
function stepToward(from: [number, number], to: [number, number], speed: number): [number, number] {
  const dx = to[0] - from[0], dy = to[1] - from[1];
  const n = Math.hypot(dx, dy);
  if (n <= speed) return [to[0], to[1]];
  return [from[0] + (dx * speed) / n, from[1] + (dy * speed) / n];
}

function stepJoints(from: [number, number], to: [number, number], speed: number): [number, number] {
  const d1 = to[0] - from[0], d2 = to[1] - from[1];
  const m = Math.max(Math.abs(d1), Math.abs(d2));
  if (m <= speed) return [to[0], to[1]];
  return [from[0] + (d1 * speed) / m, from[1] + (d2 * speed) / m];
}

function inGoal(o: { x: number; y: number }, goal: GoalName): boolean {
  const [gx, gy] = GOALS[goal];
  return Math.abs(o.x - gx) <= GOAL_HALF && Math.abs(o.y - gy) <= GOAL_HALF;
}

/** The mutable physical state (copied by the expert to plan ahead). */
interface Phys {
  /** planar: end-effector x, y; arm2: joints q1, q2 */
  p: [number, number];
  gripper: 0 | 1;
  held: number;
  objs: Obj[];
}

function clonePhys(s: Phys): Phys {
  return { p: [s.p[0], s.p[1]], gripper: s.gripper, held: s.held, objs: s.objs.map((o) => ({ ...o })) };
}

export class TabletopWorld implements World {
  readonly world = 'tabletop' as const;
  readonly maxDecisions: number;
  readonly chunkRows: number;
  readonly executed: number;
  decisions = 0;
  done = false;
  success = false;
  readonly goal: GoalName;
  /** Indices of objects that satisfy the instruction (two in the bimodal variant). */
  readonly targets: number[];
  /** The object the expert goes for (the bimodal expert picks one of the two at reset). */
  private expertTarget: number;
  readonly instruction: string;
  private s: Phys;
  private ticks = 0;

  constructor(readonly embodiment: TabletopEmbodiment, readonly level: Level, readonly seed: number) {
    if (level === 'bimodal' && embodiment !== 'planar') throw new Error(`tabletop: the bimodal variant is planar only`);
    const rng = new Rng(seed);
    this.maxDecisions = embodiment === 'planar' ? 30 : 40;
    this.chunkRows = embodiment === 'planar' ? 8 : 6;
    this.executed = this.chunkRows;
    this.goal = GOAL_NAMES[randint(rng, GOAL_NAMES.length)]!;
    const nObj = level === 'A' ? 1 : level === 'bimodal' ? 2 : 3;
    const minSep = level === 'bimodal' ? 0.25 : 0.13;
    const objs: Obj[] = [];
    const colors = [...COLOR_NAMES];
    while (objs.length < nObj) {
      const x = uniform(rng, 0.1, 0.9), y = uniform(rng, 0.1, 0.9);
      const nearGoal = GOAL_NAMES.some((g) => Math.abs(x - GOALS[g][0]) < GOAL_HALF + 0.03 && Math.abs(y - GOALS[g][1]) < GOAL_HALF + 0.03);
      const r = Math.hypot(x - ARM_BASE[0], y - ARM_BASE[1]);
      const reachable = r > 0.25 && r < ARM_L1 + ARM_L2 - 0.08;
      if (nearGoal || !reachable || objs.some((o) => Math.hypot(o.x - x, o.y - y) < minSep)) continue;
      if (level === 'B') {
        const ci = randint(rng, colors.length);
        const color = colors.splice(ci, 1)[0]!;
        objs.push({ x, y, color, shape: SHAPES[randint(rng, SHAPES.length)]! });
      } else {
        objs.push({ x, y, color: 'red', shape: 'block' });
      }
    }
    let p: [number, number];
    if (embodiment === 'planar') {
      p = [uniform(rng, 0.1, 0.9), uniform(rng, 0.1, 0.9)];
    } else {
      for (;;) {
        const q: [number, number] = [uniform(rng, 0.6, 2.5), uniform(rng, -2.4, -0.3)];
        const [x, y] = armForward(q[0], q[1]);
        if (x >= 0.08 && x <= 0.92 && y >= 0.08 && y <= 0.92) {
          p = q;
          break;
        }
      }
    }
    this.s = { p, gripper: 0, held: -1, objs };
    if (level === 'B') {
      const t = randint(rng, objs.length);
      this.targets = [t];
      this.instruction = `put the ${objs[t]!.color} ${objs[t]!.shape} at the ${this.goal}`;
    } else if (level === 'bimodal') {
      this.targets = [0, 1];
      this.instruction = `put a block at the ${this.goal}`;
    } else {
      this.targets = [0];
      this.instruction = `put the block at the ${this.goal}`;
    }
    this.expertTarget = this.targets[randint(rng, this.targets.length)]!;
  }

  /** End-effector position in table coordinates. */
  private eePos(s: Phys = this.s): [number, number] {
    return this.embodiment === 'planar' ? [s.p[0], s.p[1]] : armForward(s.p[0], s.p[1]);
  }

  private state(): number[] {
    return [this.s.p[0], this.s.p[1], this.s.gripper];
  }

  observe(): WorldObservation {
    return { images: [{ camera: 'top', image: this.render(this.s).snapshot() }], state: this.state(), instruction: this.instruction };
  }

  /** One control tick: move toward the target, then open/close the gripper. */
  private tick(s: Phys, target: [number, number], grip: number): void {
    if (this.embodiment === 'planar') {
      const t: [number, number] = [clamp(target[0], 0.03, 0.97), clamp(target[1], 0.03, 0.97)];
      s.p = stepToward(s.p, t, PLANAR_SPEED);
    } else {
      const t: [number, number] = [clamp(target[0], Q1_RANGE[0], Q1_RANGE[1]), clamp(target[1], Q2_RANGE[0], Q2_RANGE[1])];
      s.p = stepJoints(s.p, t, ARM_SPEED);
    }
    const [ex, ey] = this.eePos(s);
    const carry = (): void => {
      const o = s.objs[s.held]!;
      o.x = clamp(ex, 0.02, 0.98);
      o.y = clamp(ey, 0.02, 0.98);
    };
    if (s.held >= 0) carry(); // the object moves with the effector, then the gripper acts
    const close = grip >= 0.5;
    if (close && s.gripper === 0 && s.held < 0) {
      let best = -1, bestD = GRASP_RADIUS;
      s.objs.forEach((o, i) => {
        const d = Math.hypot(o.x - ex, o.y - ey);
        if (d <= bestD) {
          best = i;
          bestD = d;
        }
      });
      s.held = best;
    }
    if (!close && s.held >= 0) s.held = -1;
    s.gripper = close ? 1 : 0;
    if (s.held >= 0) carry();
  }

  private solved(s: Phys): boolean {
    return s.held < 0 && this.targets.some((t) => inGoal(s.objs[t]!, this.goal));
  }

  step(chunk: Chunk): void {
    if (this.done) throw new Error('tabletop: step() after the episode ended');
    if (chunk.channels !== 3) throw new Error(`tabletop: chunk has ${chunk.channels} channels, expected 3`);
    const n = Math.min(this.executed, chunk.rows);
    for (let r = 0; r < n && !this.success; r++) {
      this.tick(this.s, [chunkAt(chunk, r, 0), chunkAt(chunk, r, 1)], chunkAt(chunk, r, 2));
      this.ticks++;
      if (this.solved(this.s)) this.success = true;
    }
    this.decisions++;
    if (this.success || this.decisions >= this.maxDecisions) this.done = true;
  }

  /** The expert plans on a copy of the state: reach the target, grasp, carry to the goal, release, then hold still. */
  expert(): Chunk {
    const s = clonePhys(this.s);
    const data = new Float32Array(this.chunkRows * 3);
    const planar = this.embodiment === 'planar';
    const speed = planar ? PLANAR_SPEED : ARM_SPEED;
    for (let r = 0; r < this.chunkRows; r++) {
      const ee = this.eePos(s);
      let dest: [number, number];
      let grip: number;
      if (s.held >= 0 && s.held !== this.expertTarget && !this.targets.includes(s.held)) {
        dest = ee; // holding the wrong object: drop it where it is
        grip = 0;
      } else if (s.held < 0) {
        if (this.solved(s)) {
          dest = ee;
          grip = 0;
        } else {
          const o = s.objs[this.expertTarget]!;
          dest = [o.x, o.y];
          grip = 0;
          if (s.gripper === 0 && this.reachesThisTick(s, dest, speed)) grip = 1;
        }
      } else {
        dest = [GOALS[this.goal][0], GOALS[this.goal][1]];
        grip = this.reachesThisTick(s, dest, speed) ? 0 : 1;
      }
      const target: [number, number] = planar ? dest : armInverse(dest[0], dest[1]);
      this.tick(s, target, grip);
      // The label is where the effector is after this tick (not the far destination): executing it reproduces
      // the expert's motion exactly, and every row stays within (row + 1) ticks of travel of the state.
      data[r * 3] = s.p[0];
      data[r * 3 + 1] = s.p[1];
      data[r * 3 + 2] = grip;
    }
    return { rows: this.chunkRows, channels: 3, data };
  }

  private reachesThisTick(s: Phys, dest: [number, number], speed: number): boolean {
    if (this.embodiment === 'planar') return Math.hypot(dest[0] - s.p[0], dest[1] - s.p[1]) <= speed;
    const q = armInverse(dest[0], dest[1]);
    return Math.max(Math.abs(q[0] - s.p[0]), Math.abs(q[1] - s.p[1])) <= speed;
  }

  metrics(): Record<string, number> {
    const ee = this.eePos();
    const o = this.s.objs[this.expertTarget]!;
    const [gx, gy] = GOALS[this.goal];
    return { ticks: this.ticks, object_goal_dist: Math.hypot(o.x - gx, o.y - gy), ee_object_dist: Math.hypot(o.x - ee[0], o.y - ee[1]) };
  }

  question(rng: Rng): [string, string] {
    const s = this.s;
    const kind = randint(rng, 3);
    if (this.level === 'B') {
      const i = randint(rng, s.objs.length);
      const o = s.objs[i]!;
      if (kind === 0) return [`What colour is the ${o.shape}?`, o.color];
      if (kind === 1) return [`Where is the ${o.color} ${o.shape}?`, gridName(o.x, o.y)];
      return ['Is the gripper closed?', s.gripper ? 'yes' : 'no'];
    }
    const o = s.objs[randint(rng, s.objs.length)]!;
    if (kind === 2) return ['Is the gripper closed?', s.gripper ? 'yes' : 'no'];
    const [ex, ey] = this.eePos();
    if (kind === 1) return ['Where is the gripper?', gridName(ex, ey)];
    return ['Where is the block?', gridName(o.x, o.y)];
  }

  private render(s: Phys, scale = 1): Canvas {
    const W = IMG * scale;
    const c = new Canvas(W, W, [196, 186, 168]);
    const px = (x: number): number => x * W;
    const py = (y: number): number => (1 - y) * W;
    for (const g of GOAL_NAMES) {
      const [gx, gy] = GOALS[g];
      c.strokeRect(px(gx - GOAL_HALF), py(gy + GOAL_HALF), px(gx + GOAL_HALF), py(gy - GOAL_HALF), 2 * scale, [95, 90, 85]);
    }
    const drawObj = (o: Obj): void => {
      const col: Rgb = COLORS[o.color];
      if (o.shape === 'block') c.fillRect(px(o.x - 0.035), py(o.y + 0.035), px(o.x + 0.035), py(o.y - 0.035), col);
      else if (o.shape === 'disc') c.fillCircle(px(o.x), py(o.y), 0.04 * W, col);
      else c.fillTriangle(px(o.x), py(o.y), 0.047 * W, col);
    };
    s.objs.forEach((o, i) => {
      if (i !== s.held) drawObj(o);
    });
    const [ex, ey] = this.eePos(s);
    if (this.embodiment === 'arm2') {
      const [q1] = s.p;
      const elbow = [ARM_BASE[0] + ARM_L1 * Math.cos(q1), ARM_BASE[1] + ARM_L1 * Math.sin(q1)] as const;
      c.line(px(ARM_BASE[0]), py(ARM_BASE[1]), px(elbow[0]), py(elbow[1]), 0.035 * W, [80, 80, 92]);
      c.line(px(elbow[0]), py(elbow[1]), px(ex), py(ey), 0.028 * W, [110, 110, 124]);
      c.fillCircle(px(elbow[0]), py(elbow[1]), 0.022 * W, [60, 60, 70]);
    }
    if (s.held >= 0) drawObj(s.objs[s.held]!);
    const dark: Rgb = [35, 35, 55];
    if (s.gripper) c.fillCircle(px(ex), py(ey), 0.03 * W, dark, 0.018 * W);
    else c.fillCircle(px(ex), py(ey), 0.048 * W, dark, 0.034 * W);
    return c;
  }

  picture(chunk: Chunk | null, scale: number): RgbImage {
    const c = this.render(this.s, scale);
    const W = IMG * scale;
    if (chunk) {
      for (let r = 0; r < chunk.rows; r++) {
        let x = chunkAt(chunk, r, 0), y = chunkAt(chunk, r, 1);
        if (this.embodiment === 'arm2') [x, y] = armForward(x, y);
        const closed = chunkAt(chunk, r, 2) >= 0.5;
        c.fillCircle(x * W, (1 - y) * W, 0.012 * W, closed ? [230, 0, 200] : [255, 255, 255]);
      }
    }
    return c.snapshot();
  }
}

// The worlds × embodiments this repository trains and evaluates, and the embodiments.json they ship with.
import type { Rng } from '../util/rng.js';
import { TabletopWorld, PLANAR_SPEED, ARM_SPEED } from './tabletop.js';
import { NavWorld, isStop } from './nav.js';
import { BallWorld } from './ball.js';
import { randint, uniform, type Chunk, type Level, type WorldName, type WorldSpec } from './types.js';

/** DART-style perturbation: Gaussian noise on the targeted channels, sometimes a whole-chunk detour. */
function perturbChannels(chunk: Chunk, rng: Rng, sigma: number[], detour: number, pDetour: number, pFlip = 0, flipCh = -1): void {
  const off = sigma.map(() => (rng.uniform() < pDetour ? uniform(rng, -detour, detour) : 0));
  for (let r = 0; r < chunk.rows; r++) {
    for (let k = 0; k < sigma.length; k++) chunk.data[r * chunk.channels + k]! += sigma[k]! * rng.normal() + off[k]!;
  }
  if (flipCh >= 0 && rng.uniform() < pFlip) {
    const r0 = randint(rng, chunk.rows);
    for (let r = r0; r < chunk.rows; r++) chunk.data[r * chunk.channels + flipCh] = 1 - chunk.data[r * chunk.channels + flipCh]!;
  }
}

function tabletop(embodiment: 'planar' | 'arm2', level: Level): WorldSpec {
  const speed = embodiment === 'planar' ? PLANAR_SPEED : ARM_SPEED;
  return {
    world: 'tabletop', embodiment, level,
    create: (seed) => new TabletopWorld(embodiment, level, seed),
    perturb: (c, rng) => perturbChannels(c, rng, [0.4 * speed, 0.4 * speed], 3 * speed, 0.15, 0.05, 2),
  };
}

function nav(level: Level): WorldSpec {
  return {
    world: 'nav', embodiment: 'rover', level,
    create: (seed) => new NavWorld(level, seed),
    // a stop is executed as it is: perturbing it would keep the episode going past the expert's decision
    perturb: (c, rng) => {
      if (!isStop(c)) perturbChannels(c, rng, [0.04, 0.04, 0.05], 0.3, 0.15);
    },
  };
}

export const WORLD_SPECS: readonly WorldSpec[] = [
  tabletop('planar', 'A'),
  tabletop('arm2', 'A'),
  nav('A'),
  { world: 'ball', embodiment: 'tracker', level: 'A', create: (s) => new BallWorld('A', s), perturb: () => {} },
  tabletop('planar', 'B'),
  tabletop('arm2', 'B'),
  nav('B'),
  { world: 'ball', embodiment: 'tracker', level: 'B', create: (s) => new BallWorld('B', s), perturb: () => {} },
  tabletop('planar', 'bimodal'),
];

export const WORLD_NAMES: readonly WorldName[] = ['tabletop', 'nav', 'ball'];

/** The specs matching the filters (undefined = any). */
export function findWorldSpecs(world?: string, embodiment?: string, level?: string): WorldSpec[] {
  return WORLD_SPECS.filter((s) => (world === undefined || world === 'all' || s.world === world)
    && (embodiment === undefined || s.embodiment === embodiment) && (level === undefined || s.level === level));
}

/** First seed of the evaluation range; training seeds stay below it (src/worlds/README.md). */
export const EVAL_SEED_BASE = 1_000_000_000;

/**
 * embodiments.json of the worlds (schema: weights/README.md). The prompts are short on purpose: the shipped tiny
 * tokenizer splits rare words into many pieces, and prompt length dominates training cost. Relative channels are normalised as deltas from the
 * state at the observation: row r of a chunk moves at most (r + 1) ticks of travel, hence the ranges.
 */
export function worldEmbodiments(): Record<string, unknown> {
  const pl = 8 * PLANAR_SPEED + 0.02, ar = 6 * ARM_SPEED + 0.03;
  return {
    version: 1,
    embodiments: {
      planar: {
        name: 'Planar gripper',
        task_type: 'manipulation',
        description: 'an end effector moving over a tabletop, with a two-finger gripper',
        cameras: ['top'],
        control: { mode: 'end-effector position targets', rate_hz: 10, chunk: 8, frame: 'table' },
        action: { names: ['x', 'y', 'gripper'], relative: [true, true, false], gripper: [2], binarize_gripper: true },
        state: { names: ['x', 'y', 'gripper'] },
        normalization: { method: 'min_max', action: { min: [-pl, -pl, 0], max: [pl, pl, 1] }, state: { min: [0, 0, 0], max: [1, 1, 1] } },
        prompt: 'hand over a table: move x y, open or close',
      },
      arm2: {
        name: 'Two-link arm',
        task_type: 'manipulation',
        description: 'a planar two-link arm with a gripper, based below the table edge',
        cameras: ['top'],
        control: { mode: 'joint position targets', rate_hz: 5, chunk: 6, frame: null },
        action: { names: ['q1', 'q2', 'gripper'], relative: [true, true, false], gripper: [2], binarize_gripper: true },
        state: { names: ['q1', 'q2', 'gripper'] },
        normalization: { method: 'min_max', action: { min: [-ar, -ar, 0], max: [ar, ar, 1] }, state: { min: [-0.7, -3.1, 0], max: [3.85, 0, 1] } },
        prompt: 'arm with two joints: move joints, open or close',
      },
      rover: {
        name: 'Rover',
        task_type: 'navigation',
        description: 'a wheeled robot in a room, with one forward-facing camera',
        cameras: ['front'],
        control: { mode: 'waypoints', rate_hz: 2, chunk: 8, frame: 'robot' },
        action: { names: ['x', 'y', 'yaw'], relative: [false, false, false], gripper: [], binarize_gripper: false },
        normalization: { method: 'min_max', action: { min: [-0.3, -1.2, -1.6], max: [2.2, 1.2, 1.6] } },
        prompt: 'robot on wheels: go to points ahead',
      },
      tracker: {
        name: 'Ball tracker',
        task_type: 'trajectory',
        description: 'a fixed overhead camera above a box with moving balls',
        cameras: ['top'],
        control: { mode: 'future positions', rate_hz: 10, chunk: 12, frame: 'box' },
        action: { names: ['x', 'y'], relative: [false, false], gripper: [], binarize_gripper: false },
        normalization: { method: 'min_max', action: { min: [0, 0], max: [1, 1] } },
        prompt: 'camera over a box: the ball path',
      },
    },
  };
}

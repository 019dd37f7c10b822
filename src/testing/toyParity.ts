// Inputs of the trained-checkpoint parity fixture (tools/train/make_parity_fixture.py, test/model/toy.parity.test.ts):
// a world observation at an evaluation seed, and what act() builds from it — prompt ids, normalised state, the
// noise `qvla eval` would draw for that decision. One definition, used by both sides: tools/train/parity_inputs.mjs
// writes these inputs for the PyTorch training port, and the test recreates them to check they did not drift.
import { findWorldSpecs, EVAL_SEED_BASE } from '../worlds/registry.js';
import type { WorldObservation, WorldSpec } from '../worlds/types.js';
import { decisionSeed } from '../eval/episodes.js';
import { buildActionPrompt } from '../text/prompt.js';
import type { QvlaTokenizer } from '../text/tokenizer.js';
import { normalizeState, type EmbodimentRegistry } from '../policy/embodiments.js';
import { preprocessImage } from '../preprocess/image.js';
import type { PreprocessorConfig } from '../model/config.js';
import { Rng } from '../util/rng.js';
import type { SolverName } from '../policy/samplers.js';

export interface ToyParityCase {
  /** tensor-name prefix in the fixture */
  name: string;
  world: string;
  embodiment: string;
  level: string;
  /** episode seed (evaluation range) */
  seed: number;
  /** decisions the scripted expert takes first (its clean chunks, no DART): a state that is not the reset one */
  decision: number;
  /** false: text-only request (no images: the T2A prompt) */
  images: boolean;
  promptAs?: string;
  /** (solver, steps) pairs integrated from the same noise, grid uniform */
  samples: [SolverName, number][];
}

const SAMPLES: [SolverName, number][] = [['euler', 10], ['heun', 4]];

/** The cases: one per world embodiment, a text-only one and a promptAs one. vlm_hidden is stored for the first. */
export const TOY_PARITY_CASES: readonly ToyParityCase[] = [
  { name: 'planar', world: 'tabletop', embodiment: 'planar', level: 'A', seed: EVAL_SEED_BASE + 0, decision: 2, images: true, samples: SAMPLES },
  { name: 'arm2', world: 'tabletop', embodiment: 'arm2', level: 'B', seed: EVAL_SEED_BASE + 1, decision: 1, images: true, samples: SAMPLES },
  { name: 'rover', world: 'nav', embodiment: 'rover', level: 'A', seed: EVAL_SEED_BASE + 2, decision: 1, images: true, samples: SAMPLES },
  { name: 'tracker', world: 'ball', embodiment: 'tracker', level: 'B', seed: EVAL_SEED_BASE + 3, decision: 0, images: true, samples: SAMPLES },
  { name: 'planar_t2a', world: 'tabletop', embodiment: 'planar', level: 'A', seed: EVAL_SEED_BASE + 4, decision: 0, images: false, samples: SAMPLES },
  { name: 'arm2_as_planar', world: 'tabletop', embodiment: 'arm2', level: 'A', seed: EVAL_SEED_BASE + 5, decision: 0, images: true, promptAs: 'planar', samples: SAMPLES },
];

/** The world of a case, reset at its seed and advanced `decision` decisions by the scripted expert. */
export function toyParityObservation(c: ToyParityCase): { spec: WorldSpec; obs: WorldObservation; noiseSeed: number } {
  const specs = findWorldSpecs(c.world, c.embodiment, c.level);
  if (specs.length !== 1) throw new Error(`parity case ${c.name}: no world ${c.world}/${c.embodiment}/${c.level}`);
  const spec = specs[0]!;
  const w = spec.create(c.seed);
  for (let d = 0; d < c.decision; d++) {
    if (w.done) throw new Error(`parity case ${c.name}: the episode ended after ${d} decisions (wanted ${c.decision})`);
    w.step(w.expert());
  }
  if (w.done) throw new Error(`parity case ${c.name}: the episode ended after ${c.decision} decisions`);
  return { spec, obs: w.observe(), noiseSeed: decisionSeed(w.seed, w.decisions) };
}

export interface ToyParityInputs {
  instruction: string;
  /** camera frames, RGB, embodiment camera order (empty for a text-only case) */
  frames: { camera: string; width: number; height: number; data: Uint8Array }[];
  /** the action prompt ids as act() builds them (image pads expanded) */
  ids: Int32Array;
  mmTokenTypeIds: Uint8Array;
  /** raw physical state (float64), or null */
  state: number[] | null;
  /** normalised state, zero-padded to s_max (all zero without a state) */
  stateNorm: Float32Array;
  /** the unmasked noise [h_max·k_max] act() draws for `noiseSeed` (Rng(noiseSeed).normals) */
  noise: Float32Array;
  noiseSeed: number;
  hE: number;
  kE: number;
}

/** What act() makes of a case's observation on a checkpoint with this tokenizer / embodiments / preprocessor. */
export function toyParityInputs(
  c: ToyParityCase,
  tok: QvlaTokenizer,
  registry: EmbodimentRegistry,
  pre: PreprocessorConfig,
  dims: { hMax: number; kMax: number; sMax: number },
): ToyParityInputs {
  const { obs, noiseSeed } = toyParityObservation(c);
  const emb = registry.get(c.embodiment);
  const frames = c.images ? obs.images.map(({ camera, image }) => ({ camera, width: image.width, height: image.height, data: image.data })) : [];
  const promptImages = frames.map((f) => {
    const p = preprocessImage({ width: f.width, height: f.height, channels: 3, data: f.data }, pre);
    if (p.grid.h * pre.patchSize !== f.height || p.grid.w * pre.patchSize !== f.width) throw new Error(`parity case ${c.name}: frame ${f.width}×${f.height} would be resized`);
    return { camera: f.camera, gridH: p.grid.h, gridW: p.grid.w };
  });
  const prompt = buildActionPrompt(tok, c.promptAs === undefined ? emb : registry.get(c.promptAs), obs.instruction, promptImages, { mergeSize: pre.mergeSize });
  return {
    instruction: obs.instruction,
    frames,
    ids: prompt.ids,
    mmTokenTypeIds: prompt.mmTokenTypeIds,
    state: obs.state,
    stateNorm: obs.state ? normalizeState(emb, obs.state, dims.sMax) : new Float32Array(dims.sMax),
    noise: new Rng(noiseSeed).normals(dims.hMax * dims.kMax),
    noiseSeed,
    hE: emb.control.chunk,
    kE: emb.action.names.length,
  };
}

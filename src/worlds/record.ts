// Recording demonstrations: the scripted expert drives each world with DART perturbations, and every decision
// becomes one training sample (frames, the exact action-prompt ids act() would build, normalised state, the
// expert's clean chunk as the label, and a VQA question about the frame). Shard format: src/worlds/README.md.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { Rng } from '../util/rng.js';
import { writeSafetensors, writeFileAtomic, type TensorToWrite } from '../io/safetensorsWriter.js';
import { buildActionPrompt, buildChatPrompt } from '../text/prompt.js';
import type { QvlaTokenizer } from '../text/tokenizer.js';
import { defaultPreprocessorConfig, type PreprocessorConfig } from '../model/config.js';
import { smartResize } from '../preprocess/image.js';
import { normalizeActions, normalizeState, parseEmbodiments, type EmbodimentLimits } from '../policy/embodiments.js';
import { worldEmbodiments } from './registry.js';
import type { WorldSpec } from './types.js';

/** The preprocessing of checkpoints trained on the worlds: frames (multiples of 32) are never resized. */
export function worldPreprocessor(): PreprocessorConfig {
  return { ...defaultPreprocessorConfig(), minPixels: 4096, maxPixels: 16384 };
}

export interface RecordOptions {
  episodes: number;
  seedBase: number;
  /** DART perturbation of the executed chunks (default true). */
  dart?: boolean;
  shardSize?: number;
  out: string;
  tokenizer: QvlaTokenizer;
  limits: EmbodimentLimits;
  /** Replace shards of the same embodiment and level that already exist in `out`. */
  overwrite?: boolean;
  onEpisode?: (done: number, total: number) => void;
}

export interface RecordSummary {
  episodes: number;
  successes: number;
  samples: number;
  files: string[];
}

interface Sample {
  frames: Uint8Array[];
  ids: Int32Array;
  state: Float32Array | null;
  actions: Float32Array;
  vqa: Int32Array;
  vqaAnswerStart: number;
  episode: number;
  decision: number;
  seed: number;
  instruction: string;
  qa: [string, string];
}

function shardName(spec: WorldSpec, i: number): string {
  return `${spec.embodiment}-${spec.level}-${String(i).padStart(5, '0')}.safetensors`;
}

export async function recordDemonstrations(spec: WorldSpec, opts: RecordOptions): Promise<RecordSummary> {
  const registry = parseEmbodiments(worldEmbodiments(), opts.limits, 'worlds embodiments');
  const emb = registry.get(spec.embodiment);
  const { hMax, kMax, sMax } = opts.limits;
  const pre = worldPreprocessor();
  const tok = opts.tokenizer;
  const imEnd = tok.tokenId('<|im_end|>');
  const shardSize = opts.shardSize ?? 2000;
  await fsp.mkdir(opts.out, { recursive: true });
  const existing = (await fsp.readdir(opts.out)).filter((f) => f.startsWith(`${spec.embodiment}-${spec.level}-`) && f.endsWith('.safetensors'));
  if (existing.length > 0) {
    if (!opts.overwrite) {
      throw new Error(`${opts.out} already holds ${existing.length} shard(s) of ${spec.embodiment}-${spec.level} (e.g. ${existing[0]}); pass --overwrite to replace them`);
    }
    for (const f of existing) await fsp.rm(nodePath.join(opts.out, f));
  }
  const files: string[] = [];
  let buf: Sample[] = [];
  let successes = 0, samples = 0;

  const flush = async (): Promise<void> => {
    if (buf.length === 0) return;
    const file = nodePath.join(opts.out, shardName(spec, files.length));
    await writeShard(file, spec, buf, { hMax, kMax, sMax, grids });
    files.push(file);
    buf = [];
  };
  /** image_grid_thw of every camera (the same for every sample of a spec) */
  let grids: [number, number, number][] = [];

  for (let e = 0; e < opts.episodes; e++) {
    const seed = opts.seedBase + e;
    const world = spec.create(seed);
    const rng = new Rng(seed ^ 0x5bd1e995);
    while (!world.done) {
      const obs = world.observe();
      const promptImages = obs.images.map(({ camera, image }) => {
        const { height, width } = smartResize(image.height, image.width, { minPixels: pre.minPixels, maxPixels: pre.maxPixels, factor: pre.patchSize * pre.mergeSize });
        if (height !== image.height || width !== image.width) throw new Error(`${spec.world}: frame ${image.width}×${image.height} would be resized; worlds frames must not be`);
        return { camera, gridH: height / pre.patchSize, gridW: width / pre.patchSize };
      });
      grids = promptImages.map((g) => [1, g.gridH, g.gridW]);
      const prompt = buildActionPrompt(tok, emb, obs.instruction, promptImages, { mergeSize: pre.mergeSize });
      const label = world.expert();
      const qa = world.question(rng);
      const chat = buildChatPrompt(tok, [{ role: 'user', content: qa[0] }], promptImages.slice(0, 1), { mergeSize: pre.mergeSize });
      const answer = tok.encode(qa[1]);
      const vqa = new Int32Array(chat.ids.length + answer.length + 1);
      vqa.set(chat.ids);
      vqa.set(answer, chat.ids.length);
      vqa[vqa.length - 1] = imEnd;
      buf.push({
        frames: obs.images.map((im) => im.image.data),
        ids: prompt.ids,
        state: obs.state ? normalizeState(emb, obs.state, sMax) : null,
        actions: normalizeActions(emb, label.data, hMax, kMax, obs.state),
        vqa,
        vqaAnswerStart: chat.ids.length,
        episode: e,
        decision: world.decisions,
        seed,
        instruction: obs.instruction,
        qa,
      });
      samples++;
      const exec = { ...label, data: label.data.slice() };
      if (opts.dart ?? true) spec.perturb(exec, rng);
      world.step(exec);
      if (buf.length >= shardSize) await flush();
    }
    if (world.success) successes++;
    opts.onEpisode?.(e + 1, opts.episodes);
  }
  await flush();
  await writeManifest(opts.out, spec, { episodes: opts.episodes, seedBase: opts.seedBase, samples, successes, files: files.map((f) => nodePath.basename(f)) });
  await writeFileAtomic(nodePath.join(opts.out, 'embodiments.json'), async (h) => {
    await h.writeFile(`${JSON.stringify(worldEmbodiments(), null, 2)}\n`);
  });
  return { episodes: opts.episodes, successes, samples, files };
}

async function writeShard(
  file: string,
  spec: WorldSpec,
  buf: Sample[],
  o: { hMax: number; kMax: number; sMax: number; grids: [number, number, number][] },
): Promise<void> {
  const N = buf.length;
  const C = buf[0]!.frames.length;
  const frameBytes = buf[0]!.frames[0]!.length;
  const [, gh, gw] = o.grids[0]!;
  const Hpx = gh * 16, Wpx = gw * 16;
  const frames = new Uint8Array(N * C * frameBytes);
  const Lmax = Math.max(...buf.map((s) => s.ids.length));
  const Lq = Math.max(...buf.map((s) => s.vqa.length));
  const ids = new Int32Array(N * Lmax).fill(-1);
  const vqa = new Int32Array(N * Lq).fill(-1);
  const i32 = (f: (s: Sample) => number): Int32Array => Int32Array.from(buf, f);
  const state = new Float32Array(N * o.sMax);
  const hasState = new Uint8Array(N);
  const actions = new Float32Array(N * o.hMax * o.kMax);
  buf.forEach((s, i) => {
    s.frames.forEach((f, c) => frames.set(f, (i * C + c) * frameBytes));
    ids.set(s.ids, i * Lmax);
    vqa.set(s.vqa, i * Lq);
    if (s.state) {
      state.set(s.state, i * o.sMax);
      hasState[i] = 1;
    }
    actions.set(s.actions, i * o.hMax * o.kMax);
  });
  const emb = worldEmbodiments()['embodiments'] as Record<string, { control: { chunk: number }; action: { names: string[] } }>;
  const e = emb[spec.embodiment]!;
  const tensors: TensorToWrite[] = [
    { name: 'frames', dtype: 'U8', shape: [N, C, Hpx, Wpx, 3], data: frames },
    { name: 'input_ids', dtype: 'I32', shape: [N, Lmax], data: ids },
    { name: 'input_len', dtype: 'I32', shape: [N], data: i32((s) => s.ids.length) },
    { name: 'state', dtype: 'F32', shape: [N, o.sMax], data: state },
    { name: 'has_state', dtype: 'U8', shape: [N], data: hasState },
    { name: 'actions', dtype: 'F32', shape: [N, o.hMax, o.kMax], data: actions },
    { name: 'h_e', dtype: 'I32', shape: [N], data: new Int32Array(N).fill(e.control.chunk) },
    { name: 'k_e', dtype: 'I32', shape: [N], data: new Int32Array(N).fill(e.action.names.length) },
    { name: 'vqa_ids', dtype: 'I32', shape: [N, Lq], data: vqa },
    { name: 'vqa_len', dtype: 'I32', shape: [N], data: i32((s) => s.vqa.length) },
    { name: 'vqa_answer_start', dtype: 'I32', shape: [N], data: i32((s) => s.vqaAnswerStart) },
    { name: 'episode', dtype: 'I32', shape: [N], data: i32((s) => s.episode) },
    { name: 'decision', dtype: 'I32', shape: [N], data: i32((s) => s.decision) },
    { name: 'seed', dtype: 'I32', shape: [N], data: i32((s) => s.seed) },
  ];
  await writeSafetensors(file, tensors, {
    world: spec.world,
    embodiment: spec.embodiment,
    level: spec.level,
    image_grids: JSON.stringify(o.grids),
    instructions: JSON.stringify(buf.map((s) => s.instruction)),
    vqa: JSON.stringify(buf.map((s) => s.qa)),
  });
}

async function writeManifest(dir: string, spec: WorldSpec, entry: Record<string, unknown>): Promise<void> {
  const path = nodePath.join(dir, 'manifest.json');
  let manifest: { version: number; recordings: Record<string, unknown> } = { version: 1, recordings: {} };
  try {
    manifest = JSON.parse(await fsp.readFile(path, 'utf8'));
  } catch {
    /* a new directory */
  }
  manifest.recordings[`${spec.embodiment}-${spec.level}`] = { world: spec.world, embodiment: spec.embodiment, level: spec.level, ...entry };
  await writeFileAtomic(path, async (h) => {
    await h.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
  });
}

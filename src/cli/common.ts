// Shared pieces of the subcommands: checkpoint resolution, policy loading with progress, device info,
// request helpers (images, state).
import { existsSync, statSync } from 'node:fs';
import * as nodePath from 'node:path';
import { Gpu } from '../gpu/device.js';
import { Policy, type PolicyOptions } from '../policy/policy.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { parseEmbodiments, type Embodiment, type EmbodimentRegistry } from '../policy/embodiments.js';
import type { QvlaConfig } from '../model/config.js';
import { packageRoot } from '../server/pkg.js';
import { UsageError, getFlag, getNumber, getString, parseNumberList, type OptSpec, type Parsed } from './args.js';
import { loadProgress } from './progress.js';

export const DEFAULT_CHECKPOINT_TEXT = 'weights/tiny in the qvla package';

export function defaultCheckpoint(): string {
  return nodePath.join(packageRoot(), 'weights', 'tiny');
}

/** --checkpoint (relative to the working directory) or the bundled tiny checkpoint. */
export function checkpointDir(p: Parsed, positional?: string): string {
  const given = getString(p, 'checkpoint') ?? positional;
  if (given === undefined) return defaultCheckpoint();
  const dir = nodePath.resolve(given);
  if (!existsSync(dir)) throw new UsageError(`--checkpoint ${given}: no such directory`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`--checkpoint ${given}: not a directory`);
  return dir;
}

/** The bundled checkpoint trained on the toy worlds (src/worlds), when the package has it. */
export function trainedCheckpoint(): string | null {
  const toy = nodePath.join(packageRoot(), 'weights', 'toy');
  return existsSync(nodePath.join(toy, 'config.json')) ? toy : null;
}

/** For the commands about the worlds (demo, eval): --checkpoint, else weights/toy when present, else weights/tiny. */
export function worldsCheckpointDir(p: Parsed): string {
  if (getString(p, 'checkpoint') !== undefined) return checkpointDir(p);
  return trainedCheckpoint() ?? checkpointDir(p);
}

export const WORLDS_CHECKPOINT_TEXT = 'weights/toy (trained on the worlds) when present, else weights/tiny';

export function isTinyCheckpoint(dir: string): boolean {
  return nodePath.resolve(dir) === nodePath.resolve(defaultCheckpoint());
}

export const CHECKPOINT_OPT: OptSpec = { name: 'checkpoint', type: 'string', metavar: 'DIR', help: 'checkpoint directory', defaultText: DEFAULT_CHECKPOINT_TEXT };
export const F16_OPT: OptSpec = { name: 'f16', type: 'flag', help: 'keep matrices in f16 on the GPU (half the memory; needs shader-f16)' };
export const MAX_PIXELS_OPT: OptSpec = { name: 'max-pixels', type: 'int', metavar: 'N', min: 1, help: "lower the preprocessor's max_pixels (fewer vision tokens per image)" };

export interface CheckpointSummary {
  config: QvlaConfig;
  registry: EmbodimentRegistry;
}

/** Reads config + embodiments without touching the GPU (to validate the command line before loading). */
export async function readRegistry(dir: string): Promise<CheckpointSummary> {
  const ckpt = await openCheckpoint(dir, { requireEmbodiments: true });
  try {
    const ae = ckpt.config.actionExpert;
    if (!ae) throw new Error(`${dir}: config.json has no action_expert section (a VLM-only checkpoint; act() needs the action decoder)`);
    const registry = parseEmbodiments(ckpt.embodiments, { kMax: ae.kMax, sMax: ae.sMax, hMax: ae.hMax }, nodePath.join(dir, 'embodiments.json'));
    return { config: ckpt.config, registry };
  } finally {
    await ckpt.close();
  }
}

export function policyOptions(p: Parsed, gpu?: Gpu): PolicyOptions {
  const o: PolicyOptions = {};
  if (getFlag(p, 'f16')) o.weightDtype = 'f16';
  const mp = getNumber(p, 'max-pixels');
  if (mp !== undefined) o.maxPixels = mp;
  if (gpu) o.gpu = gpu;
  return o;
}

/** Policy.load with the progress bar on stderr. */
export async function loadPolicy(dir: string, opts: PolicyOptions, quiet = false): Promise<Policy> {
  const rel = nodePath.relative(process.cwd(), dir) || '.';
  const label = `loading ${rel.startsWith('..') ? dir : rel}`;
  const prog = loadProgress(label, process.stderr, quiet);
  try {
    const policy = await Policy.load(dir, { ...opts, onProgress: (x) => prog.onProgress(x) });
    prog.done(` (${opts.weightDtype ?? 'f32'} on ${policy.gpu.description})`);
    return policy;
  } catch (e) {
    prog.fail();
    throw e;
  }
}

/** The adapter, its features and limits, as text. */
export function deviceInfo(gpu: Gpu, full = true): string {
  const i = gpu.adapterInfo;
  const lines: string[] = [];
  lines.push(`adapter       ${gpu.description}`);
  lines.push(`vendor        ${i.vendor || '-'}`);
  lines.push(`architecture  ${i.architecture || '-'}`);
  lines.push(`device        ${i.device || '-'}`);
  lines.push(`description   ${i.description || '-'}`);
  if (gpu.isSoftware) lines.push('software      yes (a CPU implementation: timings are for relative comparison only)');
  const f = gpu.features;
  lines.push(`qvla uses     shader-f16 ${f.f16 ? 'yes' : 'no'}, subgroups ${f.subgroups ? 'yes' : 'no'}, timestamp-query ${f.timestamps ? 'yes' : 'no'}`);
  if (!full) return lines.join('\n');
  const feats = [...gpu.adapter.features].map(String).sort();
  lines.push(`features      ${feats.join(', ')}`);
  lines.push('limits');
  const L = gpu.adapter.limits as unknown as Record<string, number>;
  const keys: string[] = [];
  for (const k in L) if (typeof L[k] === 'number') keys.push(k);
  const w = Math.max(...keys.map((k) => k.length));
  for (const k of keys) lines.push(`  ${k.padEnd(w)}  ${L[k]}`);
  return lines.join('\n');
}

export async function printDeviceInfo(): Promise<number> {
  const gpu = await Gpu.create();
  try {
    process.stdout.write(`${deviceInfo(gpu, true)}\n`);
  } finally {
    gpu.destroy();
  }
  return 0;
}

/** A state in the middle of the embodiment's normalisation range (used by the demo and the server warm-up). */
export function plausibleState(emb: Embodiment): number[] | null {
  if (!emb.state || !emb.normalization.state) return null;
  const { a, b } = emb.normalization.state;
  return emb.state.names.map((_, i) => (emb.normalization.method === 'mean_std' ? a[i]! : (a[i]! + b[i]!) / 2));
}

/** Sample frames shipped with a checkpoint: samples/<embodiment>_<camera>.png, per camera when present. */
export function sampleImages(dir: string, emb: Embodiment): Record<string, string> {
  const out: Record<string, string> = {};
  for (const cam of emb.cameras) {
    for (const ext of ['png', 'jpg', 'jpeg']) {
      const p = nodePath.join(dir, 'samples', `${emb.key}_${cam}.${ext}`);
      if (existsSync(p)) {
        out[cam] = p;
        break;
      }
    }
  }
  return out;
}

/** Parses and checks --state against the embodiment. */
export function stateFromArg(raw: string | undefined, emb: Embodiment): number[] | null {
  const needs = emb.action.relative.some((r) => r);
  if (raw === undefined) {
    if (needs) {
      throw new UsageError(
        `embodiment ${emb.key} has relative actions and needs --state with ${emb.state!.names.length} values (${emb.state!.names.join(', ')})`,
      );
    }
    return null;
  }
  if (!emb.state) throw new UsageError(`embodiment ${emb.key} takes no state; leave out --state`);
  const v = parseNumberList(raw, '--state');
  if (v.length !== emb.state.names.length) {
    throw new UsageError(`--state has ${v.length} values; embodiment ${emb.key} needs ${emb.state.names.length} (${emb.state.names.join(', ')})`);
  }
  return v;
}

/** Resolves --image CAMERA=PATH / positional paths into {camera: path}. */
export function imagesFromArgs(imageOpts: string[], positional: string[], emb: Embodiment): Record<string, string> {
  const keyed: [string, string][] = [];
  const plain: string[] = [];
  for (const s of imageOpts) {
    const eq = s.indexOf('=');
    const cam = eq > 0 ? s.slice(0, eq) : '';
    if (eq > 0 && !cam.includes('/') && !cam.includes('\\') && !existsSync(s)) keyed.push([cam, s.slice(eq + 1)]);
    else plain.push(s);
  }
  plain.push(...positional);
  if (keyed.length > 0 && plain.length > 0) {
    throw new UsageError('give images either all as --image CAMERA=PATH or all as paths in camera order, not both');
  }
  const out: Record<string, string> = {};
  if (keyed.length > 0) {
    for (const [cam, path] of keyed) {
      if (!emb.cameras.includes(cam)) throw new UsageError(`--image ${cam}=…: embodiment ${emb.key} has no camera ${JSON.stringify(cam)} (cameras: ${emb.cameras.join(', ')})`);
      if (out[cam]) throw new UsageError(`--image: camera ${cam} is given twice`);
      out[cam] = path;
    }
  } else {
    if (plain.length > emb.cameras.length) {
      throw new UsageError(`${plain.length} images given; embodiment ${emb.key} has ${emb.cameras.length} camera(s) (${emb.cameras.join(', ')})`);
    }
    plain.forEach((path, k) => {
      out[emb.cameras[k]!] = path;
    });
  }
  for (const [cam, path] of Object.entries(out)) {
    if (!existsSync(path)) throw new UsageError(`image for camera ${cam}: no such file ${path}`);
    if (!statSync(path).isFile()) throw new UsageError(`image for camera ${cam}: ${path} is not a file`);
  }
  return out;
}

/** A default instruction per task type (demo, warm-up). */
export function defaultInstruction(emb: Embodiment): string {
  switch (emb.taskType) {
    case 'navigation':
      return 'go to the doorway and stop in front of it';
    case 'trajectory':
      return 'trace a path to the target';
    default:
      return emb.cameras.length > 1 ? 'pick up the cup with the left arm and hand it to the right arm' : 'put the spoon in the bowl';
  }
}

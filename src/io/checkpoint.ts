/**
 * The qvla checkpoint directory (contract: weights/README.md).
 *
 * - `config.json` (required): validated into a QvlaConfig.
 * - weights: `model.safetensors.index.json` + shards when the index exists; otherwise `model.safetensors`;
 *   otherwise the directory's only `*.safetensors` file (several without an index is an error).
 *   The index must be `{"weight_map": {tensor: shard file}, "metadata"?: {...}}`; shard names are plain file
 *   names in the directory (no path separators). Every listed tensor must be in the shard it is listed under,
 *   no tensor may appear in two shards, and every tensor of a listed shard must be in the weight_map.
 *   All index problems are reported together. `metadata.total_size` is not checked.
 * - `tokenizer.json` (required unless `requireTokenizer: false`): presence only; it is parsed elsewhere.
 * - `embodiments.json` (needed for act()): JSON-parsed here when present (deep validation lives elsewhere);
 *   required only with `requireEmbodiments: true`.
 * - `preprocessor_config.json` (optional): validated, defaults applied; its patch_size, temporal_patch_size
 *   and merge_size must agree with vision_config.
 */
import { platform } from '../platform/index.js';
import { CheckpointError, describeValue } from './errors.js';
import { openSafetensors, type SafetensorsFile, type TensorInfo, type TensorSource } from './safetensors.js';
import {
  parsePreprocessorConfig,
  parseQvlaConfig,
  readJsonFile,
  type PreprocessorConfig,
  type QvlaConfig,
} from '../model/config.js';
import {
  bindTensors,
  expectedTensors,
  type BoundTensor,
  type ExpectedTensorOptions,
} from '../model/expectedTensors.js';

export const CONFIG_FILE = 'config.json';
export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const TOKENIZER_FILE = 'tokenizer.json';
export const EMBODIMENTS_FILE = 'embodiments.json';
export const PREPROCESSOR_FILE = 'preprocessor_config.json';

/**
 * What each file of a checkpoint directory is for, which commands need it, and how `qvla inspect` treats its
 * absence:
 * - 'required': without it no command can run the model (config, weights: not even inspect; tokenizer.json: text
 *   goes in and out of every run through it) → inspect names it and exits 1;
 * - 'warning': the checkpoint is complete as a VLM, but the action commands need it (embodiments.json) → inspect
 *   warns, naming the commands, and exits 0;
 * - 'optional': defaults apply (preprocessor_config.json) → a note.
 */
export interface CheckpointFileRole {
  file: string;
  level: 'required' | 'warning' | 'optional';
  /** The commands / APIs that cannot work without the file, as one phrase. */
  neededBy: string;
  what: string;
}

export const CHECKPOINT_FILE_ROLES: readonly CheckpointFileRole[] = [
  { file: CONFIG_FILE, level: 'required', neededBy: 'every command (inspect included)', what: 'the model config' },
  {
    file: '*.safetensors (+ index)', level: 'required', neededBy: 'every command (inspect included)',
    what: 'the weights',
  },
  {
    file: TOKENIZER_FILE, level: 'required', neededBy: 'run, chat, serve, demo, bench e2e/steps, Policy.load / act()',
    what: 'the tokenizer: every prompt and reply goes through it',
  },
  {
    file: EMBODIMENTS_FILE, level: 'warning', neededBy: 'run, serve, demo, act() — and chat, which loads through Policy.load',
    what: 'the embodiment registry: action spaces, normalisation, cameras',
  },
  { file: PREPROCESSOR_FILE, level: 'optional', neededBy: 'no command (defaults apply)', what: 'the image preprocessor values' },
];

/**
 * The roles of the files missing from an opened checkpoint (config and weights are never in the list: without them
 * {@link openCheckpoint} fails). embodiments.json is only expected when the config has an action_expert section.
 */
export function missingCheckpointFiles(ckpt: Checkpoint): CheckpointFileRole[] {
  const role = (f: string) => CHECKPOINT_FILE_ROLES.find((r) => r.file === f)!;
  const out: CheckpointFileRole[] = [];
  if (ckpt.tokenizerPath === null) out.push(role(TOKENIZER_FILE));
  if (ckpt.embodiments === null && ckpt.config.actionExpert) out.push(role(EMBODIMENTS_FILE));
  if (ckpt.rawPreprocessor === null) out.push(role(PREPROCESSOR_FILE));
  return out;
}

export interface CheckpointTensor {
  file: SafetensorsFile;
  info: TensorInfo;
}

/** The weights of a directory: every tensor, wherever it lives. */
export class CheckpointWeights implements TensorSource {
  /** Open files (one per shard). */
  readonly files: SafetensorsFile[];
  /** name → {file, info}, in shard then header order. */
  readonly tensors: Map<string, CheckpointTensor>;
  /** name → info (the TensorSource view of {@link tensors}). */
  readonly tensorInfos: Map<string, TensorInfo>;
  /** The index file, or null for a single-file checkpoint. */
  readonly indexPath: string | null;

  constructor(files: SafetensorsFile[], tensors: Map<string, CheckpointTensor>, indexPath: string | null) {
    this.files = files;
    this.tensors = tensors;
    this.indexPath = indexPath;
    this.tensorInfos = new Map([...tensors].map(([k, v]) => [k, v.info]));
  }

  private entry(name: string): CheckpointTensor {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError('no such tensor in the checkpoint', { tensor: name });
    return t;
  }

  readRange(name: string, start: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.entry(name).file.readRange(name, start, length, into);
  }

  readTensor(name: string, maxBytes?: number): Promise<Uint8Array> {
    return this.entry(name).file.readTensor(name, maxBytes);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

export interface OpenCheckpointOptions {
  /** Fail when tokenizer.json is missing (default true). */
  requireTokenizer?: boolean;
  /** Fail when embodiments.json is missing (default false; act() needs it). */
  requireEmbodiments?: boolean;
}

/** An open checkpoint directory. Close it when done (closes the weight files). */
export class Checkpoint extends CheckpointWeights {
  readonly dir: string;
  readonly config: QvlaConfig;
  /** config.json as parsed JSON. */
  readonly rawConfig: unknown;
  /** Path of tokenizer.json, or null when absent (only with requireTokenizer: false). */
  readonly tokenizerPath: string | null;
  /** embodiments.json as parsed JSON (not deep-validated here), or null when absent. */
  readonly embodiments: unknown;
  readonly preprocessor: PreprocessorConfig;
  /** preprocessor_config.json as parsed JSON, or null when absent. */
  readonly rawPreprocessor: unknown;

  constructor(
    dir: string,
    weights: CheckpointWeights,
    parts: {
      config: QvlaConfig;
      rawConfig: unknown;
      tokenizerPath: string | null;
      embodiments: unknown;
      preprocessor: PreprocessorConfig;
      rawPreprocessor: unknown;
    },
  ) {
    super(weights.files, weights.tensors, weights.indexPath);
    this.dir = dir;
    this.config = parts.config;
    this.rawConfig = parts.rawConfig;
    this.tokenizerPath = parts.tokenizerPath;
    this.embodiments = parts.embodiments;
    this.preprocessor = parts.preprocessor;
    this.rawPreprocessor = parts.rawPreprocessor;
  }

  /** Binds the config's expected tensors against this checkpoint (one CheckpointError listing every problem). */
  bind(opts: ExpectedTensorOptions = {}): Map<string, BoundTensor> {
    return bindTensors(expectedTensors(this.config, opts), this.tensorInfos, { file: this.dir });
  }
}

async function exists(p: string): Promise<'file' | 'other' | null> {
  const k = await platform().fs.kind(p);
  return k === null ? null : k === 'file' ? 'file' : 'other';
}

/** Opens a checkpoint directory (see the module comment). */
export async function openCheckpoint(dir: string, opts: OpenCheckpointOptions = {}): Promise<Checkpoint> {
  const d = await exists(dir);
  if (d !== 'other') {
    throw new CheckpointError(d === null ? 'checkpoint directory does not exist' : 'is a file, expected a checkpoint directory', { file: dir });
  }
  const configPath = platform().fs.join(dir, CONFIG_FILE);
  if ((await exists(configPath)) !== 'file') {
    throw new CheckpointError('is missing (every checkpoint directory needs a config.json)', { file: configPath });
  }
  const rawConfig = await readJsonFile(configPath);
  const config = parseQvlaConfig(rawConfig, configPath);

  const tokPath = platform().fs.join(dir, TOKENIZER_FILE);
  let tokenizerPath: string | null = tokPath;
  if ((await exists(tokPath)) !== 'file') {
    if (opts.requireTokenizer ?? true) {
      throw new CheckpointError('is missing (the Hugging Face tokenizers file is required)', { file: tokPath });
    }
    tokenizerPath = null;
  }

  const embPath = platform().fs.join(dir, EMBODIMENTS_FILE);
  let embodiments: unknown = null;
  if ((await exists(embPath)) === 'file') {
    embodiments = await readJsonFile(embPath);
    if (embodiments === null || typeof embodiments !== 'object' || Array.isArray(embodiments)) {
      throw new CheckpointError(`must hold a JSON object, got ${describeValue(embodiments)}`, { file: embPath });
    }
  } else if (opts.requireEmbodiments ?? false) {
    throw new CheckpointError('is missing (the embodiment registry is required for act())', { file: embPath });
  }

  const ppPath = platform().fs.join(dir, PREPROCESSOR_FILE);
  let rawPreprocessor: unknown = null;
  let preprocessor: PreprocessorConfig;
  if ((await exists(ppPath)) === 'file') {
    rawPreprocessor = await readJsonFile(ppPath);
    preprocessor = parsePreprocessorConfig(rawPreprocessor, ppPath);
    const v = config.vision;
    const pairs: [string, number, number, string][] = [
      ['patch_size', preprocessor.patchSize, v.patchSize, 'vision_config.patch_size'],
      ['temporal_patch_size', preprocessor.temporalPatchSize, v.temporalPatchSize, 'vision_config.temporal_patch_size'],
      ['merge_size', preprocessor.mergeSize, v.spatialMergeSize, 'vision_config.spatial_merge_size'],
    ];
    for (const [k, a, b, other] of pairs) {
      if (a !== b) throw new CheckpointError(`${k} must equal config.json ${other} (got ${a} and ${b})`, { file: ppPath, field: k });
    }
  } else {
    preprocessor = parsePreprocessorConfig(undefined);
  }

  const weights = await openWeights(dir);
  return new Checkpoint(dir, weights, { config, rawConfig, tokenizerPath, embodiments, preprocessor, rawPreprocessor });
}

/** Opens only the weights of a directory (index + shards, or a single file). */
export async function openWeights(dir: string): Promise<CheckpointWeights> {
  const indexPath = platform().fs.join(dir, INDEX_FILE);
  if ((await exists(indexPath)) === 'file') return openSharded(dir, indexPath);

  const single = platform().fs.join(dir, SINGLE_WEIGHTS_FILE);
  let file = single;
  if ((await exists(single)) !== 'file') {
    let names: string[];
    try {
      names = await platform().fs.list(dir);
    } catch (e) {
      throw new CheckpointError(`cannot list: ${e instanceof Error ? e.message : String(e)}`, { file: dir, cause: e });
    }
    const st = names.filter((n) => n.endsWith('.safetensors')).sort();
    if (st.length === 0) {
      throw new CheckpointError(`has no weights (no ${INDEX_FILE}, no ${SINGLE_WEIGHTS_FILE}, no *.safetensors)`, { file: dir });
    }
    if (st.length > 1) {
      throw new CheckpointError(
        `has ${st.length} .safetensors files (${st.slice(0, 5).join(', ')}${st.length > 5 ? ', …' : ''}) but no ${INDEX_FILE} saying which tensor is where`,
        { file: dir },
      );
    }
    file = platform().fs.join(dir, st[0]!);
  }
  const f = await openSafetensors(file);
  const tensors = new Map<string, CheckpointTensor>();
  for (const [name, info] of f.tensors) tensors.set(name, { file: f, info });
  return new CheckpointWeights([f], tensors, null);
}

async function openSharded(dir: string, indexPath: string): Promise<CheckpointWeights> {
  const raw = await readJsonFile(indexPath);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CheckpointError(`must hold a JSON object, got ${describeValue(raw)}`, { file: indexPath });
  }
  const root = raw as Record<string, unknown>;
  if ('metadata' in root && root['metadata'] !== null && (typeof root['metadata'] !== 'object' || Array.isArray(root['metadata']))) {
    throw new CheckpointError(`metadata must be an object, got ${describeValue(root['metadata'])}`, { file: indexPath, field: 'metadata' });
  }
  const wm = root['weight_map'];
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) {
    throw new CheckpointError(`weight_map must be an object {tensor name: shard file}, got ${describeValue(wm)}`, {
      file: indexPath,
      field: 'weight_map',
    });
  }
  const weightMap = wm as Record<string, unknown>;
  const entries = Object.entries(weightMap);
  if (entries.length === 0) throw new CheckpointError('weight_map is empty', { file: indexPath, field: 'weight_map' });
  const shardNames: string[] = [];
  for (const [name, shard] of entries) {
    if (typeof shard !== 'string' || !isPlainFileName(shard)) {
      throw new CheckpointError(
        `weight_map[${JSON.stringify(name)}] must be a shard file name in the checkpoint directory, got ${describeValue(shard)}`,
        { file: indexPath, field: 'weight_map', tensor: name },
      );
    }
    if (!shardNames.includes(shard)) shardNames.push(shard);
  }

  const files: SafetensorsFile[] = [];
  try {
    for (const shard of shardNames) {
      const p = platform().fs.join(dir, shard);
      if ((await exists(p)) !== 'file') {
        throw new CheckpointError(`shard ${JSON.stringify(shard)} listed in weight_map is missing (${p})`, {
          file: indexPath,
          field: 'weight_map',
        });
      }
      files.push(await openSafetensors(p));
    }
    const byShard = new Map(shardNames.map((s, i) => [s, files[i]!]));
    const problems: string[] = [];
    const tensors = new Map<string, CheckpointTensor>();
    // Where each tensor actually is (all shards).
    const foundIn = new Map<string, string[]>();
    for (const [s, f] of byShard) {
      for (const name of f.tensors.keys()) {
        const l = foundIn.get(name);
        if (l) l.push(s);
        else foundIn.set(name, [s]);
      }
    }
    for (const [name, where] of foundIn) {
      if (where.length > 1) problems.push(`tensor ${JSON.stringify(name)} is in more than one shard: ${where.join(', ')}`);
    }
    for (const [name, shardV] of entries) {
      const shard = shardV as string;
      const f = byShard.get(shard)!;
      const info = f.tensors.get(name);
      if (info === undefined) {
        const where = foundIn.get(name);
        problems.push(
          where
            ? `tensor ${JSON.stringify(name)} is listed under ${shard} but is in ${where.join(', ')}`
            : `tensor ${JSON.stringify(name)} is listed under ${shard} but no shard contains it`,
        );
        continue;
      }
      tensors.set(name, { file: f, info });
    }
    for (const [name, where] of foundIn) {
      if (!Object.prototype.hasOwnProperty.call(weightMap, name)) {
        problems.push(`tensor ${JSON.stringify(name)} in ${where.join(', ')} is not listed in weight_map`);
      }
    }
    if (problems.length > 0) {
      const shown = problems.slice(0, 20);
      if (problems.length > 20) shown.push(`… and ${problems.length - 20} more`);
      throw new CheckpointError(`weight_map does not match the shards (${problems.length} problem(s)):\n  ${shown.join('\n  ')}`, {
        file: indexPath,
        field: 'weight_map',
      });
    }
    // Order: shard order, then header order within each shard.
    const ordered = new Map<string, CheckpointTensor>();
    for (const f of files) for (const name of f.tensors.keys()) ordered.set(name, tensors.get(name)!);
    return new CheckpointWeights(files, ordered, indexPath);
  } catch (e) {
    await Promise.all(files.map((f) => f.close().catch(() => undefined)));
    throw e;
  }
}

function isPlainFileName(s: string): boolean {
  return s.length > 0 && s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\\') && !s.includes('\0');
}

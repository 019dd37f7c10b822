/**
 * The tensors a checkpoint must hold for a {@link QvlaConfig}, and binding them against what a checkpoint has.
 *
 * Names: Hugging Face Qwen3.5 (`model.visual.*`, `model.language_model.*`, `lm_head.weight`;
 * docs/architecture.md §10) and QVLA-DiT (`action_expert.*`; docs/action-decoder.md §2.2). Shapes are in
 * PyTorch order (Linear weights are [out, in]).
 *
 * Rules:
 * - `lm_head.weight` is required when embeddings are not tied. When they are tied it is *optional*: accepted
 *   (and shape-checked) if a checkpoint ships it, never reported missing; the runtime should still use
 *   `model.language_model.embed_tokens.weight` as the head, as HF does for tied models.
 * - Tensors under {@link IGNORED_TENSOR_PREFIXES} (`mtp.`: the multi-token-prediction head real Qwen3.5
 *   checkpoints ship and HF ignores) are skipped: neither bound nor reported unexpected.
 * - Any of F32, F16, BF16 is accepted per tensor; any other dtype is reported.
 */
import { CheckpointError } from '../io/errors.js';
import type { ActionExpertConfig, QvlaConfig, TextConfig, VisionConfig } from './config.js';
import { ditWeightDecl, flattenDecl } from './ditWeights.js';

export type TensorGroup = 'text' | 'vision' | 'lm_head' | 'action_expert';

export interface ExpectedTensor {
  name: string;
  shape: number[];
  group: TensorGroup;
  /** Optional tensors are bound when present and never reported missing (only the tied lm_head). */
  optional?: boolean;
}

/** Tensor-name prefixes ignored by rule (see the module comment). */
export const IGNORED_TENSOR_PREFIXES: readonly string[] = Object.freeze(['mtp.']);

export const ACCEPTED_WEIGHT_DTYPES: readonly string[] = Object.freeze(['F32', 'F16', 'BF16']);

export function isIgnoredTensor(name: string): boolean {
  return IGNORED_TENSOR_PREFIXES.some((p) => name.startsWith(p));
}

/** `model.language_model.*` (+ `lm_head.weight`, optional when tied). */
export function textTensors(t: TextConfig, tieWordEmbeddings: boolean): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const P = 'model.language_model';
  const add = (name: string, shape: number[]): void => {
    out.push({ name, shape, group: 'text' });
  };
  const H = t.hiddenSize;
  add(`${P}.embed_tokens.weight`, [t.vocabSize, H]);
  for (let i = 0; i < t.numHiddenLayers; i++) {
    const L = `${P}.layers.${i}`;
    add(`${L}.input_layernorm.weight`, [H]);
    add(`${L}.post_attention_layernorm.weight`, [H]);
    add(`${L}.mlp.gate_proj.weight`, [t.intermediateSize, H]);
    add(`${L}.mlp.up_proj.weight`, [t.intermediateSize, H]);
    add(`${L}.mlp.down_proj.weight`, [H, t.intermediateSize]);
    if (t.layerTypes[i] === 'full_attention') {
      const A = `${L}.self_attn`;
      // q_proj holds, per head, head_dim query rows then head_dim gate rows.
      add(`${A}.q_proj.weight`, [t.numAttentionHeads * t.headDim * 2, H]);
      add(`${A}.k_proj.weight`, [t.numKeyValueHeads * t.headDim, H]);
      add(`${A}.v_proj.weight`, [t.numKeyValueHeads * t.headDim, H]);
      add(`${A}.o_proj.weight`, [H, t.numAttentionHeads * t.headDim]);
      add(`${A}.q_norm.weight`, [t.headDim]);
      add(`${A}.k_norm.weight`, [t.headDim]);
    } else {
      const G = `${L}.linear_attn`;
      const keyDim = t.linearNumKeyHeads * t.linearKeyHeadDim;
      const valueDim = t.linearNumValueHeads * t.linearValueHeadDim;
      const convDim = 2 * keyDim + valueDim;
      add(`${G}.in_proj_qkv.weight`, [convDim, H]);
      add(`${G}.in_proj_z.weight`, [valueDim, H]);
      add(`${G}.in_proj_b.weight`, [t.linearNumValueHeads, H]);
      add(`${G}.in_proj_a.weight`, [t.linearNumValueHeads, H]);
      add(`${G}.conv1d.weight`, [convDim, 1, t.linearConvKernelDim]);
      add(`${G}.dt_bias`, [t.linearNumValueHeads]);
      add(`${G}.A_log`, [t.linearNumValueHeads]);
      add(`${G}.norm.weight`, [t.linearValueHeadDim]);
      add(`${G}.out_proj.weight`, [H, valueDim]);
    }
  }
  add(`${P}.norm.weight`, [H]);
  out.push({ name: 'lm_head.weight', shape: [t.vocabSize, H], group: 'lm_head', ...(tieWordEmbeddings ? { optional: true } : {}) });
  return out;
}

/** `model.visual.*`. */
export function visionTensors(v: VisionConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const P = 'model.visual';
  const add = (name: string, shape: number[]): void => {
    out.push({ name, shape, group: 'vision' });
  };
  const C = v.hiddenSize;
  add(`${P}.patch_embed.proj.weight`, [C, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize]);
  add(`${P}.patch_embed.proj.bias`, [C]);
  add(`${P}.pos_embed.weight`, [v.numPositionEmbeddings, C]);
  for (let j = 0; j < v.depth; j++) {
    const B = `${P}.blocks.${j}`;
    add(`${B}.norm1.weight`, [C]);
    add(`${B}.norm1.bias`, [C]);
    add(`${B}.norm2.weight`, [C]);
    add(`${B}.norm2.bias`, [C]);
    add(`${B}.attn.qkv.weight`, [3 * C, C]);
    add(`${B}.attn.qkv.bias`, [3 * C]);
    add(`${B}.attn.proj.weight`, [C, C]);
    add(`${B}.attn.proj.bias`, [C]);
    add(`${B}.mlp.linear_fc1.weight`, [v.intermediateSize, C]);
    add(`${B}.mlp.linear_fc1.bias`, [v.intermediateSize]);
    add(`${B}.mlp.linear_fc2.weight`, [C, v.intermediateSize]);
    add(`${B}.mlp.linear_fc2.bias`, [C]);
  }
  const M = C * v.spatialMergeSize * v.spatialMergeSize;
  add(`${P}.merger.norm.weight`, [C]);
  add(`${P}.merger.norm.bias`, [C]);
  add(`${P}.merger.linear_fc1.weight`, [M, M]);
  add(`${P}.merger.linear_fc1.bias`, [M]);
  add(`${P}.merger.linear_fc2.weight`, [v.outHiddenSize, M]);
  add(`${P}.merger.linear_fc2.bias`, [v.outHiddenSize]);
  return out;
}

/** `action_expert.*` (docs/action-decoder.md §2.2): the flattened declaration of src/model/ditWeights.ts. */
export function actionExpertTensors(a: ActionExpertConfig): ExpectedTensor[] {
  return flattenDecl(ditWeightDecl(a)).map((d) => ({ name: d.name, shape: d.shape, group: 'action_expert' as const }));
}

export interface ExpectedTensorOptions {
  /** Include `model.visual.*` (default true). */
  vision?: boolean;
  /** Include `action_expert.*` when the config has a decoder (default true). */
  actionExpert?: boolean;
}

/** Every tensor the config implies: text (+ lm_head), vision, decoder. */
export function expectedTensors(cfg: QvlaConfig, opts: ExpectedTensorOptions = {}): ExpectedTensor[] {
  const out = textTensors(cfg.text, cfg.tieWordEmbeddings);
  if (opts.vision ?? true) out.push(...visionTensors(cfg.vision));
  if ((opts.actionExpert ?? true) && cfg.actionExpert !== null) out.push(...actionExpertTensors(cfg.actionExpert));
  return out;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Total parameters of the given tensors (optional ones excluded unless `includeOptional`). */
export function countParams(list: readonly ExpectedTensor[], includeOptional = false): number {
  let n = 0;
  for (const t of list) if (includeOptional || !t.optional) n += numel(t.shape);
  return n;
}

export interface AvailableTensor {
  dtype: string;
  shape: readonly number[];
}

export interface BoundTensor {
  name: string;
  shape: number[];
  group: TensorGroup;
  /** The dtype stored in the checkpoint (F32, F16 or BF16). */
  dtype: 'F32' | 'F16' | 'BF16';
}

export interface BindOptions {
  /** Named in the error (e.g. the checkpoint directory). */
  file?: string;
  /** How many entries of each problem list to print (default 20). */
  maxListed?: number;
}

/**
 * Binds expected tensors to the available ones. All problems — missing, unexpected, mis-shaped and
 * wrong-dtype tensors — are reported together in one CheckpointError (each list truncated to `maxListed` with a
 * count of the rest). Returns the bound tensors by name (optional tensors only when present).
 */
export function bindTensors(
  expected: readonly ExpectedTensor[],
  available: ReadonlyMap<string, AvailableTensor>,
  opts: BindOptions = {},
): Map<string, BoundTensor> {
  const maxListed = opts.maxListed ?? 20;
  const missing: string[] = [];
  const misShaped: string[] = [];
  const badDtype: string[] = [];
  const unexpected: string[] = [];
  const expectedNames = new Set<string>();
  const bound = new Map<string, BoundTensor>();
  for (const e of expected) {
    expectedNames.add(e.name);
    const a = available.get(e.name);
    if (a === undefined) {
      if (!e.optional) missing.push(`${e.name} ${fmtShape(e.shape)}`);
      continue;
    }
    let ok = true;
    if (!sameShape(a.shape, e.shape)) {
      misShaped.push(`${e.name}: expected ${fmtShape(e.shape)}, found ${fmtShape(a.shape)}`);
      ok = false;
    }
    if (!ACCEPTED_WEIGHT_DTYPES.includes(a.dtype)) {
      badDtype.push(`${e.name}: ${a.dtype} (expected ${ACCEPTED_WEIGHT_DTYPES.join(', ')})`);
      ok = false;
    }
    if (ok) bound.set(e.name, { name: e.name, shape: [...e.shape], group: e.group, dtype: a.dtype as BoundTensor['dtype'] });
  }
  for (const name of available.keys()) {
    if (!expectedNames.has(name) && !isIgnoredTensor(name)) unexpected.push(name);
  }
  if (missing.length + misShaped.length + badDtype.length + unexpected.length > 0) {
    const sections: string[] = [];
    const section = (title: string, items: string[]): void => {
      if (items.length === 0) return;
      const shown = items.slice(0, maxListed).map((s) => `  ${s}`);
      if (items.length > maxListed) shown.push(`  … and ${items.length - maxListed} more`);
      sections.push(`${items.length} ${title}:\n${shown.join('\n')}`);
    };
    section('missing tensor(s)', missing);
    section('mis-shaped tensor(s)', misShaped);
    section('tensor(s) with an unsupported dtype', badDtype);
    section(`unexpected tensor(s) (ignored prefixes: ${IGNORED_TENSOR_PREFIXES.join(', ')})`, unexpected);
    throw new CheckpointError(
      `checkpoint tensors do not match the config:\n${sections.join('\n')}`,
      opts.file !== undefined ? { file: opts.file, field: 'tensors' } : { field: 'tensors' },
    );
  }
  return bound;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmtShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

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
import { ditWeightDecl } from './ditWeights.js';
import { textWeightDecl } from './textWeights.js';
import { visionWeightDecl } from './visionWeights.js';
import { flattenDecl } from './weightDecl.js';

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

/**
 * `model.language_model.*` (+ `lm_head.weight`, optional when tied): the flattened declaration of
 * src/model/textWeights.ts.
 */
export function textTensors(t: TextConfig, tieWordEmbeddings: boolean): ExpectedTensor[] {
  const decl = textWeightDecl(t, tieWordEmbeddings);
  return flattenDecl(decl).map((d) => ({
    name: d.name,
    shape: d.shape,
    group: d === decl.lmHead ? ('lm_head' as const) : ('text' as const),
    ...(d.optional ? { optional: true } : {}),
  }));
}

/** `model.visual.*`: the flattened declaration of src/model/visionWeights.ts. */
export function visionTensors(v: VisionConfig): ExpectedTensor[] {
  return flattenDecl(visionWeightDecl(v)).map((d) => ({ name: d.name, shape: d.shape, group: 'vision' as const }));
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

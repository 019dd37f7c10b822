/**
 * config.json → typed, validated {@link QvlaConfig} (contract: weights/README.md "config.json").
 *
 * Every error is a CheckpointError naming the file and the field path, e.g.
 *   `config.json: text_config.num_key_value_heads must divide num_attention_heads (got 3 and 16)`.
 *
 * Defaults (applied only when the key is absent; a present key of the wrong type is an error):
 * - text_config.layer_types: layer i is `full_attention` iff (i + 1) % full_attention_interval == 0, with
 *   full_attention_interval defaulting to 4 (the HF `Qwen3_5TextConfig` default);
 * - text_config rope: `rope_parameters` {rope_type, rope_theta, partial_rotary_factor, mrope_section,
 *   mrope_interleaved}; older configs may instead give `rope_theta` / `partial_rotary_factor` at the
 *   text_config level and `rope_scaling` {mrope_section, mrope_interleaved, type|rope_type}. partial_rotary_factor
 *   defaults to 0.25 (HF's backward-compatibility default), mrope_interleaved to true, rope_type to "default";
 * - text_config.hidden_act "silu", attention_bias false (the only values implemented; others are rejected);
 * - vision_config.hidden_act "gelu_pytorch_tanh" (only value implemented), in_channels 3;
 * - tie_word_embeddings: the top-level value, else text_config's, else false (HF default); both present and
 *   different is an error;
 * - text_config.eos_token_id: an int or a list of ints, or absent (→ []);
 * - action_expert: every key is required except cross_every 2, alt_vl false, norm_eps 1e-5,
 *   out_norm_eps 1e-6, vl_norm_eps 1e-5, time_convention "tau1_noise", num_buckets 1000,
 *   timestep_channels 256, default_steps 10, default_solver "euler", vlm_layer = text num_hidden_layers.
 *   Unknown action_expert keys are rejected (it is qvla's own section, so a typo must not pass silently).
 *   A config without `action_expert` is a VLM-only checkpoint (actionExpert = null).
 * Unknown keys in the HF sections are ignored (HF configs carry many fields qvla does not need).
 */
import { platform } from '../platform/index.js';
import { CheckpointError, describeValue } from '../io/errors.js';
import { SchemaReader, type Obj } from '../util/schema.js';
import QWEN35_4B_PRESET from './presets/qwen35_4b.json' with { type: 'json' };
import SMALL_PRESET from './presets/small.json' with { type: 'json' };

export type LayerType = 'linear_attention' | 'full_attention';

export interface RopeConfig {
  /** Always "default" (plain rope frequencies; legacy "mrope" is mapped to it). */
  ropeType: 'default';
  ropeTheta: number;
  partialRotaryFactor: number;
  /** head_dim × partial_rotary_factor: the number of rotated dims of each head. */
  rotaryDim: number;
  /** Frequencies per axis (T, H, W); sums to rotaryDim / 2. */
  mropeSection: [number, number, number];
  /** Always true: Qwen3.5 uses the interleaved MRoPE layout. */
  mropeInterleaved: true;
}

export interface TextConfig {
  hiddenSize: number;
  numHiddenLayers: number;
  /** One entry per layer. */
  layerTypes: LayerType[];
  /** Full-attention query heads. */
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  /** MLP inner width. */
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  hiddenAct: 'silu';
  attentionBias: false;
  rope: RopeConfig;
  /** Gated DeltaNet q/k heads. */
  linearNumKeyHeads: number;
  /** Gated DeltaNet v heads (a multiple of linearNumKeyHeads). */
  linearNumValueHeads: number;
  linearKeyHeadDim: number;
  linearValueHeadDim: number;
  linearConvKernelDim: number;
  /** text_config.eos_token_id as a list (may be empty). */
  eosTokenIds: number[];
  /** text_config.max_position_embeddings, or null when absent. */
  maxPositionEmbeddings: number | null;
}

export interface VisionConfig {
  /** Number of vision blocks. */
  depth: number;
  hiddenSize: number;
  numHeads: number;
  /** hiddenSize / numHeads. */
  headDim: number;
  intermediateSize: number;
  hiddenAct: 'gelu_pytorch_tanh';
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  inChannels: number;
  /** Merger output width (= text hiddenSize). */
  outHiddenSize: number;
  /** Rows of pos_embed (a perfect square). */
  numPositionEmbeddings: number;
  /** sqrt(numPositionEmbeddings): side of the learned position grid. */
  numGridPerSide: number;
  /** LayerNorm eps of the blocks and the merger (fixed by the HF code, not in config.json). */
  layerNormEps: number;
  /** Vision rope theta (fixed by the HF code). */
  ropeTheta: number;
}

export type TimeConvention = 'tau1_noise';
export type Solver = 'euler' | 'heun' | 'midpoint' | 'rk4';

/** QVLA-DiT action decoder (docs/action-decoder.md §2.1; weights/README.md `action_expert`). */
export interface ActionExpertConfig {
  /** Cross-attention K/V input width (= text hiddenSize). */
  dVlm: number;
  /** DiT width D = numHeads × headDim. */
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  /** DiT blocks; block i cross-attends iff i % crossEvery == 0. */
  numLayers: number;
  crossEvery: number;
  /** GELU-tanh FFN inner width. */
  ffInner: number;
  /** proj_out_2 output width. */
  dOut: number;
  /** action_decoder.fc1 width. */
  mlpHidden: number;
  /** state_encoder.fc1 width. */
  stateHidden: number;
  /** Padded action channels. */
  kMax: number;
  /** Padded state channels. */
  sMax: number;
  /** Padded chunk rows. */
  hMax: number;
  /** Rows of position_embedding. */
  maxSeqLen: number;
  /** Sinusoid width of the timestep encoder. */
  timestepChannels: number;
  /** Time bucket k = floor(tau × (numBuckets − 1)). */
  numBuckets: number;
  timeConvention: TimeConvention;
  /** HF hidden_states index the decoder reads (0 = embeddings, numHiddenLayers = final output after norm). */
  vlmLayer: number;
  /** AlternateVLDiT key masks. */
  altVl: boolean;
  normEps: number;
  outNormEps: number;
  vlNormEps: number;
  defaultSteps: number;
  defaultSolver: Solver;
  /** s of the `shift` time grid (default 3). */
  timeShift: number;
}

export interface QvlaConfig {
  text: TextConfig;
  vision: VisionConfig;
  /** null for a VLM-only checkpoint (no `action_expert` section). */
  actionExpert: ActionExpertConfig | null;
  /** `<|image_pad|>` */
  imageTokenId: number;
  /** `<|video_pad|>` */
  videoTokenId: number;
  /** `<|vision_start|>` */
  visionStartTokenId: number;
  /** `<|vision_end|>` */
  visionEndTokenId: number;
  /** When true, the LM head reuses model.language_model.embed_tokens.weight. */
  tieWordEmbeddings: boolean;
}

/** HF image-processor values (preprocessor_config.json), with the weights/README.md defaults. */
export interface PreprocessorConfig {
  /** size.shortest_edge (or legacy min_pixels); default 65536. */
  minPixels: number;
  /** size.longest_edge (or legacy max_pixels); default 16777216. */
  maxPixels: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
}

// ---------------------------------------------------------------------------------------------------------
// Field readers.

type Fields = SchemaReader;

/** The schema reader of a checkpoint JSON file: every error a CheckpointError naming the file and the field. */
function checkpointFields(file: string): Fields {
  return new SchemaReader(file, { error: (field, msg) => new CheckpointError(`${field} ${msg}`, { file, field }) });
}

// ---------------------------------------------------------------------------------------------------------

/** Validates a parsed config.json. `file` is used in error messages. */
export function parseQvlaConfig(raw: unknown, file = 'config.json'): QvlaConfig {
  const f: Fields = checkpointFields(file);
  const root = f.object(raw, '(root)');
  const text = parseTextConfig(f, f.object(f.required(root, 'text_config', ''), 'text_config'));
  const vision = parseVisionConfig(f, f.object(f.required(root, 'vision_config', ''), 'vision_config'), text);

  const ids = {
    imageTokenId: f.int(root, 'image_token_id', '', { min: 0 }),
    videoTokenId: f.int(root, 'video_token_id', '', { min: 0 }),
    visionStartTokenId: f.int(root, 'vision_start_token_id', '', { min: 0 }),
    visionEndTokenId: f.int(root, 'vision_end_token_id', '', { min: 0 }),
  };
  const idKeys: Record<keyof typeof ids, string> = {
    imageTokenId: 'image_token_id',
    videoTokenId: 'video_token_id',
    visionStartTokenId: 'vision_start_token_id',
    visionEndTokenId: 'vision_end_token_id',
  };
  for (const k of Object.keys(ids) as (keyof typeof ids)[]) {
    if (ids[k] >= text.vocabSize) f.fail(idKeys[k], `must be < text_config.vocab_size (got ${ids[k]} and ${text.vocabSize})`);
  }
  for (const id of text.eosTokenIds) {
    if (id >= text.vocabSize) f.fail('text_config.eos_token_id', `must be < text_config.vocab_size (got ${id} and ${text.vocabSize})`);
  }

  const tTop = f.has(root, 'tie_word_embeddings') ? f.bool(root, 'tie_word_embeddings', '') : undefined;
  const tcObj = root['text_config'] as Obj;
  const tText = f.has(tcObj, 'tie_word_embeddings') ? f.bool(tcObj, 'tie_word_embeddings', 'text_config') : undefined;
  if (tTop !== undefined && tText !== undefined && tTop !== tText) {
    f.fail('tie_word_embeddings', `disagrees with text_config.tie_word_embeddings (got ${tTop} and ${tText})`);
  }
  const tieWordEmbeddings = tTop ?? tText ?? false;

  const actionExpert = f.has(root, 'action_expert')
    ? parseActionExpertConfig(f, f.object(root['action_expert'], 'action_expert'), text)
    : null;

  return { text, vision, actionExpert, ...ids, tieWordEmbeddings };
}

function parseTextConfig(f: Fields, t: Obj): TextConfig {
  const P = 'text_config';
  const hiddenSize = f.int(t, 'hidden_size', P);
  const numHiddenLayers = f.int(t, 'num_hidden_layers', P);
  const numAttentionHeads = f.int(t, 'num_attention_heads', P);
  const numKeyValueHeads = f.int(t, 'num_key_value_heads', P);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    f.fail(`${P}.num_key_value_heads`, `must divide num_attention_heads (got ${numKeyValueHeads} and ${numAttentionHeads})`);
  }
  const headDim = f.int(t, 'head_dim', P);
  const intermediateSize = f.int(t, 'intermediate_size', P);
  const vocabSize = f.int(t, 'vocab_size', P);
  const rmsNormEps = f.num(t, 'rms_norm_eps', P);
  const hiddenAct = f.oneOf(t, 'hidden_act', P, ['silu'] as const, { def: 'silu', supported: true });
  if (f.has(t, 'attention_bias') && f.bool(t, 'attention_bias', P)) {
    f.fail(`${P}.attention_bias`, 'must be false (attention biases are not implemented), got true');
  }
  if (f.has(t, 'attn_output_gate') && !f.bool(t, 'attn_output_gate', P)) {
    f.fail(`${P}.attn_output_gate`, 'must be true (Qwen3.5 full attention is always gated), got false');
  }
  const linearNumKeyHeads = f.int(t, 'linear_num_key_heads', P);
  const linearNumValueHeads = f.int(t, 'linear_num_value_heads', P);
  if (linearNumValueHeads % linearNumKeyHeads !== 0) {
    f.fail(`${P}.linear_num_key_heads`, `must divide linear_num_value_heads (got ${linearNumKeyHeads} and ${linearNumValueHeads})`);
  }
  const linearKeyHeadDim = f.int(t, 'linear_key_head_dim', P);
  const linearValueHeadDim = f.int(t, 'linear_value_head_dim', P);
  const linearConvKernelDim = f.int(t, 'linear_conv_kernel_dim', P);

  // layer_types
  let layerTypes: LayerType[];
  if (f.has(t, 'layer_types')) {
    const lt = t['layer_types'];
    if (!Array.isArray(lt)) f.fail(`${P}.layer_types`, `must be a list, got ${describeValue(lt)}`);
    if (lt.length !== numHiddenLayers) {
      f.fail(`${P}.layer_types`, `must have num_hidden_layers entries (got ${lt.length} and ${numHiddenLayers})`);
    }
    layerTypes = lt.map((v: unknown, i: number) => {
      if (v !== 'linear_attention' && v !== 'full_attention') {
        f.fail(`${P}.layer_types[${i}]`, `must be "linear_attention" or "full_attention", got ${describeValue(v)}`);
      }
      return v;
    });
  } else {
    const interval = f.int(t, 'full_attention_interval', P, { def: 4 });
    layerTypes = Array.from({ length: numHiddenLayers }, (_, i) =>
      (i + 1) % interval === 0 ? 'full_attention' : 'linear_attention',
    );
  }

  const rope = parseRope(f, t, headDim);

  let eosTokenIds: number[] = [];
  if (f.has(t, 'eos_token_id') && t['eos_token_id'] !== null) {
    const e = t['eos_token_id'];
    const list = Array.isArray(e) ? e : [e];
    eosTokenIds = list.map((v: unknown, i: number) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
        f.fail(`${P}.eos_token_id${Array.isArray(e) ? `[${i}]` : ''}`, `must be a non-negative integer, got ${describeValue(v)}`);
      }
      return v;
    });
  }
  const maxPositionEmbeddings = f.has(t, 'max_position_embeddings') ? f.int(t, 'max_position_embeddings', P) : null;

  return {
    hiddenSize,
    numHiddenLayers,
    layerTypes,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    intermediateSize,
    vocabSize,
    rmsNormEps,
    hiddenAct,
    attentionBias: false,
    rope,
    linearNumKeyHeads,
    linearNumValueHeads,
    linearKeyHeadDim,
    linearValueHeadDim,
    linearConvKernelDim,
    eosTokenIds,
    maxPositionEmbeddings,
  };
}

function parseRope(f: Fields, t: Obj, headDim: number): RopeConfig {
  const P = 'text_config';
  let src: Obj;
  let srcPath: string;
  let thetaObj: Obj;
  let thetaPath: string;
  let prfObj: Obj;
  let prfPath: string;
  if (f.has(t, 'rope_parameters') && t['rope_parameters'] !== null) {
    src = f.object(t['rope_parameters'], `${P}.rope_parameters`);
    srcPath = `${P}.rope_parameters`;
    thetaObj = src;
    thetaPath = srcPath;
    // rope_theta / partial_rotary_factor may sit at the text_config level in transitional configs.
    if (!f.has(src, 'rope_theta') && f.has(t, 'rope_theta')) {
      thetaObj = t;
      thetaPath = P;
    }
    prfObj = f.has(src, 'partial_rotary_factor') || !f.has(t, 'partial_rotary_factor') ? src : t;
    prfPath = prfObj === src ? srcPath : P;
  } else {
    // Legacy layout.
    if (!f.has(t, 'rope_scaling') || t['rope_scaling'] === null) {
      f.fail(`${P}.rope_parameters`, 'is required but missing (neither rope_parameters nor legacy rope_scaling is present)');
    }
    src = f.object(t['rope_scaling'], `${P}.rope_scaling`);
    srcPath = `${P}.rope_scaling`;
    thetaObj = t;
    thetaPath = P;
    prfObj = t;
    prfPath = P;
  }
  const typeKey = f.has(src, 'rope_type') ? 'rope_type' : 'type';
  f.oneOf(src, typeKey, srcPath, ['default', 'mrope'] as const, { def: 'default', supported: true });
  const ropeTheta = f.num(thetaObj, 'rope_theta', thetaPath);
  const partialRotaryFactor = f.num(prfObj, 'partial_rotary_factor', prfPath, { def: 0.25 });
  if (partialRotaryFactor > 1) f.fail(`${prfPath}.partial_rotary_factor`, `must be in (0, 1], got ${partialRotaryFactor}`);
  const rotaryDim = headDim * partialRotaryFactor;
  if (!Number.isInteger(rotaryDim) || rotaryDim % 2 !== 0) {
    f.fail(`${prfPath}.partial_rotary_factor`, `× head_dim must be an even integer (got ${partialRotaryFactor} × ${headDim} = ${rotaryDim})`);
  }
  const ms = f.required(src, 'mrope_section', srcPath);
  const msPath = `${srcPath}.mrope_section`;
  if (!Array.isArray(ms) || ms.length !== 3) f.fail(msPath, `must be a list of 3 integers (T, H, W), got ${describeValue(ms)}`);
  const mropeSection = ms.map((v: unknown, i: number) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) f.fail(`${msPath}[${i}]`, `must be a non-negative integer, got ${describeValue(v)}`);
    return v;
  }) as [number, number, number];
  const sum = mropeSection[0] + mropeSection[1] + mropeSection[2];
  if (sum !== rotaryDim / 2) {
    f.fail(msPath, `must sum to head_dim × partial_rotary_factor / 2 (got ${sum} and ${headDim} × ${partialRotaryFactor} / 2 = ${rotaryDim / 2})`);
  }
  if (!f.bool(src, 'mrope_interleaved', srcPath, true)) {
    f.fail(`${srcPath}.mrope_interleaved`, 'must be true (qvla implements the interleaved MRoPE of Qwen3.5 only), got false');
  }
  return { ropeType: 'default', ropeTheta, partialRotaryFactor, rotaryDim, mropeSection, mropeInterleaved: true };
}

function parseVisionConfig(f: Fields, v: Obj, text: TextConfig): VisionConfig {
  const P = 'vision_config';
  const depth = f.int(v, 'depth', P);
  const hiddenSize = f.int(v, 'hidden_size', P);
  const numHeads = f.int(v, 'num_heads', P);
  if (hiddenSize % numHeads !== 0) f.fail(`${P}.num_heads`, `must divide hidden_size (got ${numHeads} and ${hiddenSize})`);
  const headDim = hiddenSize / numHeads;
  if (headDim % 4 !== 0) {
    f.fail(`${P}.num_heads`, `must give a head dim divisible by 4 for the 2-D vision rope (got hidden_size ${hiddenSize} / ${numHeads} = ${headDim})`);
  }
  const intermediateSize = f.int(v, 'intermediate_size', P);
  const hiddenAct = f.oneOf(v, 'hidden_act', P, ['gelu_pytorch_tanh'] as const, { def: 'gelu_pytorch_tanh', supported: true });
  const patchSize = f.int(v, 'patch_size', P);
  const temporalPatchSize = f.int(v, 'temporal_patch_size', P);
  const spatialMergeSize = f.int(v, 'spatial_merge_size', P);
  const inChannels = f.int(v, 'in_channels', P, { def: 3 });
  const outHiddenSize = f.int(v, 'out_hidden_size', P);
  if (outHiddenSize !== text.hiddenSize) {
    f.fail(`${P}.out_hidden_size`, `must equal text_config.hidden_size (got ${outHiddenSize} and ${text.hiddenSize})`);
  }
  const numPositionEmbeddings = f.int(v, 'num_position_embeddings', P);
  const side = Math.round(Math.sqrt(numPositionEmbeddings));
  if (side * side !== numPositionEmbeddings) {
    f.fail(`${P}.num_position_embeddings`, `must be a perfect square (got ${numPositionEmbeddings})`);
  }
  if (f.has(v, 'deepstack_visual_indexes')) {
    const d = v['deepstack_visual_indexes'];
    if (!Array.isArray(d) || d.length !== 0) {
      f.fail(`${P}.deepstack_visual_indexes`, `must be empty (Qwen3.5 has no deepstack), got ${describeValue(d)}`);
    }
  }
  return {
    depth,
    hiddenSize,
    numHeads,
    headDim,
    intermediateSize,
    hiddenAct,
    patchSize,
    temporalPatchSize,
    spatialMergeSize,
    inChannels,
    outHiddenSize,
    numPositionEmbeddings,
    numGridPerSide: side,
    layerNormEps: 1e-6,
    ropeTheta: 10000,
  };
}

const ACTION_EXPERT_KEYS = [
  'd_vlm', 'hidden_size', 'num_heads', 'head_dim', 'num_layers', 'cross_every', 'ff_inner', 'd_out', 'mlp_hidden',
  'state_hidden', 'k_max', 's_max', 'h_max', 'max_seq_len', 'timestep_channels', 'num_buckets', 'time_convention',
  'vlm_layer', 'alt_vl', 'norm_eps', 'out_norm_eps', 'vl_norm_eps', 'default_steps', 'default_solver', 'time_shift',
] as const;

function parseActionExpertConfig(f: Fields, a: Obj, text: TextConfig): ActionExpertConfig {
  const P = 'action_expert';
  for (const k of Object.keys(a)) {
    if (!(ACTION_EXPERT_KEYS as readonly string[]).includes(k)) {
      f.fail(`${P}.${k}`, `is not a known action_expert key (known: ${ACTION_EXPERT_KEYS.join(', ')})`);
    }
  }
  const dVlm = f.int(a, 'd_vlm', P);
  if (dVlm !== text.hiddenSize) f.fail(`${P}.d_vlm`, `must equal text_config.hidden_size (got ${dVlm} and ${text.hiddenSize})`);
  const hiddenSize = f.int(a, 'hidden_size', P);
  const numHeads = f.int(a, 'num_heads', P);
  const headDim = f.int(a, 'head_dim', P);
  if (hiddenSize !== numHeads * headDim) {
    f.fail(`${P}.hidden_size`, `must equal num_heads × head_dim (got ${hiddenSize} and ${numHeads} × ${headDim} = ${numHeads * headDim})`);
  }
  const numLayers = f.int(a, 'num_layers', P);
  const crossEvery = f.int(a, 'cross_every', P, { def: 2 });
  const ffInner = f.int(a, 'ff_inner', P);
  const dOut = f.int(a, 'd_out', P);
  const mlpHidden = f.int(a, 'mlp_hidden', P);
  const stateHidden = f.int(a, 'state_hidden', P);
  const kMax = f.int(a, 'k_max', P);
  const sMax = f.int(a, 's_max', P);
  const hMax = f.int(a, 'h_max', P);
  const maxSeqLen = f.int(a, 'max_seq_len', P);
  if (hMax > maxSeqLen) f.fail(`${P}.h_max`, `must be ≤ max_seq_len (got ${hMax} and ${maxSeqLen})`);
  const timestepChannels = f.int(a, 'timestep_channels', P, { def: 256, min: 4 });
  if (timestepChannels % 2 !== 0) f.fail(`${P}.timestep_channels`, `must be even (got ${timestepChannels})`);
  const numBuckets = f.int(a, 'num_buckets', P, { def: 1000 });
  const timeConvention = f.oneOf(a, 'time_convention', P, ['tau1_noise'] as const, { def: 'tau1_noise', supported: true });
  const vlmLayer = f.int(a, 'vlm_layer', P, { def: text.numHiddenLayers, min: 0 });
  if (vlmLayer > text.numHiddenLayers) {
    f.fail(`${P}.vlm_layer`, `must be in 0..text_config.num_hidden_layers (got ${vlmLayer} and ${text.numHiddenLayers})`);
  }
  const altVl = f.bool(a, 'alt_vl', P, false);
  const normEps = f.num(a, 'norm_eps', P, { def: 1e-5 });
  const outNormEps = f.num(a, 'out_norm_eps', P, { def: 1e-6 });
  const vlNormEps = f.num(a, 'vl_norm_eps', P, { def: 1e-5 });
  const defaultSteps = f.int(a, 'default_steps', P, { def: 10 });
  const defaultSolver = f.oneOf(a, 'default_solver', P, ['euler', 'heun', 'midpoint', 'rk4'] as const, { def: 'euler', supported: true });
  // s of the `shift` time grid τ' = s·u/(1+(s−1)·u) (src/policy/samplers.ts)
  const timeShift = f.num(a, 'time_shift', P, { positive: true, def: 3 });
  return {
    dVlm, hiddenSize, numHeads, headDim, numLayers, crossEvery, ffInner, dOut, mlpHidden, stateHidden, kMax, sMax,
    hMax, maxSeqLen, timestepChannels, numBuckets, timeConvention, vlmLayer, altVl, normEps, outNormEps, vlNormEps,
    defaultSteps, defaultSolver, timeShift,
  };
}

/** Reads, JSON-parses and validates a config.json. */
export async function loadQvlaConfig(path: string): Promise<QvlaConfig> {
  return parseQvlaConfig(await readJsonFile(path), path);
}

/** Reads and JSON-parses a file; CheckpointError (naming the file) when missing or not valid JSON. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await platform().fs.readText(path);
  } catch (e) {
    throw new CheckpointError(`cannot read: ${e instanceof Error ? e.message : String(e)}`, { file: path, cause: e });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CheckpointError(`is not valid JSON (${e instanceof Error ? e.message : String(e)})`, { file: path, cause: e });
  }
}

// ---------------------------------------------------------------------------------------------------------
// preprocessor_config.json

export function defaultPreprocessorConfig(): PreprocessorConfig {
  return {
    minPixels: 65536,
    maxPixels: 16777216,
    imageMean: [0.5, 0.5, 0.5],
    imageStd: [0.5, 0.5, 0.5],
    patchSize: 16,
    temporalPatchSize: 2,
    mergeSize: 2,
  };
}

/**
 * Validates preprocessor_config.json (pass `undefined` for "absent" to get the defaults). Pixel limits come from
 * `size.shortest_edge` / `size.longest_edge` (HF's Qwen2-VL processor naming), or legacy `min_pixels` /
 * `max_pixels`. `image_mean` / `image_std` are 3 numbers (a single number is broadcast).
 */
export function parsePreprocessorConfig(raw: unknown, file = 'preprocessor_config.json'): PreprocessorConfig {
  const d = defaultPreprocessorConfig();
  if (raw === undefined) return d;
  const f: Fields = checkpointFields(file);
  const o = f.object(raw, '(root)');
  let minPixels = d.minPixels;
  let maxPixels = d.maxPixels;
  if (f.has(o, 'size') && o['size'] !== null) {
    const s = f.object(o['size'], 'size');
    minPixels = f.int(s, 'shortest_edge', 'size', { def: minPixels });
    maxPixels = f.int(s, 'longest_edge', 'size', { def: maxPixels });
  }
  if (f.has(o, 'min_pixels') && o['min_pixels'] !== null) minPixels = f.int(o, 'min_pixels', '');
  if (f.has(o, 'max_pixels') && o['max_pixels'] !== null) maxPixels = f.int(o, 'max_pixels', '');
  if (minPixels > maxPixels) f.fail('size.shortest_edge', `(min_pixels) must be ≤ size.longest_edge (max_pixels) (got ${minPixels} and ${maxPixels})`);
  const triple = (key: string, def: [number, number, number], positive: boolean): [number, number, number] => {
    if (!f.has(o, key)) return def;
    const v = o[key];
    const list = typeof v === 'number' ? [v, v, v] : v;
    if (!Array.isArray(list) || list.length !== 3) f.fail(key, `must be a list of 3 numbers, got ${describeValue(v)}`);
    return list.map((x: unknown, i: number) => {
      if (typeof x !== 'number' || !Number.isFinite(x) || (positive && !(x > 0))) {
        f.fail(`${key}[${i}]`, `must be a finite${positive ? ' positive' : ''} number, got ${describeValue(x)}`);
      }
      return x;
    }) as [number, number, number];
  };
  return {
    minPixels,
    maxPixels,
    imageMean: triple('image_mean', d.imageMean, false),
    imageStd: triple('image_std', d.imageStd, true),
    patchSize: f.int(o, 'patch_size', '', { def: d.patchSize }),
    temporalPatchSize: f.int(o, 'temporal_patch_size', '', { def: d.temporalPatchSize }),
    mergeSize: f.int(o, 'merge_size', '', { def: d.mergeSize }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Presets (raw config.json objects, data files in src/model/presets/; parse them with parseQvlaConfig or use the
// typed helpers below).

/** Full QVLA-DiT decoder (docs/action-decoder.md §2.1; ≈1.128 B parameters) for a VLM of width dVlm (default 2560):
 * the `action_expert` section of the 4B preset. */
export function fullActionExpertJson(dVlm = 2560): Record<string, unknown> {
  return { ...structuredClone(QWEN35_4B_PRESET.action_expert), d_vlm: dVlm };
}

/** config.json of Qwen3.5-4B (docs/architecture.md §2) plus the full decoder: src/model/presets/qwen35_4b.json
 * (also the shape config of tools/reference/selfcheck.py's parameter counts). A fresh copy per call. */
export function qwen35_4bConfigJson(): Record<string, unknown> {
  return structuredClone(QWEN35_4B_PRESET) as Record<string, unknown>;
}

/** Qwen3.5-0.8B-shaped VLM (docs/architecture.md §2, legacy-free, layer_types from the interval) + a small
 * DiT (D = 512 = 8 × 64, 8 blocks, FFN 2048; same action/state/chunk interface as the full decoder):
 * src/model/presets/small.json. A fresh copy per call. */
export function smallConfigJson(): Record<string, unknown> {
  return structuredClone(SMALL_PRESET) as Record<string, unknown>;
}

/** Typed Qwen3.5-4B + full decoder config. */
export function qwen35_4bConfig(): QvlaConfig {
  return parseQvlaConfig(qwen35_4bConfigJson(), 'qwen35_4bConfigJson()');
}

/** Typed Qwen3.5-0.8B-shaped + small-DiT config. */
export function smallConfig(): QvlaConfig {
  return parseQvlaConfig(smallConfigJson(), 'smallConfigJson()');
}

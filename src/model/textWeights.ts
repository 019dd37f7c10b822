// The Qwen3.5 text decoder's weights, declared once (docs/architecture.md §5, §10): `textWeightDecl(cfg)` is a
// typed tree of (checkpoint name, shape) leaves. The expected-tensor list (src/model/expectedTensors.ts) is its
// flattening, and TextDecoder binds the same tree to the loaded weights, so model code reads
// `W.layers[i].mlp.down.w` instead of spelling `model.language_model.layers.${i}.mlp.down_proj.weight` again.
import type { Tensor } from '../tensor.js';
import type { TextConfig } from './config.js';
import type { WeightPart, WeightStore } from './weights.js';
import { bindDecl, storeLeaf, type TensorDecl, type WeightOf } from './weightDecl.js';

/** Gated full attention: q_proj holds, per head, head_dim query rows then head_dim gate rows. */
export interface FullAttentionOf<T> {
  kind: 'full_attention';
  qProj: WeightOf<T>;
  kProj: WeightOf<T>;
  vProj: WeightOf<T>;
  oProj: WeightOf<T>;
  qNorm: WeightOf<T>;
  kNorm: WeightOf<T>;
}

/** Gated DeltaNet (linear attention). */
export interface GatedDeltaNetOf<T> {
  kind: 'linear_attention';
  inProjQkv: WeightOf<T>;
  inProjZ: WeightOf<T>;
  inProjB: WeightOf<T>;
  inProjA: WeightOf<T>;
  conv1d: WeightOf<T>;
  dtBias: T;
  aLog: T;
  norm: WeightOf<T>;
  outProj: WeightOf<T>;
}

export interface TextLayerOf<T> {
  inputLayernorm: WeightOf<T>;
  postAttentionLayernorm: WeightOf<T>;
  mlp: { gate: WeightOf<T>; up: WeightOf<T>; down: WeightOf<T> };
  attn: FullAttentionOf<T> | GatedDeltaNetOf<T>;
}

/**
 * `model.language_model.*` + `lm_head.weight`. Leaves T (TensorDecl declared, Tensor bound); the row-splittable
 * embeddings S (WeightPart[] bound); the head H (WeightPart[] | null bound: optional when tied).
 */
export interface TextWeightsOf<T, S = T, H = S> {
  embedTokens: S;
  layers: TextLayerOf<T>[];
  norm: WeightOf<T>;
  lmHead: H;
}

export type TextWeightDecl = TextWeightsOf<TensorDecl>;
export type TextWeights = TextWeightsOf<Tensor, WeightPart[], WeightPart[] | null>;

const P = 'model.language_model.';

/** The declaration for a config (leaf order = expected-tensor order). */
export function textWeightDecl(t: TextConfig, tieWordEmbeddings: boolean): TextWeightDecl {
  const H = t.hiddenSize;
  const w = (name: string, shape: number[]): WeightOf<TensorDecl> => ({ w: { name: `${P}${name}.weight`, shape } });
  const layer = (i: number): TextLayerOf<TensorDecl> => {
    const L = `layers.${i}`;
    const I = t.intermediateSize;
    const common = {
      inputLayernorm: w(`${L}.input_layernorm`, [H]),
      postAttentionLayernorm: w(`${L}.post_attention_layernorm`, [H]),
      mlp: { gate: w(`${L}.mlp.gate_proj`, [I, H]), up: w(`${L}.mlp.up_proj`, [I, H]), down: w(`${L}.mlp.down_proj`, [H, I]) },
    };
    if (t.layerTypes[i] === 'full_attention') {
      const A = `${L}.self_attn`;
      const qd = t.numAttentionHeads * t.headDim;
      const kvd = t.numKeyValueHeads * t.headDim;
      return {
        ...common,
        attn: {
          kind: 'full_attention',
          qProj: w(`${A}.q_proj`, [qd * 2, H]),
          kProj: w(`${A}.k_proj`, [kvd, H]),
          vProj: w(`${A}.v_proj`, [kvd, H]),
          oProj: w(`${A}.o_proj`, [H, qd]),
          qNorm: w(`${A}.q_norm`, [t.headDim]),
          kNorm: w(`${A}.k_norm`, [t.headDim]),
        },
      };
    }
    const G = `${L}.linear_attn`;
    const keyDim = t.linearNumKeyHeads * t.linearKeyHeadDim;
    const valueDim = t.linearNumValueHeads * t.linearValueHeadDim;
    const convDim = 2 * keyDim + valueDim;
    const Hv = t.linearNumValueHeads;
    return {
      ...common,
      attn: {
        kind: 'linear_attention',
        inProjQkv: w(`${G}.in_proj_qkv`, [convDim, H]),
        inProjZ: w(`${G}.in_proj_z`, [valueDim, H]),
        inProjB: w(`${G}.in_proj_b`, [Hv, H]),
        inProjA: w(`${G}.in_proj_a`, [Hv, H]),
        conv1d: w(`${G}.conv1d`, [convDim, 1, t.linearConvKernelDim]),
        dtBias: { name: `${P}${G}.dt_bias`, shape: [Hv] },
        aLog: { name: `${P}${G}.A_log`, shape: [Hv] },
        norm: w(`${G}.norm`, [t.linearValueHeadDim]),
        outProj: w(`${G}.out_proj`, [H, valueDim]),
      },
    };
  };
  return {
    embedTokens: { name: `${P}embed_tokens.weight`, shape: [t.vocabSize, H], split: true },
    layers: Array.from({ length: t.numHiddenLayers }, (_, i) => layer(i)),
    norm: w('norm', [H]),
    lmHead: { name: 'lm_head.weight', shape: [t.vocabSize, H], split: true, ...(tieWordEmbeddings ? { optional: true } : {}) },
  };
}

/**
 * The same tree bound to `store`, lazily (every read is a WeightStore lookup): load-time fusions drop originals
 * (stacked gate/up, split q_proj), and an absent optional lm_head reads as null.
 */
export function bindTextWeights(decl: TextWeightDecl, store: WeightStore): TextWeights {
  return bindDecl(decl, storeLeaf(store), true) as TextWeights;
}

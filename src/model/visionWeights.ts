// The Qwen3.5 vision tower's weights, declared once (docs/architecture.md §4, §10): `visionWeightDecl(cfg)` is a
// typed tree of (checkpoint name, shape) leaves. The expected-tensor list (src/model/expectedTensors.ts) is its
// flattening, and VisionTower binds the same tree to the loaded weights, so model code reads
// `W.blocks[j].attn.qkv.w` instead of spelling `model.visual.blocks.${j}.attn.qkv.weight` again.
import type { Tensor } from '../tensor.js';
import type { VisionConfig } from './config.js';
import type { WeightStore } from './weights.js';
import { bindDecl, storeLeaf, type LinearOf, type TensorDecl, type WeightOf } from './weightDecl.js';

export interface VisionBlockOf<T> {
  /** LayerNorms: weight and bias */
  norm1: LinearOf<T>;
  norm2: LinearOf<T>;
  attn: { qkv: LinearOf<T>; proj: LinearOf<T> };
  mlp: { fc1: LinearOf<T>; fc2: LinearOf<T> };
}

/** `model.visual.*`, leaves of type T (TensorDecl when declared, Tensor when bound). */
export interface VisionWeightsOf<T> {
  /** the Conv3d patch embedding: weight [C, inChannels, T, P, P] (kernel == stride: a linear over the flat patch) */
  patchEmbed: LinearOf<T>;
  posEmbed: WeightOf<T>;
  blocks: VisionBlockOf<T>[];
  merger: { norm: LinearOf<T>; fc1: LinearOf<T>; fc2: LinearOf<T> };
}

export type VisionWeightDecl = VisionWeightsOf<TensorDecl>;
export type VisionWeights = VisionWeightsOf<Tensor>;

const P = 'model.visual.';

/** The declaration for a config (leaf order = expected-tensor order). */
export function visionWeightDecl(v: VisionConfig): VisionWeightDecl {
  const C = v.hiddenSize;
  const t = (name: string, shape: number[]): TensorDecl => ({ name: P + name, shape });
  const linear = (name: string, outDim: number, inDim: number): LinearOf<TensorDecl> => ({
    w: t(`${name}.weight`, [outDim, inDim]),
    b: t(`${name}.bias`, [outDim]),
  });
  const layerNorm = (name: string, dim: number): LinearOf<TensorDecl> => ({ w: t(`${name}.weight`, [dim]), b: t(`${name}.bias`, [dim]) });
  const M = C * v.spatialMergeSize * v.spatialMergeSize;
  return {
    patchEmbed: {
      w: t('patch_embed.proj.weight', [C, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize]),
      b: t('patch_embed.proj.bias', [C]),
    },
    posEmbed: { w: t('pos_embed.weight', [v.numPositionEmbeddings, C]) },
    blocks: Array.from({ length: v.depth }, (_, j) => {
      const B = `blocks.${j}`;
      return {
        norm1: layerNorm(`${B}.norm1`, C),
        norm2: layerNorm(`${B}.norm2`, C),
        attn: { qkv: linear(`${B}.attn.qkv`, 3 * C, C), proj: linear(`${B}.attn.proj`, C, C) },
        mlp: { fc1: linear(`${B}.mlp.linear_fc1`, v.intermediateSize, C), fc2: linear(`${B}.mlp.linear_fc2`, C, v.intermediateSize) },
      };
    }),
    merger: { norm: layerNorm('merger.norm', C), fc1: linear('merger.linear_fc1', M, M), fc2: linear('merger.linear_fc2', v.outHiddenSize, M) },
  };
}

/** The same tree bound to `store`, lazily (a policy may load without the vision tower: nothing is read then). */
export function bindVisionWeights(decl: VisionWeightDecl, store: WeightStore): VisionWeights {
  return bindDecl(decl, storeLeaf(store), true) as VisionWeights;
}

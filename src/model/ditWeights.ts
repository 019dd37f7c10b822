// The action decoder's weights, declared once (docs/action-decoder.md §2.2): `ditWeightDecl(cfg)` is a typed tree
// of (checkpoint name, shape) leaves. The expected-tensor list (src/model/expectedTensors.ts) is its flattening, and
// the decoder binds the same tree to GPU tensors at load (`bindDitWeights`), so model code reads
// `W.blocks[i].attn.toQ.w` instead of spelling `action_expert.dit.blocks.${i}.attn.to_q.weight` again.
import type { Tensor } from '../tensor.js';
import type { ActionExpertConfig } from './config.js';
import type { WeightStore } from './weights.js';
import { bindDecl, storeLeaf, type LinearOf, type TensorDecl } from './weightDecl.js';

export type { LinearOf, TensorDecl };

export interface DitBlockOf<T> {
  norm1: LinearOf<T>;
  attn: { toQ: LinearOf<T>; toK: LinearOf<T>; toV: LinearOf<T>; toOut: LinearOf<T> };
  ff: { fc1: LinearOf<T>; fc2: LinearOf<T> };
}

/** The whole `action_expert.*` tree, leaves of type T (TensorDecl when declared, Tensor when bound). */
export interface DitWeightsOf<T> {
  vlNorm: LinearOf<T>;
  stateEncoder: { fc1: LinearOf<T>; fc2: LinearOf<T> };
  stateNullToken: T;
  actionEncoder: { w1: LinearOf<T>; w2: LinearOf<T>; w3: LinearOf<T> };
  positionEmbedding: T;
  timestepEncoder: { linear1: LinearOf<T>; linear2: LinearOf<T> };
  blocks: DitBlockOf<T>[];
  projOut1: LinearOf<T>;
  projOut2: LinearOf<T>;
  actionDecoder: { fc1: LinearOf<T>; fc2: LinearOf<T> };
}

export type DitWeightDecl = DitWeightsOf<TensorDecl>;
export type DitWeights = DitWeightsOf<Tensor>;

const P = 'action_expert.';

/** The declaration for a config (the order of the leaves is the checkpoint-binding order). */
export function ditWeightDecl(a: ActionExpertConfig): DitWeightDecl {
  const D = a.hiddenSize;
  const t = (name: string, shape: number[]): TensorDecl => ({ name: P + name, shape });
  const linear = (name: string, outDim: number, inDim: number): LinearOf<TensorDecl> => ({
    w: t(`${name}.weight`, [outDim, inDim]),
    b: t(`${name}.bias`, [outDim]),
  });
  return {
    vlNorm: { w: t('vl_norm.weight', [a.dVlm]), b: t('vl_norm.bias', [a.dVlm]) },
    stateEncoder: { fc1: linear('state_encoder.fc1', a.stateHidden, a.sMax), fc2: linear('state_encoder.fc2', D, a.stateHidden) },
    stateNullToken: t('state_null_token', [1, 1, D]),
    actionEncoder: { w1: linear('action_encoder.w1', D, a.kMax), w2: linear('action_encoder.w2', D, 2 * D), w3: linear('action_encoder.w3', D, D) },
    positionEmbedding: t('position_embedding.weight', [a.maxSeqLen, D]),
    timestepEncoder: { linear1: linear('dit.timestep_encoder.linear_1', D, a.timestepChannels), linear2: linear('dit.timestep_encoder.linear_2', D, D) },
    blocks: Array.from({ length: a.numLayers }, (_, i) => {
      const B = `dit.blocks.${i}`;
      const kvIn = i % a.crossEvery === 0 ? a.dVlm : D; // cross blocks project the VLM tokens
      return {
        norm1: linear(`${B}.norm1.linear`, 2 * D, D),
        attn: { toQ: linear(`${B}.attn.to_q`, D, D), toK: linear(`${B}.attn.to_k`, D, kvIn), toV: linear(`${B}.attn.to_v`, D, kvIn), toOut: linear(`${B}.attn.to_out`, D, D) },
        ff: { fc1: linear(`${B}.ff.fc1`, a.ffInner, D), fc2: linear(`${B}.ff.fc2`, D, a.ffInner) },
      };
    }),
    projOut1: linear('dit.proj_out_1', 2 * D, D),
    projOut2: linear('dit.proj_out_2', a.dOut, D),
    actionDecoder: { fc1: linear('action_decoder.fc1', a.mlpHidden, a.dOut), fc2: linear('action_decoder.fc2', a.kMax, a.mlpHidden) },
  };
}

/** The same tree with every leaf bound to its weight in `store` (eagerly: the decoder reads every one at load). */
export function bindDitWeights(decl: DitWeightDecl, store: WeightStore): DitWeights {
  return bindDecl(decl, storeLeaf(store), false) as DitWeights;
}

// Weights declared once as typed trees (one per tower: src/model/ditWeights.ts, textWeights.ts, visionWeights.ts):
// each leaf is a checkpoint tensor (name + PyTorch-order shape). The expected-tensor list
// (src/model/expectedTensors.ts) is a tree's flattening, and the model binds the same tree to GPU tensors, so model
// code reads `blk.mlp.down.w` instead of spelling a checkpoint name again.
import type { WeightStore } from './weights.js';

/** One checkpoint tensor: full name and PyTorch-order shape. */
export interface TensorDecl {
  name: string;
  shape: number[];
  /** Bound when present, never reported missing (the tied lm_head). */
  optional?: boolean;
  /** May exceed the binding limit and be split into row blocks: bound as WeightStore.parts (embeddings, lm_head). */
  split?: boolean;
}

/** A Linear with a bias: weight [out, in] and bias [out] (also a LayerNorm's weight and bias). */
export interface LinearOf<T> {
  w: T;
  b: T;
}

/** A bias-free Linear, or an RMSNorm weight. */
export interface WeightOf<T> {
  w: T;
}

export function isDecl(x: unknown): x is TensorDecl {
  return typeof x === 'object' && x !== null && typeof (x as TensorDecl).name === 'string' && Array.isArray((x as TensorDecl).shape);
}

/** Every leaf of a declaration, in declaration order (other values — e.g. a layer's kind — are skipped). */
export function flattenDecl(tree: unknown, out: TensorDecl[] = []): TensorDecl[] {
  if (isDecl(tree)) out.push(tree);
  else if (Array.isArray(tree)) for (const x of tree) flattenDecl(x, out);
  else if (typeof tree === 'object' && tree !== null) for (const x of Object.values(tree)) flattenDecl(x, out);
  return out;
}

/**
 * The same tree with every leaf replaced by `leaf(decl)`; non-leaf values (strings, numbers) are kept. `lazy`:
 * leaves become getters evaluated on each read, so a weight that was not loaded (vision skipped, untied lm_head
 * absent), was split, or was dropped after a load-time fusion is only an error if model code actually reads it.
 */
export function bindDecl(tree: unknown, leaf: (d: TensorDecl) => unknown, lazy: boolean): unknown {
  if (isDecl(tree)) return leaf(tree);
  if (typeof tree !== 'object' || tree === null) return tree;
  const out: Record<string, unknown> | unknown[] = Array.isArray(tree) ? [] : {};
  for (const [k, v] of Object.entries(tree)) {
    if (lazy && isDecl(v)) Object.defineProperty(out, k, { get: () => leaf(v), enumerable: true });
    else (out as Record<string, unknown>)[k] = bindDecl(v, leaf, lazy);
  }
  return out;
}

/**
 * A leaf bound against a WeightStore: a Tensor (WeightStore.get); `split` leaves as their row blocks
 * (WeightStore.parts); an `optional` leaf the checkpoint lacks as null.
 */
export function storeLeaf(store: WeightStore): (d: TensorDecl) => unknown {
  return (d) => {
    if (d.optional && !store.has(d.name)) return null;
    return d.split ? store.parts(d.name) : store.get(d.name);
  };
}

// The attention prefill kernel (src/ops/attention.ts: 'tiles' or 'rows', PrefillVariant) as a tuned choice (family
// `attention`, timed by src/tune/attentionFamily.ts): the engine side, read by attention() when
// attentionConfig.prefill is 'auto'. Both kernels run on every adapter and the faster one differs by adapter
// (lavapipe: 'rows', ~7× at the 4B prefill; GPUs: 'tiles' by default, unmeasured), so it is a real choice.
//
// Shape class `prefill:d<headDim>:g<G>` (G = query heads per kv head): not keyed by L or the segments, so a segment
// runs the same kernel alone (act) and inside a ragged batch (actBatch), keeping its bits independent of the batch.
// Pure (no file system): it is in the browser bundle too.
import type { Gpu } from '../gpu/device.js';
import { tunedConfig } from './table.js';

export const ATTENTION_FAMILY = 'attention';
export const ATTENTION_PREFILL_CANDIDATES = ['tiles', 'rows'] as const;
export type TunedPrefillVariant = (typeof ATTENTION_PREFILL_CANDIDATES)[number];

export function attentionShapeClass(headDim: number, G: number): string {
  return `prefill:d${headDim}:g${G}`;
}

/** The tuned prefill kernel for this head dim / GQA group on this adapter, or undefined (no usable entry). */
export function tunedAttentionPrefill(gpu: Gpu, headDim: number, G: number): TunedPrefillVariant | undefined {
  const v = tunedConfig(gpu, ATTENTION_FAMILY, attentionShapeClass(headDim, G))?.prefill;
  return (ATTENTION_PREFILL_CANDIDATES as readonly unknown[]).includes(v) ? (v as TunedPrefillVariant) : undefined;
}

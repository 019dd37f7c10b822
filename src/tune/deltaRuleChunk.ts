// The Gated DeltaNet chunk size as a tuned choice (family `gated_delta_net`, src/tune/deltaRuleFamily.ts times it):
// the engine side, read by gatedDeltaRuleChunked (src/ops/gatedDeltaNet.ts) when its caller names no chunkSize.
//
// Shape class `chunk:dk<dk>:dv<dv>`: keyed by the head dims only, NOT by L or the head counts' batch, because the
// chunk size changes the rounding of every output: a prompt must get the same chunk size alone (act) and inside a
// ragged batch (actBatch), or batched rows stop being bit-identical to single calls. Pure (no file system): it is in
// the browser bundle too.
import type { Gpu } from '../gpu/device.js';
import { tunedConfig } from './table.js';

export const DELTA_RULE_FAMILY = 'gated_delta_net';

/** The chunk sizes `qvla tune` times (the chunked kernels take any CH in 1…64; powers of two fill their tiles). */
export const DELTA_RULE_CHUNK_CANDIDATES = [16, 32, 64] as const;

export function deltaRuleShapeClass(dk: number, dv: number): string {
  return `chunk:dk${dk}:dv${dv}`;
}

/** Why `c` is not a usable table entry of this family, or null. */
export function deltaRuleConfigProblem(c: unknown): string | null {
  const ch = (c as { chunk?: unknown } | null)?.chunk;
  return typeof ch === 'number' && Number.isInteger(ch) && ch >= 1 && ch <= 64 ? null : `chunk must be an integer in 1…64, got ${JSON.stringify(ch)}`;
}

/** The tuned chunk size for these head dims on this adapter, or undefined (no table / entry, or an unusable one). */
export function tunedDeltaRuleChunk(gpu: Gpu, dk: number, dv: number): number | undefined {
  const c = tunedConfig(gpu, DELTA_RULE_FAMILY, deltaRuleShapeClass(dk, dv));
  return c && deltaRuleConfigProblem(c) === null ? (c.chunk as number) : undefined;
}

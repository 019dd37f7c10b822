// The last stage of act(): the NaN guard over the read-back chunks (the GPU's per-group count, the CPU's own
// count and the first bad position) and unnormalisation into physical actions (CPU), with the same guard after it.
import { unnormalizeActions, type UnnormalizedActions } from './embodiments.js';
import { PolicyError } from './errors.js';
import type { SampledRows, SampleRow } from './sampling.js';

export interface RowActions {
  raw: Float32Array;
  actions: UnnormalizedActions;
}

function rowHasNonFinite(all: Float32Array, slot: number, n: number): boolean {
  for (let k = slot * n; k < (slot + 1) * n; k++) if (!Number.isFinite(all[k])) return true;
  return false;
}

/**
 * Row i's chunk and physical actions; a PolicyError (counted by `onTrip`) when the chunk or the actions hold a
 * non-finite value. `label`: the row's name in messages (`requests[3]: `, or '' for a single call).
 */
export function rowActions(rows: SampleRow[], s: SampledRows, i: number, shape: { H: number; K: number }, label: string, onTrip: () => void): RowActions {
  const { H, K } = shape;
  const n = H * K;
  const r = rows[i];
  const raw = s.all.slice(s.slot[i] * n, (s.slot[i] + 1) * n);
  // Locating the first bad value (and the CPU's own count, a free cross-check of the GPU's).
  let first = -1;
  let bad = 0;
  for (let k = 0; k < n; k++) {
    if (!Number.isFinite(raw[k])) {
      if (first < 0) first = k;
      bad++;
    }
  }
  // The GPU counts per group; should it see what the CPU does not (it never has), the group's first row fails.
  const g = s.groups[s.groupOf[i]];
  if (bad === 0 && g.nonFinite > 0 && i === g.rows[0] && !g.rows.some((j) => rowHasNonFinite(s.all, s.slot[j], n))) bad = g.nonFinite;
  if (bad > 0) {
    onTrip();
    const where = first >= 0 ? `, first at chunk[${Math.floor(first / K)}][${first % K}]` : '';
    throw new PolicyError(
      `${label}the action decoder produced ${bad} non-finite value${bad === 1 ? '' : 's'} (NaN/Inf) in the ${H}×${K} chunk${where} (NaN guard); ` +
        'no actions were returned. The checkpoint weights (or the inputs) produce NaN/Inf: check the weights, the state values and the image data.',
    );
  }
  const emb = r.input.emb;
  const actions = unnormalizeActions(emb, raw, K, r.input.req.state ?? null);
  // The same guard after unnormalisation (CPU, a few hundred values): statistics inside float32 range (all
  // embodiments.json accepts) can still overflow to ±Inf here, e.g. mean = FLT_MAX or a huge std.
  for (let k = 0; k < actions.actions.length; k++) {
    if (!Number.isFinite(actions.actions[k])) {
      onTrip();
      const ch = actions.names[k % actions.dims] ?? String(k % actions.dims);
      throw new PolicyError(
        `${label}the unnormalised action ${ch} of row ${Math.floor(k / actions.dims)} is ${actions.actions[k]} (NaN guard): the normalization ` +
          `statistics of embodiment ${emb.key} in embodiments.json (or the state added to relative channels) overflow float32; no actions were returned`,
      );
    }
  }
  return { raw, actions };
}

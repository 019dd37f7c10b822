// Chunk execution for controllers: the policy predicts H actions at once; a controller executes one per tick.
//
// ActionQueue: hands out one action per tick from the latest chunk and says when to ask for a new chunk
//   (remaining ≤ refillAt), so inference can overlap execution. A chunk that arrives after `latencyTicks` ticks
//   skips the actions that are already in the past (they were predicted for ticks that have gone by).
// TemporalEnsembler: every tick, averages all predictions made for that tick by overlapping chunks, with ACT's
//   exponential weights w_i = exp(−m·i) (i = 0 the oldest prediction) or CogACT's adaptive weights
//   exp(α·cos(a_i, a_newest)).

export interface Action {
  /** one control step: K values in the embodiment's channel order */
  values: Float32Array;
  /** the tick this action is for */
  tick: number;
}

export class ActionQueue {
  private chunk: Float32Array | null = null;
  private rows = 0;
  private pos = 0;
  private tick = 0;

  constructor(readonly dims: number, readonly refillAt = 0) {
    if (!Number.isInteger(dims) || dims < 1) throw new RangeError(`ActionQueue: dims must be a positive integer, got ${dims}`);
  }

  /** Install a new chunk [rows, dims]; `latencyTicks` actions at its start are skipped (already elapsed). */
  push(chunk: Float32Array, rows: number, latencyTicks = 0): void {
    if (chunk.length !== rows * this.dims) throw new RangeError(`ActionQueue.push: chunk has ${chunk.length} values, expected ${rows}×${this.dims}`);
    if (!Number.isInteger(latencyTicks) || latencyTicks < 0) throw new RangeError(`ActionQueue.push: latencyTicks must be ≥ 0`);
    this.chunk = chunk;
    this.rows = rows;
    this.pos = Math.min(latencyTicks, rows);
  }

  get remaining(): number {
    return this.chunk ? this.rows - this.pos : 0;
  }

  /** True when the controller should request the next chunk. */
  get needsRefill(): boolean {
    return this.remaining <= this.refillAt;
  }

  /** The action for this tick, or null when the queue ran dry (the caller holds position or stops). */
  next(): Action | null {
    const t = this.tick++;
    if (!this.chunk || this.pos >= this.rows) return null;
    const values = this.chunk.slice(this.pos * this.dims, (this.pos + 1) * this.dims);
    this.pos++;
    return { values, tick: t };
  }
}

export interface EnsembleOptions {
  mode?: 'exponential' | 'adaptive';
  /** ACT's m (exponential mode): larger = trust older predictions more slowly. Default 0.01. */
  m?: number;
  /** CogACT's α (adaptive mode). Default 0.1. */
  alpha?: number;
  /** How many past chunks may contribute to a tick (default: unlimited within the chunk length). */
  horizon?: number;
}

export class TemporalEnsembler {
  private chunks: { start: number; rows: number; data: Float32Array }[] = [];
  private tick = 0;

  constructor(readonly dims: number, readonly opts: EnsembleOptions = {}) {}

  /** Add a chunk whose first row is the action for the current tick. */
  push(chunk: Float32Array, rows: number): void {
    if (chunk.length !== rows * this.dims) throw new RangeError(`TemporalEnsembler.push: chunk has ${chunk.length} values, expected ${rows}×${this.dims}`);
    this.chunks.push({ start: this.tick, rows, data: chunk });
  }

  /** The ensembled action for the current tick (then advance), or null when no chunk covers it. */
  next(): Action | null {
    const t = this.tick++;
    this.chunks = this.chunks.filter((c) => c.start + c.rows > t);
    let preds = this.chunks.map((c) => c.data.subarray((t - c.start) * this.dims, (t - c.start + 1) * this.dims));
    if (this.opts.horizon !== undefined) preds = preds.slice(-this.opts.horizon);
    if (preds.length === 0) return null;
    const w = new Float64Array(preds.length);
    if ((this.opts.mode ?? 'exponential') === 'exponential') {
      const m = this.opts.m ?? 0.01;
      for (let i = 0; i < preds.length; i++) w[i] = Math.exp(-m * i);
    } else {
      const alpha = this.opts.alpha ?? 0.1;
      const ref = preds[preds.length - 1];
      for (let i = 0; i < preds.length; i++) w[i] = Math.exp(alpha * cosine(preds[i], ref));
    }
    const sw = w.reduce((s, x) => s + x, 0);
    const out = new Float32Array(this.dims);
    for (let i = 0; i < preds.length; i++) for (let k = 0; k < this.dims; k++) out[k] += (w[i] / sw) * preds[i][k];
    return { values: out, tick: t };
  }
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let k = 0; k < a.length; k++) {
    ab += a[k] * b[k];
    aa += a[k] * a[k];
    bb += b[k] * b[k];
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}

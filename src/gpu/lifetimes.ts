// Tensor lifetimes: scopes and the registry of live pooled tensors.
//
// Every pooled tensor (Tensor.empty / Tensor.from) is registered here when it is born and forgotten when it is
// released, so `live()` lists what is still held, with labels and shapes: a leak test names the culprit instead
// of only seeing a counter move.
//
// `gpu.scope(fn)` (like tfjs `tidy`): pooled tensors born while fn runs are released when it returns, except
// the ones it returns (a tensor, or tensors anywhere inside returned arrays / plain objects) and the ones passed
// to `keep`. Returned tensors are handed to the enclosing scope, if any. If fn throws, everything it created is
// released. fn must be synchronous: a scope cannot span an await (another caller's tensors would land in it).
// Releasing is safe right after encoding: the pool reuses a buffer only after the next submit (src/gpu/buffers.ts).

/** What the registry needs of a tensor (src/tensor.ts implements it; this module does not import it). */
export interface Tracked {
  readonly label?: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly isReleased: boolean;
  release(): void;
}

export interface LiveTensor {
  /** Birth number (increasing): compare with `mark()`. */
  id: number;
  label: string;
  shape: readonly number[];
  dtype: string;
}

export class Lifetimes {
  private readonly liveSet = new Map<Tracked, number>();
  private births = 0;
  private readonly cacheOwned = new WeakSet<Tracked>();
  private readonly scopes: Set<Tracked>[] = [];

  /** Called by Tensor.empty for each pooled tensor. */
  born(t: Tracked): void {
    this.liveSet.set(t, ++this.births);
    this.scopes[this.scopes.length - 1]?.add(t);
  }

  /** Called by Tensor.release. */
  released(t: Tracked): void {
    this.liveSet.delete(t);
    for (const s of this.scopes) s.delete(t);
  }

  /** Take `t` out of every open scope: it survives them (its owner releases it later). Returns t. */
  keep<T extends Tracked>(t: T): T {
    for (const s of this.scopes) s.delete(t);
    return t;
  }

  /** `keep`, for a tensor a cache owns (released when evicted): still live, but never reported as a leak. */
  cached<T extends Tracked>(t: T): T {
    this.cacheOwned.add(t);
    return this.keep(t);
  }

  scope<R>(fn: () => R): R {
    const mine = new Set<Tracked>();
    this.scopes.push(mine);
    let result: R;
    try {
      result = fn();
    } catch (e) {
      this.close(mine, new Set());
      throw e;
    }
    if (result instanceof Promise) {
      this.close(mine, new Set());
      throw new Error('gpu.scope: the function returned a Promise; scopes are synchronous (tensors born after an await would escape)');
    }
    const returned = new Set<Tracked>();
    collect(result, returned);
    this.close(mine, returned);
    const outer = this.scopes[this.scopes.length - 1];
    if (outer) for (const t of returned) if (!t.isReleased && this.liveSet.has(t)) outer.add(t);
    return result;
  }

  private close(mine: Set<Tracked>, returned: Set<Tracked>): void {
    const k = this.scopes.lastIndexOf(mine);
    if (k !== this.scopes.length - 1) throw new Error('gpu.scope: scopes closed out of order');
    this.scopes.pop();
    for (const t of mine) if (!returned.has(t)) t.release();
  }

  /** Pooled tensors not yet released, oldest first. */
  live(): LiveTensor[] {
    return [...this.liveSet].map(([t, id]) => ({ id, label: t.label ?? '(unlabelled)', shape: t.shape, dtype: t.dtype }));
  }

  /** A point in time for `leakedSince`. */
  mark(): number {
    return this.births;
  }

  /** Tensors born after `mark` and still live, cache-owned ones aside, as `label [shape] dtype` lines (empty: nothing leaked). */
  leakedSince(mark: number): string[] {
    return [...this.liveSet]
      .filter(([t, id]) => id > mark && !this.cacheOwned.has(t))
      .map(([t]) => `${t.label ?? '(unlabelled)'} [${t.shape.join(', ')}] ${t.dtype}`);
  }
}

function isTracked(x: unknown): x is Tracked {
  return typeof x === 'object' && x !== null && typeof (x as Tracked).release === 'function' && 'isReleased' in x && 'shape' in x;
}

/** Tensors in a scope's result: the value itself, or anywhere inside returned arrays / plain objects. */
function collect(x: unknown, out: Set<Tracked>, depth = 0): void {
  if (isTracked(x)) out.add(x);
  else if (depth > 8 || !x || typeof x !== 'object') return;
  else if (Array.isArray(x)) for (const v of x) collect(v, out, depth + 1);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collect(v, out, depth + 1);
}

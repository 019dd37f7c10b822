// One reader for untrusted JSON-like input: config.json / preprocessor_config.json (src/model/config.ts),
// embodiments.json (src/policy/embodiments.ts), the server's mapping file and request fields (src/server/).
// Each reader knows the file it reads and how to build its error (CheckpointError for checkpoint files,
// RequestError for requests, …); every check fails with the dotted field path, e.g.
//   `config.json: text_config.head_dim must be an integer, got "64"`
//   `observation/state: value 3 is NaN; every value must be finite`
// A key that is present with the value `undefined` counts as absent (JSON has no undefined).
import { describeValue } from './errors.js';

export type Obj = Record<string, unknown>;

/** `prefix.key`, or `key` at the root. */
export function joinPath(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}.${key}`;
}

export interface SchemaReaderOptions {
  /** The error thrown for a bad `field` (dotted path; '' for the root) with the reason `msg`. */
  error(field: string, msg: string): Error;
  /** Renders a bad value in a message (default: describeValue, short JSON). */
  describe?(v: unknown): string;
}

export class SchemaReader {
  readonly describe: (v: unknown) => string;

  constructor(readonly file: string, private readonly opts: SchemaReaderOptions) {
    this.describe = opts.describe ?? ((v) => describeValue(v));
  }

  fail(path: string, msg: string): never {
    throw this.opts.error(path, msg);
  }

  isObj(v: unknown): v is Obj {
    return v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v);
  }

  /** `v` as an object (path '' reads as "(root)" in the message). */
  object(v: unknown, path: string): Obj {
    if (!this.isObj(v)) this.fail(path || '(root)', `must be an object, got ${this.describe(v)}`);
    return v;
  }

  has(o: Obj, key: string): boolean {
    return Object.prototype.hasOwnProperty.call(o, key) && o[key] !== undefined;
  }

  /** Present and not null. */
  given(o: Obj, key: string): boolean {
    return this.has(o, key) && o[key] !== null;
  }

  required(o: Obj, key: string, path: string): unknown {
    if (!this.has(o, key)) this.fail(joinPath(path, key), 'is required but missing');
    return o[key];
  }

  /** Fails on the first key of `o` not in `allowed`. */
  onlyKeys(o: Obj, allowed: readonly string[], path: string, what = 'field'): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.fail(joinPath(path, k), `is not a known ${what} (allowed: ${allowed.join(', ')})`);
    }
  }

  /** The value at `key`, or `def` when absent (absent and no default: "is required"). */
  private value(o: Obj, key: string, path: string, def: unknown): { v: unknown; absent: boolean } {
    if (this.has(o, key)) return { v: o[key], absent: false };
    if (def !== undefined) return { v: def, absent: true };
    return { v: this.required(o, key, path), absent: false };
  }

  /**
   * An integer in [min, max] (min default 1). Over max: "is v, over maxName max" (a named limit) or
   * "must be in [min, max], got v" when maxName is not given.
   */
  int(o: Obj, key: string, path: string, opts: { min?: number; max?: number; maxName?: string; def?: number } = {}): number {
    const { v, absent } = this.value(o, key, path, opts.def);
    if (absent) return v as number;
    return this.intValue(v, joinPath(path, key), opts);
  }

  intValue(v: unknown, field: string, opts: { min?: number; max?: number; maxName?: string } = {}): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(field, `must be an integer, got ${this.describe(v)}`);
    const min = opts.min ?? 1;
    if (opts.max !== undefined && opts.maxName === undefined && (v < min || v > opts.max)) this.fail(field, `must be in [${min}, ${opts.max}], got ${v}`);
    if (v < min) this.fail(field, `must be ≥ ${min}, got ${v}`);
    if (opts.max !== undefined && v > opts.max) this.fail(field, `is ${v}, over ${opts.maxName} ${opts.max}`);
    return v;
  }

  /** A finite number; > 0 unless `positive: false`. */
  num(o: Obj, key: string, path: string, opts: { positive?: boolean; def?: number } = {}): number {
    const { v, absent } = this.value(o, key, path, opts.def);
    if (absent) return v as number;
    const p = joinPath(path, key);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(p, `must be a finite number, got ${this.describe(v)}`);
    if ((opts.positive ?? true) && !(v > 0)) this.fail(p, `must be > 0, got ${v}`);
    return v;
  }

  bool(o: Obj, key: string, path: string, def?: boolean): boolean {
    const { v, absent } = this.value(o, key, path, def);
    if (absent) return v as boolean;
    if (typeof v !== 'boolean') this.fail(joinPath(path, key), `must be true or false, got ${this.describe(v)}`);
    return v;
  }

  str(o: Obj, key: string, path: string, opts: { nonEmpty?: boolean; maxChars?: number } = {}): string {
    return this.strValue(this.required(o, key, path), joinPath(path, key), opts);
  }

  strValue(v: unknown, field: string, opts: { nonEmpty?: boolean; maxChars?: number } = {}): string {
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${this.describe(v)}`);
    if (opts.nonEmpty && v.length === 0) this.fail(field, 'must not be empty');
    if (opts.maxChars !== undefined && v.length > opts.maxChars) this.fail(field, `is ${v.length} characters, over the limit ${opts.maxChars}`);
    return v;
  }

  strOrNull(o: Obj, key: string, path: string): string | null {
    if (!this.given(o, key)) return null;
    const v = o[key];
    if (typeof v !== 'string') this.fail(joinPath(path, key), `must be a string or null, got ${this.describe(v)}`);
    return v;
  }

  /**
   * One of `allowed`. Message "must be one of a, b, got x"; with `supported: true` (a config value qvla
   * implements only some of) "must be "a" or "b" (the only supported values), got x".
   */
  oneOf<T extends string>(o: Obj, key: string, path: string, allowed: readonly T[], opts: { def?: T; supported?: boolean } = {}): T {
    const { v, absent } = this.value(o, key, path, opts.def);
    if (absent) return v as T;
    return this.oneOfValue(v, joinPath(path, key), allowed, opts);
  }

  oneOfValue<T extends string>(v: unknown, field: string, allowed: readonly T[], opts: { supported?: boolean } = {}): T {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.fail(field, opts.supported
        ? `must be ${allowed.map((a) => JSON.stringify(a)).join(' or ')} (the only supported value${allowed.length > 1 ? 's' : ''}), got ${this.describe(v)}`
        : `must be one of ${allowed.join(', ')}, got ${this.describe(v)}`);
    }
    return v as T;
  }

  list(o: Obj, key: string, path: string): unknown[] {
    const v = this.required(o, key, path);
    if (!Array.isArray(v)) this.fail(joinPath(path, key), `must be a list, got ${this.describe(v)}`);
    return v;
  }

  /** A non-empty list of at most `max` distinct non-empty strings. */
  names(o: Obj, key: string, path: string, max: number, maxName: string): string[] {
    const l = this.list(o, key, path);
    const p = joinPath(path, key);
    if (l.length === 0) this.fail(p, 'must not be empty');
    if (l.length > max) this.fail(p, `has ${l.length} names, over ${maxName} ${max}`);
    const seen = new Set<string>();
    l.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0) this.fail(`${p}[${i}]`, `must be a non-empty string, got ${this.describe(s)}`);
      if (seen.has(s)) this.fail(`${p}[${i}]`, `${JSON.stringify(s)} appears twice`);
      seen.add(s);
    });
    return l as string[];
  }

  /** Exactly `n` finite numbers. */
  numbers(o: Obj, key: string, path: string, n: number): number[] {
    const l = this.list(o, key, path);
    const p = joinPath(path, key);
    if (l.length !== n) this.fail(p, `has ${l.length} values, expected ${n}`);
    l.forEach((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) this.fail(`${p}[${i}]`, `must be a finite number, got ${this.describe(x)}`);
    });
    return l as number[];
  }
}

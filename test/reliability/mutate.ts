// Structural mutations of JSON-like values for the parser fuzzers (seeded, deterministic).
//
// A mutation picks a random node of the tree (by path) and deletes it, replaces it with a weird value (wrong
// types, extreme numbers, NaN-ish strings, deep nesting, huge strings), tweaks a number or a string, adds an
// unknown or "__proto__" key, wraps the node in an array / object, drops or duplicates array elements, or swaps
// two nodes. Only the objects along the mutated path are copied, so the base is never modified.

export type Rand = () => number;

// One seeded PRNG for every fuzzer: rng() of the safetensors fuzz helpers (src/util/rng.ts underneath).
import { rng, randInt } from '../io/helpers.js';
export { rng, randInt };

export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

type Json = unknown;
type Path = (string | number)[];

function nest(depth: number): Json {
  let v: Json = 1;
  for (let k = 0; k < depth; k++) v = k % 2 ? { a: v } : [v];
  return v;
}

/** Values no parser field expects (and a few that are valid for some fields). */
export function weirdValue(r: Rand): Json {
  const vals: (() => Json)[] = [
    () => null, () => true, () => false, () => 0, () => -0, () => -1, () => 1, () => 1.5, () => -2.5, () => 3,
    () => 2 ** 31, () => 2 ** 32, () => 2 ** 53, () => 2 ** 53 + 2, () => 1e308, () => -1e308, () => 5e-324, () => 1e-30,
    () => Number.NaN, () => Number.POSITIVE_INFINITY, () => Number.NEGATIVE_INFINITY,
    () => 'NaN', () => 'Infinity', () => '-inf', () => 'nan', () => '1e999', () => '', () => ' ', () => '0', () => '1', () => '-1',
    () => 'true', () => 'null', () => 'x', () => '__proto__', () => 'constructor', () => '\u0000', () => '\uD800', () => 'é'.repeat(3),
    () => 'a'.repeat(randInt(r, 100, 20_000)), () => [], () => {}, () => [1, 2, 3], () => ['a'], () => [null], () => [[1]],
    () => ({ a: 1 }), () => ({ __proto__: null }), () => nest(randInt(r, 5, 200)),
    () => Array.from({ length: randInt(r, 0, 300) }, (_, k) => k), () => [Number.NaN, 1], () => ({ toString: 1, valueOf: 'x' }),
  ];
  return pick(r, vals)();
}

function tweakNumber(r: Rand, x: number): number {
  return pick(r, [x + 1, x - 1, x * 2, -x, 0, x + 0.5, x / 3, x * 1e6, Math.floor(x / 2), x + 2 ** 31, x * -1e300, Number.NaN]);
}

function tweakString(r: Rand, s: string): Json {
  const ops: (() => Json)[] = [
    () => s.toUpperCase(), () => s + 'x', () => s.slice(1), () => s.slice(0, -1), () => '', () => ` ${s}`, () => s.replace(/_/g, '-'),
    () => `${s}\u0000`, () => s.split('').reverse().join(''), () => s.repeat(3), () => Number(s), () => [s],
  ];
  return pick(r, ops)();
}

/** A plain container to descend into (typed arrays / bytes are leaves). */
function isObj(v: Json): v is Record<string, Json> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** Every path in the tree (containers and leaves), root excluded. */
export function paths(v: Json, max = 5000): Path[] {
  const out: Path[] = [];
  const walk = (x: Json, p: Path) => {
    if (out.length >= max) return;
    if (Array.isArray(x)) x.forEach((y, i) => { out.push([...p, i]); walk(y, [...p, i]); });
    else if (isObj(x)) for (const k of Object.keys(x)) { out.push([...p, k]); walk(x[k], [...p, k]); }
  };
  walk(v, []);
  return out;
}

function get(v: Json, p: Path): Json {
  let x = v;
  for (const k of p) x = (x as Record<string | number, Json>)[k];
  return x;
}

function shallow(v: Json): Json {
  if (Array.isArray(v)) return v.slice();
  if (isObj(v)) {
    const o: Record<string, Json> = {};
    for (const k of Object.keys(v)) Object.defineProperty(o, k, { value: v[k], enumerable: true, writable: true, configurable: true });
    return o;
  }
  return v;
}

/** `root` with the node at `p` replaced by fn(old) (undefined: deleted), copying only along the path. */
function update(root: Json, p: Path, fn: (old: Json) => Json | undefined): Json {
  if (p.length === 0) return fn(root);
  const copy = shallow(root) as Record<string | number, Json>;
  const [k, ...rest] = p;
  if (rest.length === 0) {
    const nv = fn(copy[k]);
    if (nv === undefined) {
      if (Array.isArray(copy)) (copy as Json[]).splice(k as number, 1);
      else delete copy[k];
    } else {
      Object.defineProperty(copy, k, { value: nv, enumerable: true, writable: true, configurable: true });
    }
  } else {
    copy[k] = update(copy[k], rest, fn);
  }
  return copy;
}

export interface Mutation {
  value: Json;
  /** What was done, e.g. `delete text_config.hidden_size`. */
  what: string;
  /** The mutated path (dotted), '' for the root. */
  path: string;
}

export function pathStr(p: Path): string {
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

/** One random mutation of `base`. `keyPool`: known key names (an unknown key is made from them). */
export function mutateOnce(r: Rand, base: Json, keyPool: string[] = []): Mutation {
  const all = paths(base);
  if (all.length === 0 || r() < 0.02) return { value: weirdValue(r), what: 'replace root', path: '' };
  const p = pick(r, all);
  const ps = pathStr(p);
  const old = get(base, p);
  const kind = randInt(r, 0, 11);
  switch (kind) {
    case 0:
      return { value: update(base, p, () => undefined), what: `delete ${ps}`, path: ps };
    case 1:
    case 2: {
      const w = weirdValue(r);
      return { value: update(base, p, () => w), what: `${ps} = ${short(w)}`, path: ps };
    }
    case 3:
      if (typeof old === 'number') {
        const nv = tweakNumber(r, old);
        return { value: update(base, p, () => nv), what: `${ps} = ${nv}`, path: ps };
      }
      if (typeof old === 'string') {
        const nv = tweakString(r, old);
        return { value: update(base, p, () => nv), what: `${ps} = ${short(nv)}`, path: ps };
      }
      return { value: update(base, p, () => weirdValue(r)), what: `${ps} = weird`, path: ps };
    case 4: {
      // an extra key in the object holding p (or in p itself when it is an object)
      const target = isObj(old) ? p : p.slice(0, -1);
      const key = r() < 0.2 ? '__proto__' : r() < 0.5 && keyPool.length ? `${pick(r, keyPool)}${pick(r, ['', '_', 's', 'X'])}` : `unknown_${randInt(r, 0, 99)}`;
      const w = r() < 0.5 ? weirdValue(r) : 1;
      const tp = pathStr(target);
      return {
        value: update(base, target, (o) => {
          if (!isObj(o)) return o;
          const c = shallow(o) as Record<string, Json>;
          Object.defineProperty(c, key, { value: w, enumerable: true, writable: true, configurable: true });
          return c;
        }),
        what: `add ${tp ? `${tp}.` : ''}${key}`,
        path: tp,
      };
    }
    case 5:
      return { value: update(base, p, (o) => [o]), what: `wrap ${ps} in a list`, path: ps };
    case 6:
      return { value: update(base, p, (o) => ({ value: o })), what: `wrap ${ps} in an object`, path: ps };
    case 7:
      if (Array.isArray(old)) {
        const ops: (() => Json)[] = [() => [], () => old.slice(1), () => [...old, ...old], () => old.slice().reverse(), () => [...old, old[0] ?? null], () => old.slice(0, -1)];
        const nv = pick(r, ops)();
        return { value: update(base, p, () => nv), what: `${ps}: list edit`, path: ps };
      }
      return { value: update(base, p, () => undefined), what: `delete ${ps}`, path: ps };
    case 8: {
      const q = pick(r, all);
      const other = get(base, q);
      return { value: update(base, p, () => other), what: `${ps} = value of ${pathStr(q)}`, path: ps };
    }
    case 9:
      if (isObj(old)) {
        const keys = Object.keys(old);
        if (keys.length) {
          const k = pick(r, keys);
          return { value: update(base, [...p, k], () => undefined), what: `delete ${ps}.${k}`, path: `${ps}.${k}` };
        }
      }
      return { value: update(base, p, () => null), what: `${ps} = null`, path: ps };
    case 10:
      return { value: update(base, p, () => (typeof old === 'number' ? String(old) : typeof old === 'string' && old !== '' && !Number.isNaN(Number(old)) ? Number(old) : typeof old === 'boolean' ? Number(old) : JSON.stringify(old ?? null))), what: `${ps}: type flip`, path: ps };
    default: {
      const w = weirdValue(r);
      return { value: update(base, p, () => w), what: `${ps} = ${short(w)}`, path: ps };
    }
  }
}

/** 1–3 mutations in a row. */
export function mutate(r: Rand, base: Json, keyPool: string[] = []): Mutation {
  const n = r() < 0.7 ? 1 : randInt(r, 2, 3);
  let m = mutateOnce(r, base, keyPool);
  const whats = [m.what];
  for (let k = 1; k < n; k++) {
    m = mutateOnce(r, m.value, keyPool);
    whats.push(m.what);
  }
  return { value: m.value, what: whats.join('; '), path: m.path };
}

export function short(v: Json): string {
  let s: string;
  try {
    s = typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** Every key name in a tree. */
export function keyNames(v: Json, out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) keyNames(x, out);
  else if (isObj(v)) for (const k of Object.keys(v)) { out.add(k); keyNames(v[k], out); }
  return out;
}

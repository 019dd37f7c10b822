// Observation dict (as an openpi client sends it) → Policy.act() request, with strict validation.
//
// Two layouts are understood (src/server/README.md documents them):
//
//  - ALOHA style (openpi `aloha` / `aloha_sim` clients): `images` = {camera name: uint8 [3,H,W] (CHW; HWC
//    [H,W,3] also accepted)}, `state` = float [S], `prompt` = str. Camera names are the embodiment's (or
//    renamed through the mapping's `aloha_cameras`).
//  - mapped / LIBERO style (openpi `libero` client): flat keys. Default mapping: `observation/image` → the
//    embodiment's first camera, `observation/wrist_image` → its second, uint8 [H,W,3] (HWC; CHW also accepted),
//    `observation/state` → state, `prompt` → instruction. A mapping file overrides this per embodiment.
//
// Request extras (both layouts): `embodiment` (str), `seed` (int), `steps` (int), `solver` (str), `grid` (str),
// `request_id` (str or int, echoed in the reply). Anything else is an error naming the key.
import type { ActRequest } from '../policy/policy.js';
import type { Embodiment, EmbodimentRegistry } from '../policy/embodiments.js';
import { SOLVERS, GRIDS, type SolverName, type GridName } from '../policy/samplers.js';
import type { RawImage } from '../preprocess/image.js';
import { NdArray, dtypeName } from './ndarray.js';
import { QvlaError } from '../util/errors.js';
import { SchemaReader } from '../util/schema.js';

/** A request the server refuses: `message` without the field, `field` the observation key (null: the whole frame). */
export class RequestError extends QvlaError {
  declare readonly field: string | null;
  constructor(message: string, field: string | null) {
    super(message, { code: 'invalid_request', field });
    this.name = 'RequestError';
  }
}

/** The schema reader of an observation dict: errors are RequestErrors naming the key. */
const requestFields = new SchemaReader('(request)', { error: (field, msg) => new RequestError(msg, field || null), describe });


export type ImageLayout = 'hwc' | 'chw' | 'auto';

/** How one embodiment's flat observation keys map onto act() inputs. */
export interface EmbodimentMapping {
  /** observation key → camera name, or null to accept and ignore the key. */
  images: Record<string, string | null>;
  /**
   * observation key(s) of the state: one key, or several whose vectors are concatenated in order (e.g. DROID's
   * joint_position + gripper_position); null when the embodiment takes no state.
   */
  state: string[] | null;
  /** observation key of the instruction. */
  prompt: string;
  /** Layout of the flat image keys (auto: [3,H,W] is CHW, [H,W,3] is HWC, [3,H,3] counts as HWC). */
  imageLayout: ImageLayout;
  /** ALOHA style: key in `images` → camera name (null = ignore). Unlisted keys must be camera names. */
  alohaCameras: Record<string, string | null>;
  /** Extra top-level keys to accept and ignore. */
  ignore: string[];
}

export interface ObservationMapping {
  defaultEmbodiment: string | null;
  embodiments: Record<string, EmbodimentMapping>;
}

export const REQUEST_EXTRAS = ['embodiment', 'seed', 'steps', 'solver', 'grid', 'request_id'] as const;

/** The built-in LIBERO-style mapping for an embodiment. */
export function defaultMapping(emb: Embodiment): EmbodimentMapping {
  const images: Record<string, string | null> = {};
  const libero = ['observation/image', 'observation/wrist_image'];
  libero.forEach((k, i) => {
    if (i < emb.cameras.length) images[k] = emb.cameras[i]!;
  });
  return {
    images,
    state: emb.state ? ['observation/state'] : null,
    prompt: 'prompt',
    imageLayout: 'auto',
    alohaCameras: {},
    ignore: [],
  };
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof NdArray);
}

function describe(v: unknown): string {
  if (v instanceof NdArray) return `an ndarray ${v.describe()}`;
  if (v === null || v === undefined) return 'nil';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

/**
 * Parses and validates a mapping file's JSON against the embodiment registry. Errors name the JSON path.
 *
 * ```json
 * { "default_embodiment": "widowx",
 *   "embodiments": { "widowx": { "images": {"observation/image": "image_0", "observation/wrist_image": null},
 *                                "state": "observation/state" (or a list of keys, concatenated),
 *                                "prompt": "prompt", "image_layout": "hwc",
 *                                "aloha_cameras": {"cam_high": "image_0"}, "ignore": ["observation/extra"] } } }
 * ```
 * Every field of an embodiment entry is optional (defaults: {@link defaultMapping}).
 */
export function parseMapping(raw: unknown, registry: EmbodimentRegistry, file = 'mapping.json'): ObservationMapping {
  const r = new SchemaReader(file, { error: (field, msg) => new QvlaError(`${file}: ${field || '(root)'} ${msg}`, { code: 'bad_mapping', file, field }) });
  const root = r.object(raw, '');
  r.onlyKeys(root, ['default_embodiment', 'embodiments'], '', 'key');
  let defaultEmbodiment: string | null = null;
  if (r.given(root, 'default_embodiment')) {
    defaultEmbodiment = r.oneOf(root, 'default_embodiment', '', registry.keys());
  }
  const out: Record<string, EmbodimentMapping> = {};
  const embs = r.object(root['embodiments'] ?? {}, 'embodiments');
  for (const [key, v] of Object.entries(embs)) {
    const p = `embodiments.${key}`;
    if (!registry.has(key)) r.fail(p, `names no embodiment of the checkpoint (${registry.keys().join(', ')})`);
    const emb = registry.get(key);
    const e = r.object(v, p);
    r.onlyKeys(e, ['images', 'state', 'prompt', 'image_layout', 'aloha_cameras', 'ignore'], p, 'key');
    const m = defaultMapping(emb);
    const camMap = (field: string): Record<string, string | null> => {
      const x = r.object(e[field], `${p}.${field}`);
      const out: Record<string, string | null> = {};
      const used = new Set<string>();
      for (const [ok, cam] of Object.entries(x)) {
        if (cam !== null && (typeof cam !== 'string' || !emb.cameras.includes(cam))) {
          r.fail(`${p}.${field}.${ok}`, `must be one of the cameras of ${key} (${emb.cameras.join(', ')}) or null`);
        }
        if (typeof cam === 'string') {
          if (used.has(cam)) r.fail(`${p}.${field}.${ok}`, `maps a second key to camera ${cam}`);
          used.add(cam);
        }
        out[ok] = cam as string | null;
      }
      return out;
    };
    if (r.has(e, 'images')) m.images = camMap('images');
    if (r.has(e, 'aloha_cameras')) m.alohaCameras = camMap('aloha_cameras');
    if (r.has(e, 'state')) {
      const s = e['state'];
      const list = typeof s === 'string' ? [s] : s;
      if (list !== null && (!Array.isArray(list) || list.length === 0 || !list.every((k) => typeof k === 'string' && k.length > 0))) {
        r.fail(`${p}.state`, 'must be an observation key, a list of keys (concatenated in order), or null');
      }
      if (list !== null && !emb.state) r.fail(`${p}.state`, `is set but embodiment ${key} takes no state`);
      m.state = list === null ? null : (list as string[]).slice();
    }
    if (r.has(e, 'prompt')) m.prompt = r.str(e, 'prompt', p, { nonEmpty: true });
    if (r.has(e, 'image_layout')) m.imageLayout = r.oneOf(e, 'image_layout', p, ['hwc', 'chw', 'auto'] as const);
    if (r.has(e, 'ignore')) {
      const ig = r.list(e, 'ignore', p);
      ig.forEach((k, i) => r.strValue(k, `${p}.ignore[${i}]`));
      m.ignore = (ig as string[]).slice();
    }
    const keys = [...Object.keys(m.images), ...(m.state ?? []), m.prompt, ...m.ignore];
    const seen = new Set<string>();
    for (const k of keys) {
      if ((REQUEST_EXTRAS as readonly string[]).includes(k) || k === 'images') r.fail(p, `uses the reserved key ${JSON.stringify(k)}`);
      if (seen.has(k)) r.fail(p, `uses the key ${JSON.stringify(k)} twice`);
      seen.add(k);
    }
    out[key] = m;
  }
  return { defaultEmbodiment, embodiments: out };
}

export interface RequestLimits {
  maxSteps: number;
  /** Largest accepted image (H·W). */
  maxImagePixels: number;
  maxPromptChars: number;
}

export const DEFAULT_LIMITS: RequestLimits = { maxSteps: 100, maxImagePixels: 4096 * 4096, maxPromptChars: 4000 };

export interface DecodeContext {
  registry: EmbodimentRegistry;
  mapping: ObservationMapping | null;
  defaultEmbodiment: string;
  limits?: RequestLimits;
}

export interface DecodedRequest {
  act: ActRequest & { images: Record<string, RawImage> };
  requestId: string | number | undefined;
  format: 'aloha' | 'mapped';
}

function imageFrom(v: unknown, field: string, layout: ImageLayout, preferred: 'hwc' | 'chw', maxPixels: number): RawImage {
  if (!(v instanceof NdArray)) throw new RequestError(`must be a uint8 ndarray [3,H,W] or [H,W,3], got ${describe(v)}`, field);
  if (v.dtype.kind !== 'u' || v.dtype.itemsize !== 1) {
    throw new RequestError(`must have dtype uint8 (numpy "|u1"), got ${dtypeName(v.dtype)} (${JSON.stringify(v.dtype.str)})`, field);
  }
  const s = v.shape;
  if (s.length !== 3) throw new RequestError(`must have 3 dimensions [3,H,W] or [H,W,3], got shape [${s.join(',')}]`, field);
  let l: 'hwc' | 'chw';
  if (layout === 'auto') {
    const chw = s[0] === 3, hwc = s[2] === 3;
    if (chw && hwc) l = preferred;
    else if (chw) l = 'chw';
    else if (hwc) l = 'hwc';
    else throw new RequestError(`must be RGB [3,H,W] or [H,W,3], got shape [${s.join(',')}]`, field);
  } else {
    l = layout;
    const c = l === 'chw' ? s[0] : s[2];
    if (c !== 3) throw new RequestError(`must be RGB ${l === 'chw' ? '[3,H,W]' : '[H,W,3]'} (layout ${l}), got shape [${s.join(',')}]`, field);
  }
  const H = l === 'chw' ? s[1]! : s[0]!;
  const W = l === 'chw' ? s[2]! : s[1]!;
  if (H < 2 || W < 2) throw new RequestError(`is ${H}×${W}; images must be at least 2×2`, field);
  if (H * W > maxPixels) throw new RequestError(`is ${H}×${W} = ${H * W} pixels, over the server limit ${maxPixels}`, field);
  let data: Uint8Array;
  if (l === 'hwc') {
    data = v.data;
  } else {
    const src = v.data;
    data = new Uint8Array(H * W * 3);
    const plane = H * W;
    for (let i = 0; i < plane; i++) {
      data[3 * i] = src[i]!;
      data[3 * i + 1] = src[plane + i]!;
      data[3 * i + 2] = src[2 * plane + i]!;
    }
  }
  return { width: W, height: H, channels: 3, data };
}

/** The float values of one state key (ndarray float [n] / [1,n], or a list of numbers), validated. */
function floatsFrom(v: unknown, field: string): number[] {
  let vals: ArrayLike<number>;
  if (v instanceof NdArray) {
    if (v.dtype.kind !== 'f') {
      throw new RequestError(`must be a float ndarray (float32 or float64), got ${dtypeName(v.dtype)} (${JSON.stringify(v.dtype.str)})`, field);
    }
    if (!(v.shape.length === 1 || (v.shape.length === 2 && v.shape[0] === 1))) {
      throw new RequestError(`must be a vector [S], got shape [${v.shape.join(',')}]`, field);
    }
    vals = v.toFloat64();
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => {
      if (typeof x !== 'number') throw new RequestError(`value ${i} must be a number, got ${describe(x)}`, field);
    });
    vals = v as number[];
  } else {
    throw new RequestError(`must be a float32 ndarray, got ${describe(v)}`, field);
  }
  const out: number[] = [];
  for (let i = 0; i < vals.length; i++) {
    const x = vals[i]!;
    if (!Number.isFinite(x)) throw new RequestError(`value ${i} is ${String(x)}; every value must be finite`, field);
    if (Math.abs(x) > 1e6) throw new RequestError(`value ${i} is ${x}, outside ±1e6`, field);
    out.push(x);
  }
  return out;
}

/** The state from its key(s); undefined when absent and not required. */
function stateFrom(o: Obj, keys: string[], emb: Embodiment): number[] | undefined {
  const names = emb.state!.names;
  const needs = emb.action.relative.some((r) => r);
  const present = keys.filter((k) => o[k] !== undefined && o[k] !== null);
  if (present.length === 0) {
    if (needs) throw new RequestError(`is missing: embodiment ${emb.key} has relative actions and needs the current state (${names.join(', ')})`, keys[0]!);
    return undefined;
  }
  if (present.length < keys.length) {
    const missing = keys.find((k) => !present.includes(k))!;
    throw new RequestError(`is missing (the state is the concatenation of ${keys.join(' + ')})`, missing);
  }
  const vals: number[] = [];
  for (const k of keys) vals.push(...floatsFrom(o[k], k));
  if (vals.length !== names.length) {
    const field = keys.length === 1 ? keys[0]! : keys.join('+');
    throw new RequestError(`must have ${names.length} values (${emb.key}: ${names.join(', ')}), got ${vals.length}`, field);
  }
  return vals;
}

function promptFrom(v: unknown, field: string, max: number): string {
  if (v === undefined) throw new RequestError('is missing: send the task instruction as a string', field);
  return requestFields.strValue(v, field, { maxChars: max });
}

/** Validates an observation dict and builds the act() request (throws RequestError naming the field). */
export function observationToRequest(obs: unknown, ctx: DecodeContext): DecodedRequest {
  if (!isObj(obs)) throw new RequestError(`the observation must be a map, got ${describe(obs)}`, null);
  const limits = ctx.limits ?? DEFAULT_LIMITS;
  const o = obs;

  // request_id first, so later errors can echo it
  let requestId: string | number | undefined;
  if (o['request_id'] !== undefined && o['request_id'] !== null) {
    const r = o['request_id'];
    if (typeof r === 'string') {
      if (r.length > 256) throw new RequestError('must be at most 256 characters', 'request_id');
      requestId = r;
    } else if (typeof r === 'number' && Number.isSafeInteger(r)) {
      requestId = r;
    } else {
      throw new RequestError(`must be a string or an integer, got ${describe(r)}`, 'request_id');
    }
  }

  let embKey = ctx.defaultEmbodiment;
  if (o['embodiment'] !== undefined) {
    const e = requestFields.strValue(o['embodiment'], 'embodiment');
    if (!ctx.registry.has(e)) throw new RequestError(`unknown embodiment ${JSON.stringify(e)} (known: ${ctx.registry.keys().join(', ')})`, 'embodiment');
    embKey = e;
  }
  const emb = ctx.registry.get(embKey);
  const m = ctx.mapping?.embodiments[embKey] ?? defaultMapping(emb);

  const act: DecodedRequest['act'] = { instruction: '', embodiment: embKey, images: {} };
  if (o['seed'] !== undefined) act.seed = requestFields.intValue(o['seed'], 'seed', { min: 0, max: 0xffffffff });
  if (o['steps'] !== undefined) act.steps = requestFields.intValue(o['steps'], 'steps', { min: 1, max: limits.maxSteps });
  if (o['solver'] !== undefined) act.solver = requestFields.oneOfValue<SolverName>(o['solver'], 'solver', SOLVERS);
  if (o['grid'] !== undefined) act.grid = requestFields.oneOfValue<GridName>(o['grid'], 'grid', GRIDS);

  const consumed = new Set<string>(REQUEST_EXTRAS);
  const aloha = o['images'] !== undefined;
  const flatImageKeys = Object.keys(m.images).filter((k) => o[k] !== undefined);
  let stateKeys: string[] | null;
  let promptKey: string;

  if (aloha) {
    if (flatImageKeys.length > 0) {
      throw new RequestError(`mixes the ALOHA layout (images) with flat image keys; send one layout`, flatImageKeys[0]!);
    }
    consumed.add('images');
    const imgs = o['images'];
    if (!isObj(imgs)) throw new RequestError(`must be a map {camera name: uint8 [3,H,W]}, got ${describe(imgs)}`, 'images');
    for (const [k, v] of Object.entries(imgs)) {
      const field = `images.${k}`;
      const cam = Object.prototype.hasOwnProperty.call(m.alohaCameras, k) ? m.alohaCameras[k]! : k;
      if (Object.prototype.hasOwnProperty.call(m.alohaCameras, k) && cam === null) continue;
      if (!emb.cameras.includes(cam as string)) {
        throw new RequestError(`unknown camera ${JSON.stringify(k)} for embodiment ${embKey} (cameras: ${emb.cameras.join(', ')})`, field);
      }
      if (act.images[cam as string]) throw new RequestError(`camera ${cam} is given twice`, field);
      act.images[cam as string] = imageFrom(v, field, 'auto', 'chw', limits.maxImagePixels);
    }
    stateKeys = emb.state ? ['state'] : null;
    promptKey = 'prompt';
    if (!emb.state && o['state'] !== undefined) {
      throw new RequestError(`embodiment ${embKey} takes no state; leave the key out`, 'state');
    }
  } else {
    for (const k of Object.keys(m.images)) {
      consumed.add(k);
      const cam = m.images[k];
      if (o[k] === undefined || cam === null) continue;
      act.images[cam!] = imageFrom(o[k], k, m.imageLayout, 'hwc', limits.maxImagePixels);
    }
    stateKeys = m.state;
    promptKey = m.prompt;
    if (!emb.state && o['observation/state'] !== undefined && stateKeys === null) {
      throw new RequestError(`embodiment ${embKey} takes no state; leave the key out`, 'observation/state');
    }
    // LIBERO-style keys the default mapping has no camera for: a clear hint instead of "unknown key".
    for (const k of ['observation/image', 'observation/wrist_image']) {
      if (o[k] !== undefined && !Object.prototype.hasOwnProperty.call(m.images, k)) {
        throw new RequestError(
          `embodiment ${embKey} has ${emb.cameras.length} camera(s) (${emb.cameras.join(', ')}), none left for this key; map it (or map it to null to ignore it) with serve --mapping`,
          k,
        );
      }
    }
  }

  if (stateKeys !== null) {
    for (const k of stateKeys) consumed.add(k);
    const st = stateFrom(o, stateKeys, emb);
    if (st) act.state = st;
  }
  consumed.add(promptKey);
  act.instruction = promptFrom(o[promptKey], promptKey, limits.maxPromptChars);
  for (const k of m.ignore) consumed.add(k);
  for (const k of Object.keys(o)) {
    if (!consumed.has(k)) {
      const expected = aloha ? ['images', ...(emb.state ? ['state'] : []), 'prompt'] : [...Object.keys(m.images), ...(stateKeys ?? []), promptKey];
      throw new RequestError(`unknown observation key for embodiment ${embKey} (expected ${[...expected, ...REQUEST_EXTRAS].join(', ')})`, k);
    }
  }
  return { act, requestId, format: aloha ? 'aloha' : 'mapped' };
}

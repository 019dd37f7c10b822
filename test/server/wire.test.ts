// The openpi wire format (msgpack + numpy arrays) and the observation mapping/validation, without a GPU.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Decoder } from '@msgpack/msgpack';
import { packb, unpackb, WireError } from '../../src/server/msgpack.js';
import { NdArray, parseDtype } from '../../src/server/ndarray.js';
import { observationToRequest, parseMapping, RequestError, type DecodeContext } from '../../src/server/observation.js';
import { parseEmbodiments } from '../../src/policy/embodiments.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

// Bytes produced by openpi's msgpack_numpy.Packer() (Python msgpack 1.x, numpy 2) for
//   {'actions': np.arange(6, dtype=np.float32).reshape(2,3), 'prompt': 'hi', 'img': np.zeros((1,2,3), np.uint8),
//    'n': 3, 'neg': -7, 'big': 70000, 'f': 0.25, 'ok': True, 'none': None, 'lst': [1, 'a'], 'nested': {'k': -200}}
const PY_BYTES =
  '8ba7616374696f6e7384c40b5f5f6e6461727261795f5fc3c40464617461c418000000000000803f0000004000004040000080400000a040' +
  'c4056474797065a33c6634c4057368617065920203a670726f6d7074a26869a3696d6784c40b5f5f6e6461727261795f5fc3c40464617461' +
  'c406000000000000c4056474797065a37c7531c405736861706593010203a16e03a36e6567f9a3626967ce00011170a166cb3fd0000000000000' +
  'a26f6bc3a46e6f6e65c0a36c73749201a161a66e657374656481a16bd1ff38';
// ... and {'x': np.float32(1.5)} (a numpy scalar) inside a bigger map (only the scalar part matters here)
const PY_NPGENERIC = '81a17883c40d5f5f6e7067656e657269635f5fc3c40464617461cb3ff8000000000000c4056474797065a33c6634';

describe('msgpack_numpy wire format', () => {
  it('decodes what openpi packs (bin keys, ndarray maps)', () => {
    const v = unpackb(hex(PY_BYTES)) as Record<string, unknown>;
    const a = v['actions'] as NdArray;
    expect(a).toBeInstanceOf(NdArray);
    expect(a.dtype.str).toBe('<f4');
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.toFloat64())).toEqual([0, 1, 2, 3, 4, 5]);
    const img = v['img'] as NdArray;
    expect(img.dtype.str).toBe('|u1');
    expect(img.shape).toEqual([1, 2, 3]);
    expect(v['prompt']).toBe('hi');
    expect(v['n']).toBe(3);
    expect(v['neg']).toBe(-7);
    expect(v['big']).toBe(70000);
    expect(v['f']).toBe(0.25);
    expect(v['ok']).toBe(true);
    expect(v['none']).toBe(null);
    expect(v['lst']).toEqual([1, 'a']);
    expect((v['nested'] as Record<string, unknown>)['k']).toBe(-200);
    const s = unpackb(hex(PY_NPGENERIC)) as Record<string, unknown>;
    expect(s['x']).toBe(1.5);
  });

  it('encodes byte-for-byte like openpi', () => {
    const bytes = packb({
      actions: NdArray.fromFloat32(new Float32Array([0, 1, 2, 3, 4, 5]), [2, 3]),
      prompt: 'hi',
      img: NdArray.fromUint8(new Uint8Array(6), [1, 2, 3]),
      n: 3,
      neg: -7,
      big: 70000,
      f: 0.25,
      ok: true,
      none: null,
      lst: [1, 'a'],
      nested: { k: -200 },
    });
    expect(Buffer.from(bytes).toString('hex')).toBe(PY_BYTES);
  });

  it('writes ndarray keys as msgpack bin (what upstream unpack_array looks up)', () => {
    const bytes = packb({ a: NdArray.fromFloat32(new Float32Array([1]), [1]) });
    const keys: string[] = [];
    new Decoder({
      mapKeyConverter: (k: unknown) => {
        keys.push(k instanceof Uint8Array ? `bin:${Buffer.from(k).toString()}` : `str:${String(k)}`);
        return k instanceof Uint8Array ? Buffer.from(k).toString() : (k as string);
      },
    }).decode(bytes);
    expect(keys).toEqual(['str:a', 'bin:__ndarray__', 'bin:data', 'bin:dtype', 'bin:shape']);
  });

  it('accepts str keys too and round-trips', () => {
    const v = unpackb(packb(new Map<unknown, unknown>([['__ndarray__', true], ['data', new Uint8Array([1, 2])], ['dtype', '|u1'], ['shape', [2]]]))) as NdArray;
    expect(v).toBeInstanceOf(NdArray);
    expect(Array.from(v.data)).toEqual([1, 2]);
  });

  it('parses numpy dtype strings', () => {
    expect(parseDtype('<f4')).toMatchObject({ kind: 'f', itemsize: 4, littleEndian: true });
    expect(parseDtype('>f8')).toMatchObject({ kind: 'f', itemsize: 8, littleEndian: false });
    expect(parseDtype('|u1')).toMatchObject({ kind: 'u', itemsize: 1 });
    expect(parseDtype('|b1')).toMatchObject({ kind: 'b', itemsize: 1 });
    for (const bad of ['|O', '|V8', '<c8', '<U5', 'float32', '<f3', 42]) expect(parseDtype(bad)).toBeNull();
    const be = new NdArray(parseDtype('>f4')!, [2], new Uint8Array([0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]));
    expect(Array.from(be.toFloat64())).toEqual([1, -2]);
    const half = new NdArray(parseDtype('<f2')!, [1], new Uint8Array([0x00, 0x3c]));
    expect(Array.from(half.toFloat64())).toEqual([1]);
  });

  it('rejects garbage and bad arrays', () => {
    expect(() => unpackb(new Uint8Array([0xc1]))).toThrow(WireError); // never-used byte
    expect(() => unpackb(new Uint8Array([0x92, 0x01]))).toThrow(/not a valid msgpack/); // truncated
    const badLen = packb(new Map<unknown, unknown>([['a', new Map<unknown, unknown>([['__ndarray__', true], ['data', new Uint8Array(3)], ['dtype', '<f4'], ['shape', [1]]])]]));
    expect(() => unpackb(badLen)).toThrow(/needs 4/);
    const objDtype = packb({ a: new Map<unknown, unknown>([['__ndarray__', true], ['data', new Uint8Array(8)], ['dtype', '|O'], ['shape', [1]]]) });
    expect(() => unpackb(objDtype)).toThrow(/unsupported ndarray dtype/);
    expect(() => unpackb(packb(new Map([['__proto__', 1]])))).toThrow(/__proto__/);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(() => unpackb(packb(deep))).toThrow(/nesting/);
  });
});

// ---------------------------------------------------------------------------------------------------------

const registry = parseEmbodiments(JSON.parse(readFileSync('weights/tiny/embodiments.json', 'utf8')), { kMax: 16, sMax: 16, hMax: 16 });
const ctx: DecodeContext = { registry, mapping: null, defaultEmbodiment: 'aloha' };
const chw = (h = 8, w = 10) => NdArray.fromUint8(new Uint8Array(3 * h * w).map((_, i) => i % 251), [3, h, w]);
const hwc = (h = 8, w = 10) => NdArray.fromUint8(new Uint8Array(3 * h * w).map((_, i) => i % 251), [h, w, 3]);
const f32 = (n: number, v = 0.1) => NdArray.fromFloat32(new Float32Array(n).fill(v), [n]);

function fieldOf(fn: () => unknown): string | null {
  try {
    fn();
  } catch (e) {
    if (e instanceof RequestError) return e.field;
    throw e;
  }
  throw new Error('no error');
}

describe('observation → act() request', () => {
  it('ALOHA style: images CHW keyed by camera, state, prompt, extras', () => {
    const r = observationToRequest({
      images: { cam_high: chw(), cam_left_wrist: chw() },
      state: f32(14),
      prompt: 'fold',
      seed: 3, steps: 2, solver: 'heun', request_id: 'abc',
    }, ctx);
    expect(r.format).toBe('aloha');
    expect(r.requestId).toBe('abc');
    expect(r.act).toMatchObject({ embodiment: 'aloha', instruction: 'fold', seed: 3, steps: 2, solver: 'heun' });
    expect(Object.keys(r.act.images)).toEqual(['cam_high', 'cam_left_wrist']);
    const im = r.act.images['cam_high']!;
    expect([im.width, im.height, im.channels]).toEqual([10, 8, 3]);
    // CHW → HWC: pixel (0,1) channel 1 = src[plane + 1]
    expect(im.data[3 * 1 + 1]).toBe((80 + 1) % 251);
    expect(r.act.state).toHaveLength(14);
  });

  it('LIBERO style → widowx with the default mapping (first camera only)', () => {
    const r = observationToRequest({ 'observation/image': hwc(), 'observation/state': NdArray.fromFloat64(new Float64Array(8).fill(0.2), [8]), prompt: 'pick', embodiment: 'widowx' }, ctx);
    expect(r.format).toBe('mapped');
    expect(Object.keys(r.act.images)).toEqual(['image_0']);
    expect(r.act.images['image_0']!.data).toEqual(hwc().data);
    expect(r.act.state).toEqual(new Array(8).fill(0.2));
    // a wrist image has no camera on widowx: a clear error naming the key
    expect(fieldOf(() => observationToRequest({ 'observation/image': hwc(), 'observation/wrist_image': hwc(), 'observation/state': f32(8), prompt: 'p', embodiment: 'widowx' }, ctx))).toBe('observation/wrist_image');
  });

  it('a mapping file renames keys and ignores extras', () => {
    const mapping = parseMapping({
      default_embodiment: 'widowx',
      embodiments: { widowx: { images: { 'observation/image': 'image_0', 'observation/wrist_image': null }, ignore: ['observation/extra'] } },
    }, registry);
    const c = { ...ctx, mapping, defaultEmbodiment: 'widowx' };
    const r = observationToRequest({ 'observation/image': hwc(), 'observation/wrist_image': hwc(), 'observation/state': f32(8), 'observation/extra': 1, prompt: 'p' }, c);
    expect(Object.keys(r.act.images)).toEqual(['image_0']);
    // DROID-style: the state split over two keys, concatenated in order
    const droid = parseMapping({
      embodiments: { widowx: { images: { 'observation/exterior_image_1_left': 'image_0' }, state: ['observation/joint_position', 'observation/gripper_position'] } },
    }, registry);
    const d = observationToRequest({
      'observation/exterior_image_1_left': hwc(), 'observation/joint_position': f32(7, 0.1), 'observation/gripper_position': f32(1, 0.9),
      prompt: 'p', embodiment: 'widowx',
    }, { ...ctx, mapping: droid });
    expect(d.act.state).toHaveLength(8);
    expect(d.act.state![7]).toBeCloseTo(0.9, 6);
    expect(fieldOf(() => observationToRequest({ 'observation/joint_position': f32(7), prompt: 'p', embodiment: 'widowx' }, { ...ctx, mapping: droid }))).toBe('observation/gripper_position');
    expect(fieldOf(() => observationToRequest({ 'observation/joint_position': f32(6), 'observation/gripper_position': f32(1), prompt: 'p', embodiment: 'widowx' }, { ...ctx, mapping: droid })))
      .toBe('observation/joint_position+observation/gripper_position');
    expect(() => parseMapping({ embodiments: { widowx: { images: { a: 'nope' } } } }, registry)).toThrow(/cameras of widowx/);
    expect(() => parseMapping({ embodiments: { robot9: {} } }, registry)).toThrow(/names no embodiment/);
    expect(() => parseMapping({ embodiments: { nav: { state: 's' } } }, registry)).toThrow(/takes no state/);
    expect(() => parseMapping({ embodiments: { widowx: { prompt: 'seed' } } }, registry)).toThrow(/reserved/);
  });

  it('names the field of every validation error', () => {
    const ok = { images: { cam_high: chw() }, state: f32(14), prompt: 'x' };
    const cases: [Record<string, unknown>, string | null][] = [
      [{ ...ok, images: { cam_high: NdArray.fromFloat32(new Float32Array(3 * 4 * 4), [3, 4, 4]) } }, 'images.cam_high'], // dtype
      [{ ...ok, images: { cam_high: NdArray.fromUint8(new Uint8Array(16), [4, 4]) } }, 'images.cam_high'], // rank
      [{ ...ok, images: { cam_high: NdArray.fromUint8(new Uint8Array(64), [4, 4, 4]) } }, 'images.cam_high'], // channels
      [{ ...ok, images: { cam_top: chw() } }, 'images.cam_top'], // unknown camera
      [{ ...ok, images: [chw()] }, 'images'],
      [{ ...ok, state: f32(13) }, 'state'], // shape
      [{ ...ok, state: NdArray.fromUint8(new Uint8Array(14), [14]) }, 'state'], // dtype
      [{ ...ok, state: NdArray.fromFloat32(new Float32Array(14).fill(NaN), [14]) }, 'state'], // finite
      [{ ...ok, state: 'x' }, 'state'],
      [{ images: ok.images, state: ok.state }, 'prompt'], // missing key
      [{ ...ok, prompt: 5 }, 'prompt'],
      [{ ...ok, embodiment: 'robot9' }, 'embodiment'],
      [{ ...ok, embodiment: 7 }, 'embodiment'],
      [{ ...ok, seed: -1 }, 'seed'],
      [{ ...ok, seed: 1.5 }, 'seed'],
      [{ ...ok, steps: 0 }, 'steps'],
      [{ ...ok, steps: 101 }, 'steps'],
      [{ ...ok, solver: 'dopri5' }, 'solver'],
      [{ ...ok, grid: 'log' }, 'grid'],
      [{ ...ok, request_id: { a: 1 } }, 'request_id'],
      [{ ...ok, colour: 'red' }, 'colour'], // unknown key
      [{ ...ok, 'observation/image': hwc() }, 'observation/image'], // mixed layouts
      [{ 'observation/image': hwc(), prompt: 'p', embodiment: 'widowx' }, 'observation/state'], // relative actions need state
      [{ images: { front: chw() }, state: f32(3), prompt: 'p', embodiment: 'nav' }, 'state'], // nav takes none
    ];
    for (const [obs, field] of cases) expect(fieldOf(() => observationToRequest(obs, ctx)), JSON.stringify(Object.keys(obs))).toBe(field);
    expect(fieldOf(() => observationToRequest([1, 2], ctx))).toBe(null);
  });

  it('ambiguous [3,H,3] counts as CHW in `images` and HWC for flat keys', () => {
    const a = NdArray.fromUint8(new Uint8Array(27), [3, 3, 3]);
    const r1 = observationToRequest({ images: { cam_high: a }, prompt: 'p' }, ctx);
    expect(r1.act.images['cam_high']!.width).toBe(3);
    const r2 = observationToRequest({ 'observation/image': a, 'observation/state': f32(8), prompt: 'p', embodiment: 'widowx' }, ctx);
    expect(r2.act.images['image_0']!.height).toBe(3);
  });
});

// embodiments.json validation and the state / action maths (weights/README.md, docs/action-decoder.md §3, §10),
// cross-checked against the Python reference values stored in the golden case fixtures when present.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/io/errors.js';
import { parseSafetensorsHeader } from '../../src/io/safetensors.js';
import {
  actionMask,
  loadEmbodiments,
  normalizeState,
  parseEmbodiments,
  stateMask,
  unnormalizeActions,
  type EmbodimentLimits,
} from '../../src/policy/embodiments.js';

const TINY = { kMax: 16, sMax: 16, hMax: 16 } satisfies EmbodimentLimits;
const rawTiny = (): Record<string, any> => JSON.parse(readFileSync('weights/tiny/embodiments.json', 'utf8'));
const parse = (raw: unknown, limits: EmbodimentLimits = TINY) => parseEmbodiments(raw, limits);

describe('loading', () => {
  it('loads weights/tiny/embodiments.json into camelCase entries', async () => {
    const reg = await loadEmbodiments('weights/tiny/embodiments.json', TINY);
    expect(reg.keys()).toEqual(['aloha', 'widowx', 'nav']);
    const w = reg.get('widowx');
    expect(w.taskType).toBe('manipulation');
    expect(w.control).toEqual({ mode: 'end-effector delta pose', rateHz: 5, chunk: 4, frame: 'base' });
    expect(w.action.binarizeGripper).toBe(true);
    expect(w.action.gripper).toEqual([6]);
    expect(w.state!.names).toHaveLength(8);
    expect(w.normalization.method).toBe('min_max');
    expect(w.normalization.action.a[0]).toBe(-0.06);
    const nav = reg.get('nav');
    expect(nav.state).toBeNull();
    expect(nav.normalization.state).toBeNull();
    expect(nav.prompt).toBeNull();
  });

  it('unknown embodiment lists the known ones', () => {
    const reg = parse(rawTiny());
    expect(() => reg.get('franka')).toThrow('embodiments.json: unknown embodiment "franka"; known embodiments: aloha, widowx, nav');
  });

  it('file errors: missing, malformed JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qvla-emb-'));
    const f = join(dir, 'embodiments.json');
    await expect(loadEmbodiments(f, TINY)).rejects.toThrow(CheckpointError);
    await expect(loadEmbodiments(f, TINY)).rejects.toThrow(`${f}: cannot read`);
    writeFileSync(f, '{"version": 1, "embodiments": {');
    await expect(loadEmbodiments(f, TINY)).rejects.toThrow(`${f}: is not valid JSON`);
    const raw = rawTiny();
    raw.embodiments.aloha.normalization.action.q99.pop();
    writeFileSync(f, JSON.stringify(raw));
    await expect(loadEmbodiments(f, TINY)).rejects.toThrow(`${f}: embodiments.aloha.normalization.action.q99 has 13 values, expected 14`);
  });

  const bad: [string, (r: Record<string, any>) => void, string | RegExp, EmbodimentLimits?][] = [
    ['q99 length', (r) => r.embodiments.aloha.normalization.action.q99.pop(),
      'embodiments.json: embodiments.aloha.normalization.action.q99 has 13 values, expected 14'],
    ['state stats length', (r) => r.embodiments.widowx.normalization.state.min.push(0),
      'embodiments.json: embodiments.widowx.normalization.state.min has 9 values, expected 8'],
    ['missing name', (r) => delete r.embodiments.widowx.name, 'embodiments.json: embodiments.widowx.name is required but missing'],
    ['missing control.rate_hz', (r) => delete r.embodiments.nav.control.rate_hz, 'embodiments.json: embodiments.nav.control.rate_hz is required but missing'],
    ['missing normalization', (r) => delete r.embodiments.nav.normalization, 'embodiments.nav.normalization is required but missing'],
    ['missing stats key', (r) => delete r.embodiments.nav.normalization.action.std, 'embodiments.nav.normalization.action.std is required but missing'],
    ['relative length', (r) => r.embodiments.widowx.action.relative.pop(), 'embodiments.widowx.action.relative has 6 values, expected 7'],
    ['chunk over h_max', (r) => { r.embodiments.aloha.control.chunk = 17; }, 'embodiments.aloha.control.chunk is 17, over h_max 16'],
    ['names over k_max', () => undefined, 'embodiments.aloha.action.names has 14 names, over k_max 10', { kMax: 10, sMax: 16, hMax: 16 }],
    ['state over s_max', () => undefined, 'embodiments.aloha.state.names has 14 names, over s_max 12', { kMax: 16, sMax: 12, hMax: 16 }],
    ['bad method', (r) => { r.embodiments.aloha.normalization.method = 'zscore'; }, /embodiments\.aloha\.normalization\.method must be one of q01_q99, min_max, mean_std, got "zscore"/],
    ['bad task type', (r) => { r.embodiments.aloha.task_type = 'flying'; }, /embodiments\.aloha\.task_type must be one of manipulation, navigation, trajectory/],
    ['NaN-ish stat', (r) => { r.embodiments.aloha.normalization.state.q01[3] = 'x'; }, /embodiments\.aloha\.normalization\.state\.q01\[3\] must be a finite number, got "x"/],
    ['stat beyond float32', (r) => { r.embodiments.aloha.normalization.action.q99[5] = 1e39; }, /embodiments\.aloha\.normalization\.action\.q99\[5\] \(1e\+39\) is outside the float32 range/],
    ['q01..q99 span beyond float32', (r) => { r.embodiments.aloha.normalization.action.q01[0] = -3e38; r.embodiments.aloha.normalization.action.q99[0] = 3e38; },
      /embodiments\.aloha\.normalization\.action\.q99\[0\] − embodiments\.aloha\.normalization\.action\.q01\[0\] = 6e\+38 is outside the float32 range/],
    ['state std subnormal', (r) => {
      r.embodiments.widowx.normalization = { method: 'mean_std', action: { mean: [0, 0, 0, 0, 0, 0, 0], std: [1, 1, 1, 1, 1, 1, 1] },
        state: { mean: [0, 0, 0, 0, 0, 0, 0, 0], std: [1, 1e-40, 1, 1, 1, 1, 1, 1] } };
    }, /embodiments\.widowx\.normalization\.state\.std\[1\] \(1e-40\) is below the smallest normal float32/],
    ['state span subnormal', (r) => { r.embodiments.aloha.normalization.state.q01[13] = 0; r.embodiments.aloha.normalization.state.q99[13] = 5e-324; },
      /embodiments\.aloha\.normalization\.state\.q99\[13\] − embodiments\.aloha\.normalization\.state\.q01\[13\] = 5e-324 is below the smallest normal float32/],
    ['q01 > q99', (r) => { r.embodiments.aloha.normalization.action.q01[2] = 2; }, /embodiments\.aloha\.normalization\.action\.q99\[2\] \(1\.42\) must be ≥ embodiments\.aloha\.normalization\.action\.q01\[2\] \(2\)/],
    ['std 0 for state', (r) => {
      r.embodiments.widowx.normalization = { method: 'mean_std', action: { mean: [0, 0, 0, 0, 0, 0, 0], std: [1, 1, 1, 1, 1, 1, 1] },
        state: { mean: [0, 0, 0, 0, 0, 0, 0, 0], std: [1, 1, 0, 1, 1, 1, 1, 1] } };
    }, /embodiments\.widowx\.normalization\.state\.std\[2\] must be > 0, got 0/],
    ['gripper out of range', (r) => { r.embodiments.widowx.action.gripper = [7]; }, /embodiments\.widowx\.action\.gripper\[0\] must be an action channel index in \[0, 7\), got 7/],
    ['duplicate names', (r) => { r.embodiments.widowx.action.names[1] = 'x'; }, /embodiments\.widowx\.action\.names\[1\] "x" appears twice/],
    ['relative without state channel', (r) => { r.embodiments.widowx.state.names[0] = 'px'; }, /embodiments\.widowx\.action\.relative\[0\] is true but state\.names has no channel "x"/],
    ['relative without state', (r) => { delete r.embodiments.widowx.state; delete r.embodiments.widowx.normalization.state; }, /embodiments\.widowx\.action\.relative\[0\] is true .* no state/],
    ['state stats without state', (r) => { r.embodiments.nav.normalization.state = { mean: [0], std: [1] }; }, /embodiments\.nav\.normalization\.state is given but the embodiment declares no state/],
    ['state without stats', (r) => { delete r.embodiments.aloha.normalization.state; }, 'embodiments.aloha.normalization.state is required but missing'],
    ['navigation dims', (r) => { r.embodiments.nav.action.names.push('v'); r.embodiments.nav.action.relative.push(false); }, /embodiments\.nav\.action\.names has 4 names; a navigation embodiment has 3/],
    ['unknown key', (r) => { r.embodiments.aloha.actions = {}; }, /embodiments\.aloha\.actions is not a known field/],
    ['binarize not bool', (r) => { r.embodiments.aloha.action.binarize_gripper = 1; }, /embodiments\.aloha\.action\.binarize_gripper must be true or false, got 1/],
    ['prompt type', (r) => { r.embodiments.aloha.prompt = 5; }, /embodiments\.aloha\.prompt must be a string or null/],
    ['version', (r) => { r.version = 2; }, 'embodiments.json: version must be 1, got 2'],
    ['missing embodiments', (r) => { delete r.embodiments; }, 'embodiments.json: embodiments is required but missing'],
    ['empty', (r) => { r.embodiments = {}; }, 'embodiments.json: embodiments is empty'],
    ['entry not object', (r) => { r.embodiments.nav = []; }, /embodiments\.nav must be an object/],
  ];
  for (const [name, mutate, msg, limits] of bad) {
    it(`rejects: ${name}`, () => {
      const r = rawTiny();
      mutate(r);
      expect(() => parse(r, limits ?? TINY)).toThrow(CheckpointError);
      expect(() => parse(r, limits ?? TINY)).toThrow(msg);
    });
  }

  it('rejects a non-object root', () => {
    expect(() => parse([])).toThrow(/embodiments\.json: \(root\) must be an object/);
  });
});

describe('maths', () => {
  const reg = parse(rawTiny());
  const aloha = reg.get('aloha');
  const widowx = reg.get('widowx');
  const nav = reg.get('nav');

  it('normalizeState: inverse map, zero padding, NaN/Inf naming the channel', () => {
    const raw = [0.12, -0.28, -0.04, -0.45, -0.5, -1.25, 0, 1]; // widowx min except pad 0, gripper max
    const s = normalizeState(widowx, raw);
    expect(s).toHaveLength(16);
    expect(Array.from(s.slice(0, 8))).toEqual([-1, -1, -1, -1, -1, -1, 0, 1].map(Math.fround));
    expect(Array.from(s.slice(8))).toEqual(Array(8).fill(0));
    expect(normalizeState(widowx, new Float32Array(raw), 10)).toHaveLength(10);
    expect(() => normalizeState(widowx, [0.1, 0, 0, Number.NaN, 0, 0, 0, 0])).toThrow('embodiment widowx: state channel 3 ("roll") is NaN, expected a finite number');
    expect(() => normalizeState(widowx, [0.1, 0, 0, 0, Infinity, 0, 0, 0])).toThrow(/channel 4 \("pitch"\) is Infinity/);
    expect(() => normalizeState(widowx, [0.1, 0])).toThrow(/state has 2 values, expected 8/);
    expect(() => normalizeState(nav, [0, 0, 0])).toThrow(/embodiment nav declares no state/);
    // finite in f64 but far outside the statistics: the normalised value overflows float32 → named, not Inf
    expect(() => normalizeState(widowx, [0.1, 0, 1e38, 0, 0, 0, 0, 0])).toThrow(/state channel 2 \("z"\) = 1e\+38 normalises to -?Infinity in float32/);
    // q01_q99: midpoint → 0
    const mid = aloha.normalization.state!.a.map((lo, i) => (lo + aloha.normalization.state!.b[i]!) / 2);
    for (const v of normalizeState(aloha, mid).slice(0, 14)) expect(Math.abs(v)).toBeLessThan(1e-6);
  });

  it('stateMask and actionMask', () => {
    expect(Array.from(stateMask(widowx))).toEqual([...Array(8).fill(1), ...Array(8).fill(0)]);
    expect(Array.from(stateMask(nav))).toEqual(Array(16).fill(0));
    const m = actionMask(widowx, 5, 9);
    expect(m).toHaveLength(45);
    for (let r = 0; r < 5; r++) for (let c = 0; c < 9; c++) expect(m[r * 9 + c]).toBe(r < 4 && c < 7 ? 1 : 0);
    expect(() => actionMask(aloha, 8, 16)).toThrow(/needs \[16, 14\]/);
  });

  it('q01_q99: slice, clip, unnormalise (aloha)', () => {
    const kMax = 16;
    const chunk = new Float32Array(16 * kMax).fill(7); // padding must be ignored
    for (let r = 0; r < 16; r++) for (let c = 0; c < 14; c++) chunk[r * kMax + c] = [-1, 1, 0, 2, -3, 0.5][(r + c) % 6]!;
    const out = unnormalizeActions(aloha, chunk, kMax);
    expect(out.rows).toBe(16);
    expect(out.dims).toBe(14);
    expect(out.names).toEqual(aloha.action.names);
    expect(out.actions).toHaveLength(16 * 14);
    const { a: lo, b: hi } = aloha.normalization.action;
    for (let r = 0; r < 16; r++) {
      for (let c = 0; c < 14; c++) {
        const y = Math.max(-1, Math.min(1, [-1, 1, 0, 2, -3, 0.5][(r + c) % 6]!));
        expect(out.actions[r * 14 + c]).toBe(Math.fround(((y + 1) / 2) * (hi[c]! - lo[c]!) + lo[c]!));
      }
    }
    expect(out.actions[0]).toBe(Math.fround(-0.82)); // y = -1 → q01
    expect(out.actions[1]).toBe(Math.fround(0.34)); // y = +1 → q99
    expect(out.waypoints).toBeUndefined();
  });

  it('relative → absolute and gripper binarisation (widowx, min_max)', () => {
    const kMax = 16;
    const chunk = new Float32Array(16 * kMax);
    // row 0: all zeros → midpoints; row 1: +1 → max; row 2: gripper just below / at 0.5
    for (let c = 0; c < 7; c++) chunk[1 * kMax + c] = 1;
    chunk[2 * kMax + 6] = -0.02; // gripper 0.49 → 0
    chunk[3 * kMax + 6] = 0; // gripper 0.5 → 1
    const state = [0.3, 0.1, 0.2, 0.05, -0.1, 0.7, 0.9, 0.4];
    const out = unnormalizeActions(widowx, chunk, kMax, state);
    expect(out.rows).toBe(4);
    expect(out.dims).toBe(7);
    const { a: lo, b: hi } = widowx.normalization.action;
    const idx = widowx.action.names.map((n) => widowx.state!.names.indexOf(n));
    expect(idx).toEqual([0, 1, 2, 3, 4, 5, 7]);
    for (let c = 0; c < 6; c++) {
      expect(out.actions[c]).toBe(Math.fround(0.5 * (hi[c]! - lo[c]!) + lo[c]! + state[c]!));
      expect(out.actions[7 + c]).toBe(Math.fround(hi[c]! + state[c]!));
    }
    expect(out.actions[6]).toBe(1); // 0.5 → 1
    expect(out.actions[13]).toBe(1);
    expect(out.actions[2 * 7 + 6]).toBe(0);
    expect(out.actions[3 * 7 + 6]).toBe(1);
    expect(() => unnormalizeActions(widowx, chunk, kMax)).toThrow(/embodiment widowx: relative action channels need the current state/);
    expect(() => unnormalizeActions(widowx, chunk, kMax, [0, 0, 0, Number.NaN, 0, 0, 0, 0])).toThrow(/state channel 3 \("roll"\) is NaN/);
    expect(() => unnormalizeActions(widowx, chunk, 6, state)).toThrow(/kMax 6 < 7/);
    expect(() => unnormalizeActions(widowx, chunk.subarray(0, 3 * kMax), kMax, state)).toThrow(/expected \[rows ≥ 4, 16\]/);
  });

  it('navigation: mean_std, no clipping, waypoints in the robot frame', () => {
    const kMax = 16;
    const chunk = new Float32Array(16 * kMax);
    for (let r = 0; r < 8; r++) {
      chunk[r * kMax] = r * 0.25;
      chunk[r * kMax + 1] = -2; // beyond −1: mean_std is not clipped
      chunk[r * kMax + 2] = 0.5;
    }
    const out = unnormalizeActions(nav, chunk, kMax);
    expect(out.rows).toBe(8);
    expect(out.waypoints).toHaveLength(8);
    for (let r = 0; r < 8; r++) {
      expect(out.waypoints![r]).toEqual({
        x: Math.fround(r * 0.25 * 0.75 + 1.1),
        y: Math.fround(-2 * 0.32),
        yaw: Math.fround(0.5 * 0.41),
      });
    }
  });

  it('trajectory: points', () => {
    const r = rawTiny();
    r.embodiments.drone = {
      name: 'Drone', task_type: 'trajectory', description: 'quadrotor', cameras: ['down'],
      control: { mode: 'points', rate_hz: 1, chunk: 3, frame: 'world' },
      action: { names: ['x', 'y', 'z'], relative: [false, false, false], gripper: [], binarize_gripper: false },
      normalization: { method: 'min_max', action: { min: [0, 0, 0], max: [2, 4, 6] } },
    };
    const drone = parse(r).get('drone');
    const chunk = new Float32Array([0, 0, 0, 1, 1, 1, -1, 0.5, 5]);
    const out = unnormalizeActions(drone, chunk, 3);
    expect(out.points).toEqual([{ x: 1, y: 2, z: 3 }, { x: 2, y: 4, z: 6 }, { x: 0, y: 3, z: 6 }]);
  });
});

// ------------------------------------------------------------------------------------------------------
// Against qvla_ref/embodiment.py values stored in the golden case fixtures.

function readF32(path: string): { get: (n: string) => Float32Array; meta: Record<string, any> } {
  const bytes = new Uint8Array(readFileSync(path));
  const h = parseSafetensorsHeader(bytes, bytes.length, path);
  return {
    get: (n) => {
      const t = h.tensors.get(n)!;
      expect(t.dtype).toBe('F32');
      return new Float32Array(bytes.slice(t.byteOffset, t.byteOffset + t.byteLength).buffer);
    },
    meta: JSON.parse(h.metadata!['case']!),
  };
}

describe('golden fixtures (qvla_ref/embodiment.py)', () => {
  const cases: [string, string, string, number][] = [
    ['test/fixtures/case_a_tiny_widowx.safetensors', 'weights/tiny', 'widowx', 16],
    ['test/fixtures/case_b_two_images.safetensors', 'test/fixtures/fixture_b', 'testbot', 12],
    ['test/fixtures/case_d_tiny_aloha.safetensors', 'weights/tiny', 'aloha', 16],
  ];
  for (const [file, ckpt, key, kMax] of cases) {
    it.skipIf(!existsSync(file) || !existsSync(`${ckpt}/embodiments.json`))(`${key}: state normalisation and action unnormalisation`, async () => {
      const cfg = JSON.parse(readFileSync(`${ckpt}/config.json`, 'utf8')).action_expert;
      expect(cfg.k_max).toBe(kMax);
      const reg = await loadEmbodiments(`${ckpt}/embodiments.json`, { kMax: cfg.k_max, sMax: cfg.s_max, hMax: cfg.h_max });
      const emb = reg.get(key);
      const f = readF32(file);
      const stateRaw = f.get('dit.state_raw');
      const stateNorm = f.get('dit.state');
      const s = normalizeState(emb, stateRaw, cfg.s_max);
      for (let i = 0; i < cfg.s_max; i++) expect(Math.abs(s[i]! - stateNorm[i]!)).toBeLessThan(2e-6);
      expect(Array.from(actionMask(emb, cfg.h_max, cfg.k_max))).toEqual(Array.from(f.get('dit.action_mask')));
      const y = f.get('sample.euler_10');
      const want = f.get('action.euler_10.unnormalized'); // plain unnormalize (no relative / gripper)
      const out = unnormalizeActions(emb, y, kMax, stateRaw);
      const K = emb.action.names.length;
      expect(out.actions).toHaveLength(want.length);
      for (let r = 0; r < out.rows; r++) {
        for (let c = 0; c < K; c++) {
          let w = want[r * K + c]!;
          if (emb.action.relative[c]) w += stateRaw[emb.state!.names.indexOf(emb.action.names[c]!)]!;
          if (emb.action.binarizeGripper && emb.action.gripper.includes(c)) w = w >= 0.5 ? 1 : 0;
          expect(Math.abs(out.actions[r * K + c]! - w), `${key} [${r}, ${c}]`).toBeLessThan(2e-6);
        }
      }
    });
  }
});

// The worlds (src/worlds): deterministic from a seed, experts that succeed, golden frames/actions that pin the
// exact pixels a trained checkpoint was trained on, and recorded shards that hold what act() would see.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { describe, expect, it } from 'vitest';
import { WORLD_SPECS, EVAL_SEED_BASE, worldEmbodiments } from '../../src/worlds/registry.js';
import { recordDemonstrations } from '../../src/worlds/record.js';
import { NavWorld } from '../../src/worlds/nav.js';
import { BallWorld, constantVelocity, OBSERVED } from '../../src/worlds/ball.js';
import type { World, WorldSpec } from '../../src/worlds/types.js';
import { QvlaTokenizer } from '../../src/text/tokenizer.js';
import { buildActionPrompt } from '../../src/text/prompt.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { parseEmbodiments, unnormalizeActions } from '../../src/policy/embodiments.js';
import { tmpDir } from '../io/helpers.js';

const GOLDEN = 'test/fixtures/worlds_golden.json';
const LIMITS = { hMax: 16, kMax: 16, sMax: 16 };

function name(s: WorldSpec): string {
  return `${s.world}/${s.embodiment}/${s.level}`;
}

/** sha256 of every frame and expert chunk of an expert-driven episode. */
function episodeHash(w: World): string {
  const h = createHash('sha256');
  while (!w.done) {
    const obs = w.observe();
    for (const im of obs.images) h.update(im.image.data);
    h.update(obs.instruction);
    if (obs.state) h.update(new Float64Array(obs.state));
    const c = w.expert();
    h.update(new Uint8Array(c.data.buffer));
    w.step(c);
  }
  h.update(w.success ? 'success' : 'failure');
  return h.digest('hex');
}

describe('worlds', () => {
  it('the same seed gives the same frames and expert actions; another seed does not', () => {
    for (const s of WORLD_SPECS) {
      const a = episodeHash(s.create(EVAL_SEED_BASE + 5));
      expect(episodeHash(s.create(EVAL_SEED_BASE + 5)), name(s)).toBe(a);
      expect(episodeHash(s.create(EVAL_SEED_BASE + 6)), name(s)).not.toBe(a);
    }
  });

  it('frames and expert chunks match the committed golden hashes (the pixels the checkpoint was trained on)', async () => {
    const got: Record<string, string[]> = {};
    for (const s of WORLD_SPECS) got[name(s)] = [0, 1, 2, 3, EVAL_SEED_BASE, EVAL_SEED_BASE + 1].map((seed) => episodeHash(s.create(seed)));
    if (process.env['QVLA_UPDATE_GOLDEN']) await fsp.writeFile(GOLDEN, `${JSON.stringify(got, null, 1)}\n`);
    const want = JSON.parse(await fsp.readFile(GOLDEN, 'utf8')) as Record<string, string[]>;
    expect(got).toEqual(want);
  });

  it('the scripted expert succeeds in ≥ 99 % of 300 evaluation episodes of every world', () => {
    for (const s of WORLD_SPECS) {
      let ok = 0;
      for (let e = 0; e < 300; e++) {
        const w = s.create(EVAL_SEED_BASE + e);
        while (!w.done) w.step(w.expert());
        ok += w.success ? 1 : 0;
      }
      expect(ok / 300, name(s)).toBeGreaterThanOrEqual(0.99);
    }
  });

  it('a chunk that does nothing fails: manipulation and navigation need the right actions', () => {
    for (const s of WORLD_SPECS.filter((x) => x.world !== 'ball')) {
      let ok = 0;
      for (let e = 0; e < 20; e++) {
        const w = s.create(EVAL_SEED_BASE + e);
        while (!w.done) {
          const c = w.expert();
          if (s.world === 'tabletop') for (let r = 0; r < c.rows; r++) c.data.set(w.observe().state!, r * 3);
          else c.data.fill(0);
          w.step(c);
        }
        ok += w.success ? 1 : 0;
      }
      expect(ok, name(s)).toBeLessThan(3);
    }
  });

  it('ball: constant velocity misses at the horizon (the motions are not constant-velocity)', () => {
    let cvOk = 0;
    for (let e = 0; e < 200; e++) {
      const w = new BallWorld('A', EVAL_SEED_BASE + e);
      const m = w.metrics();
      expect(m['cv_fde']!).toBeGreaterThan(0.12);
      cvOk += m['cv_success']!;
      const cv = constantVelocity(w.tracks[0]!.pts);
      expect(cv[0]![0]).toBeCloseTo(2 * w.tracks[0]!.pts[OBSERVED - 1]![0] - w.tracks[0]!.pts[OBSERVED - 2]![0], 12);
    }
    expect(cvOk).toBe(0);
  });

  it('nav: metrics follow R2R (SR on the final position, OSR ever within, SPL ≤ SR)', () => {
    const w = new NavWorld('A', EVAL_SEED_BASE + 3);
    while (!w.done) w.step(w.expert());
    const m = w.metrics();
    expect(w.success).toBe(true);
    expect(m['osr']).toBe(1);
    expect(m['stopped']).toBe(1);
    expect(m['spl']!).toBeGreaterThan(0.5);
    expect(m['spl']!).toBeLessThanOrEqual(1);
  });

  it('records shards holding the prompt ids act() builds and labels that unnormalise to the expert chunk', async () => {
    const dir = await tmpDir('qvla-worlds-');
    try {
      const tokenizer = QvlaTokenizer.fromJson(JSON.parse(await fsp.readFile('weights/tiny/tokenizer.json', 'utf8')));
      const registry = parseEmbodiments(worldEmbodiments(), LIMITS);
      for (const spec of WORLD_SPECS.filter((s) => s.level === 'A')) {
        const r = await recordDemonstrations(spec, { episodes: 3, seedBase: 10, dart: false, out: dir, tokenizer, limits: LIMITS });
        expect(r.successes).toBe(3);
        const f = await openSafetensors(r.files[0]!);
        try {
          const N = r.samples;
          const L = f.info('input_ids').shape[1]!;
          const ids = new Int32Array((await f.readTensor('input_ids')).slice().buffer);
          const lens = new Int32Array((await f.readTensor('input_len')).slice().buffer);
          const actions = new Float32Array((await f.readTensor('actions')).slice().buffer);
          expect(f.info('frames').shape[0]).toBe(N);
          // replay the first episode without perturbation: sample i is decision i
          const emb = registry.get(spec.embodiment);
          const w = spec.create(10);
          const obs = w.observe();
          const im = obs.images[0]!.image;
          const p = buildActionPrompt(tokenizer, emb, obs.instruction, [{ camera: obs.images[0]!.camera, gridH: im.height / 16, gridW: im.width / 16 }]);
          expect(Array.from(ids.subarray(0, lens[0]!))).toEqual(Array.from(p.ids));
          expect(ids[lens[0]!] ?? -1).toBe(lens[0]! < L ? -1 : ids[lens[0]!]);
          const back = unnormalizeActions(emb, actions.subarray(0, 16 * 16), 16, obs.state);
          const want = w.expert().data;
          for (let k = 0; k < want.length; k++) expect(back.actions[k]!, `${name(spec)} action ${k}`).toBeCloseTo(want[k]!, 5);
        } finally {
          await f.close();
        }
      }
      await expect(recordDemonstrations(WORLD_SPECS[0]!, { episodes: 1, seedBase: 0, out: dir, tokenizer, limits: LIMITS })).rejects.toThrow(/--overwrite/);
      const manifest = JSON.parse(await fsp.readFile(nodePath.join(dir, 'manifest.json'), 'utf8'));
      expect(Object.keys(manifest.recordings).sort()).toEqual(['arm2-A', 'planar-A', 'rover-A', 'tracker-A']);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

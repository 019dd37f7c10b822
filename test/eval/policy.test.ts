// Closed-loop evaluation with the policy on WebGPU: weights/tiny (random weights) with the world embodiments.
// The random policy fails almost always; what is checked is the machinery: rows, determinism, the batched path,
// the blind / prompt-as conditions, the CLI's JSON, plot and rollouts, and the refusals.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import * as os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode as decodePng } from 'fast-png';
import { Policy, PolicyError, type ActRequest, type ActResult } from '../../src/policy/policy.js';
import { parseEmbodiments } from '../../src/policy/embodiments.js';
import { runEpisodes, summarise, type EpisodeResult, type PolicyLike } from '../../src/eval/episodes.js';
import { findWorldSpecs, EVAL_SEED_BASE } from '../../src/worlds/registry.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { worldCheckpoint, qvla, readGif } from './helpers.js';

let ckpt: string;
let policy: Policy;
let tmp: string;

beforeAll(async () => {
  ckpt = await worldCheckpoint();
  tmp = await fsp.mkdtemp(nodePath.join(os.tmpdir(), 'qvla-eval-'));
  policy = await Policy.load(ckpt, { stageTimings: false });
});

afterAll(async () => {
  policy?.destroy();
  for (const d of [ckpt, tmp]) if (d) await fsp.rm(d, { recursive: true, force: true });
});

const spec = (world: string, emb?: string) => findWorldSpecs(world, emb, 'A')[0]!;
/** results without the timing */
const strip = (rs: EpisodeResult[]) => rs.map(({ finishedMs: _t, ...r }) => r);

/** A policy with actBatch that records the group sizes and every request (rows computed by act()). */
function recording(): PolicyLike & { groups: number[]; reqs: ActRequest[] } {
  const groups: number[] = [];
  const reqs: ActRequest[] = [];
  return {
    groups, reqs, embodiments: policy.embodiments,
    act: (r) => policy.act(r),
    async actBatch(rs: ActRequest[]): Promise<ActResult[]> {
      groups.push(rs.length);
      const out: ActResult[] = [];
      for (const r of rs) {
        reqs.push(r);
        out.push(await policy.act(r));
      }
      return out;
    },
  };
}

describe('runEpisodes with the policy', () => {
  it('one row per world; the same seeds give the same successes and metrics twice', async () => {
    for (const [w, e] of [['tabletop', 'planar'], ['tabletop', 'arm2'], ['nav', 'rover'], ['ball', 'tracker']] as const) {
      const opts = { episodes: 2, steps: 2, maxDecisions: 2 };
      const a = await runEpisodes(policy, spec(w, e), opts);
      const b = await runEpisodes(policy, spec(w, e), opts);
      expect(strip(b), `${w}/${e}`).toEqual(strip(a));
      const row = summarise(a);
      expect(row).toMatchObject({ world: w, embodiment: e, level: 'A', condition: 'policy', solver: 'euler', steps: 2, nfe: 2, episodes: 2, seeds: [EVAL_SEED_BASE, EVAL_SEED_BASE + 1] });
      expect(row.task_type).toBe({ tabletop: 'manipulation', nav: 'navigation', ball: 'trajectory' }[w]);
      expect(row.act_calls).toBe(a.reduce((s, r) => s + r.decisions, 0));
      for (const r of a) expect(r.decisions).toBeLessThanOrEqual(2);
      expect(row.wall_s).toBeGreaterThan(0);
      expect(row.ci95).toHaveLength(2);
      if (w === 'nav') for (const k of ['sr', 'osr', 'spl']) expect(row.metrics[k]).toBeTypeOf('number');
      if (w === 'ball') for (const k of ['ade', 'fde', 'cv_ade', 'cv_fde']) expect(row.metrics[k]).toBeTypeOf('number');
    }
  });

  it('actBatch is used in groups of at most `batch`, and the results do not depend on the batch size', async () => {
    const p = recording();
    const batched = await runEpisodes(p, spec('nav'), { episodes: 3, steps: 2, batch: 2, maxDecisions: 2 });
    expect(p.groups).toEqual([2, 1, 2, 1]);
    const single = await runEpisodes(policy, spec('nav'), { episodes: 3, steps: 2, batch: 1, maxDecisions: 2 });
    expect(strip(batched)).toEqual(strip(single));
    // the noise seed is per (episode seed, decision): distinct requests, all seeds distinct
    expect(new Set(p.reqs.map((r) => r.seed)).size).toBe(6);
  });

  it('blind: every frame black and of the same size; prompt-as: the other embodiment named, actions of the world', async () => {
    const p = recording();
    const res = await runEpisodes(p, spec('ball'), { episodes: 2, steps: 2, blind: true });
    expect(res.every((r) => r.condition === 'blind')).toBe(true);
    const obs = spec('ball').create(EVAL_SEED_BASE).observe();
    for (const r of p.reqs) {
      const im = (r.images as { width: number; height: number; data: Uint8Array; camera: string }[])[0]!;
      expect([im.width, im.height, im.camera]).toEqual([obs.images[0]!.image.width, obs.images[0]!.image.height, 'top']);
      expect(im.data.every((v) => v === 0)).toBe(true);
    }
    const q = recording();
    const pa = await runEpisodes(q, spec('ball'), { episodes: 2, steps: 2, promptAs: 'rover' });
    expect(pa.every((r) => r.condition === 'prompt-as:rover')).toBe(true);
    expect(q.reqs.every((r) => r.promptAs === 'rover' && r.embodiment === 'tracker')).toBe(true);
    // a different prompt gives a different chunk from the same noise; the chunk keeps the tracker's shape
    const own = await policy.act({ ...q.reqs[0]!, promptAs: undefined });
    const other = await policy.act(q.reqs[0]!);
    expect([other.actions.rows, other.actions.dims]).toEqual([12, 2]);
    expect(other.promptTokens).not.toBe(own.promptTokens);
    expect(Array.from(other.raw)).not.toEqual(Array.from(own.raw));
    await expect(policy.act({ ...q.reqs[0]!, promptAs: 'nosuch' })).rejects.toThrow(PolicyError);
    await expect(policy.act({ ...q.reqs[0]!, promptAs: 'nosuch' })).rejects.toThrow(/^promptAs: must name an embodiment/);
  });

  it('a checkpoint without the world embodiments is refused before any act() call', async () => {
    const reg = parseEmbodiments(JSON.parse(await fsp.readFile(nodePath.join(TINY_DIR, 'embodiments.json'), 'utf8')), { hMax: 16, kMax: 16, sMax: 16 }, 'tiny/embodiments.json');
    let calls = 0;
    const p: PolicyLike = { embodiments: reg, act: async () => { calls++; throw new Error('not reached'); } };
    await expect(runEpisodes(p, spec('tabletop', 'planar'), { episodes: 1 })).rejects.toThrow(/has no embodiment "planar".*world embodiments/);
    expect(calls).toBe(0);
  });
});

describe('qvla eval', () => {
  it('rows, progress, JSON, plot and rollouts; the same seed twice gives the same results; existing rollouts are refused', async () => {
    const j1 = nodePath.join(tmp, 'a.json'), j2 = nodePath.join(tmp, 'b.json'), j3 = nodePath.join(tmp, 'c.json');
    const png = nodePath.join(tmp, 'sr.png'), ro = nodePath.join(tmp, 'rollouts');
    const args = ['eval', '--checkpoint', ckpt, '--world', 'ball', '--episodes', '3', '--steps', '2', '--blind', '--prompt-as', 'planar'];
    const r1 = await qvla(...args, '--json', j1, '--plot', png, '--rollouts', ro);
    expect(r1.code, r1.stderr).toBe(0);
    const lines = r1.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[3])).toEqual(['policy', 'blind', 'prompt-as:planar']);
    expect(r1.stderr).toMatch(/\[1\/3\] ball\/tracker\/A policy euler×2 \(NFE 2\): 3\/3 episodes, \d successes/);
    expect(r1.stderr).toMatch(/\[3\/3\] ball\/tracker\/A prompt-as:planar/);

    const doc = JSON.parse(await fsp.readFile(j1, 'utf8'));
    expect(Object.keys(doc)).toEqual(['checkpoint', 'adapter', 'date', 'command', 'results']);
    expect(doc.checkpoint).toBe(ckpt);
    expect(doc.adapter).toBeTypeOf('string');
    expect(Number.isNaN(Date.parse(doc.date))).toBe(false);
    expect(doc.command).toContain('qvla eval --checkpoint');
    expect(doc.results).toHaveLength(3);
    for (const row of doc.results) {
      for (const k of ['world', 'level', 'embodiment', 'task_type', 'condition', 'solver', 'steps', 'nfe', 'episodes', 'successes', 'success_rate', 'ci95', 'metrics', 'wall_s', 'act_calls']) expect(row, k).toHaveProperty(k);
      expect(row).toMatchObject({ world: 'ball', level: 'A', embodiment: 'tracker', task_type: 'trajectory', solver: 'euler', steps: 2, nfe: 2, episodes: 3, act_calls: 3 });
      expect(row.success_rate).toBe(row.successes / 3);
      expect(row.ci95[0]).toBeLessThanOrEqual(row.success_rate);
      expect(row.ci95[1]).toBeGreaterThanOrEqual(row.success_rate);
      for (const k of ['ade', 'fde', 'cv_ade', 'cv_fde']) expect(row.metrics[k]).toBeTypeOf('number');
    }
    expect(await fsp.readdir(tmp).then((f) => f.filter((x) => x.includes('.tmp-')))).toEqual([]);

    const plot = decodePng(await fsp.readFile(png));
    expect(plot.width).toBeGreaterThan(400);

    const files = (await fsp.readdir(ro)).sort();
    expect(files).toHaveLength(3 * 3 * 2);
    expect(files).toContain(`ball-tracker-A-prompt-as-planar-euler2-${EVAL_SEED_BASE + 2}.gif`);
    const gif = readGif(new Uint8Array(await fsp.readFile(nodePath.join(ro, `ball-tracker-A-policy-euler2-${EVAL_SEED_BASE}.gif`))));
    expect(gif).toMatchObject({ width: 256, height: 256, frames: 2 });
    const film = decodePng(await fsp.readFile(nodePath.join(ro, `ball-tracker-A-blind-euler2-${EVAL_SEED_BASE + 1}-strip.png`)));
    expect([film.width, film.height]).toEqual([128 + 4 + 128, 128]);

    // same seed, no rollouts, quiet: identical results, nothing on stderr
    const r2 = await qvla(...args, '--json', j2, '--quiet');
    expect(r2.code).toBe(0);
    expect(r2.stderr).toBe('');
    const doc2 = JSON.parse(await fsp.readFile(j2, 'utf8'));
    const key = (d: { results: Record<string, unknown>[] }) => d.results.map(({ wall_s: _w, ...r }) => r);
    expect(key(doc2)).toEqual(key(doc));

    // the rollouts exist now: refused before anything is loaded or written
    const before = await fsp.readdir(ro);
    const mtime = (await fsp.stat(nodePath.join(ro, before[0]!))).mtimeMs;
    const r3 = await qvla(...args, '--json', j3, '--rollouts', ro);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(new RegExp(`rollout file ${ro.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/ball-tracker-A-policy-euler2-${EVAL_SEED_BASE}\\.gif already exists`));
    expect(r3.stderr).not.toMatch(/loading/);
    expect((await fsp.readdir(ro)).sort()).toEqual(before.sort());
    expect((await fsp.stat(nodePath.join(ro, before[0]!))).mtimeMs).toBe(mtime);
    await expect(fsp.stat(j3)).rejects.toThrow();
  });

  it('bad input is a usage error (exit 2) naming the flag, before the GPU is touched', async () => {
    const cases: [string[], RegExp][] = [
      [['--world', 'moon'], /--world must be one of tabletop, nav, ball, all/],
      [['--embodiment', 'aloha'], /--embodiment: unknown embodiment "aloha"/],
      [['--level', 'C'], /--level must be one of A, B, bimodal, all/],
      [['--world', 'ball', '--embodiment', 'planar'], /no world matches --world ball --embodiment planar/],
      [['--solver', 'euler,rk5'], /--solver: unknown solver "rk5"/],
      [['--steps', '2,0'], /--steps: "0" is not an integer in \[1, 1000\]/],
      [['--steps', '-1'], /--steps/],
      [['--episodes', '0'], /--episodes must be ≥ 1/],
      [['--seed', '5'], /--seed 5 is below 1000000000/],
      [['--plot', 'x.gif'], /--plot: the file must end in .png or .svg/],
      [['--prompt-as', 'aloha'], /--prompt-as: .* has no embodiment "aloha"/],
      [['--world', 'ball', '--prompt-as', 'tracker'], /--prompt-as tracker names the embodiment being evaluated/],
      [['--checkpoint', TINY_DIR, '--world', 'ball'], /--checkpoint .*has no embodiment "tracker".*world embodiments/],
    ];
    for (const [extra, re] of cases) {
      const r = await qvla('eval', ...(extra.includes('--checkpoint') ? [] : ['--checkpoint', ckpt]), ...extra);
      expect(r.code, extra.join(' ')).toBe(2);
      expect(r.stderr, extra.join(' ')).toMatch(re);
      expect(r.stdout).toBe('');
    }
  });
});

// The committed trained checkpoint (weights/toy) in closed loop: a short navigation evaluation must clear a floor
// well above what the same policy does blind (black frames, same prompt length, same worlds and noise).
// Navigation is the world this checkpoint has clearly learned (bench/RESULTS.md "Closed-loop evaluation": 25/30 vs
// 1/30 blind); tabletop (35–43 % vs 5–7 % blind over 20–30 episodes) and ball use the image since stage 2 but are
// below their goals, so they have no floor here yet. The floor (a third of the episodes, and 25 points above blind
// as issue 14 asks of every world) leaves room below stage 2's 6/12 on these seeds: a regression guard, not a
// restatement of one run.
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/policy/policy.js';
import { runEpisodes, summarise } from '../../src/eval/episodes.js';
import { findWorldSpecs, EVAL_SEED_BASE } from '../../src/worlds/registry.js';

const TOY = nodePath.resolve('weights/toy');
const EPISODES = 12;

describe.skipIf(!existsSync(nodePath.join(TOY, 'config.json')))('weights/toy in closed loop', () => {
  let policy: Policy;
  beforeAll(async () => {
    policy = await Policy.load(TOY, { stageTimings: false });
  });
  afterAll(() => policy?.destroy());

  it(`navigation: ≥ 1/3 success over ${EPISODES} unseen episodes and ≥ 25 points above the blind policy`, async () => {
    const spec = findWorldSpecs('nav', 'rover', 'A')[0]!;
    const opts = { episodes: EPISODES, seed: EVAL_SEED_BASE + 500 };
    const seeing = summarise(await runEpisodes(policy, spec, opts));
    const blind = summarise(await runEpisodes(policy, spec, { ...opts, blind: true }));
    console.log(`weights/toy nav: policy ${seeing.successes}/${EPISODES}, blind ${blind.successes}/${EPISODES}`);
    expect(seeing.successes / EPISODES).toBeGreaterThanOrEqual(1 / 3);
    expect(seeing.successes - blind.successes).toBeGreaterThanOrEqual(Math.ceil(0.25 * EPISODES));
  }, 900_000); // a blind episode runs all 25 decisions: ~300 act() rows on lavapipe
});

// The playground in a real browser: headless Chromium (Debian's `chromium`, driven by puppeteer-core; no browser
// download) loads web/index.html from `qvla web`'s server with ?world=&embodiment=&seed=&episodes=1&auto=1, runs one
// short episode per task family (tabletop, nav, ball) on its WebGPU adapter (SwiftShader here: no shader-f16, so
// f32 weights), and must report the same success and the same actions (f32 tolerance) as the Node engine
// (Dawn / lavapipe) running runEpisodes on the same checkpoint and seeds. Screenshots mid-episode and after it,
// results.json (comparison + timings) go to $QVLA_WEB_OUT or a fresh temp directory (path printed).
//
// Checkpoint: weights/toy when it has the world embodiments, else a stand-in made from weights/tiny (random weights,
// the same engine path) with the world embodiments and a small preprocessor_config.json.
// Skipped, with a message, when no chromium is installed (tools/setup.sh installs it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, mkdirSync, copyFileSync, readdirSync, rmSync, writeFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'puppeteer-core';
import { startWebServer, type WebServer } from '../../src/cli/cmdWeb.js';
import { Policy } from '../../src/policy/policy.js';
import { runEpisodes, embodimentMismatch, decisionSeed, type EpisodeResult } from '../../src/eval/episodes.js';
import type { ActRequest, StageTimings } from '../../src/policy/policy.js';
import { frameHash } from '../../src/preprocess/image.js';
import { findWorldSpecs, worldEmbodiments, EVAL_SEED_BASE } from '../../src/worlds/registry.js';
import { parseEmbodiments } from '../../src/policy/embodiments.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** $QVLA_CHROMIUM when set (only that path), else Debian's chromium or another system Chrome. */
function findChromium(): string | null {
  const env = process.env['QVLA_CHROMIUM'];
  const candidates = env !== undefined ? [env] : ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return candidates.find((c) => c.length > 0 && existsSync(c)) ?? null;
}

const CHROMIUM = findChromium();
if (!CHROMIUM) {
  console.warn(`[test/web/browser.test.ts] SKIPPED: no chromium (looked for ${process.env['QVLA_CHROMIUM'] ?? '/usr/bin/chromium, chromium-browser, google-chrome'}). ` +
    'Install it with `apt-get install chromium` (tools/setup.sh does this) to test the playground in a real browser.');
}

const FAMILIES = [
  { world: 'tabletop', embodiment: 'planar' },
  { world: 'nav', embodiment: 'rover' },
  { world: 'ball', embodiment: 'tracker' },
] as const;
// with weights/toy, steps 2 and 3 decisions this seed succeeds on nav and ball and fails on tabletop (both outcomes compared)
const SEED = EVAL_SEED_BASE + 1;
const STEPS = 2;
const MAX_DECISIONS = 3;
/** |browser − node| ≤ ATOL + RTOL·|node| per action value (two f32 GPU implementations, a closed loop of ≤ 3 decisions). */
const ATOL = 2e-3, RTOL = 1e-3;

interface PageEpisode { world: string; embodiment: string; seed: number; success: boolean | null; steps: number | null; decisions: number; actions: number[][]; frames: string[] }
interface PageResult {
  status: string; adapter: string; weightDtype: string; errors: string[]; episodes: PageEpisode[];
  load: Record<string, number>; latency: { first_total_ms: number | null; warm_mean_total_ms: number | null; warm_mean_stages_ms: Record<string, number> | null };
}

/** Mean per stage (the page's names: denoise = all steps). */
function meanStages(ts: StageTimings[]): Record<string, number> {
  const keys = ['preprocessMs', 'visionMs', 'prefillMs', 'contextMs', 'denoise', 'readbackMs', 'postprocessMs', 'totalMs'] as const;
  const v = (t: StageTimings, k: (typeof keys)[number]) => (k === 'denoise' ? t.stepMs.reduce((a, b) => a + b, 0) : t[k]);
  return Object.fromEntries(keys.map((k) => [k, ts.reduce((a, t) => a + v(t, k), 0) / ts.length]));
}

/** weights/toy when trained on the worlds, else weights/tiny + the world embodiments (random weights). */
async function checkpointForWorlds(tmp: string): Promise<{ dir: string; standIn: boolean }> {
  const toy = path.join(ROOT, 'weights', 'toy');
  if (existsSync(path.join(toy, 'config.json'))) {
    const ck = await openCheckpoint(toy, { requireTokenizer: false });
    try {
      const ae = ck.config.actionExpert;
      if (ck.embodiments && ae) {
        const reg = parseEmbodiments(ck.embodiments, { kMax: ae.kMax, sMax: ae.sMax, hMax: ae.hMax }, toy);
        if (FAMILIES.every((f) => embodimentMismatch(reg, f.embodiment) === null)) return { dir: toy, standIn: false };
      }
    } finally {
      await ck.close();
    }
  }
  const dir = path.join(tmp, 'toyish');
  mkdirSync(dir);
  const tiny = path.join(ROOT, 'weights', 'tiny');
  for (const f of readdirSync(tiny)) if (statSync(path.join(tiny, f)).isFile()) copyFileSync(path.join(tiny, f), path.join(dir, f));
  writeFileSync(path.join(dir, 'embodiments.json'), JSON.stringify(worldEmbodiments(), null, 1));
  writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ min_pixels: 4096, max_pixels: 16384 }));
  return { dir, standIn: true };
}

describe.skipIf(!CHROMIUM)('the playground in headless Chromium (WebGPU) matches the Node engine', () => {
  let out = '';
  let ckpt = '';
  let server: WebServer | null = null;
  let browser: Browser | null = null;
  let policy: Policy | null = null;
  let nodeLoadMs = 0;
  const rows: Record<string, unknown>[] = [];
  /** temporary directories removed at the end (not the output directory) */
  const scratch: string[] = [];

  beforeAll(async () => {
    out = process.env['QVLA_WEB_OUT'] ?? mkdtempSync(path.join(os.tmpdir(), 'qvla-web-'));
    mkdirSync(out, { recursive: true });
    console.log(`[test/web] output (screenshots, results.json): ${out}`);
    // the bundle goes to a directory of its own (a parallel test or a developer's dist/web/ is left alone)
    const bundleDir = mkdtempSync(path.join(os.tmpdir(), 'qvla-web-bundle-'));
    scratch.push(bundleDir);
    await (await import('../../web/build.mjs')).buildWeb({ outdir: bundleDir });
    const ckptTmp = mkdtempSync(path.join(os.tmpdir(), 'qvla-web-ckpt-'));
    scratch.push(ckptTmp);
    const c = await checkpointForWorlds(ckptTmp);
    ckpt = c.dir;
    console.log(`[test/web] checkpoint ${ckpt}${c.standIn ? ' (stand-in: weights/tiny + world embodiments, random weights)' : ''}`);
    server = await startWebServer({ checkpoint: ckpt, port: 0, bundleDir });
    const puppeteer = (await import('puppeteer-core')).default;
    browser = await puppeteer.launch({
      executablePath: CHROMIUM!,
      headless: true,
      args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=native'],
    });
    const t = performance.now();
    policy = await Policy.load(ckpt, { weightDtype: 'f32' });
    nodeLoadMs = performance.now() - t;
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    policy?.destroy();
    for (const d of scratch) rmSync(d, { recursive: true, force: true });
    if (rows.length) {
      writeFileSync(path.join(out, 'results.json'), JSON.stringify({ checkpoint: ckpt, node_adapter: policy?.gpu.description, rows }, null, 1));
      console.log(`[test/web] results: ${path.join(out, 'results.json')}`);
    }
  });

  for (const fam of FAMILIES) {
    it(`${fam.world}/${fam.embodiment}: finishes in the browser with the Node engine's success and actions`, async () => {
      const spec = findWorldSpecs(fam.world, fam.embodiment, 'A')[0]!;
      const page = await browser!.newPage();
      await page.setViewport({ width: 1400, height: 1100 });
      const consoleLines: string[] = [];
      page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => consoleLines.push(`pageerror: ${(e as Error).message}`));
      try {
        const q = new URLSearchParams({
          world: fam.world, embodiment: fam.embodiment, seed: String(SEED), episodes: '1', auto: '1',
          steps: String(STEPS), maxDecisions: String(MAX_DECISIONS), delay: '700',
        });
        await page.goto(`${server!.url}web/index.html?${q}`);
        const read = async (): Promise<PageResult> => JSON.parse(await page.$eval('#qvla-result', (e) => e.textContent ?? '')) as PageResult;
        // mid-episode: the first chunk is drawn (the page then waits `delay` ms before executing it)
        await page.waitForFunction(() => {
          const t = document.getElementById('qvla-result')?.textContent;
          const st = document.body.dataset['status'];
          return st === 'error' || (!!t && (JSON.parse(t) as { decisions_done: number }).decisions_done >= 1);
        }, { timeout: 240_000, polling: 50 });
        const mid = path.join(out, `${fam.world}-${fam.embodiment}-mid.png`);
        await page.screenshot({ path: mid as `${string}.png` });
        await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset['status'] ?? ''), { timeout: 240_000, polling: 100 });
        await page.waitForFunction(() => document.body.dataset['explorer'] === 'ready' || document.body.dataset['status'] === 'error', { timeout: 60_000, polling: 100 }).catch(() => undefined);
        const after = path.join(out, `${fam.world}-${fam.embodiment}-after.png`);
        await page.screenshot({ path: after as `${string}.png`, fullPage: true });
        console.log(`[test/web] screenshots: ${mid} ${after}`);
        const res = await read();
        expect(res.errors, consoleLines.join('\n')).toEqual([]);
        expect(res.status).toBe('done');
        expect(res.adapter.length).toBeGreaterThan(0);
        expect(res.weightDtype).toBe('f32');
        expect(res.episodes).toHaveLength(1);
        const b = res.episodes[0]!;
        expect(b).toMatchObject({ world: fam.world, embodiment: fam.embodiment, seed: SEED, steps: STEPS });
        expect(typeof b.success).toBe('boolean');
        for (const a of b.actions) for (const v of a) expect(Number.isFinite(v)).toBe(true);

        if (fam.world === 'tabletop') {
          // the chunk explorer re-decides the same observation with another solver; chat answers about the frame
          await page.select('#x-solver', 'heun');
          await page.waitForFunction(() => (document.getElementById('x-summary')?.textContent ?? '').startsWith('heun,'), { timeout: 180_000, polling: 100 });
          await page.$eval('#chat-tokens', (e) => { (e as HTMLInputElement).value = '3'; });
          await page.click('#chat-suggestions button');
          await page.click('#chat-ask');
          await page.waitForFunction(() => /tokens, \d+ ms\)$/.test(document.getElementById('chat-answer')?.textContent ?? ''), { timeout: 240_000, polling: 200 });
          const chat = path.join(out, `${fam.world}-${fam.embodiment}-explorer-chat.png`);
          await page.screenshot({ path: chat as `${string}.png`, fullPage: true });
          console.log(`[test/web] explorer (heun) + chat: ${chat}; answer ${JSON.stringify(await page.$eval('#chat-answer', (e) => e.textContent))}`);
          expect((await read()).errors, consoleLines.join('\n')).toEqual([]);
        }

        // 1. closed loop: runEpisodes in this process with the Node policy, same checkpoint, seed, solver steps and cut
        const nodeActions: number[][] = [];
        const nodeFrames: string[] = [];
        const nodeCalls: number[] = [];
        const nodeTimings: StageTimings[] = [];
        const timed = {
          embodiments: policy!.embodiments,
          act: (r: ActRequest) => policy!.act(r),
          actBatch: async (rs: ActRequest[]) => {
            const o = await policy!.actBatch(rs);
            nodeCalls.push(o[0]!.timings.totalMs);
            nodeTimings.push(o[0]!.timings);
            return o;
          },
        };
        let shape: [number, number] = [0, 0];
        const [n] = (await runEpisodes(timed, spec, {
          episodes: 1, seed: SEED, steps: STEPS, maxDecisions: MAX_DECISIONS,
          onDecision: (_e, w, chunk) => {
            nodeActions.push(Array.from(chunk.data));
            nodeFrames.push(frameHash(w.observe().images.map((i) => i.image)));
            shape = [chunk.rows, chunk.channels];
          },
        })) as [EpisodeResult];
        expect(b.decisions).toBe(n.decisions);
        expect(b.actions.length).toBe(nodeActions.length);

        // 2. open loop: the browser's own observations, replayed here from its executed chunks (the page's frame
        //    hashes prove the replay shows the Node policy the very frames the browser policy saw), decided by Node
        const replay = spec.create(SEED);
        const openLoop: number[][] = [];
        for (let d = 0; d < b.actions.length; d++) {
          const obs = replay.observe();
          expect(frameHash(obs.images.map((i) => i.image)), `replayed frame of decision ${d + 1}`).toBe(b.frames[d]);
          const [r] = await policy!.actBatch([{
            images: obs.images.map(({ camera, image }) => ({ ...image, camera })), instruction: obs.instruction,
            embodiment: spec.embodiment, state: obs.state, seed: decisionSeed(SEED, d), steps: STEPS,
          }]);
          openLoop.push(Array.from(r!.actions.actions));
          replay.step({ rows: shape[0], channels: shape[1], data: Float32Array.from(b.actions[d]!) });
        }

        const compare = (ref: number[][]) => ref.map((na, d) => {
          const ba = b.actions[d]!;
          expect(ba.length).toBe(na.length);
          let abs = 0, worst = 0;
          na.forEach((v, k) => {
            const diff = Math.abs(ba[k]! - v);
            abs = Math.max(abs, diff);
            worst = Math.max(worst, diff / (ATOL + RTOL * Math.abs(v)));
          });
          return { abs, worst };
        });
        const closed = compare(nodeActions);
        const open = compare(openLoop);
        // a closed-loop decision is comparable while both runs saw the same frames; after a frame differs (an f32
        // difference in an executed action moved the robot across a pixel edge), only the open-loop check applies
        const sameFrames = nodeFrames.map((h, d) => h === b.frames[d]);
        const firstSplit = sameFrames.indexOf(false);
        const comparable = firstSplit < 0 ? closed.length : firstSplit;
        writeFileSync(path.join(out, `${fam.world}-${fam.embodiment}-actions.json`), JSON.stringify({
          browser: b.actions, node_closed_loop: nodeActions, node_open_loop: openLoop,
          frames_browser: b.frames, frames_node: nodeFrames, closed, open,
        }));
        const maxAbs = Math.max(...closed.slice(0, comparable).map((c) => c.abs), 0);
        const warmNode = nodeCalls.slice(1);
        const row = {
          family: `${fam.world}/${fam.embodiment}`, seed: SEED, decisions: n.decisions,
          success_browser: b.success, success_node: n.success,
          closed_loop_same_frames: sameFrames, closed_loop_comparable_decisions: comparable, closed_loop_max_abs_diff_comparable: maxAbs, closed_loop_max_abs_diff: closed.map((c) => c.abs), open_loop_max_abs_diff: open.map((c) => c.abs),
          browser: {
            adapter: res.adapter, page_to_ready_ms: res.load['ready_ms'], adapter_ms: res.load['adapter_ms'], policy_load_ms: res.load['policy_ms'],
            http_bytes: res.load['http_bytes'], http_requests: res.load['http_requests'], pipelines: res.load['pipelines'],
            first_act_ms: res.latency.first_total_ms, warm_act_ms: res.latency.warm_mean_total_ms, warm_stages_ms: res.latency.warm_mean_stages_ms,
          },
          node: {
            adapter: policy!.gpu.description, policy_load_ms: nodeLoadMs, first_act_ms: nodeCalls[0] ?? null, pipelines: policy!.gpu.pipelines.size,
            warm_act_ms: warmNode.length ? warmNode.reduce((a, c) => a + c, 0) / warmNode.length : null,
            warm_stages_ms: nodeTimings.length > 1 ? meanStages(nodeTimings.slice(1)) : null,
          },
          screenshots: [mid, after],
        };
        rows.push(row);
        const fmt = (v: number) => v.toExponential(2);
        console.log(`[test/web] ${row.family} seed ${SEED}: success browser ${b.success} / node ${n.success}, ${n.decisions} decision(s); ` +
          `max |Δaction| browser vs node: closed loop ${closed.map((c, d) => `${fmt(c.abs)}${sameFrames[d] ? '' : ' (frames differ)'}`).join(', ')}; ` +
          `open loop ${open.map((c) => fmt(c.abs)).join(', ')}\n` +
          `  browser (${res.adapter}) load ${res.load['policy_ms']?.toFixed(0)} ms, first act ${res.latency.first_total_ms?.toFixed(0)} ms, ` +
          `warm act ${res.latency.warm_mean_total_ms?.toFixed(0) ?? '-'} ms | node (${policy!.gpu.description}) load ${nodeLoadMs.toFixed(0)} ms, ` +
          `first act ${nodeCalls[0]?.toFixed(0)} ms, warm act ${row.node.warm_act_ms?.toFixed(0) ?? '-'} ms`);
        expect(b.success).toBe(n.success);
        expect(sameFrames[0], 'the first frame is the world\'s reset: it cannot differ').toBe(true);
        closed.slice(0, comparable).forEach((c, d) => expect(c.worst, `closed loop, decision ${d + 1}: max |Δ| ${c.abs}`).toBeLessThanOrEqual(1));
        open.forEach((c, d) => expect(c.worst, `open loop, decision ${d + 1}: max |Δ| ${c.abs}`).toBeLessThanOrEqual(1));
      } finally {
        await page.close();
      }
    }, 480_000);
  }
});

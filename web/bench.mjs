// Browser vs Node timings for the same checkpoint: cold load and act() latency of the playground in headless
// Chromium (its WebGPU adapter: SwiftShader on a GPU-less machine) next to the Node engine (Dawn: lavapipe here).
//
//   npm run build && npm run build:web && node web/bench.mjs --checkpoint DIR [--decisions 6] [--steps 4] [--json out.json]
//
// Per world family (tabletop/planar, nav/rover, ball/tracker; level A, one episode, seed EVAL_SEED_BASE): the page
// is loaded fresh (a new tab: new device, shaders compiled again) with ?auto=1, and the Node engine runs the same
// episode in this process (a fresh Policy per family, so its first act() compiles its pipelines too).
// Cold load = navigation start → policy ready (bundle, adapter, checkpoint fetch + upload) in the browser,
// Policy.load (device, read, upload) in Node; "first act" includes shader compilation; "warm act" is the mean of the
// other decisions (ActResult.timings.totalMs, stage syncs on).
import * as path from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => pathToFileURL(path.join(ROOT, 'dist', 'src', p)).href;
const { values: a } = parseArgs({
  options: {
    checkpoint: { type: 'string' }, decisions: { type: 'string', default: '6' }, steps: { type: 'string', default: '4' },
    json: { type: 'string' }, chromium: { type: 'string', default: '/usr/bin/chromium' }, families: { type: 'string', default: 'tabletop,nav,ball' },
  },
});
if (!a.checkpoint) throw new Error('--checkpoint DIR is required (a checkpoint with the world embodiments)');
if (!existsSync(path.join(ROOT, 'dist', 'web', 'playground.js'))) throw new Error('run npm run build:web first');
const { startWebServer } = await import(dist('cli/cmdWeb.js'));
const { Policy } = await import(dist('policy/policy.js'));
const { runEpisodes } = await import(dist('eval/episodes.js'));
const { findWorldSpecs, EVAL_SEED_BASE } = await import(dist('worlds/registry.js'));
const puppeteer = (await import('puppeteer-core')).default;

const FAMILIES = { tabletop: 'planar', nav: 'rover', ball: 'tracker' };
const decisions = Number(a.decisions), steps = Number(a.steps);
const mean = (xs) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
const STAGES = ['preprocessMs', 'visionMs', 'prefillMs', 'contextMs', 'denoise', 'readbackMs', 'postprocessMs', 'totalMs'];
/** mean per stage, as the page reports them (denoise = all steps) */
const stages = (ts) => (ts.length ? Object.fromEntries(STAGES.map((k) => [k, mean(ts.map((t) => (k === 'denoise' ? t.stepMs.reduce((a, b) => a + b, 0) : t[k])))])) : null);
const server = await startWebServer({ checkpoint: a.checkpoint, port: 0 });
const browser = await puppeteer.launch({
  executablePath: a.chromium, headless: true,
  args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=native'],
});
const rows = [];
try {
  for (const world of a.families.split(',')) {
    const embodiment = FAMILIES[world];
    const q = new URLSearchParams({ world, embodiment, seed: String(EVAL_SEED_BASE), episodes: '1', auto: '1', steps: String(steps), maxDecisions: String(decisions) });
    const page = await browser.newPage();
    await page.goto(`${server.url}web/index.html?${q}`);
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.status), { timeout: 600_000, polling: 200 });
    const res = JSON.parse(await page.$eval('#qvla-result', (e) => e.textContent));
    await page.close();
    if (res.errors.length) throw new Error(`${world}: ${res.errors.join('; ')}`);
    const per = res.latency.per_call.map((c) => c.total_ms);

    const t = performance.now();
    const policy = await Policy.load(a.checkpoint, { weightDtype: 'f32' });
    const loadMs = performance.now() - t;
    const node = [];
    const nodeT = [];
    const actor = {
      embodiments: policy.embodiments, act: (r) => policy.act(r),
      actBatch: async (rs) => { const o = await policy.actBatch(rs); node.push(o[0].timings.totalMs); nodeT.push(o[0].timings); return o; },
    };
    await runEpisodes(actor, findWorldSpecs(world, embodiment, 'A')[0], { episodes: 1, seed: EVAL_SEED_BASE, steps, maxDecisions: decisions });
    const nodeAdapter = policy.gpu.description;
    policy.destroy();
    rows.push({
      family: `${world}/${embodiment}`, decisions: per.length,
      browser: {
        adapter: res.adapter, cold_ready_ms: res.load.ready_ms, script_ms: res.load.script_ms, adapter_ms: res.load.adapter_ms, policy_load_ms: res.load.policy_ms,
        first_act_ms: per[0], warm_act_ms: mean(per.slice(1)), warm_stages_ms: res.latency.warm_mean_stages_ms,
        http_bytes: res.load.http_bytes, http_requests: res.load.http_requests, pipelines: res.load.pipelines,
      },
      node: { adapter: nodeAdapter, policy_load_ms: loadMs, first_act_ms: node[0], warm_act_ms: mean(node.slice(1)), warm_stages_ms: stages(nodeT.slice(1)) },
    });
    console.error(`${world}: done`);
  }
} finally {
  await browser.close();
  await server.close();
}
const f = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '–');
console.log(`checkpoint ${a.checkpoint}; ${steps} solver steps; browser: ${rows[0]?.browser.adapter}; node: ${rows[0]?.node.adapter}`);
console.log('| family | decisions | browser cold load → ready (ms) | browser first act (ms) | browser warm act (ms) | node Policy.load (ms) | node first act (ms) | node warm act (ms) |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.family} | ${r.decisions} | ${f(r.browser.cold_ready_ms)} | ${f(r.browser.first_act_ms)} | ${f(r.browser.warm_act_ms)} | ${f(r.node.policy_load_ms)} | ${f(r.node.first_act_ms)} | ${f(r.node.warm_act_ms)} |`);
}
if (a.json) writeFileSync(a.json, JSON.stringify({ checkpoint: a.checkpoint, steps, decisions, rows }, null, 1));

// The qvla playground (web/index.html): the engine of src/ in a browser tab. Load a checkpoint over HTTP, run
// closed-loop episodes in the toy worlds with the policy in the loop (src/eval runEpisodes), watch them, compare
// solvers / step counts on a decision, ask the VLM about a frame.
//
// URL parameters (all optional): checkpoint (URL of the checkpoint directory, default /checkpoint),
// world, embodiment, level, seed, episodes, solver, steps, maxDecisions, batch, instruction (overrides the world's),
// dtype (f32 | f16), delay (ms after each decision, for watching), scale (picture zoom), auto=1 (run at once).
// Results go to <pre id="qvla-result"> as JSON: { episodes: [{ world, embodiment, seed, success, steps, … }],
// adapter, errors, status, load, latency }.
import kernels from 'qvla:kernels';
import { setPlatform } from '../../src/platform/index.js';
import { browserPlatform, type HttpStats } from '../../src/platform/browser.js';
import { Gpu } from '../../src/gpu/device.js';
import { Policy, type ActRequest, type ActResult, type StageTimings } from '../../src/policy/policy.js';
import { unnormalizeActions } from '../../src/policy/embodiments.js';
import { SOLVERS, type SolverName } from '../../src/policy/samplers.js';
import { runEpisodes, decisionSeed, embodimentMismatch, type PolicyLike, type EpisodeResult } from '../../src/eval/episodes.js';
import { WORLD_SPECS, EVAL_SEED_BASE } from '../../src/worlds/registry.js';
import type { Chunk, World, WorldSpec } from '../../src/worlds/types.js';
import { frameHash, type RawImage } from '../../src/preprocess/image.js';
import { Rng } from '../../src/util/rng.js';
import { drawImage, imageFromBlob } from './frames.js';

const T_SCRIPT = performance.now(); // ms since navigation start: page + bundle load
const http: HttpStats = { requests: 0, bytes: 0 };
setPlatform(browserPlatform({ kernels, stats: http }));

// ---------------------------------------------------------------------------------------------------------
// Page state

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
};
const params = new URLSearchParams(location.search);
const num = (k: string, def: number): number => {
  const v = params.get(k);
  return v === null || v === '' || !Number.isFinite(Number(v)) ? def : Number(v);
};

interface EpisodeEntry {
  world: string;
  embodiment: string;
  level: string;
  seed: number;
  success: boolean | null;
  /** solver steps per decision (EpisodeResult.steps) */
  steps: number | null;
  solver: string | null;
  decisions: number;
  metrics?: Record<string, number>;
  /** the executed chunk of every decision, rows × channels row-major (physical units) */
  actions: number[][];
  /** FNV-1a (hex) of the camera frames the policy saw at every decision (cross-checks a replay elsewhere) */
  frames: string[];
}

interface CallRecord {
  rows: number;
  wallMs: number;
  timings: StageTimings;
}

const result = {
  status: 'loading' as 'loading' | 'ready' | 'running' | 'done' | 'error',
  adapter: '',
  features: [] as string[],
  checkpoint: params.get('checkpoint') ?? '/checkpoint',
  weightDtype: 'f32' as 'f32' | 'f16',
  episodes: [] as EpisodeEntry[],
  decisions_done: 0,
  load: {} as Record<string, number>,
  latency: {} as Record<string, unknown>,
  errors: [] as string[],
};

function publish(): void {
  $('qvla-result').textContent = JSON.stringify(result, null, 1);
  document.body.dataset['status'] = result.status;
}

function fail(e: unknown): void {
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  result.errors.push(msg);
  const box = $('errors');
  box.hidden = false;
  box.textContent = result.errors.join('\n');
  publish();
}
window.addEventListener('error', (ev) => fail(ev.error ?? ev.message));
window.addEventListener('unhandledrejection', (ev) => fail(ev.reason));

function status(text: string): void {
  $('status').textContent = text;
}

let policy: Policy | null = null;
// One policy call at a time (act / actBatch / chat are serialised by the Policy itself; this queues instead of failing).
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const p = queue.then(fn, fn);
  queue = p.catch(() => undefined);
  return p;
}

const calls: CallRecord[] = [];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------
// Controls

const specKey = (s: WorldSpec) => `${s.world}/${s.embodiment}/${s.level}`;

function initControls(): void {
  const sel = $<HTMLSelectElement>('spec');
  for (const s of WORLD_SPECS) sel.add(new Option(`${s.world} · ${s.embodiment} · level ${s.level}`, specKey(s)));
  const w = params.get('world'), e = params.get('embodiment'), l = params.get('level');
  const pick = WORLD_SPECS.find((s) => (!w || s.world === w) && (!e || s.embodiment === e) && (!l || s.level === l));
  if ((w || e || l) && !pick) fail(new Error(`no world matches world=${w} embodiment=${e} level=${l}`));
  if (pick) sel.value = specKey(pick);
  for (const id of ['solver', 'x-solver']) {
    const s = $<HTMLSelectElement>(id);
    for (const name of SOLVERS) s.add(new Option(name, name));
  }
  const solver = params.get('solver');
  if (solver) $<HTMLSelectElement>('solver').value = solver;
  $<HTMLInputElement>('seed').value = String(num('seed', EVAL_SEED_BASE));
  $<HTMLInputElement>('episodes').value = String(num('episodes', 1));
  if (params.get('steps')) $<HTMLInputElement>('steps').value = String(num('steps', 4));
  if (params.get('maxDecisions')) $<HTMLInputElement>('max-decisions').value = String(num('maxDecisions', 0));
  $<HTMLInputElement>('delay').value = String(num('delay', 0));
  $<HTMLInputElement>('instruction').value = params.get('instruction') ?? '';
  sel.addEventListener('change', refreshInstructions);
  $<HTMLInputElement>('seed').addEventListener('change', refreshInstructions);
  refreshInstructions();
  $('run').addEventListener('click', () => void runFromControls().catch(fail));
  $('stop').addEventListener('click', () => { stopRequested = true; });
}

function currentSpec(): WorldSpec {
  const key = $<HTMLSelectElement>('spec').value;
  return WORLD_SPECS.find((s) => specKey(s) === key)!;
}

/** The world's own instruction for the chosen seed, offered (with a few other seeds') as suggestions. */
function refreshInstructions(): void {
  const spec = currentSpec();
  const seed = Number($<HTMLInputElement>('seed').value) || EVAL_SEED_BASE;
  const list = $('instructions');
  list.replaceChildren();
  const seen = new Set<string>();
  for (let k = 0; k < 8; k++) {
    const ins = spec.create(seed + k).observe().instruction;
    if (seen.has(ins)) continue;
    seen.add(ins);
    list.append(new Option(ins));
  }
  $<HTMLInputElement>('instruction').placeholder = `the world's own (seed ${seed}: "${spec.create(seed).observe().instruction}")`;
}

// ---------------------------------------------------------------------------------------------------------
// Episodes

interface Run {
  spec: WorldSpec;
  seed: number;
  solver: SolverName | undefined;
  steps: number | undefined;
  instruction: string;
  views: { canvas: HTMLCanvasElement; caption: HTMLElement }[];
  chunks: Chunk[][];
}
let lastRun: Run | null = null;
let stopRequested = false;

function optionalInt(id: string): number | undefined {
  const v = $<HTMLInputElement>(id).value.trim();
  return v === '' || Number(v) <= 0 ? undefined : Math.floor(Number(v));
}

async function runFromControls(): Promise<void> {
  if (!policy) throw new Error('the policy is not loaded yet');
  const spec = currentSpec();
  await runSpec(spec, {
    seed: Math.floor(Number($<HTMLInputElement>('seed').value)),
    episodes: Math.max(1, Math.floor(Number($<HTMLInputElement>('episodes').value) || 1)),
    solver: ($<HTMLSelectElement>('solver').value || undefined) as SolverName | undefined,
    steps: optionalInt('steps'),
    maxDecisions: optionalInt('max-decisions'),
    batch: num('batch', 16),
    delay: Math.max(0, Number($<HTMLInputElement>('delay').value) || 0),
    instruction: $<HTMLInputElement>('instruction').value.trim(),
  });
}

async function runSpec(spec: WorldSpec, o: {
  seed: number; episodes: number; solver?: SolverName; steps?: number; maxDecisions?: number; batch: number; delay: number; instruction: string;
}): Promise<void> {
  const p = policy!;
  const why = embodimentMismatch(p.embodiments, spec.embodiment);
  if (why) throw new Error(why);
  stopRequested = false;
  $<HTMLButtonElement>('run').disabled = true;
  $<HTMLButtonElement>('stop').disabled = false;
  result.status = 'running';
  result.episodes = [];
  result.decisions_done = 0;
  const scale = num('scale', 3);
  const grid = $('episode-grid');
  grid.replaceChildren();
  const run: Run = { spec, seed: o.seed, solver: o.solver, steps: o.steps, instruction: o.instruction, views: [], chunks: [] };
  lastRun = run;
  for (let e = 0; e < o.episodes; e++) {
    const fig = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.className = 'world';
    const caption = document.createElement('figcaption');
    fig.append(canvas, caption);
    grid.append(fig);
    run.views.push({ canvas, caption });
    run.chunks.push([]);
    const w = spec.create(o.seed + e);
    drawImage(canvas, w.picture(null, scale));
    caption.textContent = `seed ${o.seed + e} · ${o.instruction || w.observe().instruction}`;
    result.episodes.push({
      world: spec.world, embodiment: spec.embodiment, level: spec.level, seed: o.seed + e, success: null,
      steps: o.steps ?? null, solver: o.solver ?? null, decisions: 0, actions: [], frames: [],
    });
  }
  publish();

  const rewrite = (r: ActRequest): ActRequest => (o.instruction ? { ...r, instruction: o.instruction } : r);
  const timed = async (rows: number, f: () => Promise<ActResult[]>): Promise<ActResult[]> => {
    if (stopRequested) throw new Error('stopped');
    const t = performance.now();
    const out = await serial(f);
    calls.push({ rows, wallMs: performance.now() - t, timings: out[0]!.timings });
    renderLatency();
    return out;
  };
  const actor: PolicyLike = {
    embodiments: p.embodiments,
    act: async (r) => (await timed(1, async () => [await p.act(rewrite(r))]))[0]!,
    actBatch: (rs) => timed(rs.length, () => p.actBatch(rs.map(rewrite))),
  };
  status(`running ${o.episodes} episode(s) of ${specKey(spec)}`);
  let results: EpisodeResult[];
  try {
    results = await runEpisodes(actor, spec, {
      episodes: o.episodes, seed: o.seed, solver: o.solver, steps: o.steps, maxDecisions: o.maxDecisions, batch: o.batch,
      onDecision: async (e, world, chunk) => {
        const copy: Chunk = { rows: chunk.rows, channels: chunk.channels, data: Float32Array.from(chunk.data) };
        run.chunks[e]!.push(copy);
        const entry = result.episodes[e]!;
        entry.actions.push(Array.from(copy.data));
        entry.frames.push(frameHash(world.observe().images.map((i) => i.image)));
        entry.decisions = world.decisions + 1;
        result.decisions_done++;
        drawImage(run.views[e]!.canvas, world.picture(copy, scale));
        run.views[e]!.caption.textContent = `seed ${world.seed} · decision ${world.decisions + 1} · ${o.instruction || world.observe().instruction}`;
        publish();
        await sleep(o.delay); // lets the page paint (and a viewer watch)
      },
      onEpisodeEnd: (e, world, r) => {
        drawImage(run.views[e]!.canvas, world.picture(null, scale));
        const v = run.views[e]!;
        v.caption.textContent = `seed ${r.seed} · ${r.success ? 'success' : 'failure'} after ${r.decisions} decision(s)`;
        v.caption.className = r.success ? 'ok' : 'bad';
        Object.assign(result.episodes[e]!, {
          success: r.success, steps: r.steps, solver: r.solver, decisions: r.decisions, metrics: r.metrics,
        });
        publish();
      },
    });
  } catch (e) {
    result.status = 'error';
    status(`${specKey(spec)}: ${e instanceof Error ? e.message : String(e)}`);
    throw e;
  } finally {
    $<HTMLButtonElement>('run').disabled = false;
    $<HTMLButtonElement>('stop').disabled = true;
  }
  const ok = results.filter((r) => r.success).length;
  status(`${specKey(spec)}: ${ok}/${results.length} success · solver ${results[0]?.solver} · ${results[0]?.steps} steps`);
  result.status = 'done';
  publish();
  setupExplorer();
}

// ---------------------------------------------------------------------------------------------------------
// Latency

const STAGES: [keyof StageTimings | 'denoise', string][] = [
  ['preprocessMs', 'preprocess (CPU)'], ['visionMs', 'vision tower'], ['prefillMs', 'prefill'], ['contextMs', 'decoder context'],
  ['denoise', 'denoising (all steps)'], ['readbackMs', 'readback'], ['postprocessMs', 'postprocess'], ['totalMs', 'total act()'],
];

function stageValue(t: StageTimings, k: keyof StageTimings | 'denoise'): number {
  return k === 'denoise' ? t.stepMs.reduce((a, b) => a + b, 0) : (t[k] as number);
}

function renderLatency(): void {
  const first = calls[0];
  const warm = calls.slice(1);
  const mean = (k: keyof StageTimings | 'denoise') => warm.reduce((s, c) => s + stageValue(c.timings, k), 0) / warm.length;
  const rows = STAGES.map(([k, label]) =>
    `<tr><td>${label}</td><td>${first ? stageValue(first.timings, k).toFixed(1) : '–'}</td><td>${warm.length ? mean(k).toFixed(1) : '–'}</td></tr>`);
  $('latency-body').innerHTML = rows.join('');
  $('latency-note').textContent = `${calls.length} call(s); the first includes shader compilation; "warm" = mean of the others.`;
  if (policy) result.load['pipelines'] = policy.gpu.pipelines.size;
  result.latency = {
    calls: calls.length,
    first_total_ms: first?.timings.totalMs ?? null,
    warm_mean_total_ms: warm.length ? mean('totalMs') : null,
    warm_mean_stages_ms: warm.length ? Object.fromEntries(STAGES.map(([k]) => [k, mean(k)])) : null,
    per_call: calls.map((c) => ({ rows: c.rows, total_ms: c.timings.totalMs, wall_ms: c.wallMs })),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Chunk explorer: one decision of the last run, re-decided with another solver / step count

/** The world of episode e just before decision d (replayed from its seed and the executed chunks). */
function replay(run: Run, e: number, d: number): World {
  const w = run.spec.create(run.seed + e);
  for (let k = 0; k < d; k++) w.step(run.chunks[e]![k]!);
  return w;
}

function setupExplorer(): void {
  const run = lastRun;
  if (!run) return;
  const ep = $<HTMLSelectElement>('x-episode');
  ep.replaceChildren(...run.views.map((_, e) => new Option(`seed ${run.seed + e}`, String(e))));
  const dec = $<HTMLInputElement>('x-decision');
  const sync = () => {
    dec.max = String(Math.max(0, run.chunks[Number(ep.value)]!.length - 1));
    if (Number(dec.value) > Number(dec.max)) dec.value = dec.max;
  };
  sync();
  $('explorer').hidden = false;
  ep.onchange = () => { sync(); void explore().catch(fail); };
  $<HTMLSelectElement>('x-solver').value = run.solver ?? policy!.config.actionExpert!.defaultSolver;
  $<HTMLInputElement>('x-steps').value = String(run.steps ?? policy!.config.actionExpert!.defaultSteps);
  void explore().catch(fail);
  setupChat();
}

let trajectory: { chunks: Chunk[]; world: World } | null = null;

async function explore(): Promise<void> {
  const run = lastRun!;
  const e = Number($<HTMLSelectElement>('x-episode').value);
  const d = Number($<HTMLInputElement>('x-decision').value);
  $('x-decision-label').textContent = `${d + 1} / ${run.chunks[e]!.length}`;
  const executed = run.chunks[e]![d];
  if (!executed) return;
  const world = replay(run, e, d);
  const scale = num('scale', 3);
  drawImage($<HTMLCanvasElement>('x-executed'), world.picture(executed, scale));
  const solver = $<HTMLSelectElement>('x-solver').value as SolverName;
  const steps = Math.max(1, Math.min(64, Math.floor(Number($<HTMLInputElement>('x-steps').value) || 1)));
  $('x-steps-label').textContent = String(steps);
  const obs = world.observe();
  const req: ActRequest = {
    images: obs.images.map(({ camera, image }) => ({ ...image, camera })),
    instruction: run.instruction || obs.instruction, embodiment: run.spec.embodiment, state: obs.state,
    seed: decisionSeed(world.seed, world.decisions), solver, steps, returnTrajectory: true,
  };
  const r = await serial(() => policy!.act(req));
  const emb = policy!.embodiment(run.spec.embodiment);
  const K = policy!.config.actionExpert!.kMax;
  const chunks = (r.trajectory ?? [r.raw]).map((raw) => {
    const u = unnormalizeActions(emb, raw, K, obs.state);
    return { rows: u.rows, channels: u.dims, data: u.actions };
  });
  trajectory = { chunks, world };
  const slider = $<HTMLInputElement>('x-traj');
  slider.max = String(chunks.length - 1);
  slider.value = slider.max;
  let maxDiff = 0;
  const a = r.actions.actions;
  for (let k = 0; k < a.length; k++) maxDiff = Math.max(maxDiff, Math.abs(a[k]! - executed.data[k]!));
  $('x-summary').textContent =
    `${solver}, ${steps} step(s), ${r.evaluations} network evaluation(s), ${r.timings.totalMs.toFixed(0)} ms · ` +
    `max |Δ| vs the executed chunk (${run.solver ?? 'default'}, ${run.steps ?? 'default'} steps): ${maxDiff.toPrecision(3)}`;
  showTrajectory();
  renderChunkTable(r.actions.names, chunks[chunks.length - 1]!, executed);
  document.body.dataset['explorer'] = 'ready';
}

function showTrajectory(): void {
  if (!trajectory) return;
  const i = Number($<HTMLInputElement>('x-traj').value);
  $('x-traj-label').textContent = `after step ${i + 1} / ${trajectory.chunks.length}`;
  drawImage($<HTMLCanvasElement>('x-new'), trajectory.world.picture(trajectory.chunks[i]!, num('scale', 3)));
}

function renderChunkTable(names: string[], c: Chunk, executed: Chunk): void {
  const head = `<tr><th>row</th>${names.map((n) => `<th>${n}</th>`).join('')}</tr>`;
  const rows: string[] = [];
  for (let r = 0; r < c.rows; r++) {
    const cells = names.map((_, k) => {
      const v = c.data[r * c.channels + k]!, x = executed.data[r * executed.channels + k]!;
      return `<td title="executed ${x.toFixed(4)}">${v.toFixed(3)}</td>`;
    });
    rows.push(`<tr><td>${r}</td>${cells.join('')}</tr>`);
  }
  $('x-table').innerHTML = head + rows.join('');
}

function initExplorer(): void {
  const again = () => void explore().catch(fail);
  $('x-decision').addEventListener('change', again);
  $('x-solver').addEventListener('change', again);
  $('x-steps').addEventListener('change', again);
  $('x-traj').addEventListener('input', showTrajectory);
}

// ---------------------------------------------------------------------------------------------------------
// Chat: VQA on the explorer's frame (or an uploaded image)

let uploaded: RawImage | null = null;

function chatFrame(): { image: RawImage; world: World | null } | null {
  if (uploaded) return { image: uploaded, world: null };
  const run = lastRun;
  if (!run) return null;
  const e = Number($<HTMLSelectElement>('x-episode').value) || 0;
  const d = Number($<HTMLInputElement>('x-decision').value) || 0;
  const w = replay(run, e, Math.min(d, run.chunks[e]!.length));
  return { image: w.observe().images[0]!.image, world: w };
}

function setupChat(): void {
  $('chat').hidden = false;
  const f = chatFrame();
  if (!f) return;
  drawImage($<HTMLCanvasElement>('chat-frame'), f.image);
  const sugg = $('chat-suggestions');
  sugg.replaceChildren();
  if (f.world) {
    const seen = new Set<string>();
    for (let k = 0; k < 6; k++) {
      const [q, a] = f.world.question(new Rng(k));
      if (seen.has(q)) continue;
      seen.add(q);
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.textContent = q;
      b.onclick = () => { $<HTMLInputElement>('chat-question').value = q; };
      li.append(b, ` expected: ${a}`);
      sugg.append(li);
    }
  }
}

async function ask(): Promise<void> {
  if (!policy) throw new Error('the policy is not loaded yet');
  const q = $<HTMLInputElement>('chat-question').value.trim();
  if (!q) return;
  const f = chatFrame();
  const images = f ? [f.image] : [];
  if (f) drawImage($<HTMLCanvasElement>('chat-frame'), f.image);
  const out = $('chat-answer');
  out.textContent = '…';
  const t = performance.now();
  const r = await serial(() => policy!.chat([{ role: 'user', content: q }], images, { maxNewTokens: Number($<HTMLInputElement>('chat-tokens').value) || 24 }));
  out.textContent = `${r.text}\n(${r.tokens.length} tokens, ${(performance.now() - t).toFixed(0)} ms)`;
}

function initChat(): void {
  $('chat-ask').addEventListener('click', () => void ask().catch(fail));
  $<HTMLInputElement>('chat-question').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') void ask().catch(fail); });
  $<HTMLInputElement>('chat-file').addEventListener('change', async (ev) => {
    const file = (ev.target as HTMLInputElement).files?.[0];
    uploaded = file ? await imageFromBlob(file) : null;
    setupChat();
  });
  $('chat-use-world').addEventListener('click', () => {
    uploaded = null;
    $<HTMLInputElement>('chat-file').value = '';
    setupChat();
  });
}

// ---------------------------------------------------------------------------------------------------------
// Start

async function main(): Promise<void> {
  initControls();
  initExplorer();
  initChat();
  publish();
  result.load['script_ms'] = T_SCRIPT;
  status('requesting a WebGPU adapter…');
  let t = performance.now();
  const gpu = await Gpu.create();
  result.load['adapter_ms'] = performance.now() - t;
  result.adapter = `${gpu.description}${gpu.isSoftware ? ' (software)' : ''}`;
  result.features = [...gpu.adapter.features].sort();
  $('adapter').textContent = `${result.adapter} · shader-f16 ${gpu.features.f16 ? 'yes' : 'no'}`;
  const wantF16 = params.get('dtype') === 'f16';
  if (wantF16 && !gpu.features.f16) fail(new Error('dtype=f16 asked, but this adapter has no shader-f16: loading f32 weights'));
  result.weightDtype = wantF16 && gpu.features.f16 ? 'f16' : 'f32';
  status(`loading ${result.checkpoint} (${result.weightDtype})…`);
  t = performance.now();
  policy = await Policy.load(result.checkpoint, {
    gpu, weightDtype: result.weightDtype,
    onProgress: (p) => status(`uploading weights: ${(p.bytes / 2 ** 20).toFixed(1)} / ${(p.totalBytes / 2 ** 20).toFixed(1)} MiB, ${p.tensors}/${p.totalTensors} tensors`),
  });
  result.load['policy_ms'] = performance.now() - t;
  result.load['ready_ms'] = performance.now();
  result.load['http_requests'] = http.requests;
  result.load['http_bytes'] = http.bytes;
  const missing = WORLD_SPECS.filter((s) => embodimentMismatch(policy!.embodiments, s.embodiment) !== null).map((s) => s.embodiment);
  status(`ready: ${result.checkpoint} loaded in ${result.load['policy_ms'].toFixed(0)} ms` +
    (missing.length ? ` (no world embodiment${missing.length > 1 ? 's' : ''} ${[...new Set(missing)].join(', ')}: those worlds cannot run)` : ''));
  result.status = 'ready';
  $<HTMLButtonElement>('run').disabled = false;
  publish();
  if (params.get('auto') === '1') await runFromControls();
}

main().catch((e) => {
  result.status = 'error';
  status('error');
  fail(e);
});

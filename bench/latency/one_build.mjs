// tiny act() (widowx, 10 Euler steps, stageTimings off) of one build in one process: 3 warm-up calls, then N timed
// calls; prints the times (ms) as JSON. Used by ab_processes.sh. usage: node one_build.mjs BUILD_ROOT [N]
// PREFIX_CACHE=off: the policy's prompt-prefix cache off (PolicyOptions.prefixCache; builds before it ignore it).
import path from 'node:path';
const [root, n] = [path.resolve(process.argv[2]), Number(process.argv[3] ?? 5)];
const { Policy } = await import(path.join(root, 'dist/src/policy/policy.js'));
const p = await Policy.load(path.join(root, 'weights/tiny'), { stageTimings: false, prefixCache: process.env.PREFIX_CACHE !== 'off' });
const emb = p.embodiment('widowx');
const req = { images: emb.cameras.map((c) => path.join(root, 'weights/tiny/samples', `widowx_${c}.png`)), instruction: 'pick up the red block', embodiment: 'widowx', state: emb.state.names.map(() => 0.1), seed: 0, steps: 10, solver: 'euler' };
for (let i = 0; i < 3; i++) await p.act(req);
const ts = [];
for (let i = 0; i < n; i++) { const t0 = performance.now(); await p.act(req); ts.push(performance.now() - t0); }
process.stdout.write(JSON.stringify(ts) + '\n');
p.destroy();

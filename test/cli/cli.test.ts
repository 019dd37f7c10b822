// The built `qvla` command as a subprocess (node bin/qvla.js …). Rebuilds dist/ first when it is stale.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { decode as decodePng, hasPngSignature } from 'fast-png';
import { ROOT, ensureBuilt, errLines, qvla } from './builtCli.js';

let tmp: string;

beforeAll(() => {
  expect(ensureBuilt()).toBe(true);
  tmp = mkdtempSync(nodePath.join(os.tmpdir(), 'qvla-cli-'));
}, 180_000);

describe('qvla usage', () => {
  it('prints help with exit 0', () => {
    const top = qvla('--help');
    expect(top.code).toBe(0);
    for (const c of ['demo', 'run', 'chat', 'inspect', 'serve', 'bench', '--device-info']) expect(top.stdout).toContain(c);
    for (const c of ['run', 'demo', 'chat', 'inspect', 'serve', 'bench']) {
      const r = qvla(c, '--help');
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toMatch(new RegExp(`^usage: qvla ${c}`));
    }
    const run = qvla('run', '-h').stdout;
    for (const o of ['--checkpoint', '--image', '--instruction', '--embodiment', '--state', '--steps', '--solver', '--grid', '--seed', '--f16', '--max-pixels', '--json', '--plot']) {
      expect(run).toContain(o);
    }
    expect(qvla('help', 'serve').stdout).toContain('--max-message-bytes');
    expect(qvla('--version').stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('exits 2 with one clear stderr line on usage errors', () => {
    const cases: [string[], RegExp][] = [
      [['run', '--stpes', '3'], /unknown option --stpes \(did you mean --steps\?\)/],
      [['run', '-e', 'nav'], /--instruction TEXT is required/],
      [['run', '-i', 'go', '--solver', 'dopri5'], /--solver must be one of euler, heun, midpoint, rk4/],
      [['run', '-i', 'go', '--steps', 'ten'], /--steps needs an integer/],
      [['run', '-i', 'go', '-e', 'robot9'], /unknown embodiment \(known: aloha, widowx, nav\)/],
      [['run', '-i', 'go', '-e', 'widowx'], /needs --state with 8 values/],
      [['run', '-i', 'go', '-e', 'nav', '--state', '1,2'], /takes no state/],
      [['run', '-i', 'go', '-e', 'nav', '--image', 'rear=weights/tiny/samples/nav_front.png'], /no camera "rear"/],
      [['run', '-i', 'go', '-e', 'nav', 'no/such.png'], /no such file/],
      [['run', '-i', 'go', '--plot', 'out.jpg'], /must end in .png or .svg/],
      [['run', '-i', 'go', '--checkpoint', '/no/such/dir'], /no such directory/],
      [['frobnicate'], /unknown command/],
      [['--bogus'], /unknown global option/],
      [['inspect', '--json', 'a', 'b'], /at most 1 positional/],
      [['bench', 'nope'], /unknown benchmark/],
    ];
    for (const [args, re] of cases) {
      const r = qvla(...args);
      expect(r.code, args.join(' ')).toBe(2);
      const lines = errLines(r);
      expect(lines.length, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      expect(lines[0], args.join(' ')).toMatch(re);
      expect(r.stdout, args.join(' ')).toBe('');
    }
    expect(qvla().code).toBe(2);
  });

  it('exits 1 on runtime errors (a broken checkpoint)', () => {
    const bad = nodePath.join(tmp, 'broken');
    mkdirSync(bad, { recursive: true });
    writeFileSync(nodePath.join(bad, 'config.json'), '{"not": "a config"}');
    const r = qvla('inspect', bad);
    expect(r.code).toBe(1);
    expect(errLines(r)).toHaveLength(1);
    expect(errLines(r)[0]).toMatch(/^qvla inspect: error: .*config\.json/);
  });

  it('bench dispatches or reports a missing module clearly', () => {
    expect(qvla('bench', '--help').code).toBe(0);
    for (const b of ['e2e', 'steps']) {
      if (existsSync(nodePath.join(ROOT, 'src', 'bench', `${b}.ts`))) continue;
      const r = qvla('bench', b);
      expect(r.code).toBe(1);
      expect(errLines(r)[0]).toMatch(new RegExp(`qvla bench ${b}: not built`));
    }
  });
});

describe('qvla inspect', () => {
  it('summarises weights/tiny', () => {
    const r = qvla('inspect');
    expect(r.code, r.stderr).toBe(0);
    for (const s of ['config', 'Qwen3.5 hybrid decoder', 'QVLA-DiT', 'parameters', 'vision', 'action_expert', 'dtypes', 'BF16', 'model.safetensors', 'embodiments  3', 'widowx', 'navigation']) {
      expect(r.stdout).toContain(s);
    }
    const j = JSON.parse(qvla('inspect', '--json', 'weights/tiny').stdout) as Record<string, any>;
    expect(j['tensors']).toBe(170);
    expect(j['tensor_check'].ok).toBe(true);
    const p = j['parameters'];
    expect(p.total).toBe(p.vision + p.text + p.lm_head + p.action_expert);
    expect(p.total).toBeGreaterThan(1e6);
    expect(j['embodiments'].map((e: any) => [e.key, e.action_dim, e.chunk])).toEqual([['aloha', 14, 16], ['widowx', 7, 4], ['nav', 3, 8]]);
    expect(j['config'].text.layers).toBe(4);
  });
});

describe('qvla run (GPU)', () => {
  it('--json with PNG and SVG plots', () => {
    const png = nodePath.join(tmp, 'aloha.png');
    const svg = nodePath.join(tmp, 'aloha.svg');
    const r = qvla('run', '-q', '--json', '-e', 'aloha', '-i', 'fold the towel', '--steps', '2', '--seed', '5',
      '--image', 'cam_high=weights/tiny/samples/aloha_cam_high.png', '--image', 'cam_left_wrist=weights/tiny/samples/aloha_cam_left_wrist.png',
      '--state', '0,-0.6,0.5,0,0.3,0,0.5,0,-0.6,0.5,0,0.3,0,0.5', '--plot', png, '--plot', svg);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, any>;
    expect(j['embodiment']).toBe('aloha');
    expect(j['action_names']).toHaveLength(14);
    expect(j['action_names'][6]).toBe('left_gripper');
    expect(j['actions']).toHaveLength(16);
    for (const row of j['actions']) {
      expect(row).toHaveLength(14);
      for (const v of row) expect(Number.isFinite(v)).toBe(true);
    }
    expect(j['raw'].shape).toEqual([16, 16]);
    expect(j['raw'].data).toHaveLength(16);
    expect(j['steps']).toBe(2);
    expect(j['seed']).toBe(5);
    expect(j['cameras']).toEqual(['cam_high', 'cam_left_wrist']);
    const t = j['timings_ms'];
    for (const k of ['preprocess', 'vision', 'prefill', 'context', 'denoise', 'readback', 'postprocess', 'total']) expect(typeof t[k]).toBe('number');
    expect(t.steps).toHaveLength(2);

    const bytes = readFileSync(png);
    expect(hasPngSignature(bytes)).toBe(true);
    const img = decodePng(bytes);
    expect(img.width).toBeGreaterThan(400);
    expect(img.height).toBeGreaterThan(300);
    expect(img.channels).toBe(4);
    // not a blank image: some dark (text/axes) and some coloured (line) pixels
    let dark = 0, coloured = 0;
    for (let i = 0; i < img.width * img.height; i++) {
      const [R, G, B] = [img.data[4 * i]!, img.data[4 * i + 1]!, img.data[4 * i + 2]!];
      if (R < 80 && G < 80 && B < 80) dark++;
      if (Math.max(R, G, B) - Math.min(R, G, B) > 80) coloured++;
    }
    expect(dark).toBeGreaterThan(500);
    expect(coloured).toBeGreaterThan(500);

    const s = readFileSync(svg, 'utf8');
    expect(s.startsWith('<?xml')).toBe(true);
    expect(s).toMatch(/<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(s.trim().endsWith('</svg>')).toBe(true);
    expect(s).toContain('>left_gripper</text>');
    expect((s.match(/<polyline /g) ?? []).length).toBeGreaterThanOrEqual(14);
  });

  it('prints the action table and latency breakdown; navigation plot', () => {
    const png = nodePath.join(tmp, 'nav.png');
    const r = qvla('run', '-e', 'nav', '-i', 'go to the door', '--steps', '2', 'weights/tiny/samples/nav_front.png', '--plot', png);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toContain('random weights');
    expect(out).toMatch(/step\s+t \(s\)\s+x\s+y\s+yaw/);
    const rows = out.split('\n').filter((l) => /^\s+\d+\s+\d+\.\d\d\s+-?\d/.test(l));
    expect(rows).toHaveLength(8);
    for (const stage of ['preprocess', 'vision', 'prefill', 'context', 'DiT steps', 'readback', 'postprocess', 'total']) expect(out).toContain(stage);
    expect(out).toContain('2 × ');
    expect(hasPngSignature(readFileSync(png))).toBe(true);
    // non-TTY stderr: a single summary line for the weight loading
    expect(errLines(r).filter((l) => l.startsWith('loading '))).toHaveLength(1);
  });

  it('chat prints the VLM answer', () => {
    const r = qvla('chat', '-q', '--json', '--max-tokens', '4', '--image', 'weights/tiny/samples/nav_front.png', 'What is in front of the robot?');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { text: string; tokens: number; ms: number };
    expect(typeof j.text).toBe('string');
    expect(j.tokens).toBeGreaterThan(0);
    expect(j.tokens).toBeLessThanOrEqual(4);
  });

  it('--device-info prints the adapter and exits 0', () => {
    const r = qvla('--device-info');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^adapter /);
    expect(r.stdout).toContain('features');
    expect(r.stdout).toContain('maxBufferSize');
  });
});

// The CLI and checkpoint directories it must not misjudge or destroy:
// - `qvla inspect` names a missing tokenizer.json / embodiments.json and the commands that need it, and exits 1 when
//   no command could run the checkpoint (tokenizer.json), 0 with a warning when only the action commands need it;
// - `qvla bench e2e` never writes into a checkpoint it did not generate: `--gen-dir` names where the small one is
//   generated (a foreign directory is refused, byte-identical afterwards) and `--checkpoint DIR` benchmarks DIR as-is.
// (Regression: `qvla bench e2e --checkpoint weights/tiny` deleted weights/tiny/model.safetensors and generated a
// 637 M-parameter checkpoint there.) Runs the built CLI (node bin/qvla.js), rebuilding dist/ when stale.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { ROOT, ensureBuilt, qvla } from './builtCli.js';

const TINY = nodePath.join(ROOT, 'weights', 'tiny');
let tmp: string;

/** relative path → sha256 of every file under `dir` (recursive). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = nodePath.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[nodePath.relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** A copy of weights/tiny without `drop`. */
function tinyCopy(name: string, ...drop: string[]): string {
  const dir = nodePath.join(tmp, name);
  cpSync(TINY, dir, { recursive: true });
  for (const f of drop) rmSync(nodePath.join(dir, f));
  return dir;
}

beforeAll(() => {
  expect(ensureBuilt()).toBe(true);
  tmp = mkdtempSync(nodePath.join(os.tmpdir(), 'qvla-cli-files-'));
}, 180_000);
afterAll(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

describe('qvla inspect: missing checkpoint files', () => {
  it('no tokenizer.json: named with the commands that need it, exit 1 (text and --json)', () => {
    const dir = tinyCopy('no-tokenizer', 'tokenizer.json');
    const r = qvla('inspect', dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('parameters'); // the summary is still printed
    expect(r.stdout).toMatch(/MISSING\s+tokenizer\.json is missing .*needed by run, chat, serve, demo/);
    expect(r.stderr).toMatch(new RegExp(`qvla inspect: error: ${dir}: tokenizer\\.json is missing`));
    expect(r.stdout).not.toContain('missing     nothing');

    const j = qvla('inspect', '--json', dir);
    expect(j.code).toBe(1);
    const out = JSON.parse(j.stdout) as { ok: boolean; missing: { file: string; level: string; needed_by: string }[] };
    expect(out.ok).toBe(false);
    expect(out.missing).toEqual([expect.objectContaining({ file: 'tokenizer.json', level: 'required' })]);
    expect(out.missing[0]!.needed_by).toMatch(/run, chat, serve, demo/);
  });

  it('no embodiments.json: a warning naming run/serve/act, exit 0', () => {
    const dir = tinyCopy('no-embodiments', 'embodiments.json');
    const r = qvla('inspect', dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/warning\s+embodiments\.json is missing .*needed by run, serve, demo, act\(\)/);
    expect(r.stderr).toMatch(new RegExp(`qvla inspect: warning: ${dir}: embodiments\\.json is missing`));
    const out = JSON.parse(qvla('inspect', '--json', dir).stdout) as { ok: boolean; missing: { file: string; level: string }[] };
    expect(out.ok).toBe(true);
    expect(out.missing.map((m) => [m.file, m.level])).toEqual([['embodiments.json', 'warning']]);
  });

  it('no preprocessor_config.json: a note, exit 0; weights/tiny: nothing missing; --help documents the rule', () => {
    const dir = tinyCopy('no-preprocessor', 'preprocessor_config.json');
    const r = qvla('inspect', dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note\s+preprocessor_config\.json is absent .*defaults apply/);
    const t = qvla('inspect');
    expect(t.code).toBe(0);
    expect(t.stdout).toContain('missing     nothing: every checkpoint file is present');
    const h = qvla('inspect', '--help');
    expect(h.stdout).toMatch(/tokenizer\.json\s+required: run, chat, serve, demo/);
    expect(h.stdout).toMatch(/embodiments\.json\s+warning:\s+run, serve, demo, act\(\)/);
    expect(h.stdout).toContain('exit status');
  });
});

describe('qvla bench e2e never overwrites a checkpoint it did not generate', () => {
  it('--gen-dir on a copy of weights/tiny: refused with the directory named, every file byte-identical', () => {
    const dir = tinyCopy('gen-into-tiny');
    const before = tree(dir);
    for (const args of [['--config', 'small', '--gen-dir', dir], ['--gen-dir', dir]]) {
      const r = qvla('bench', 'e2e', ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toContain(`refusing to write a generated checkpoint into ${dir}: it is not empty`);
      expect(r.stderr).toContain('qvla-bench-checkpoint.json');
      expect(tree(dir)).toEqual(before);
    }
  });

  it('--checkpoint DIR benchmarks that checkpoint as-is (read only); mixing it with --config/--gen-dir is a usage error', () => {
    const dir = tinyCopy('bench-as-is');
    const before = tree(dir);
    const r = qvla('bench', 'e2e', '--checkpoint', dir, '--calls', '1', '--warmup', '1', '--mode', 'fast');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`== checkpoint: ${dir}`);
    expect(r.stdout).not.toContain('== tiny');
    expect(r.stdout).not.toContain('== small');
    expect(tree(dir)).toEqual(before);
    for (const extra of [['--config', 'small'], ['--gen-dir', nodePath.join(tmp, 'elsewhere')]]) {
      const u = qvla('bench', 'e2e', '--checkpoint', dir, ...extra);
      expect(u.code, extra.join(' ')).toBe(2);
      expect(u.stderr).toMatch(/--checkpoint DIR benchmarks that checkpoint alone/);
    }
    expect(existsSync(nodePath.join(tmp, 'elsewhere'))).toBe(false);
    expect(tree(dir)).toEqual(before);
    const h = qvla('bench', 'e2e', '--help');
    expect(h.stdout).toMatch(/--gen-dir DIR\s+where the small checkpoint is generated/);
    expect(h.stdout).toMatch(/--checkpoint DIR\s+benchmark this existing checkpoint as-is/);
  });
});

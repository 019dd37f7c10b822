// The built `qvla` command for tests that run it as a subprocess (node bin/qvla.js …): the repository root,
// a rebuild of dist/ when any src/ file is newer than it, and a synchronous runner.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import * as nodePath from 'node:path';

export const ROOT = nodePath.resolve(__dirname, '..', '..');
export const MAIN_JS = nodePath.join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const QVLA_JS = nodePath.join(ROOT, 'bin', 'qvla.js');

/** Newest mtime of the .ts / .json sources under `dir` (what tsc compiles or copies into dist/). */
function newestSource(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = nodePath.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestSource(p));
    else if (e.name.endsWith('.ts') || e.name.endsWith('.json')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** Rebuilds dist/ when it is missing or older than src/; true when the CLI entry exists afterwards. */
export function ensureBuilt(): boolean {
  if (!existsSync(MAIN_JS) || newestSource(nodePath.join(ROOT, 'src')) > statSync(MAIN_JS).mtimeMs) {
    // tsc emits even when other parts of the tree do not type-check yet; only a missing output is fatal.
    spawnSync(process.execPath, [nodePath.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
  }
  return existsSync(MAIN_JS);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `qvla …args` from the repository root (QVLA_DEBUG off, 120 s limit). */
export function qvla(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [QVLA_JS, ...args], {
    cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, QVLA_DEBUG: '' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** stderr without Dawn's adapter warnings. */
export function errLines(r: CliResult): string[] {
  return r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('Warning: '));
}

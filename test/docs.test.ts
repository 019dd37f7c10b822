// Every `.md` file that a tracked source or doc file cites must be a file of this repository: a citation such as
// `../<outside folder>/<spec>.md §2` or a bare `<spec>.md` that resolves to nothing here (or to a file outside
// the checkout) fails, naming the file and line. A reference resolves relative to the repository root or to the
// citing file's folder. (The examples below are assembled at run time so that this file cites nothing itself.)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Source and documentation files (not data: fixtures, tokenizers and lock files are JSON or binary). */
const SCANNED = /\.(ts|tsx|js|mjs|cjs|py|wgsl|md|sh|toml|ya?ml|txt)$/;

/** Candidate `.md` references: path characters ending in `<name>.md`. */
const MD_REF = /[\w./-]*[\w-]\.md\b/g;

function trackedFiles(): string[] | null {
  try {
    const out = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
    return out.split('\0').filter((f) => f !== '' && !f.split('/').includes('node_modules'));
  } catch {
    return null; // not a git checkout
  }
}

/** The `.md` references of one line, URLs excluded. */
export function mdRefs(line: string): string[] {
  const refs: string[] = [];
  for (const m of line.matchAll(MD_REF)) {
    const before = line.slice(0, m.index);
    if (/[a-z][\w+.-]*:\/*\S*$/i.test(before) || /^\/\//.test(m[0])) continue; // part of a URL
    refs.push(m[0]);
  }
  return refs;
}

/** Whether `ref`, cited by `file` (repo-relative), names a tracked file, from the root or from the file's folder. */
export function resolves(ref: string, file: string, tracked: ReadonlySet<string>): boolean {
  for (const base of [ROOT, path.join(ROOT, path.dirname(file))]) {
    const rel = path.relative(ROOT, path.resolve(base, ref));
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) continue; // outside the repository
    if (tracked.has(rel.split(path.sep).join('/'))) return true;
  }
  return false;
}

const files = trackedFiles();

describe.skipIf(files === null)('documentation references', () => {
  const tracked = new Set(files ?? []);

  it('the checker catches citations of files outside the repository', () => {
    const md = (...parts: string[]): string => `${parts.join('/')}.md`;
    const ext = ['shared', 'reference']; // a folder beside the checkout
    const outside = [md('..', ...ext, 'model-spec'), md('', 'work', ...ext, 'engine-notes'), md('decoder-spec')];
    const line = `x (${outside[0]} §2.7), see ${outside[1]}, ${outside[2]} §3 and ${md('https://example.com/docs/README')}`;
    expect(mdRefs(line)).toEqual(outside);
    for (const ref of outside) expect(resolves(ref, 'src/model/positions.ts', tracked), ref).toBe(false);
    expect(resolves(md('..', '..', '..', ...ext, 'decoder-spec'), 'tools/reference/README.md', tracked)).toBe(false);
    expect(resolves(md('docs/architecture'), 'src/model/positions.ts', tracked)).toBe(true);
    expect(resolves(md('architecture'), 'docs/action-decoder.md', tracked)).toBe(true);
    expect(resolves(md('../weights/README'), 'docs/architecture.md', tracked)).toBe(true);
  });

  it('every .md file cited by a tracked source or doc file exists in the repository', () => {
    const bad: string[] = [];
    for (const file of files ?? []) {
      if (!SCANNED.test(file)) continue;
      let text: string;
      try {
        text = readFileSync(path.join(ROOT, file), 'utf8');
      } catch {
        continue; // tracked but deleted in the working tree
      }
      text.split('\n').forEach((line, k) => {
        for (const ref of mdRefs(line)) if (!resolves(ref, file, tracked)) bad.push(`${file}:${k + 1}: ${ref}`);
      });
    }
    expect(bad, `citations of .md files that are not in the repository:\n${bad.join('\n')}`).toEqual([]);
  });
});

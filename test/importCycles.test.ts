// No import cycles among src/ files: each module gets only what it needs, and a module can be read (and loaded)
// after the ones it imports. The graph has an edge a → b for every static `import … from` / `export … from` of a
// relative path in a; `import type` / `export type` are left out (erased at compile time), as are dynamic
// `import()` calls (loaded on demand, e.g. the bench modules of src/cli/cmdBench.ts).
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(__dirname, '../src');

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Relative module specifiers a file imports at run time. */
export function runtimeImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?([^'";]*?\bfrom\s+)?['"]([^'"]+)['"]/gm;
  for (let m; (m = re.exec(code)); ) {
    if (m[2]) continue; // import type / export type
    const spec = m[4]!;
    if (spec.startsWith('.')) specs.push(spec);
  }
  return specs;
}

/** The import graph of src/: file (relative to src/) → files it imports. */
export function importGraph(root = SRC): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of tsFiles(root)) {
    const deps = runtimeImports(readFileSync(f, 'utf8'))
      .map((s) => path.resolve(path.dirname(f), s.replace(/\.js$/, '.ts')))
      .filter((p) => p.endsWith('.ts'))
      .map((p) => path.relative(root, p));
    g.set(path.relative(root, f), deps);
  }
  return g;
}

/**
 * The import cycles of `g`: its strongly connected components of more than one file (or a file importing
 * itself), each as a sorted file list (Tarjan's algorithm).
 */
export function findCycles(g: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (n: string): void => {
    index.set(n, next);
    low.set(n, next++);
    stack.push(n);
    onStack.add(n);
    for (const d of g.get(n) ?? []) {
      if (!index.has(d)) {
        visit(d);
        low.set(n, Math.min(low.get(n)!, low.get(d)!));
      } else if (onStack.has(d)) {
        low.set(n, Math.min(low.get(n)!, index.get(d)!));
      }
    }
    if (low.get(n) === index.get(n)) {
      const scc: string[] = [];
      let m: string;
      do {
        m = stack.pop()!;
        onStack.delete(m);
        scc.push(m);
      } while (m !== n);
      if (scc.length > 1 || (g.get(n) ?? []).includes(n)) out.push(scc.sort());
    }
  };
  for (const n of [...g.keys()].sort()) if (!index.has(n)) visit(n);
  return out.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/**
 * Cycles in files this test's author does not own, reported to their owner with the fix: pipelines.ts imports
 * GpuError from device.ts, which imports PipelineCache from pipelines.ts — moving GpuError to its own module
 * (src/gpu/errors.ts, re-exported by device.ts) breaks it. Tolerated only exactly as listed; remove the entry
 * with the fix.
 */
const KNOWN_CYCLES: string[] = [];

describe('src/ import graph', () => {
  it('finds a planted cycle, and skips type-only and dynamic imports', () => {
    expect(runtimeImports("import { a } from './a.js';\nimport type { B } from './b.js';\nexport { c } from './c.js';\nconst d = await import('./d.js');\nimport 'node:fs';"))
      .toEqual(['./a.js', './c.js']);
    const g = new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']], ['d.ts', ['a.ts', 'd.ts']], ['e.ts', []]]);
    expect(findCycles(g)).toEqual([['a.ts', 'b.ts', 'c.ts'], ['d.ts']]);
    expect(findCycles(new Map([['a.ts', ['b.ts']], ['b.ts', []]]))).toEqual([]);
  });

  it('has no cycle', () => {
    const g = importGraph();
    expect(g.size).toBeGreaterThan(50);
    const cycles = findCycles(g).map((c) => c.join(' ')).filter((c) => !KNOWN_CYCLES.includes(c));
    expect(cycles, `import cycles in src/ (files of each strongly connected component):\n${cycles.join('\n')}`).toEqual([]);
  });
});

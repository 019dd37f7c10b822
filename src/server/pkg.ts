// The package root and version (works from src/ under vitest and from dist/src/ after the build).
import { readFileSync, existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

/** The directory holding qvla's package.json. */
export function packageRoot(): string {
  if (root !== null) return root;
  let dir = nodePath.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = nodePath.join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const j = JSON.parse(readFileSync(p, 'utf8')) as { name?: string };
        if (j.name === 'qvla') return (root = dir);
      } catch {
        // keep looking
      }
    }
    dir = nodePath.dirname(dir);
  }
  return (root = process.cwd());
}

let version: string | null = null;

export function qvlaVersion(): string {
  if (version !== null) return version;
  try {
    const j = JSON.parse(readFileSync(nodePath.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
    version = typeof j.version === 'string' ? j.version : '0.0.0';
  } catch {
    version = '0.0.0';
  }
  return version;
}

// The current platform (src/platform/types.ts). Node gets src/platform/node.ts by default; the browser bundle
// (web/build.mjs) resolves ./default.js to ./default.browser.ts instead, so node:fs and the `webgpu` package never
// enter it. setPlatform() lets a host (or a test) supply its own implementation.
import type { Platform } from './types.js';
import { defaultPlatform } from './default.js';

export type { Platform, FileSystem, RandomAccessFile, PathKind } from './types.js';

let current: Platform | null = null;

export function platform(): Platform {
  return (current ??= defaultPlatform());
}

/** Replaces the platform (before the first Policy / Gpu / checkpoint is opened). */
export function setPlatform(p: Platform): void {
  current = p;
}

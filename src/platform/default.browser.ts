// The browser bundle's default platform (web/build.mjs resolves ./default.js here). `qvla:kernels` is a module the
// build generates from kernels/**/*.wgsl (kernels.d.ts types it).
import kernels from 'qvla:kernels';
import { browserPlatform } from './browser.js';
import type { Platform } from './types.js';

let p: Platform | null = null;

export function defaultPlatform(): Platform {
  return (p ??= browserPlatform({ kernels }));
}

// Node's default platform; the browser build swaps this module for default.browser.ts (web/build.mjs).
import { nodePlatform } from './node.js';
import type { Platform } from './types.js';

export function defaultPlatform(): Platform {
  return nodePlatform;
}

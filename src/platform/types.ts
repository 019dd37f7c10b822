// The few things qvla needs from its host, as small interfaces: Node (src/platform/node.ts) and the browser
// (src/platform/browser.ts) implement them; everything else in src/ is the same code on both.
//
//   FileSystem      checkpoint files (config / tokenizer / embodiments JSON, safetensors with positional reads,
//                   image files): node:fs in Node; fetch (HTTP range reads, whole-file fallback) in a browser,
//                   where a "path" is a URL.
//   gpu(flags)      the WebGPU entry point: Dawn through the `webgpu` npm package in Node; navigator.gpu.
//   kernelSource    the WGSL of kernels/<file>.wgsl: read from kernels/ in Node; in the browser bundle the same
//                   files, inlined by the esbuild build (web/build.mjs) — kernels/ stays the one source.

/** A file open for positional reads (the subset of node:fs/promises FileHandle that qvla uses). */
export interface RandomAccessFile {
  /** Reads up to `length` bytes at file offset `position` into `buffer[offset…]`; `bytesRead` 0 = end of file. */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number; isFile(): boolean }>;
  close(): Promise<void>;
}

/** What a path names: a file, a directory, something else (a device, a socket), or nothing. */
export type PathKind = 'file' | 'dir' | 'other' | null;

export interface FileSystem {
  /** Joins path segments (node:path join; URL segments in a browser). */
  join(...parts: string[]): string;
  kind(path: string): Promise<PathKind>;
  readText(path: string): Promise<string>;
  readBytes(path: string): Promise<Uint8Array>;
  /** Names in a directory. */
  list(dir: string): Promise<string[]>;
  open(path: string): Promise<RandomAccessFile>;
}

export interface Platform {
  readonly name: 'node' | 'browser' | (string & {});
  readonly fs: FileSystem;
  /** The WebGPU entry point; `flags` are Dawn instance toggles (Node only; ignored in a browser). */
  gpu(flags: readonly string[]): Promise<GPU>;
  /** WGSL source of kernels/<file>.wgsl (`file` may be `lib/name`). */
  kernelSource(file: string): string;
}

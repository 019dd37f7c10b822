// Weight-loading progress on stderr: a live bar when stderr is a TTY, otherwise one line at the end.
import type { UploadProgress } from '../io/upload.js';
import { fmtBytes } from './format.js';

export interface LoadProgress {
  onProgress(p: UploadProgress): void;
  /** Ends the bar and prints the summary line. */
  done(extra?: string): void;
  /** Clears the bar (on failure). */
  fail(): void;
}

export function loadProgress(label: string, stream: NodeJS.WriteStream = process.stderr, quiet = false): LoadProgress {
  const tty = stream.isTTY === true && !quiet;
  const t0 = performance.now();
  let last: UploadProgress | null = null;
  let lastDraw = 0;
  let drawn = false;
  const draw = (p: UploadProgress, force: boolean) => {
    const now = performance.now();
    if (!force && now - lastDraw < 80) return;
    lastDraw = now;
    const frac = p.totalBytes > 0 ? Math.min(1, p.bytes / p.totalBytes) : p.totalTensors > 0 ? p.tensors / p.totalTensors : 0;
    const cols = Math.max(40, Math.min(stream.columns ?? 80, 120));
    const width = Math.max(10, Math.min(30, cols - 60));
    const fill = Math.round(frac * width);
    const bar = `${'#'.repeat(fill)}${'-'.repeat(width - fill)}`;
    const text = `${label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}%  ${fmtBytes(p.bytes)}/${fmtBytes(p.totalBytes)}  ${p.tensors}/${p.totalTensors} tensors`;
    stream.write(`\r\x1b[K${text.slice(0, cols - 1)}`);
    drawn = true;
  };
  return {
    onProgress(p: UploadProgress) {
      last = p;
      if (tty) draw(p, p.tensors === p.totalTensors);
    },
    done(extra = '') {
      if (quiet) return;
      if (drawn) stream.write('\r\x1b[K');
      const s = ((performance.now() - t0) / 1000).toFixed(2);
      const what = last ? `${fmtBytes(last.totalBytes)}, ${last.totalTensors} tensors` : 'weights';
      stream.write(`${label}: ${what} in ${s} s${extra}\n`);
    },
    fail() {
      if (drawn) stream.write('\r\x1b[K');
    },
  };
}

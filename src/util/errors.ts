// The one error family of qvla. Every error qvla raises on purpose is a QvlaError (or a subclass keeping its
// old name, so `instanceof CheckpointError` and friends keep working), carrying what a caller needs to react
// without parsing the message:
//   code       stable machine-readable kind ('checkpoint', 'invalid_request', 'usage', …);
//   field      the input field the problem is about (`text_config.head_dim`, `observation/state`), if any;
//   file       the file it is about, if any;
//   retryable  whether sending the same thing again may succeed (device lost, server busy) — false for bad input.
// The server turns errors into replies in one place (src/server/errors.ts) from these fields.

export interface QvlaErrorDetails {
  code?: string;
  field?: string | null;
  file?: string;
  retryable?: boolean;
  cause?: unknown;
}

export class QvlaError extends Error {
  readonly code: string;
  readonly field?: string | null;
  readonly file?: string;
  readonly retryable: boolean;

  constructor(message: string, details: QvlaErrorDetails = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'QvlaError';
    this.code = details.code ?? 'error';
    this.retryable = details.retryable ?? false;
    if (details.field !== undefined) this.field = details.field;
    if (details.file !== undefined) this.file = details.file;
  }
}

/** Short, printable rendering of an untrusted value for error messages (never huge). */
export function describeValue(v: unknown, max = 60): string {
  let s: string;
  try {
    s = v === undefined ? 'undefined' : JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

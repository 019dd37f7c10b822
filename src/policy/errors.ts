// The policy's request error: names the field at fault (`requests[i].state`, `images[1]`, …).
export class PolicyError extends Error {
  /** the message without the field prefix */
  readonly reason: string;
  constructor(message: string, readonly field?: string) {
    super(field ? `${field}: ${message}` : message);
    this.name = 'PolicyError';
    this.reason = message;
  }
}

/** An error of request i of a batch: a PolicyError whose field is prefixed with `requests[i]`. */
export function rowError(e: unknown, i: number): PolicyError {
  if (e instanceof PolicyError) return new PolicyError(e.reason, `requests[${i}]${e.field ? `.${e.field}` : ''}`);
  return new PolicyError(e instanceof Error ? e.message : String(e), `requests[${i}]`);
}

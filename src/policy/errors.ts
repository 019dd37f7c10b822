// The policy's request error: names the field at fault (`requests[i].state`, `images[1]`, …). A QvlaError
// (src/util/errors.ts) with code 'invalid_request', never retryable.
import { QvlaError } from '../util/errors.js';

export class PolicyError extends QvlaError {
  /** the message without the field prefix */
  readonly reason: string;
  constructor(message: string, field?: string) {
    super(field ? `${field}: ${message}` : message, { code: 'invalid_request', field });
    this.name = 'PolicyError';
    this.reason = message;
  }
}

/** An error of request i of a batch: a PolicyError whose field is prefixed with `requests[i]`. */
export function rowError(e: unknown, i: number): PolicyError {
  if (e instanceof PolicyError) return new PolicyError(e.reason, `requests[${i}]${e.field ? `.${e.field}` : ''}`);
  return new PolicyError(e instanceof Error ? e.message : String(e), `requests[${i}]`);
}

// Errors → what the client is told, in one place. A request that fails gets an error map
// `{error: "field: message", field, [kind, retryable]}` and its connection stays open; only an error nobody
// raised on purpose (a bug) closes the connection with 1011 (server.ts `internal`).
//
//   bad input (RequestError, WireError with a field, PolicyError, CheckpointError, any non-retryable QvlaError)
//                                                → outcome 'invalid', no `kind`
//   server busy / draining (serverError below)   → outcome 'busy' / 'draining', kind + retryable: true
//   GPU device lost (GpuError kind 'lost')       → outcome 'device_lost', kind + retryable: true (the policy
//                                                  re-creates its device on the next call)
//   client gone before its turn                  → outcome 'dropped' (never sent)
import { QvlaError } from '../util/errors.js';
import { PolicyError } from '../policy/policy.js';
import { GpuError } from '../gpu/errors.js';

/** What a failed request is counted as (a subset of server.ts OUTCOMES). */
export type ErrorOutcome = 'invalid' | 'busy' | 'draining' | 'device_lost' | 'dropped';

export interface ErrorReply {
  /** without the field prefix */
  message: string;
  field: string | null;
  outcome: ErrorOutcome;
  /** sent as `kind` + `retryable: true` when set */
  retryable: boolean;
}

/** The server's own refusals: retryable busy / draining, and a dropped request. */
export function serverError(code: 'busy' | 'draining' | 'dropped', message: string): QvlaError {
  return new QvlaError(message, { code, retryable: code !== 'dropped' });
}

/** The reply for error `e`, or null when `e` is an internal error (the connection is closed with 1011). */
export function errorReply(e: unknown): ErrorReply | null {
  // A lost device is the one retryable GpuError; other GPU errors are internal (connection closed with 1011).
  if (e instanceof GpuError) {
    return e.kind === 'lost' ? { message: `GPU device lost: ${e.message}`, field: null, outcome: 'device_lost', retryable: true } : null;
  }
  if (e instanceof PolicyError) return { message: e.reason, field: e.field ?? null, outcome: 'invalid', retryable: false };
  if (!(e instanceof QvlaError)) return null;
  if (e.code === 'busy' || e.code === 'draining' || e.code === 'dropped') {
    return { message: e.message, field: null, outcome: e.code, retryable: e.retryable };
  }
  if (e.retryable) return null; // no retryable QvlaError other than the above exists; a new one must be mapped here
  return { message: e.message, field: e.field ?? null, outcome: 'invalid', retryable: false };
}

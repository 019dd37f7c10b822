// GPU failures as one QvlaError subclass. Its own module so device.ts and pipelines.ts both import it
// without importing each other (no import cycle in src/gpu).
import { QvlaError } from '../util/errors.js';

export type GpuErrorKind = 'lost' | 'validation' | 'out-of-memory' | 'internal' | 'adapter';

export class GpuError extends QvlaError {
  constructor(message: string, readonly kind: GpuErrorKind) {
    // A lost device is recoverable by re-creating it (the policy does so on the next call); the rest are not.
    super(message, { code: `gpu_${kind.replace(/-/g, '_')}`, retryable: kind === 'lost' });
    this.name = 'GpuError';
  }
}

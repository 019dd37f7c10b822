/**
 * The one error type of the checkpoint layer (safetensors files, the checkpoint directory, config.json,
 * tensor binding and upload). Its message always starts with the file it is about and, where there is one, the
 * tensor, and it names the offending field, e.g.
 *   `/ckpt/model.safetensors: tensor "a.weight": data_offsets [0, 10] do not match shape [3] × F32 (12 bytes)`
 *   `/ckpt/config.json: text_config.num_key_value_heads must divide num_attention_heads (got 3 and 16)`
 */

import { QvlaError, describeValue } from '../util/errors.js';

export { describeValue };

export interface CheckpointErrorDetails {
  /** The file the problem is in (path as given by the caller). */
  file?: string;
  /** The tensor the problem is about. */
  tensor?: string;
  /** The header / config field the problem is about (e.g. `data_offsets`, `text_config.head_dim`). */
  field?: string;
  /** The underlying error, if any (e.g. an fs error). */
  cause?: unknown;
}

export class CheckpointError extends QvlaError {
  declare readonly file?: string;
  readonly tensor?: string;
  declare readonly field?: string;

  /**
   * @param message what is wrong; the constructor prefixes the file and tensor, and the field when the message
   *   does not already mention it.
   */
  constructor(message: string, details: CheckpointErrorDetails = {}) {
    super(formatCheckpointMessage(message, details), { code: 'checkpoint', file: details.file, field: details.field, cause: details.cause });
    this.name = 'CheckpointError';
    if (details.tensor !== undefined) this.tensor = details.tensor;
  }
}

export function formatCheckpointMessage(message: string, d: CheckpointErrorDetails): string {
  const parts: string[] = [];
  if (d.file !== undefined) parts.push(d.file);
  if (d.tensor !== undefined) parts.push(`tensor ${JSON.stringify(d.tensor)}`);
  if (d.field !== undefined && !message.includes(d.field)) parts.push(d.field);
  parts.push(message);
  return parts.join(': ');
}

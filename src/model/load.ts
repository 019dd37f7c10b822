// Loading a checkpoint's weights onto the GPU: bind against the config's expected tensors (one error listing
// every missing / unexpected / mis-shaped tensor), then stream them up (src/io/upload.ts).
import type { Gpu } from '../gpu/device.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { uploadTensors, type UploadProgress } from '../io/upload.js';
import { expectedTensors } from './expectedTensors.js';
import { WeightStore } from './weights.js';
import { isQuantizedCheckpoint, loadQuantizedWeights } from '../quant/load.js'; // int8/int4 checkpoints: docs/quantization.md

export interface LoadWeightsOptions {
  /** GPU storage type of matrices; norms, biases and the GDN f32 tensors stay f32. Default 'f32'. */
  weightDtype?: 'f32' | 'f16';
  /** Load `model.visual.*` (default true). */
  vision?: boolean;
  /** Load `action_expert.*` (default true when the config has a decoder). */
  actionExpert?: boolean;
  onProgress?: (p: UploadProgress) => void;
}

export async function loadWeights(gpu: Gpu, ckpt: Checkpoint, opts: LoadWeightsOptions = {}): Promise<WeightStore> {
  if (isQuantizedCheckpoint(ckpt)) return loadQuantizedWeights(gpu, ckpt, opts);
  // Bind against everything the config implies (so a wrong checkpoint is rejected whole), upload what is asked.
  const expected = expectedTensors(ckpt.config);
  const skip = new Set<string>();
  if (opts.vision === false) skip.add('vision');
  if (opts.actionExpert === false) skip.add('action_expert');
  const names = expected.filter((e) => !skip.has(e.group) && (!e.optional || ckpt.tensors.has(e.name))).map((e) => e.name);
  const uploaded = await uploadTensors(gpu.device, ckpt, names, {
    weightDtype: opts.weightDtype ?? 'f32',
    expected,
    onProgress: opts.onProgress,
    source: ckpt.dir,
  });
  return new WeightStore(gpu, uploaded);
}

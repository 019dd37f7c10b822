// qvla's public library surface.
export {
  Policy, PolicyError, EncodedObservation, ObservationEncoder,
  type ActRequest, type ActResult, type PolicyOptions, type ImageInput, type StageTimings, type ObservationRequest, type SampleRequest,
} from './policy/policy.js';
export { QvlaError } from './util/errors.js';
export { ActionQueue, TemporalEnsembler, type Action, type EnsembleOptions } from './policy/chunks.js';
export { SOLVERS, GRIDS, timeGrid, evaluations, type SolverName, type GridName } from './policy/samplers.js';
export type { Embodiment, UnnormalizedActions, Waypoint, TrajectoryPoint } from './policy/embodiments.js';
export { Gpu, GpuError, type GpuOptions } from './gpu/device.js';
export { Tensor, type DType } from './tensor.js';
export { CheckpointError } from './io/errors.js';
export { openCheckpoint } from './io/checkpoint.js';
export { openSafetensors } from './io/safetensors.js';
export { writeSafetensors } from './io/safetensorsWriter.js';
export { Rng } from './util/rng.js';

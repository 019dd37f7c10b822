// Closed-loop evaluation on the toy worlds (src/worlds): `qvla eval`, and the pieces other tools reuse.
export {
  runEpisodes, summarise, keyMetrics, conditionName, decisionSeed, embodimentMismatch, EXPERT, TASK_TYPES,
  type Actor, type PolicyLike, type Condition, type EpisodeOptions, type EpisodeResult, type EvalRow,
} from './episodes.js';
export { wilsonInterval, Z95 } from './wilson.js';
export { evalDocument, writeEvalJson, resultsTable, evalChart, type EvalDocument } from './report.js';
export {
  RolloutRecorder, GifWriter, filmstrip, rolloutFiles, rolloutStem, assertAbsent, writeNewFile, FileExistsError,
  type RolloutFiles, type RolloutKey, type RolloutOptions,
} from './rollouts.js';

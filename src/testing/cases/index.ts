// The registry of every op case: test/ops.test.ts runs them all, bench/ops.ts times the perf ones.
import type { OpCase } from '../opHarness.js';
import { linearCases, linearPerfCases } from './linear.js';
import { ropeCases, ropePerfCases } from './rope.js';
import { posEmbedCases, posEmbedPerfCases } from './posEmbed.js';
import { sinusoidCases, sinusoidPerfCases } from './sinusoid.js';
import { attentionCases, attentionPerfCases } from './attention.js';
import { gatedDeltaNetCases, gatedDeltaNetPerfCases } from './gatedDeltaNet.js';
import { elementwiseCases, elementwisePerfCases } from './elementwise.js';
import { normCases, normPerfCases } from './norm.js';
import { gatherCases, gatherPerfCases } from './gather.js';
import { checkFiniteCases, checkFinitePerfCases } from './checkFinite.js';
import { linearQCases, linearQPerfCases } from '../../quant/cases.js';

export const allCases: OpCase[] = [...linearCases, ...ropeCases, ...posEmbedCases, ...sinusoidCases, ...attentionCases, ...gatedDeltaNetCases, ...elementwiseCases, ...normCases, ...gatherCases, ...checkFiniteCases, ...linearQCases];
export const perfCases: OpCase[] = [...linearPerfCases, ...ropePerfCases, ...posEmbedPerfCases, ...sinusoidPerfCases, ...attentionPerfCases, ...gatedDeltaNetPerfCases, ...elementwisePerfCases, ...normPerfCases, ...gatherPerfCases, ...checkFinitePerfCases, ...linearQPerfCases];

// The registry of every op case: test/ops.test.ts runs them all, bench/ops.ts times the perf ones.
import type { OpCase } from '../opHarness.js';
import { linearCases, linearPerfCases } from './linear.js';

export const allCases: OpCase[] = [...linearCases];
export const perfCases: OpCase[] = [...linearPerfCases];

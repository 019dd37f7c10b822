import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One GPU device per test file; files run in separate forks so a Dawn crash cannot take down the run.
    pool: 'forks',
    maxWorkers: 2,
  },
});

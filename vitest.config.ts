import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Test files that run with no other file beside them, one at a time, after every other file:
 * the retrain scenario's figures come from the traffic its simulator manages to send in phases
 * of fixed length, and beside two other files on a busy 2-core machine it sent a sixth of it (a training
 * set of 625 rows instead of about 3,700; the retrain was refused).
 */
const ALONE = ['test/integration/retrain-scenario.int.test.ts'];

const integration = {
  globalSetup: ['test/integration/global-setup.ts'],
  testTimeout: 60_000,
  hookTimeout: 60_000,
};

export default defineConfig({
  test: {
    // As many files at a time as there are cores. vitest's default is one less: one at a time on
    // 2 cores, where the tests' processes kept less than one core busy on average (much of a
    // test's time goes to waiting: for the broker's group joins, child processes, timers).
    // Every integration test has topics, groups and key prefixes of its own.
    maxWorkers: availableParallelism(),
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'shared/**/*.test.ts',
            'services/*/src/**/*.test.ts',
            'services/*/test/**/*.test.ts',
            'test/faults/**/*.test.ts',
            'test/support/**/*.test.ts',
          ],
          exclude: ['**/node_modules/**', '**/*.int.test.ts'],
          // A guard against a hang: property tests and child processes take several seconds
          // when another file keeps the other core busy (vitest's default is 5 s).
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['shared/**/*.int.test.ts', 'services/*/test/**/*.int.test.ts', 'test/**/*.int.test.ts'],
          exclude: ['**/node_modules/**', ...ALONE],
          ...integration,
        },
      },
      {
        test: {
          name: 'integration-alone',
          include: ALONE,
          ...integration,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores on CI: two files at a time, each with its own database on one shared server.
    maxWorkers: 2,
    reporters: ['default'],
    // Suites written before the old-code gate write as old code right before
    // stop-write: the gate is off unless a test turns it on (test/db/gate.test.ts).
    env: { PGSHIFT_OLD_CODE_QUIET: '0' },
  },
});

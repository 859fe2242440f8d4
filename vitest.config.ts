import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // Starts Azurite (in memory) and the local Cosmos DB server once; every file uses its own database and
          // blob containers, and test/support/local-env.ts refuses any endpoint that is not loopback.
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
      {
        // The orchestrator suites once more under replay schema V1 (the project above runs the latest, as the
        // Durable extension in Azure announces): same files, their own local services and databases.
        extends: true,
        test: {
          name: 'integration-v1',
          include: ['test/integration/workflows/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          env: { DURABLE_REPLAY_SCHEMA: 'V1' },
        },
      },
    ],
  },
});

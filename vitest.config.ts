import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Integration tests share the two local servers; files run in parallel on separate databases/containers.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests must never talk to real Azure: the setup refuses non-loopback endpoints.
    env: { NODE_TLS_REJECT_UNAUTHORIZED: '1' },
  },
});

import { randomUUID } from 'node:crypto';
import { afterAll, inject } from 'vitest';
import { loadConfig, type AppConfig } from '../../src/config.js';
import { startLocalEventHubs } from '../../tools/local-eventhubs/server.js';
import { localAppSettings } from '../../tools/local-services.js';

const LOOPBACK = /^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//;

/**
 * This test file's own local Event Hubs endpoint (in memory, a free port): a runtime of one file never reads
 * another file's events, and its checkpoints (kept under `localhost:<port>`) are its own.
 */
const eventHubs = await startLocalEventHubs({ port: 0 });
afterAll(() => eventHubs.stop());

/** This test file's Event Hubs endpoint, as `startRuntime({ localEventHubs })` takes it. */
export const testEventHubs = {
  connectionString: eventHubs.connectionString(),
  retained: () => eventHubs.retained(),
};

/**
 * App settings for one test file: the local services from the global setup and the file's own Event Hubs
 * endpoint, with a database and blob containers of its own. Refuses anything but loopback endpoints, so no test
 * can reach real Azure.
 */
export function testSettings(overrides: Record<string, string> = {}): Record<string, string> {
  const services = inject('localServices');
  for (const endpoint of [services.cosmosEndpoint, services.blobEndpoint + '/']) {
    if (!LOOPBACK.test(endpoint))
      throw new Error(`Refusing to run tests against non-local endpoint ${endpoint}`);
  }
  const suffix = randomUUID().slice(0, 8);
  return {
    ...localAppSettings({ ...services, eventHubsConnectionString: testEventHubs.connectionString }),
    CosmosDbDatabaseName: `test-${suffix}`,
    RawArchiveContainerName: `raw-${suffix}`,
    DeadLetterContainerName: `dead-${suffix}`,
    ProvisioningWorkContainerName: `work-${suffix}`,
    ProvisioningResultsContainerName: `results-${suffix}`,
    JobDeviceResultsContainerName: `jobdevices-${suffix}`,
    ...overrides,
  };
}

/** A validated AppConfig for one test file (see testSettings). */
export function testConfig(overrides: Record<string, string> = {}): AppConfig {
  return loadConfig(testSettings(overrides));
}

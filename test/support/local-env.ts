import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { loadConfig, type AppConfig } from '../../src/config.js';
import { localAppSettings } from '../../tools/local-services.js';

const LOOPBACK = /^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//;

/**
 * App settings for one test file: the local services from the global setup, with a database and blob
 * containers of its own. Refuses anything but loopback endpoints, so no test can reach real Azure.
 */
export function testSettings(overrides: Record<string, string> = {}): Record<string, string> {
  const services = inject('localServices');
  for (const endpoint of [services.cosmosEndpoint, services.blobEndpoint + '/']) {
    if (!LOOPBACK.test(endpoint))
      throw new Error(`Refusing to run tests against non-local endpoint ${endpoint}`);
  }
  const suffix = randomUUID().slice(0, 8);
  return {
    ...localAppSettings({ ...services, stop: () => Promise.resolve(), abandon: () => undefined }),
    IotHubEventsConnection: 'Endpoint=sb://localhost/;SharedAccessKeyName=local;SharedAccessKey=local',
    IotHubEventHubName: 'iothub-events',
    IngestConsumerGroup: 'ingest',
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

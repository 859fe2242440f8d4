/**
 * Composition root: the only module that calls `app.*`. It validates configuration, builds the adapters
 * (one SDK client per service), and registers every function with its handler factory.
 */
import { app } from '@azure/functions';
import { loadConfig } from './config.js';
import { withProblemDetails } from './http/problem.js';
import { createAdapters } from './infra/adapters.js';
import { makeGetDeviceState } from './telemetry/get-device-state.js';
import { makeIngestTelemetry } from './telemetry/ingest-telemetry.js';

const config = loadConfig();
const { stateStore, archive, deadLetters } = createAdapters(config);

app.eventHub('ingestTelemetry', {
  connection: 'IotHubEventsConnection',
  eventHubName: '%IotHubEventHubName%',
  consumerGroup: '%IngestConsumerGroup%',
  cardinality: 'many',
  retry: {
    strategy: 'exponentialBackoff',
    maxRetryCount: config.ingest.maxRetryCount,
    minimumInterval: { seconds: 2 },
    maximumInterval: { minutes: 2 },
  },
  handler: makeIngestTelemetry({ stateStore, archive, deadLetters, options: config.ingest }),
});

app.http('getDeviceState', {
  route: 'devices/{id}/state',
  methods: ['GET'],
  authLevel: 'function',
  handler: withProblemDetails(makeGetDeviceState({ stateStore })),
});

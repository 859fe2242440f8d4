import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { localEventHubsConnectionString } from '../../../tools/local-eventhubs/config.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';

// replayTelemetry as the host reads src/index.ts: an Event Hub trigger on the replay hub, bytes in batches, the
// ingest retry policy; its hub and consumer group from settings (%Setting%) when they exist, else the defaults.

describe('replayTelemetry registration (src/index.ts loaded as the host loads it)', () => {
  const settings = testSettings({
    ReplayEventHubConnection: localEventHubsConnectionString(5672),
    ReplayEventHubName: 'replay',
    ReplayConsumerGroup: 'replay',
    Ingest__MaxRetryCount: '7',
  });
  let registration: Registration;
  beforeAll(async () => {
    const found = (await loadEntryPoint(settings)).find((r) => r.metadata.name === 'replayTelemetry');
    if (!found) throw new Error('replayTelemetry was not registered');
    registration = found;
  });

  it('binds the replay hub through settings, many events at a time as bytes, with the ingest retry policy', () => {
    const trigger = Object.values(registration.metadata.bindings).find((b) => b.direction === 'in');
    expect(trigger).toMatchObject({
      type: 'eventHubTrigger',
      connection: 'ReplayEventHubConnection',
      eventHubName: '%ReplayEventHubName%',
      consumerGroup: '%ReplayConsumerGroup%',
      cardinality: 'many',
      dataType: 'binary',
    });
    expect(registration.metadata.retryOptions).toMatchObject({
      strategy: 'exponentialBackoff',
      maxRetryCount: 7,
    });
  });

  it('without Replay settings the app still loads, bound to the literal defaults and not connected', () => {
    const {
      ReplayEventHubConnection: _c,
      ReplayEventHubName: _n,
      ReplayConsumerGroup: _g,
      ...without
    } = settings;
    const config = loadConfig(without);
    expect(config.replay).toEqual({
      eventHubName: 'replay',
      consumerGroup: 'replay',
      binding: { eventHubName: 'replay', consumerGroup: 'replay' },
      connected: false,
    });
  });
});

import { beforeAll, describe, expect, it } from 'vitest';
import { LocalHub, startEventHubTrigger, triggerBinding } from '../../tools/local-runtime/event-hubs.js';
import type { IngestSummary } from '../../src/telemetry/ingest-telemetry.js';
import { loadEntryPoint, type Registration } from '../support/entry-point.js';
import { testSettings } from '../support/local-env.js';

// Both Event Hub triggers take their events as bytes (issue 11, ingest item 3): the registration metadata the
// host reads carries dataType 'binary', and through the embedded runtime's model of the host's delivery a
// non-JSON body costs only itself.

describe('Event Hub trigger registrations (src/index.ts loaded as the host loads it)', () => {
  const settings = testSettings();
  let registrations: Registration[];
  const byName = (name: string) => {
    const found = registrations.find((r) => r.metadata.name === name);
    if (!found) throw new Error(`${name} was not registered`);
    return found;
  };
  beforeAll(async () => {
    registrations = await loadEntryPoint(settings);
  });

  it.each(['ingestTelemetry', 'notifyAnomalies'])("registers %s with dataType 'binary'", (name) => {
    expect(triggerBinding(byName(name))).toMatchObject({
      type: 'eventHubTrigger',
      cardinality: 'many',
      dataType: 'binary',
    });
  });

  it('ingestTelemetry, served as the host serves its registration, dead-letters a non-JSON body and keeps the rest', async () => {
    const registration = byName('ingestTelemetry');
    const hub = new LocalHub(settings.IotHubEventHubName ?? '');
    let resolve: (summary: IngestSummary) => void = () => undefined;
    const handled = new Promise<IngestSummary>((r) => (resolve = r));
    const trigger = startEventHubTrigger(
      {
        ...registration,
        callback: async (...args) => {
          const summary = (await registration.callback(...args)) as IngestSummary;
          resolve(summary);
          return summary;
        },
      },
      { settings, hub: () => hub, maxBatch: 100, log: () => undefined, sleep: () => Promise.resolve() },
    );
    try {
      const system = { 'iothub-connection-device-id': 'mixed' };
      hub.publish(Buffer.from('{"temp": 21.5}'), 'mixed', {}, system);
      hub.publish(Buffer.from('temp=22'), 'mixed', {}, system);
      hub.publish(Buffer.from('{"hum": 40}'), 'mixed', {}, system);
      const summary = await handled; // before: the binding failed every attempt and the batch was gone
      expect(summary).toMatchObject({ messages: 3, records: 2, deadLetters: 1, stateWrites: 1 });
    } finally {
      await trigger.stop();
    }
  });
});

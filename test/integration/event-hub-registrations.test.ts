import { EventHubConsumerClient, EventHubProducerClient } from '@azure/event-hubs';
import { BlobServiceClient } from '@azure/storage-blob';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestSummary } from '../../src/telemetry/ingest-telemetry.js';
import { funcLocalSettings } from '../../tools/func-start.js';
import { startEventHubTrigger, triggerBinding } from '../../tools/local-runtime/event-hubs.js';
import { loadEntryPoint, type Registration } from '../support/entry-point.js';
import { testEventHubs, testSettings } from '../support/local-env.js';

// Both Event Hub triggers take their events as bytes (issue 11, ingest item 3): the registration metadata the
// host reads carries dataType 'binary'. Served as the host serves them (issue 16): from the local AMQP endpoint,
// with the connection settings `func start` is given, events sent by a plain EventHubProducerClient as IoT Hub's
// built-in endpoint delivers them (its system properties as message annotations).

/** The settings `npm start`'s func branch writes for the Event Hub triggers, pointed at this file's endpoint. */
const sample = (
  JSON.parse(readFileSync('local.settings.sample.json', 'utf8')) as { Values: Record<string, string> }
).Values;
const funcEventHubSettings = Object.fromEntries(
  Object.entries(funcLocalSettings(sample, testEventHubs.connectionString)).filter(([name]) =>
    /EventHub|IngestConsumerGroup|AnomaliesConsumerGroup|ReplayConsumerGroup|IotHubEventsConnection/.test(
      name,
    ),
  ),
);

/** A device message as IoT Hub's built-in endpoint carries it. */
const deviceMessage = (deviceId: string, body: string, properties: Record<string, string> = {}) => ({
  body: Buffer.from(body),
  bodyType: 'data' as const,
  messageAnnotations: {
    'iothub-connection-device-id': deviceId,
    'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
    'iothub-enqueuedtime': new Date().toISOString(),
    'iothub-message-source': 'Telemetry',
    'x-opt-partition-key': deviceId,
  },
  applicationProperties: properties,
});

describe('Event Hub trigger registrations (src/index.ts loaded as the host loads it)', () => {
  const settings = testSettings(funcEventHubSettings);
  let registrations: Registration[];
  let producer: EventHubProducerClient;
  const byName = (name: string) => {
    const found = registrations.find((r) => r.metadata.name === name);
    if (!found) throw new Error(`${name} was not registered`);
    return found;
  };
  beforeAll(async () => {
    registrations = await loadEntryPoint(settings);
    producer = new EventHubProducerClient(
      settings.IotHubEventsConnection ?? '',
      settings.IotHubEventHubName ?? '',
    );
  });
  afterAll(async () => {
    await producer.close();
  });

  it('are given the local endpoint by the settings func start gets (no trigger disabled)', () => {
    expect(settings).toMatchObject({
      IotHubEventsConnection: testEventHubs.connectionString,
      IotHubEventHubName: 'iothub-events',
      IngestConsumerGroup: 'ingest',
      AnomaliesEventHubConnection: testEventHubs.connectionString,
    });
    expect(Object.keys(settings).filter((k) => k.endsWith('.Disabled'))).toEqual([]);
  });

  it.each(['ingestTelemetry', 'notifyAnomalies', 'replayTelemetry'])(
    "registers %s with dataType 'binary'",
    (name) => {
      expect(triggerBinding(byName(name))).toMatchObject({
        type: 'eventHubTrigger',
        cardinality: 'many',
        dataType: 'binary',
      });
    },
  );

  it('ingestTelemetry, served as the host serves its registration: state in Cosmos, the raw message archived, a non-JSON body dead-lettered', async () => {
    const registration = byName('ingestTelemetry');
    const summaries: IngestSummary[] = [];
    const trigger = await startEventHubTrigger(
      {
        ...registration,
        callback: async (...args) => {
          const summary = (await registration.callback(...args)) as IngestSummary;
          summaries.push(summary);
          return summary;
        },
      },
      { settings, maxBatch: 100, log: () => undefined, sleep: () => Promise.resolve() },
    );
    try {
      await producer.sendBatch(
        [
          deviceMessage('mixed', '{"temp": 21.5}', { 'stream-id': 'telemetry' }),
          deviceMessage('mixed', 'temp=22'),
          deviceMessage('mixed', '{"hum": 40}'),
        ],
        { partitionKey: 'mixed' },
      );
      for (let i = 0; summaries.reduce((n, s) => n + s.messages, 0) < 3; i++) {
        if (i > 500) throw new Error(`not ingested: ${JSON.stringify(summaries)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Before issue 11 the binding failed every attempt and the batch was gone.
      const total = (key: 'messages' | 'records' | 'deadLetters') =>
        summaries.reduce((n, s) => n + s[key], 0);
      expect([total('messages'), total('records'), total('deadLetters')]).toEqual([3, 2, 1]);
    } finally {
      await trigger.stop();
    }
    const app = await import('../../src/index.js');
    const state = await app.adapters.stateStore.get('mixed');
    expect(state?.telemetry).toMatchObject({ temp: { value: 21.5 }, hum: { value: 40 } });
    const container = BlobServiceClient.fromConnectionString(
      settings.AzureWebJobsStorage ?? '',
    ).getContainerClient(settings.RawArchiveContainerName ?? '');
    const archived: string[] = [];
    for await (const blob of container.listBlobsFlat())
      archived.push((await container.getBlobClient(blob.name).downloadToBuffer()).toString('utf8'));
    expect(archived.join('\n')).toContain('"deviceId":"mixed"');
  });

  it('the checkpoint of ingestTelemetry is in the host container azure-webjobs-eventhub: a plain consumer on the same store resumes after it', async () => {
    const { BlobCheckpointStore } = await import('@azure/eventhubs-checkpointstore-blob');
    const { ContainerClient } = await import('@azure/storage-blob');
    const container = new ContainerClient(settings.AzureWebJobsStorage ?? '', 'azure-webjobs-eventhub');
    const names: string[] = [];
    for await (const blob of container.listBlobsFlat()) names.push(blob.name);
    const port = /localhost:(\d+)/.exec(testEventHubs.connectionString)?.[1] ?? '?';
    expect(
      names.filter((n) => n.startsWith(`localhost:${port}/iothub-events/ingest/checkpoint/`)).length,
    ).toBe(1);
    // And it matches what the endpoint holds: the partition's last event.
    const store = new BlobCheckpointStore(container);
    const [checkpoint] = await store.listCheckpoints(`localhost:${port}`, 'iothub-events', 'ingest');
    const consumer = new EventHubConsumerClient(
      '$Default',
      settings.IotHubEventsConnection ?? '',
      'iothub-events',
    );
    try {
      const partition = await consumer.getPartitionProperties(checkpoint?.partitionId ?? '');
      expect(checkpoint?.sequenceNumber).toBe(partition.lastEnqueuedSequenceNumber);
    } finally {
      await consumer.close();
    }
  });
});

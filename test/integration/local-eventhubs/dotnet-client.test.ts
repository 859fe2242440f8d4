/**
 * The .NET Event Hubs client (Azure.Messaging.EventHubs 5.12.2, what the Functions host's Event Hubs extension is
 * built on) against the local endpoint, through tools/dotnet-eventhubs-probe, compared with what the JS SDK sees.
 * Skips, saying why, where the .NET 10 SDK is missing.
 */
import { randomUUID } from 'node:crypto';
import {
  EventHubConsumerClient,
  EventHubProducerClient,
  earliestEventPosition,
  type EventDataBatch,
  type ReceivedEventData,
} from '@azure/event-hubs';
import { BlobCheckpointStore } from '@azure/eventhubs-checkpointstore-blob';
import { ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LOCAL_EVENT_HUBS } from '../../../tools/local-eventhubs/config.js';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import {
  buildProbe,
  missingDotnet,
  runProbe,
  type DotnetEvent,
  type DotnetPartition,
  type ProbeRun,
} from '../../../tools/dotnet-eventhubs-probe/run-probe.js';

const skipReason = missingDotnet();
if (skipReason)
  console.warn(
    `SKIPPED .NET Event Hubs client tests: ${skipReason} (they need the .NET 10 SDK on PATH, as the CI machine has).`,
  );

let server: LocalEventHubs | undefined;
const timings: string[] = [];

/** The endpoint this file started (beforeAll). */
function endpoint(): LocalEventHubs {
  if (!server) throw new Error('the local Event Hubs endpoint did not start');
  return server;
}

/** Runs one probe command against this file's endpoint (or the connection string `env` gives). */
async function probe(args: string[], env: Record<string, string> = {}): Promise<ProbeRun> {
  const run = await runProbe(args, { EVENTHUBS_CONNECTION_STRING: endpoint().connectionString(), ...env });
  timings.push(`${args[0]} ${run.ms} ms`);
  return run;
}

/** A probe run that must succeed; its JSON. */
async function probeOk(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const run = await probe(args, env);
  if (run.code !== 0)
    throw new Error(`probe ${args.join(' ')} exited ${run.code}: ${JSON.stringify(run.out)}`);
  return run.out;
}

/** The JS SDK's view of one partition from the start, until `count` events tagged `tag` arrived (bounded). */
async function readWithJs(
  hub: string,
  partitionId: string,
  tag: string,
  count: number,
): Promise<ReceivedEventData[]> {
  const consumer = new EventHubConsumerClient('$Default', endpoint().connectionString(), hub);
  const seen: ReceivedEventData[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`JS read ${seen.length}/${count} tagged ${tag}`));
      }, 30_000);
      const subscription = consumer.subscribe(
        partitionId,
        {
          processEvents: async (events) => {
            seen.push(...events.filter((e) => e.properties?.['tag'] === tag));
            if (seen.length >= count) {
              clearTimeout(timer);
              await subscription.close();
              resolve();
            }
          },
          processError: async (error) => {
            clearTimeout(timer);
            await subscription.close();
            reject(error);
          },
        },
        { startPosition: earliestEventPosition, maxBatchSize: 100, maxWaitTimeInSeconds: 1 },
      );
    });
  } finally {
    await consumer.close();
  }
  return seen;
}

/** items[index], failing the test when there is none. */
function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`expected an item at ${index} of ${items.length}`);
  return item;
}

// Each test runs a few .NET processes (0.5-2 s each here, more on a loaded machine).
describe.skipIf(skipReason !== undefined)(
  'the .NET Event Hubs client against the local endpoint',
  { timeout: 120_000 },
  () => {
    beforeAll(async () => {
      timings.push(`build (restore included) ${buildProbe(280_000)} ms`);
      server = await startLocalEventHubs({ port: 0 });
    }, 300_000);

    afterAll(async () => {
      await server?.stop();
      console.log(`dotnet probe timings: ${timings.join('; ')}`);
    });

    it('reads hub and partition properties exactly as the JS client does, for every configured hub', async () => {
      // Something in one partition of each hub, so the numbers are not all the empty defaults.
      for (const hub of LOCAL_EVENT_HUBS) {
        await probeOk(['send', '--hub', hub.name, '--partition', '0', '--count', '2', '--tag', 'props']);
      }
      for (const hub of LOCAL_EVENT_HUBS) {
        const dotnet = await probeOk(['properties', '--hub', hub.name]);
        const producer = new EventHubProducerClient(endpoint().connectionString(), hub.name);
        try {
          const js = await producer.getEventHubProperties();
          expect(dotnet['name']).toBe(hub.name);
          expect(dotnet['partitionIds']).toEqual(js.partitionIds);
          expect(js.partitionIds).toHaveLength(hub.partitionCount);
          expect(dotnet['createdOn']).toBe(js.createdOn.toISOString());
          const partitions = dotnet['partitions'] as DotnetPartition[];
          for (const id of js.partitionIds) {
            const p = await producer.getPartitionProperties(id);
            expect(partitions.find((d) => d.id === id)).toEqual({
              id,
              eventHubName: hub.name,
              isEmpty: p.isEmpty,
              beginningSequenceNumber: p.beginningSequenceNumber,
              lastEnqueuedSequenceNumber: p.lastEnqueuedSequenceNumber,
              lastEnqueuedOffset: p.lastEnqueuedOffset,
              lastEnqueuedTime: p.lastEnqueuedOnUtc.toISOString(),
            });
          }
          expect(partitions.find((d) => d.id === '0')).toMatchObject({
            isEmpty: false,
            lastEnqueuedSequenceNumber: 1,
          });
        } finally {
          await producer.close();
        }
      }
    });

    it('sends a batch by partition key that both clients read back in one partition, in order, with the same metadata', async () => {
      const tag = `key-${randomUUID()}`;
      const sent = await probeOk([
        'send',
        '--hub',
        'iothub-events',
        '--partition-key',
        'device-7',
        '--count',
        '5',
        '--tag',
        tag,
      ]);
      expect(sent['sent']).toBe(5);
      const read = await probeOk([
        'read',
        '--hub',
        'iothub-events',
        '--consumer-group',
        '$Default',
        '--tag',
        tag,
        '--expect',
        '5',
      ]);
      const events = read['events'] as DotnetEvent[];
      expect(events).toHaveLength(5);
      const partitionId = at(events, 0).partitionId;
      expect(new Set(events.map((e) => e.partitionId))).toEqual(new Set([partitionId]));
      expect(events.map((e) => JSON.parse(e.body) as unknown)).toEqual(
        [0, 1, 2, 3, 4].map((index) => ({ tag, index })),
      );
      const first = at(events, 0).sequenceNumber;
      expect(events.map((e) => e.sequenceNumber)).toEqual([
        first,
        first + 1,
        first + 2,
        first + 3,
        first + 4,
      ]);
      expect(new Set(events.map((e) => e.offset)).size).toBe(5);
      for (const e of events) {
        expect(e.partitionKey).toBe('device-7');
        expect(e.contentType).toBe('application/json');
        expect(e.correlationId).toBe(`${tag}-correlation`);
        expect(Date.now() - Date.parse(e.enqueuedTime)).toBeLessThan(10 * 60_000);
        // Every application property keeps its AMQP type through the endpoint.
        expect(Object.fromEntries(Object.entries(e.properties).map(([k, v]) => [k, v.type]))).toEqual({
          tag: 'String',
          index: 'Int32',
          long: 'Int64',
          double: 'Double',
          bool: 'Boolean',
          time: 'DateTime',
          uuid: 'Guid',
          binary: 'Byte[]',
        });
        expect(e.systemProperties['iothub-connection-device-id']).toEqual({
          type: 'String',
          value: 'probe-device',
        });
        expect(e.systemProperties['iothub-message-source']).toEqual({ type: 'String', value: 'Telemetry' });
        expect(e.systemProperties['iothub-enqueuedtime']?.value).toBe('2026-01-02T03:04:05.000Z');
        expect(e.systemProperties['x-opt-sequence-number']).toEqual({
          type: 'Int64',
          value: e.sequenceNumber,
        });
        expect(e.systemProperties['x-opt-offset']?.value).toBe(e.offset);
        expect(e.systemProperties['x-opt-partition-key']).toEqual({ type: 'String', value: 'device-7' });
      }

      // The JS client, reading the same partition, sees the same numbers and values.
      const js = await readWithJs('iothub-events', partitionId, tag, 5);
      expect(js.map((e) => e.sequenceNumber)).toEqual(events.map((e) => e.sequenceNumber));
      expect(js.map((e) => e.offset)).toEqual(events.map((e) => e.offset));
      expect(js.map((e) => e.enqueuedTimeUtc.toISOString())).toEqual(events.map((e) => e.enqueuedTime));
      expect(js.map((e) => e.partitionKey)).toEqual(events.map(() => 'device-7'));
      expect(js.map((e) => e.messageId)).toEqual(events.map((e) => e.messageId));
      const j = at(js, 0);
      expect(j.properties).toMatchObject({ tag, index: 0, double: 0.5, bool: true });
      // (The JS client gives AMQP timestamps among the properties as epoch milliseconds.)
      expect(j.properties?.['time']).toBe(Date.parse('2026-01-02T03:04:05.678Z'));
      expect(j.systemProperties?.['iothub-connection-device-id']).toBe('probe-device');

      // The same key from the JS producer lands in the same partition (the endpoint's hash, not the client's).
      const producer = new EventHubProducerClient(endpoint().connectionString(), 'iothub-events');
      try {
        const jsTag = `${tag}-js`;
        await producer.sendBatch([{ body: 'x', properties: { tag: jsTag } }], { partitionKey: 'device-7' });
        const back = await probeOk(['read', '--hub', 'iothub-events', '--tag', jsTag, '--expect', '1']);
        expect((back['events'] as DotnetEvent[])[0]?.partitionId).toBe(partitionId);
      } finally {
        await producer.close();
      }
    });

    it("reads what IoT Hub delivers (the gateway's annotations, sent from JS) with the values the trigger metadata shows", async () => {
      const tag = `iot-${randomUUID()}`;
      const enqueued = new Date('2026-03-04T05:06:07.089Z');
      // An AmqpAnnotatedMessage (its type comes from @azure/core-amqp, not a direct dependency).
      const message: Parameters<EventDataBatch['tryAdd']>[0] = {
        body: Buffer.from(JSON.stringify({ temperature: 21.5 })),
        bodyType: 'data',
        messageAnnotations: {
          'iothub-connection-device-id': 'dev-42',
          'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
          'iothub-connection-auth-generation-id': '638000000000000000',
          'iothub-enqueuedtime': enqueued,
          'iothub-message-source': 'Telemetry',
        },
        applicationProperties: { tag, alert: 'high' },
        properties: { messageId: `${tag}-m`, contentType: 'application/json', contentEncoding: 'utf-8' },
      };
      const producer = new EventHubProducerClient(endpoint().connectionString(), 'iothub-events');
      try {
        await producer.sendBatch([message], { partitionId: '2' });
      } finally {
        await producer.close();
      }
      const read = await probeOk([
        'read',
        '--hub',
        'iothub-events',
        '--partition',
        '2',
        '--tag',
        tag,
        '--expect',
        '1',
      ]);
      const dotnet = at(read['events'] as DotnetEvent[], 0);
      const js = at(await readWithJs('iothub-events', '2', tag, 1), 0);
      expect(dotnet.body).toBe('{"temperature":21.5}');
      expect(dotnet.messageId).toBe(`${tag}-m`);
      expect(dotnet.contentType).toBe('application/json');
      expect(dotnet.properties['alert']).toEqual({ type: 'String', value: 'high' });
      // Every system property the JS client (and so the app's trigger metadata) sees, .NET sees with the same value.
      const jsSystem: Record<string, unknown> = js.systemProperties ?? {};
      expect(Object.keys(jsSystem).length).toBeGreaterThanOrEqual(5);
      // (The JS client gives AMQP timestamps among the annotations as epoch milliseconds, .NET as DateTime.)
      // (x-opt-* are not among them: the JS client lifts them into sequenceNumber, offset, enqueuedTimeUtc.)
      expect(Object.keys(jsSystem).sort()).toEqual([
        'contentEncoding',
        'contentType',
        'iothub-connection-auth-generation-id',
        'iothub-connection-auth-method',
        'iothub-connection-device-id',
        'iothub-enqueuedtime',
        'iothub-message-source',
        'messageId',
      ]);
      for (const [name, value] of Object.entries(jsSystem)) {
        // AMQP properties: messageId in JS is message-id in .NET's SystemProperties.
        const dotnetValue = dotnet.systemProperties[name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)];
        const seen =
          dotnetValue?.type === 'DateTime' && typeof value === 'number'
            ? Date.parse(String(dotnetValue.value))
            : dotnetValue?.value;
        const expected = value instanceof Date ? value.toISOString() : value;
        expect({ name, value: seen }).toEqual({ name, value: expected });
      }
      expect(dotnet.systemProperties['iothub-enqueuedtime']?.value).toBe(enqueued.toISOString());
      expect(dotnet.sequenceNumber).toBe(js.sequenceNumber);
      expect(dotnet.offset).toBe(js.offset);
    });

    it('starts reading at a sequence number and at an offset, inclusive', async () => {
      const tag = `pos-${randomUUID()}`;
      await probeOk(['send', '--hub', 'anomalies', '--partition', '1', '--count', '6', '--tag', tag]);
      const all = (
        await probeOk(['read', '--hub', 'anomalies', '--partition', '1', '--tag', tag, '--expect', '6'])
      )['events'] as DotnetEvent[];
      const third = at(all, 2);
      const fromSequence = (
        await probeOk([
          'read',
          '--hub',
          'anomalies',
          '--partition',
          '1',
          '--tag',
          tag,
          '--expect',
          '4',
          '--from',
          `sequence:${third.sequenceNumber}`,
        ])
      )['events'] as DotnetEvent[];
      expect(fromSequence.map((e) => e.sequenceNumber)).toEqual(all.slice(2).map((e) => e.sequenceNumber));
      const fromOffset = (
        await probeOk([
          'read',
          '--hub',
          'anomalies',
          '--partition',
          '1',
          '--tag',
          tag,
          '--expect',
          '4',
          '--from',
          `offset:${third.offset}`,
        ])
      )['events'] as DotnetEvent[];
      expect(fromOffset.map((e) => e.offset)).toEqual(all.slice(2).map((e) => e.offset));
    });

    it('is refused with a wrong key, for management and for sending, and nothing is stored', async () => {
      const before = endpoint().retained();
      const wrong = endpoint()
        .connectionString()
        .replace(/SharedAccessKey=[^;]+/, 'SharedAccessKey=bm90LXRoZS1rZXk=');
      const env = { EVENTHUBS_CONNECTION_STRING: wrong };
      // One attempt each: the SDK's default policy retries an UnauthorizedAccessException 3 times (~12 s), as it
      // does against the service.
      const properties = await probe(['properties', '--hub', 'iothub-events', '--retries', '0'], env);
      expect(properties.code).toBe(2);
      expect(properties.out['error']).toMatchObject({ type: 'System.UnauthorizedAccessException' });
      const send = await probe(
        ['send', '--hub', 'iothub-events', '--count', '1', '--tag', 'refused', '--retries', '0'],
        env,
      );
      expect(send.code).toBe(2);
      expect(send.out['error']).toMatchObject({ type: 'System.UnauthorizedAccessException' });
      expect(endpoint().retained()).toBe(before);
    });

    it('is told that an unknown hub does not exist (not a transient failure it would retry)', async () => {
      const run = await probe(['properties', '--hub', 'no-such-hub', '--timeout-ms', '60000']);
      expect(run.code).toBe(2);
      expect(run.out['error']).toMatchObject({ reason: 'ResourceNotFound', isTransient: false });
    });

    it("runs an event processor (the host's path) with blob checkpoints that it resumes after, which the JS store reads too", async () => {
      const storage = inject('localServices').storageConnectionString;
      const containerName = `dotnet-probe-${randomUUID().slice(0, 8)}`;
      const env = { STORAGE_CONNECTION_STRING: storage, PROBE_CHECKPOINT_CONTAINER: containerName };
      const tag = `proc-${randomUUID()}`;
      const args = [
        'processor',
        '--hub',
        'replay',
        '--consumer-group',
        'replay',
        '--tag',
        tag,
        '--max-wait-ms',
        '500',
      ];
      await probeOk(['send', '--hub', 'replay', '--count', '6', '--tag', tag]);
      const first = await probeOk([...args, '--expect', '6'], env);
      const firstEvents = first['events'] as DotnetEvent[];
      expect(firstEvents.map((e) => (JSON.parse(e.body) as { index: number }).index).sort()).toEqual([
        0, 1, 2, 3, 4, 5,
      ]);
      expect(first['checkpointsWritten']).toBeGreaterThanOrEqual(1);

      // The JS checkpoint store (the embedded runtime's) reads the checkpoints the .NET processor wrote.
      const consumer = new EventHubConsumerClient('replay', endpoint().connectionString(), 'replay');
      const store = new BlobCheckpointStore(new ContainerClient(storage, containerName));
      try {
        const checkpoints = await store.listCheckpoints(consumer.fullyQualifiedNamespace, 'replay', 'replay');
        const lastPerPartition = new Map<string, number>();
        for (const e of firstEvents) {
          lastPerPartition.set(
            e.partitionId,
            Math.max(lastPerPartition.get(e.partitionId) ?? -1, e.sequenceNumber),
          );
        }
        expect(new Map(checkpoints.map((c) => [c.partitionId, c.sequenceNumber]))).toEqual(lastPerPartition);
      } finally {
        await consumer.close();
      }

      // A second run resumes after the checkpoints: the new events only, none of those before them again.
      const tag2 = `${tag}-2`;
      await probeOk(['send', '--hub', 'replay', '--count', '3', '--tag', tag2]);
      const second = await probeOk(
        [...args.slice(0, -4), '--tag', tag2, '--max-wait-ms', '500', '--expect', '3'],
        env,
      );
      expect((second['events'] as DotnetEvent[]).length).toBe(3);
      expect(second['untagged']).toBe(0);
    }, 180_000);
  },
);

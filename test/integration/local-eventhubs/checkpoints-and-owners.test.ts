import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  EventHubConsumerClient,
  EventHubProducerClient,
  earliestEventPosition,
  type ReceivedEventData,
  type Subscription,
} from '@azure/event-hubs';
import { BlobCheckpointStore } from '@azure/eventhubs-checkpointstore-blob';
import { ContainerClient } from '@azure/storage-blob';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';

let hubs: LocalEventHubs;
let container: ContainerClient;

beforeAll(async () => {
  hubs = await startLocalEventHubs({ port: 0 });
  const storage = inject('localServices').storageConnectionString;
  container = new ContainerClient(storage, `eh-checkpoints-${randomUUID().slice(0, 8)}`);
  await container.create();
});
afterAll(async () => {
  await container.delete();
  await hubs.stop();
});

async function send(hub: string, partitionId: string, from: number, to: number): Promise<void> {
  const producer = new EventHubProducerClient(hubs.connectionString(), hub);
  try {
    const events = [];
    for (let i = from; i < to; i++) events.push({ body: { i } });
    await producer.sendBatch(events, { partitionId });
  } finally {
    await producer.close();
  }
}

/** Runs a checkpointing consumer (as the Functions host does) until `stop` says so or 15 s pass. */
async function consumeWithCheckpoints(
  hub: string,
  group: string,
  onEvent: (event: ReceivedEventData) => 'checkpoint' | 'skip' | 'stop',
): Promise<number[]> {
  const consumer = new EventHubConsumerClient(
    group,
    hubs.connectionString(),
    hub,
    new BlobCheckpointStore(container),
    {
      loadBalancingOptions: { strategy: 'greedy', updateIntervalInMs: 200 },
    },
  );
  const seen: number[] = [];
  let subscription: Subscription | undefined;
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 15_000);
      subscription = consumer.subscribe(
        {
          processEvents: async (events, context) => {
            for (const event of events) {
              seen.push((event.body as { i: number }).i);
              const verdict = onEvent(event);
              if (verdict === 'checkpoint') await context.updateCheckpoint(event);
              if (verdict === 'stop') {
                clearTimeout(timer);
                resolve();
                return;
              }
            }
          },
          processError: () => Promise.resolve(),
        },
        { startPosition: earliestEventPosition, maxBatchSize: 5, maxWaitTimeInSeconds: 1 },
      );
    });
  } finally {
    await subscription?.close();
    await consumer.close();
  }
  return seen;
}

describe('local Event Hubs endpoint: checkpoints and partition owners', () => {
  it('resumes after the checkpoint stored in Azurite blobs: no event lost, none seen twice', async () => {
    await send('anomalies', '0', 0, 30);
    await send('anomalies', '1', 100, 110);
    // Stops only once both partitions passed their checkpoint (partition 1 may be read after partition 0 ends).
    const done = new Set<number>();
    const first = await consumeWithCheckpoints('anomalies', 'notify', (event) => {
      const { i } = event.body as { i: number };
      if (i === 14 || i === 104) return 'checkpoint';
      if (i === 29 || i === 109) done.add(i);
      return done.size === 2 ? 'stop' : 'skip';
    });
    expect(first).toEqual(expect.arrayContaining([...Array(30).keys()]));
    await send('anomalies', '0', 30, 40);
    const expected = [
      ...Array.from({ length: 25 }, (_, k) => 15 + k),
      ...Array.from({ length: 5 }, (_, k) => 105 + k),
    ];
    const resumed: number[] = [];
    await consumeWithCheckpoints('anomalies', 'notify', (event) => {
      resumed.push((event.body as { i: number }).i);
      return resumed.length === expected.length ? 'stop' : 'skip';
    });
    expect([...resumed].sort((a, b) => a - b)).toEqual(expected);
  });

  it('a receiver with an equal or higher owner level takes the partition; a lower one is refused', async () => {
    await send('iothub-events', '2', 0, 3);
    const clients: EventHubConsumerClient[] = [];
    const errors: Record<string, Error[]> = { a: [], b: [], c: [] };
    const received: Record<string, number> = { a: 0, b: 0, c: 0 };
    const start = (name: string, ownerLevel: number): Subscription => {
      const consumer = new EventHubConsumerClient('asa', hubs.connectionString(), 'iothub-events');
      clients.push(consumer);
      const subscription = consumer.subscribe(
        '2',
        {
          processEvents: (events) => {
            received[name] = (received[name] ?? 0) + events.length;
            return Promise.resolve();
          },
          processError: async (error) => {
            errors[name]?.push(error);
            // A stolen or refused receiver stops (the SDK would otherwise reopen it and steal back).
            await subscription.close();
          },
        },
        { startPosition: earliestEventPosition, ownerLevel, maxWaitTimeInSeconds: 1 },
      );
      return subscription;
    };
    try {
      start('a', 1);
      await until(() => received.a === 3);
      start('b', 1);
      await until(() => received.b === 3 && (errors.a?.length ?? 0) > 0);
      expect(errors.a?.[0]?.message).toMatch(/epoch '1'/);
      start('c', 0);
      await until(() => (errors.c?.length ?? 0) > 0);
      expect(errors.c?.[0]?.message).toMatch(/higher epoch/);
      await send('iothub-events', '2', 3, 5);
      await until(() => received.b === 5);
      expect(received).toEqual({ a: 3, b: 5, c: 0 });
    } finally {
      for (const consumer of clients) await consumer.close();
    }
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(condition()).toBe(true);
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventHubConsumerClient,
  EventHubProducerClient,
  earliestEventPosition,
  type ReceivedEventData,
} from '@azure/event-hubs';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';

const EVENTS = 10_000;
const DEVICES = 100;
const PRODUCERS = 4;

let hubs: LocalEventHubs;

beforeAll(async () => {
  hubs = await startLocalEventHubs({ port: 0 });
});
afterAll(async () => {
  await hubs.stop();
});

/** One producer sends its devices' events in key-routed batches built with createBatch. */
async function produce(worker: number): Promise<void> {
  const producer = new EventHubProducerClient(hubs.connectionString(), 'iothub-events');
  try {
    for (let device = worker; device < DEVICES; device += PRODUCERS) {
      const key = `device-${device}`;
      let batch = await producer.createBatch({ partitionKey: key });
      for (let n = 0; n < EVENTS / DEVICES; n++) {
        const event = { body: { device: key, n }, properties: { n } };
        if (!batch.tryAdd(event)) {
          await producer.sendBatch(batch);
          batch = await producer.createBatch({ partitionKey: key });
          expect(batch.tryAdd(event)).toBe(true);
        }
        if (batch.count === 37) {
          await producer.sendBatch(batch);
          batch = await producer.createBatch({ partitionKey: key });
        }
      }
      if (batch.count > 0) await producer.sendBatch(batch);
    }
  } finally {
    await producer.close();
  }
}

describe('local Event Hubs endpoint at scale', () => {
  it(`delivers ${EVENTS} events from ${PRODUCERS} concurrent producers across 4 partitions: none lost, none duplicated, in order per device`, async () => {
    await Promise.all(Array.from({ length: PRODUCERS }, (_, w) => produce(w)));
    const consumer = new EventHubConsumerClient('ingest', hubs.connectionString(), 'iothub-events');
    const received: ReceivedEventData[] = [];
    const partitionOf = new Map<ReceivedEventData, string>();
    try {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 60_000);
        consumer.subscribe(
          {
            processEvents: (events, context) => {
              for (const event of events) {
                received.push(event);
                partitionOf.set(event, context.partitionId);
              }
              if (received.length >= EVENTS) {
                clearTimeout(timer);
                setTimeout(resolve, 500); // a duplicate would arrive now
              }
              return Promise.resolve();
            },
            processError: () => Promise.resolve(),
          },
          { startPosition: earliestEventPosition, maxBatchSize: 1000, maxWaitTimeInSeconds: 1 },
        );
      });
    } finally {
      await consumer.close();
    }
    expect(received).toHaveLength(EVENTS);
    const seen = new Set<string>();
    const lastN = new Map<string, number>();
    const partitionOfDevice = new Map<string, string>();
    const sequences = new Map<string, number[]>();
    for (const event of received) {
      const { device, n } = event.body as { device: string; n: number };
      seen.add(`${device}/${n}`);
      expect(n).toBe((lastN.get(device) ?? -1) + 1);
      lastN.set(device, n);
      const partition = partitionOf.get(event) as string;
      expect(partitionOfDevice.get(device) ?? partition).toBe(partition);
      partitionOfDevice.set(device, partition);
      const numbers = sequences.get(partition) ?? [];
      numbers.push(event.sequenceNumber);
      sequences.set(partition, numbers);
    }
    expect(seen.size).toBe(EVENTS);
    expect([...sequences.keys()].sort()).toEqual(['0', '1', '2', '3']);
    for (const numbers of sequences.values()) expect(numbers).toEqual(numbers.map((_, i) => i));
    expect(hubs.retained()).toBe(EVENTS);
  }, 120_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventHubProducerClient } from '@azure/event-hubs';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import { receiveFromPartition } from './sdk-helpers.js';

let hubs: LocalEventHubs;
let producer: EventHubProducerClient;

beforeAll(async () => {
  hubs = await startLocalEventHubs({ port: 0 });
  producer = new EventHubProducerClient(hubs.connectionString(), 'iothub-events');
});
afterAll(async () => {
  await producer.close();
  await hubs.stop();
});

describe('local Event Hubs endpoint: send and receive with @azure/event-hubs', () => {
  it('reports the hub and an empty partition through $management', async () => {
    const props = await producer.getEventHubProperties();
    expect(props.name).toBe('iothub-events');
    expect(props.partitionIds).toEqual(['0', '1', '2', '3']);
    const partition = await producer.getPartitionProperties('3');
    expect(partition).toMatchObject({
      eventHubName: 'iothub-events',
      partitionId: '3',
      isEmpty: true,
      lastEnqueuedSequenceNumber: -1,
      beginningSequenceNumber: 0,
    });
  });

  it('delivers a single event sent to a partition id with sequence number, offset and enqueued time', async () => {
    const before = Date.now();
    await producer.sendBatch([{ body: { temperature: 21.5 }, properties: { kind: 'single' } }], {
      partitionId: '1',
    });
    const [event, ...rest] = await receiveFromPartition(hubs.connectionString(), 'iothub-events', '1', 1);
    expect(rest).toHaveLength(0);
    expect(event?.body).toEqual({ temperature: 21.5 });
    expect(event?.properties).toEqual({ kind: 'single' });
    expect(event?.sequenceNumber).toBe(0);
    expect(event?.offset).toBe('0');
    expect(event?.enqueuedTimeUtc.getTime()).toBeGreaterThanOrEqual(before - 1);
    const partition = await producer.getPartitionProperties('1');
    expect(partition).toMatchObject({
      isEmpty: false,
      lastEnqueuedSequenceNumber: 0,
      lastEnqueuedOffset: '0',
    });
  });

  it('stores a createBatch batch as separate events in order on one partition', async () => {
    const batch = await producer.createBatch({ partitionId: '2' });
    for (let i = 0; i < 50; i++) expect(batch.tryAdd({ body: { i } })).toBe(true);
    await producer.sendBatch(batch);
    const events = await receiveFromPartition(hubs.connectionString(), 'iothub-events', '2', 50);
    expect(events.map((e) => (e.body as { i: number }).i)).toEqual([...Array(50).keys()]);
    expect(events.map((e) => e.sequenceNumber)).toEqual([...Array(50).keys()]);
    const offsets = events.map((e) => Number(e.offset));
    expect(offsets.every((o, i) => i === 0 || o > (offsets[i - 1] as number))).toBe(true);
  });
});

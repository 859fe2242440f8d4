import { mkdtemp, readFile, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventHubProducerClient, type ReceivedEventData } from '@azure/event-hubs';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import type { LocalHubConfig } from '../../../tools/local-eventhubs/config.js';
import { receiveFromPartition } from './sdk-helpers.js';

const HUBS: LocalHubConfig[] = [{ name: 'events', partitionCount: 2, consumerGroups: ['$Default'] }];
let folder: string;
let running: LocalEventHubs | undefined;

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'local-eventhubs-'));
});
afterEach(async () => {
  await running?.stop();
  running = undefined;
  await rm(folder, { recursive: true, force: true });
});

/** What the endpoints of this file logged. */
const logged: string[] = [];

async function start(retention?: {
  maxAgeMs?: number;
  maxBytesPerPartition?: number;
}): Promise<LocalEventHubs> {
  await running?.stop();
  running = await startLocalEventHubs({
    port: 0,
    hubs: HUBS,
    folder,
    log: (line) => logged.push(line),
    ...(retention ? { retention } : {}),
  });
  return running;
}

async function sendEach(hubs: LocalEventHubs, bodies: unknown[], partitionId = '0'): Promise<void> {
  const producer = new EventHubProducerClient(hubs.connectionString(), 'events');
  try {
    for (const body of bodies) await producer.sendBatch([{ body }], { partitionId });
  } finally {
    await producer.close();
  }
}

function summary(events: ReceivedEventData[]): { body: unknown; seq: number; offset: string; at: number }[] {
  return events.map((e) => ({
    body: e.body as unknown,
    seq: e.sequenceNumber,
    offset: e.offset,
    at: e.enqueuedTimeUtc.getTime(),
  }));
}

describe('local Event Hubs endpoint: persistence under the data folder', () => {
  it('an accepted send is already in the partition file', async () => {
    const hubs = await start();
    await sendEach(hubs, ['durable-marker-4711']);
    const file = await readFile(join(folder, 'events', '0.log'));
    expect(file.includes(Buffer.from('durable-marker-4711'))).toBe(true);
  });

  it('a restart keeps the events, their numbers, offsets and times, and numbering continues', async () => {
    let hubs = await start();
    await sendEach(hubs, ['a', 'b', 'c', 'd', 'e']);
    const before = summary(await receiveFromPartition(hubs.connectionString(), 'events', '0', 5));
    hubs = await start();
    const producer = new EventHubProducerClient(hubs.connectionString(), 'events');
    try {
      expect(await producer.getPartitionProperties('0')).toMatchObject({
        lastEnqueuedSequenceNumber: 4,
        lastEnqueuedOffset: before[4]?.offset,
        isEmpty: false,
      });
    } finally {
      await producer.close();
    }
    await sendEach(hubs, ['f']);
    const after = summary(await receiveFromPartition(hubs.connectionString(), 'events', '0', 6));
    expect(after.slice(0, 5)).toEqual(before);
    expect(after[5]).toMatchObject({ body: 'f', seq: 5 });
    expect(Number(after[5]?.offset)).toBeGreaterThan(Number(before[4]?.offset));
  });

  it('a torn last record (crash mid-write) is cut off; the whole records before it stay', async () => {
    let hubs = await start();
    await sendEach(hubs, ['one', 'two', 'three']);
    await hubs.stop();
    const file = join(folder, 'events', '0.log');
    const size = (await stat(file)).size;
    await truncate(file, size - 3);
    hubs = await start();
    expect(hubs.retained()).toBe(2);
    expect((await stat(file)).size).toBeLessThan(size - 3);
    await sendEach(hubs, ['four']);
    const events = summary(await receiveFromPartition(hubs.connectionString(), 'events', '0', 3));
    expect(events.map((e) => [e.body, e.seq])).toEqual([
      ['one', 0],
      ['two', 1],
      ['four', 2],
    ]);
  });

  it('retention by size drops the oldest events; a reader from the start begins at the oldest kept', async () => {
    const body = 'x'.repeat(500);
    const hubs = await start({ maxBytesPerPartition: 20 * (500 + 200) });
    const producer = new EventHubProducerClient(hubs.connectionString(), 'events');
    try {
      const batch = await producer.createBatch({ partitionId: '1' });
      for (let i = 0; i < 100; i++) expect(batch.tryAdd({ body: `${i}:${body}` })).toBe(true);
      await producer.sendBatch(batch);
      const props = await producer.getPartitionProperties('1');
      expect(props.lastEnqueuedSequenceNumber).toBe(99);
      expect(props.beginningSequenceNumber).toBeGreaterThan(70);
      const kept = 100 - props.beginningSequenceNumber;
      expect(hubs.retained()).toBe(kept);
      const events = await receiveFromPartition(hubs.connectionString(), 'events', '1', kept);
      expect(events.map((e) => e.sequenceNumber)).toEqual(
        Array.from({ length: kept }, (_, k) => props.beginningSequenceNumber + k),
      );
      // Never silently: the drop (events younger than the time bound) is logged with its partition and count.
      expect(logged).toContain(
        `local Event Hubs: events/1 dropped ${props.beginningSequenceNumber} events by its size bound (14 KiB per partition) before their time; a consumer group behind them skips them`,
      );
    } finally {
      await producer.close();
    }
  });

  it('compacts the file once dropped events dominate it, and reloads the kept ones after a restart', async () => {
    const body = 'y'.repeat(1000);
    let hubs = await start({ maxBytesPerPartition: 128 * 1024 });
    const producer = new EventHubProducerClient(hubs.connectionString(), 'events');
    try {
      for (let round = 0; round < 30; round++) {
        const batch = await producer.createBatch({ partitionId: '0' });
        for (let i = 0; i < 100; i++) expect(batch.tryAdd({ body: `${round * 100 + i}:${body}` })).toBe(true);
        await producer.sendBatch(batch);
      }
    } finally {
      await producer.close();
    }
    const file = join(folder, 'events', '0.log');
    // 3,000 events of ~1 KiB were written; kept are ~120 KiB, and the file never holds much more than 1 MiB dead.
    expect((await stat(file)).size).toBeLessThan(1.5 * 1024 * 1024);
    const kept = hubs.retained();
    expect(kept).toBeGreaterThan(50);
    expect(kept).toBeLessThan(150);
    hubs = await start({ maxBytesPerPartition: 128 * 1024 });
    expect(hubs.retained()).toBe(kept);
    await sendEach(hubs, ['next']);
    const events = await receiveFromPartition(hubs.connectionString(), 'events', '0', kept + 1);
    expect(events[0]?.sequenceNumber).toBe(3000 - kept);
    expect(events.at(-1)).toMatchObject({ body: 'next', sequenceNumber: 3000 });
  });

  it('retention by age drops events older than maxAgeMs when newer ones arrive', async () => {
    const hubs = await start({ maxAgeMs: 300 });
    await sendEach(hubs, ['old-1', 'old-2']);
    await new Promise((r) => setTimeout(r, 400));
    await sendEach(hubs, ['new']);
    expect(hubs.retained()).toBe(1);
    const events = await receiveFromPartition(hubs.connectionString(), 'events', '0', 1);
    expect(events.map((e): unknown[] => [e.body, e.sequenceNumber])).toEqual([['new', 2]]);
  });

  it('a second endpoint on the same data folder refuses to start; the folder is free again after stop', async () => {
    const first = await start();
    await sendEach(first, ['kept']);
    await expect(startLocalEventHubs({ port: 0, hubs: HUBS, folder })).rejects.toThrow(/in use by process/);
    const second = await start(); // stops the first, then takes the folder
    expect(second.retained()).toBe(1);
  });
});

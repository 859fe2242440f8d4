import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DurableLocalHub } from '../../../tools/local-runtime/durable-hubs.js';
import { PARTITIONS, type HubEvent } from '../../../tools/local-runtime/event-hubs.js';

const folder = mkdtempSync(join(tmpdir(), 'durable-hubs-'));
afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
});

const bodies = (events: HubEvent[]) => events.map((e) => e.body.toString('utf8')).sort();

describe('DurableLocalHub (in-process Event Hub with a data folder)', () => {
  it('after a crash, delivers again every acknowledged event that some consumer group had not handled', async () => {
    const before = new DurableLocalHub('telemetry', folder);
    expect(before.recover()).toBe(0);
    const fast: HubEvent[] = [];
    const consumer = before.consume('fast', 100, (batch) => {
      for (const event of batch) fast.push(event);
      return Promise.resolve();
    });
    // A group that never gets to handle anything before the crash.
    before.consume('stuck', 100, () => new Promise<void>(() => undefined));
    for (let i = 0; i < 20; i++)
      before.publish(`m${i}`, `device-${i % 3}`, { i: String(i) }, { source: 'x' });
    await before.synced();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fast).toHaveLength(20);
    await consumer.stop();
    // The crash: no close(); a write cut short leaves half a line.
    appendFileSync(join(folder, 'telemetry.jsonl'), '{"e":{"p":1,"s":99,"b":"');

    const after = new DurableLocalHub('telemetry', folder);
    expect(after.recover()).toBe(20);
    // Same partition as before (by the original partition key); checked before a reader trims what it handled.
    expect(partitionHolding(after, 'm4')).toBe(DurableLocalHub.partitionOf('device-1'));
    // A group that had handled everything resumes after its checkpoint: nothing again.
    const handledAlready: HubEvent[] = [];
    const fastAgain = after.consume('fast', 100, (batch) => {
      for (const event of batch) handledAlready.push(event);
      return Promise.resolve();
    });
    const again: HubEvent[] = [];
    const reader = after.consume('stuck', 100, (batch) => {
      for (const event of batch) again.push(event);
      return Promise.resolve();
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(bodies(again)).toEqual(bodies(fast));
    expect(again.find((e) => e.body.toString() === 'm7')?.properties).toEqual({ i: '7' });
    await reader.stop();
    expect(handledAlready).toEqual([]);
    await fastAgain.stop();
    await after.close();
  });

  it('forgets what every consumer group has handled', async () => {
    const hub = new DurableLocalHub('handled', folder);
    hub.recover();
    const consumer = hub.consume('only', 10, () => Promise.resolve());
    for (let i = 0; i < 5; i++) hub.publish(`h${i}`, 'd', {}, {});
    await hub.synced();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await consumer.stop();
    await hub.close();
    expect(new DurableLocalHub('handled', folder).recover()).toBe(0);
  });
});

function partitionHolding(hub: DurableLocalHub, body: string): number {
  return Array.from({ length: PARTITIONS }, (_, p) => p).findIndex((p) =>
    hub.events(p).some((e) => e.body.toString() === body),
  );
}

describe('DurableLocalHub sequence numbers across restarts', () => {
  /** What ingest does with a batch: an archive blob named `{partition}-{first}-{last}`, written only if absent. */
  const names = new Set<string>();
  const archived: string[] = [];
  /** State's watermark: per partition, the highest sequence number applied (lower or equal ones are skipped). */
  const watermark = new Map<string, number>();
  const counted: string[] = [];
  const ingest = (batch: HubEvent[], partitionId: string) => {
    const name = `${partitionId}-${batch[0]?.sequenceNumber}-${batch.at(-1)?.sequenceNumber}`;
    if (!names.has(name)) {
      names.add(name);
      for (const e of batch) archived.push(e.body.toString());
    }
    for (const e of batch) {
      if (e.sequenceNumber <= (watermark.get(partitionId) ?? 0)) continue;
      watermark.set(partitionId, e.sequenceNumber);
      counted.push(e.body.toString());
    }
    return Promise.resolve();
  };
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  async function run(label: string, crash: boolean) {
    const hub = new DurableLocalHub('restarts', folder);
    hub.recover();
    const consumer = hub.consume('ingest', 100, ingest);
    for (let i = 0; i < 5; i++) hub.publish(`${label}${i}`, 'one-device', {}, {});
    await hub.synced();
    await settle();
    await consumer.stop();
    if (!crash) await hub.close();
    return hub;
  }

  it('continues numbering where the last run stopped (twice, after a stop and after a crash), so nothing is dropped', async () => {
    await run('a', false);
    await run('b', true);
    await run('c', false);
    const all = ['a', 'b', 'c'].flatMap((l) => Array.from({ length: 5 }, (_, i) => `${l}${i}`));
    expect(archived.sort()).toEqual(all);
    expect(counted.sort()).toEqual(all);
  });

  it('gives a redelivered event its original sequence number and enqueued time back', async () => {
    const hub = new DurableLocalHub('redelivered', folder);
    hub.recover();
    hub.consume('slow', 100, () => new Promise<void>(() => undefined));
    for (let i = 0; i < 3; i++) hub.publish(`r${i}`, 'one-device', {}, {});
    await hub.synced();
    const p = DurableLocalHub.partitionOf('one-device');
    const before = hub.events(p).map((e) => [e.body.toString(), e.sequenceNumber, e.enqueuedTime]);
    await settle();
    const after = new DurableLocalHub('redelivered', folder);
    expect(after.recover()).toBe(3);
    expect(after.events(p).map((e) => [e.body.toString(), e.sequenceNumber, e.enqueuedTime])).toEqual(before);
    after.publish('r3', 'one-device', {}, {});
    expect(after.events(p).at(-1)?.sequenceNumber).toBe(4);
    await after.close();
  });
});

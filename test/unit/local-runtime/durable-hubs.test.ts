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
    const again: HubEvent[] = [];
    const reader = after.consume('stuck', 100, (batch) => {
      for (const event of batch) again.push(event);
      return Promise.resolve();
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(bodies(again)).toEqual(bodies(fast));
    expect(again.find((e) => e.body.toString() === 'm7')?.properties).toEqual({ i: '7' });
    await reader.stop();
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

import { describe, expect, it } from 'vitest';
import type { Anomaly } from '../../../src/alerts/anomaly-records.js';
import { createCosmosClient, lazyContainer } from '../../../src/infra/cosmos/cosmos-client.js';
import { CosmosAlarmStore } from '../../../src/infra/cosmos/cosmos-alarm-store.js';
import { AlarmNotFoundError, InvalidTransitionError } from '../../../src/shared/errors.js';
import { testConfig } from '../../support/local-env.js';

const config = testConfig();
const store = new CosmosAlarmStore(
  lazyContainer(createCosmosClient(config.cosmos), config.cosmos.databaseName, 'alarms', {
    create: true,
    partitionKeyPath: '/id',
  }),
);

const anomaly = (deviceId: string, minute: number, value = 41): Anomaly => ({
  deviceId,
  rule: 'temperature-high',
  kind: 'threshold',
  metric: 'temperature',
  value,
  score: undefined,
  threshold: 40,
  windowEnd: new Date(Date.UTC(2026, 10, 23, 10, minute)).toISOString(),
  raw: {},
});

describe('alarm lifecycle on the local Cosmos DB server', () => {
  it('opens an alarm, counts repeats while open, and ignores replays', async () => {
    const first = await store.record(anomaly('a#1', 0));
    expect(first.outcome).toBe('opened');
    expect((await store.record(anomaly('a#1', 1, 45))).outcome).toBe('repeated');
    expect((await store.record(anomaly('a#1', 1, 45))).outcome).toBe('duplicate');
    expect((await store.record(anomaly('a#1', 0))).outcome).toBe('duplicate');
    const alarm = await store.get(first.alarm.id);
    expect(alarm).toMatchObject({
      deviceId: 'a#1',
      status: 'open',
      count: 2,
      lastValue: 45,
      notification: 'pending',
    });
  });

  it('goes open → acknowledged → closed, refuses other transitions, and opens a new alarm after closing', async () => {
    const { alarm } = await store.record(anomaly('a2', 0));
    expect((await store.transition(alarm.id, 'acknowledged')).status).toBe('acknowledged');
    expect((await store.record(anomaly('a2', 1))).outcome).toBe('repeated');
    await expect(store.transition(alarm.id, 'acknowledged')).rejects.toBeInstanceOf(InvalidTransitionError);
    const closed = await store.transition(alarm.id, 'closed');
    expect(closed).toMatchObject({ status: 'closed', count: 2 });
    expect(closed.closedAt).toBeDefined();
    await expect(store.transition(alarm.id, 'closed')).rejects.toBeInstanceOf(InvalidTransitionError);
    // A replay of an anomaly the closed alarm counted reopens nothing; a new one opens a new alarm.
    expect((await store.record(anomaly('a2', 1))).outcome).toBe('duplicate');
    const next = await store.record(anomaly('a2', 5));
    expect(next.outcome).toBe('opened');
    expect(next.alarm.id).not.toBe(alarm.id);
    await expect(store.transition('nope', 'closed')).rejects.toBeInstanceOf(AlarmNotFoundError);
  });

  it('lists by device and status, and records notification state', async () => {
    const { alarm } = await store.record(anomaly('a3', 0));
    await store.setNotification(alarm.id, 'undeliverable');
    const page = await store.list({ deviceId: 'a3', status: 'open', top: 10 });
    expect(page.items.map((a) => [a.id, a.notification])).toEqual([[alarm.id, 'undeliverable']]);
    expect((await store.list({ deviceId: 'a3', status: 'closed', top: 10 })).items).toEqual([]);
  });

  it('keeps one open alarm per device and rule when anomalies arrive concurrently', async () => {
    const results = await Promise.all([0, 1, 2, 3, 4, 5].map((m) => store.record(anomaly('a4', m))));
    expect(results.filter((r) => r.outcome === 'opened')).toHaveLength(1);
    const open = await store.list({ deviceId: 'a4', status: 'open', top: 10 });
    expect(open.items).toHaveLength(1);
    expect(open.items[0]?.count).toBe(6);
  });
});

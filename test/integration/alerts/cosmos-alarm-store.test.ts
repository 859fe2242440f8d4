import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Anomaly } from '../../../src/alerts/anomaly-records.js';
import { makeAlarmHandlers } from '../../../src/alerts/http-handlers.js';
import { makeJobHandlers } from '../../../src/jobs/http-handlers.js';
import type { WorkflowClient } from '../../../src/shared/workflows.js';
import { withProblemDetails } from '../../../src/http/problem.js';
import { createCosmosClient, lazyContainer } from '../../../src/infra/cosmos/cosmos-client.js';
import { CosmosAlarmStore } from '../../../src/infra/cosmos/cosmos-alarm-store.js';
import { CosmosScheduledJobStore } from '../../../src/infra/cosmos/cosmos-scheduled-job-store.js';
import { deliverNotifications } from '../../../src/alerts/outbox.js';
import {
  AlarmNotFoundError,
  AlarmRejectedError,
  InvalidTransitionError,
  ServiceUnavailableError,
  ThrottledError,
} from '../../../src/shared/errors.js';
import { onlyFault, startFaultProxy, type FaultKind } from '../../../tools/fault-proxy.js';
import { testConfig } from '../../support/local-env.js';
import { responseProblems } from '../../support/openapi.js';

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

  it('lists by device, status and notification state, and records what became of a notification', async () => {
    const { alarm } = await store.record(anomaly('a3', 0));
    const now = new Date().toISOString();
    const claim = await store.claimNotification(alarm.id, now, new Date(Date.now() + 60_000).toISOString());
    expect(claim?.alarm.notification).toBe('notifying');
    expect(
      await store.settleNotification(alarm.id, claim?.lease ?? '', {
        state: 'undeliverable',
        reason: 'gone',
      }),
    ).toBe(true);
    const page = await store.list({ deviceId: 'a3', status: 'open', top: 10 });
    expect(page.items.map((a) => [a.id, a.notification])).toEqual([[alarm.id, 'undeliverable']]);
    expect((await store.list({ deviceId: 'a3', status: 'closed', top: 10 })).items).toEqual([]);
    expect((await store.list({ deviceId: 'a3', notification: 'pending', top: 10 })).items).toEqual([]);
    expect((await store.list({ deviceId: 'a3', notification: 'undeliverable', top: 10 })).items).toHaveLength(
      1,
    );
  });

  it('lets exactly one of many concurrent senders claim a notification, and only that one settle it', async () => {
    const { alarm } = await store.record(anomaly('c1', 0));
    const now = new Date().toISOString();
    const until = new Date(Date.now() + 60_000).toISOString();
    const claims = await Promise.all(
      [1, 2, 3, 4, 5].map(() => store.claimNotification(alarm.id, now, until)),
    );
    const won = claims.filter((c) => c !== undefined);
    expect(won).toHaveLength(1);
    expect(await store.settleNotification(alarm.id, 'someone-else', { state: 'sent', at: now })).toBe(false);
    expect(await store.settleNotification(alarm.id, won[0]?.lease ?? '', { state: 'sent', at: now })).toBe(
      true,
    );
    expect(await store.get(alarm.id)).toMatchObject({ notification: 'sent', lastNotifiedAt: now });
    expect(await store.claimNotification(alarm.id, now, until)).toBeUndefined();
  });

  it('lists due notifications: pending after their back-off, and claims whose lease expired', async () => {
    const t = (minutes: number) => new Date(Date.UTC(2030, 0, 1, 0, minutes)).toISOString();
    const device = `due-${randomUUID().slice(0, 6)}`;
    const backingOff = (await store.record(anomaly(`${device}-a`, 0))).alarm;
    const crashed = (await store.record(anomaly(`${device}-b`, 0))).alarm;
    const claim = await store.claimNotification(backingOff.id, t(0), t(2));
    await store.settleNotification(backingOff.id, claim?.lease ?? '', {
      state: 'pending',
      reason: 'Slack answered 503',
      attempted: true,
      nextAttemptAt: t(5),
    });
    await store.claimNotification(crashed.id, t(0), t(2)); // the sender dies here
    const due = async (at: string) =>
      (await store.listDueNotifications(at, 100)).map((a) => a.id).filter((id) => id.includes(device));
    expect(await due(t(1))).toEqual([]);
    expect(await due(t(3))).toEqual([crashed.id]);
    expect((await due(t(6))).sort()).toEqual([backingOff.id, crashed.id].sort());
    expect(await store.get(backingOff.id)).toMatchObject({
      notification: 'pending',
      deliveryAttempts: 1,
      lastDeliveryError: 'Slack answered 503',
    });
  });

  it('keeps one open alarm per device and rule when anomalies arrive concurrently', async () => {
    const results = await Promise.all([0, 1, 2, 3, 4, 5].map((m) => store.record(anomaly('a4', m))));
    expect(results.filter((r) => r.outcome === 'opened')).toHaveLength(1);
    const open = await store.list({ deviceId: 'a4', status: 'open', top: 10 });
    expect(open.items).toHaveLength(1);
    expect(open.items[0]?.count).toBe(6);
  });

  it('a replay after a crash between creating the alarm and pointing its slot repairs the slot (no second alarm)', async () => {
    const { alarm } = await store.record(anomaly('a5', 0));
    // The crash: the alarm document exists, the (device, rule) slot does not.
    const container = await lazyContainer(
      createCosmosClient(config.cosmos),
      config.cosmos.databaseName,
      'alarms',
      {
        create: true,
        partitionKeyPath: '/id',
      },
    )();
    const slots = await container.items
      .query<{ id: string }>({
        query: "SELECT c.id FROM c WHERE c.type = 'slot' AND c.alarmId = @id",
        parameters: [{ name: '@id', value: alarm.id }],
      })
      .fetchAll();
    expect(slots.resources).toHaveLength(1);
    for (const slot of slots.resources) await container.item(slot.id, slot.id).delete();

    expect((await store.record(anomaly('a5', 0))).outcome).toBe('duplicate'); // the replay
    expect((await store.record(anomaly('a5', 1))).outcome).toBe('repeated');
    const all = await store.list({ deviceId: 'a5', top: 10 });
    expect(all.items).toHaveLength(1);
    expect(all.items[0]).toMatchObject({ id: alarm.id, count: 2 });
  });
});

/** The raw alarms container, for what the store does not show. */
const rawContainer = lazyContainer(createCosmosClient(config.cosmos), config.cosmos.databaseName, 'alarms', {
  create: true,
  partitionKeyPath: '/id',
});
const alarmDocsOf = async (deviceId: string) =>
  (
    await (
      await rawContainer()
    ).items
      .query<{ id: string }>({
        query: "SELECT c.id FROM c WHERE c.type = 'alarm' AND c.deviceId = @d",
        parameters: [{ name: '@d', value: deviceId }],
      })
      .fetchAll()
  ).resources;

describe('ids Cosmos DB cannot take (review 2 finding 2)', () => {
  it('refuses them with AlarmRejectedError (never retried as transient)', async () => {
    const refused = await store.record(anomaly('w\ud800', 0)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AlarmRejectedError);
    expect((refused as Error).message).toContain('URIError');
  });
});

describe('the losing writer of a race to open an alarm (review finding 1)', () => {
  it('its alarm is never due, not even between its creation and its withdrawal, nor after a crash there', async () => {
    const device = `race-${randomUUID().slice(0, 6)}`;
    const far = new Date(Date.UTC(2031, 0, 1)).toISOString();
    let window: { due: string[]; claimed: boolean } | undefined;
    // Writer A's store: as soon as A has created its alarm, writer B opens one for the same pair (B wins the
    // slot), a sender looks for due notifications, and then A's process dies before it can withdraw its alarm.
    const storeA = new CosmosAlarmStore(async () => {
      const container = await rawContainer();
      if (window === undefined) {
        const docs = await alarmDocsOf(device);
        if (docs.length > 0) {
          await store.record(anomaly(device, 1));
          const due = (await store.listDueNotifications(far, 1000)).filter((a) => a.deviceId === device);
          const claimed = await store.claimNotification(docs[0]?.id ?? '', far, far);
          window = { due: due.map((a) => a.id), claimed: claimed !== undefined };
          throw new Error('the process died');
        }
      }
      return container;
    });
    await expect(storeA.record(anomaly(device, 0))).rejects.toThrow('the process died');
    expect(window?.claimed).toBe(false);
    expect(window?.due).toHaveLength(1); // B's alarm only
    // The host replays A's anomaly: it folds into B's alarm; A's leftover is never listed, due or sent.
    expect((await store.record(anomaly(device, 0))).outcome).toBe('repeated');
    const listed = (await store.list({ deviceId: device, top: 10 })).items;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ count: 2, status: 'open' });
    const due = (await store.listDueNotifications(far, 1000)).filter((a) => a.deviceId === device);
    expect(due.map((a) => a.id)).toEqual([listed[0]?.id]);
  });
});

describe('listing due notifications (review finding 3)', () => {
  it('returns the oldest due notifications first, up to the limit', async () => {
    const device = `old-${randomUUID().slice(0, 6)}`;
    const at = (minute: number) => new Date(Date.UTC(2032, 0, 1, 0, minute)).toISOString();
    // Recorded newest first: the storage order is the reverse of the age order.
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      ids.push((await store.record(anomaly(`${device}-${i}`, 0), { now: at(60 - i) })).alarm.id);
    }
    const oldest = [...ids].reverse();
    const due = async (limit: number) =>
      (await store.listDueNotifications(at(120), limit))
        .filter((a) => a.deviceId.startsWith(device))
        .map((a) => a.id);
    // Only this test's alarms are due as late as 2032 (older tests' alarms too, but they are older still).
    const all = (await store.listDueNotifications(at(120), 10_000)).map((a) => a.id);
    const before = all.length - ids.length;
    expect((await due(before + 5)).slice(0, 5)).toEqual(oldest.slice(0, 5));
    expect(await due(before + 12)).toEqual(oldest);
    // Pages of 2: read on to the limit.
    const paged = new CosmosAlarmStore(rawContainer, undefined, 2);
    expect(await paged.listDueNotifications(at(120), before + 7)).toHaveLength(before + 7);
  });
});

describe('Cosmos DB throttling and outages (a fault proxy in front of the local server)', () => {
  /** The stores behind a proxy that, once armed, answers every request with one kind of fault. */
  const behind = async (kind: FaultKind) => {
    const proxy = await startFaultProxy({
      target: config.cosmos.endpoint,
      dependency: 'cosmos',
      weights: onlyFault(kind),
      // The SDK itself retries a 429 nine times after x-ms-retry-after-ms: keep the wait short.
      retryAfterMs: 40,
    });
    const client = createCosmosClient({ ...config.cosmos, endpoint: `${proxy.origin}/` });
    const container = (name: string) =>
      lazyContainer(client, config.cosmos.databaseName, name, { create: true, partitionKeyPath: '/id' });
    const stores = {
      alarms: new CosmosAlarmStore(container('alarms')),
      jobs: new CosmosScheduledJobStore(container('jobs')),
    };
    await stores.alarms.record(anomaly('t1', 0)); // containers exist before faults start
    await stores.jobs.get('job-none');
    return { proxy, ...stores };
  };
  let throttling: Awaited<ReturnType<typeof behind>>;
  let unavailable: Awaited<ReturnType<typeof behind>>;
  beforeAll(async () => {
    [throttling, unavailable] = await Promise.all([behind('throttle'), behind('unavailable')]);
  });
  afterAll(async () => {
    await Promise.all([throttling.proxy.close(), unavailable.proxy.close()]);
  });

  it('maps 429 to ThrottledError with x-ms-retry-after-ms, in the alarm and the job store', async () => {
    const { proxy, alarms, jobs } = throttling;
    proxy.setRate(1);
    try {
      const refused = await alarms.record(anomaly('t1', 1)).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ThrottledError);
      expect((refused as ThrottledError).retryAfterSeconds).toBe(1);
      await expect(alarms.list({ top: 5 })).rejects.toBeInstanceOf(ThrottledError);
      await expect(jobs.get('job-x')).rejects.toBeInstanceOf(ThrottledError);
      await expect(jobs.list({ top: 5 })).rejects.toBeInstanceOf(ThrottledError);
    } finally {
      proxy.setRate(0);
    }
    expect(proxy.counts().injected.throttle).toBeGreaterThan(0);
  });

  it('maps 503 to ServiceUnavailableError', async () => {
    const { proxy, alarms, jobs } = unavailable;
    proxy.setRate(1);
    try {
      await expect(alarms.get('x')).rejects.toBeInstanceOf(ServiceUnavailableError);
      await expect(jobs.update('job-y', (r) => r)).rejects.toBeInstanceOf(ServiceUnavailableError);
    } finally {
      proxy.setRate(0);
    }
  });

  it('answers 503 with Retry-After over HTTP, never 500', async () => {
    const { proxy, alarms } = throttling;
    const handlers = makeAlarmHandlers(alarms);
    proxy.setRate(1);
    let res: HttpResponseInit;
    try {
      res = await withProblemDetails(handlers.listAlarms)(
        new HttpRequest({ method: 'GET', url: 'http://localhost/api/alarms?notification=pending' }),
        new InvocationContext(),
      );
    } finally {
      proxy.setRate(0);
    }
    const headers = res.headers as Record<string, string>;
    expect(res.status).toBe(503);
    expect(headers['retry-after']).toBe('1'); // from x-ms-retry-after-ms, not the 5 s default
    expect(
      responseProblems('listAlarms', 503, JSON.parse(res.body as string), headers['content-type']),
    ).toEqual([]);
  });

  it('answers 503 with Retry-After on every alarm route and every job route when Cosmos DB throttles (issue 14)', async () => {
    const { proxy, alarms, jobs } = throttling;
    const { alarm } = await alarms.record(anomaly('t5', 0));
    const alarmHandlers = makeAlarmHandlers(alarms);
    const jobHandlers = makeJobHandlers({
      scheduledJobs: jobs,
      deviceResults: {
        page: () => Promise.resolve({ items: [] }),
        save: () => Promise.resolve(),
        forget: () => Promise.resolve(),
      },
      pollIntervalMs: 1000,
    });
    const workflows: WorkflowClient = {
      start: () => Promise.resolve(),
      status: () => Promise.resolve(undefined),
      raiseEvent: () => Promise.resolve(),
    };
    const jobId = `job-${randomUUID()}`;
    const routes: [string, string, string, (request: HttpRequest) => Promise<HttpResponseInit>][] = [
      ['listAlarms', 'GET', '/api/alarms', alarmHandlers.listAlarms],
      ['acknowledgeAlarm', 'POST', `/api/alarms/${alarm.id}/acknowledge`, alarmHandlers.acknowledgeAlarm],
      ['closeAlarm', 'POST', `/api/alarms/${alarm.id}/close`, alarmHandlers.closeAlarm],
      ['listJobs', 'GET', '/api/jobs', jobHandlers.listJobs],
      ['getJob', 'GET', `/api/jobs/${jobId}`, (r) => jobHandlers.getJob(r, workflows)],
      ['listJobDevices', 'GET', `/api/jobs/${jobId}/devices`, jobHandlers.listJobDevices],
      ['cancelJob', 'POST', `/api/jobs/${jobId}/cancel`, (r) => jobHandlers.cancelJob(r, workflows)],
      ['createJob', 'POST', '/api/jobs', (r) => jobHandlers.createJob(r, workflows)],
    ];
    const job = { type: 'twinUpdate', target: { deviceIds: ['d1'] }, twinPatch: { a: 1 } };
    proxy.setRate(1);
    const answers: [string, number | undefined, string | undefined, unknown][] = [];
    try {
      for (const [name, method, path, handler] of routes) {
        const id = path.split('/')[3];
        const res = await withProblemDetails(handler)(
          new HttpRequest({
            method,
            url: `http://localhost${path}`,
            params: id ? { id } : {},
            headers: { 'content-type': 'application/json' },
            ...(name === 'createJob' ? { body: { string: JSON.stringify(job) } } : {}),
          }),
          new InvocationContext(),
        );
        const headers = (res.headers ?? {}) as Record<string, string>;
        answers.push([name, res.status, headers['retry-after'], JSON.parse(res.body as string)]);
      }
    } finally {
      proxy.setRate(0);
    }
    expect(answers.map(([name, status, retryAfter]) => [name, status, retryAfter])).toEqual(
      routes.map(([name]) => [name, 503, '1']),
    );
    for (const [, , , body] of answers) expect(body).toMatchObject({ type: 'urn:problem-type:throttled' });
  });

  it('a settlement ends at its deadline, even while the SDK waits to retry a 429, and sends nothing after it (review 2 finding 3)', async () => {
    // Cosmos DB asks for 2 s between attempts: the SDK alone would retry for 9 × 2 s.
    const proxy = await startFaultProxy({
      target: config.cosmos.endpoint,
      dependency: 'cosmos',
      weights: onlyFault('throttle'),
      retryAfterMs: 2_000,
    });
    try {
      const slow = new CosmosAlarmStore(
        lazyContainer(
          createCosmosClient({ ...config.cosmos, endpoint: `${proxy.origin}/` }),
          config.cosmos.databaseName,
          'alarms',
          { create: true, partitionKeyPath: '/id' },
        ),
      );
      const { alarm } = await slow.record(anomaly('t3', 0));
      const now = new Date();
      const claim = await slow.claimNotification(
        alarm.id,
        now.toISOString(),
        new Date(now.getTime() + 60_000).toISOString(),
      );
      proxy.setRate(1);
      const deadline = new AbortController();
      const reason = new Error('deadline');
      setTimeout(() => {
        deadline.abort(reason);
      }, 300);
      const outcome = await slow
        .settleNotification(
          alarm.id,
          claim?.lease ?? '',
          { state: 'sent', at: now.toISOString() },
          { signal: deadline.signal },
        )
        .catch((e: unknown) => e);
      expect(outcome).toBe(reason);
      const sent = proxy.counts().requests;
      expect(sent).toBeGreaterThan(0);
      // Past the SDK's wait: its next attempt was aborted before it went out.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(proxy.counts().requests).toBe(sent);
      proxy.setRate(0);
      expect(await slow.get(alarm.id)).toMatchObject({ notification: 'notifying' });
      // An aborted signal sends nothing at all.
      await expect(
        slow.settleNotification(
          alarm.id,
          claim?.lease ?? '',
          { state: 'sent', at: now.toISOString() },
          {
            signal: AbortSignal.abort(reason),
          },
        ),
      ).rejects.toBe(reason);
      expect(proxy.counts().requests).toBe(sent + 1); // the get above
    } finally {
      await proxy.close();
    }
  });

  it('the outbox stops settling a sent alert when its claim expires (review 2 finding 3)', async () => {
    const { proxy, alarms } = throttling;
    const { alarm } = await alarms.record(anomaly('t4', 0));
    let clock = Date.now();
    const logs: string[] = [];
    let requestsAtSend = 0;
    const summary = await deliverNotifications([alarm.id], {
      alarms,
      notifier: {
        // The send takes the whole lease; Cosmos DB throttles from then on.
        notify: (alerts) => {
          clock += 60_001;
          proxy.setRate(1);
          requestsAtSend = proxy.counts().requests;
          return Promise.resolve(alerts.map(() => ({ outcome: 'sent' as const })));
        },
      },
      policy: { leaseMs: 60_000, horizonMs: 3_600_000, backoffBaseMs: 30_000 },
      now: () => clock,
      log: (m) => logs.push(m),
    }).finally(() => {
      proxy.setRate(0);
    });
    expect(summary).toMatchObject({ claimed: 1, delivered: 0, unsettled: 1 });
    // Past the claim, another sender may hold it: no settlement request was even sent.
    expect(proxy.counts().requests).toBe(requestsAtSend);
    expect(logs.join('\n')).toContain('ClaimExpiredError');
  });
});

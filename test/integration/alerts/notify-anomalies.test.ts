import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeAlarmHandlers } from '../../../src/alerts/http-handlers.js';
import type { AlarmStore } from '../../../src/alerts/alarms.js';
import type { Anomaly } from '../../../src/alerts/anomaly-records.js';
import type { AlertNotifier, NotifyLimits } from '../../../src/alerts/notifier.js';
import { makeNotifyAnomalies } from '../../../src/alerts/notify-anomalies.js';
import { makeRedeliverAlerts } from '../../../src/alerts/redeliver-alerts.js';
import { withProblemDetails } from '../../../src/http/problem.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { SlackWebhook } from '../../../src/infra/slack/slack-webhook.js';
import { SlackWebhookNotifier } from '../../../src/infra/slack/slack-webhook-notifier.js';
import { ServiceUnavailableError } from '../../../src/shared/errors.js';
import { readLines } from '../../support/blobs.js';
import { iotHubBatch } from '../../support/iothub-batch.js';
import { testConfig } from '../../support/local-env.js';
import { responseProblems } from '../../support/openapi.js';
import { startFakeSlack, type FakeSlack } from '../../../tools/fake-slack.js';

let slack: FakeSlack;
const config = testConfig();
const adapters = createAdapters(config);
const logs: string[] = [];
let clock = Date.UTC(2026, 10, 23, 10, 0, 0);

const LEASE_MS = 120_000;
const HORIZON_MS = 24 * 3_600_000;
/** The instance's one client of the webhook (requests 1 s apart; Retry-After capped at 60 s). */
let webhook: SlackWebhook;

const slackNotifier = (maxWaitMs = 5000) =>
  new SlackWebhookNotifier({
    webhook,
    links: {
      stateApiUrl: (id) => `http://localhost:7071/api/devices/${id}/state`,
      deviceUrl: (id) => `https://console.example/devices/${id}`, // the '|id>' markers below
    },
    maxWaitMs,
    log: (m) => logs.push(m),
  });

function trigger(
  options: { cooldownMs?: number; maxWaitMs?: number; alarms?: AlarmStore; retry?: [number, number] } = {},
) {
  const handler = makeNotifyAnomalies({
    alarms: options.alarms ?? adapters.alarms,
    notifier: slackNotifier(options.maxWaitMs),
    deadLetters: adapters.deadLetters,
    cooldownMs: options.cooldownMs ?? 600_000,
    maxRetryCount: 5,
    outbox: { leaseMs: LEASE_MS, horizonMs: HORIZON_MS, backoffBaseMs: 30_000 },
    now: () => new Date(clock),
  });
  return (bodies: unknown[], firstSeq = 1) => {
    const { triggerMetadata } = iotHubBatch(
      bodies.map((body, i) => ({ body, sequenceNumber: firstSeq + i })),
    );
    const [retryCount, maxRetryCount] = options.retry ?? [0, 5];
    return handler(
      bodies,
      new InvocationContext({
        triggerMetadata,
        retryContext: { retryCount, maxRetryCount },
        logHandler: () => undefined,
      }),
    );
  };
}

const redeliver = (maxWaitMs = 5000, alarms: AlarmStore = adapters.alarms, notifier?: AlertNotifier) => {
  const handler = makeRedeliverAlerts({
    alarms,
    notifier: notifier ?? slackNotifier(maxWaitMs),
    outbox: { leaseMs: LEASE_MS, horizonMs: HORIZON_MS, backoffBaseMs: 30_000 },
    now: () => new Date(clock),
  });
  return handler(undefined, new InvocationContext({ logHandler: () => undefined }));
};

/** The alarms of one device. */
const alarmsOf = async (deviceId: string) => (await adapters.alarms.list({ deviceId, top: 100 })).items;

/** Messages that name a device. */
const messagesFor = (deviceId: string) =>
  slack.requests.filter((r) => String(r.body.text).includes(`|${deviceId}>`));

const anomaly = (deviceId: string, minute: number, value = 41) => ({
  deviceId,
  rule: 'temperature-high',
  kind: 'threshold',
  metric: 'temperature',
  value,
  threshold: 40,
  windowEnd: new Date(Date.UTC(2026, 10, 23, 9, minute)).toISOString(),
});

async function http(name: 'listAlarms' | 'acknowledgeAlarm' | 'closeAlarm', url: string, id?: string) {
  const handlers = makeAlarmHandlers(adapters.alarms);
  const res = (await withProblemDetails(handlers[name])(
    new HttpRequest({ method: name === 'listAlarms' ? 'GET' : 'POST', url, params: id ? { id } : {} }),
    new InvocationContext(),
  )) as HttpResponseInit;
  const body: unknown = res.jsonBody ?? JSON.parse(res.body as string);
  const contentType = (res.headers as Record<string, string> | undefined)?.['content-type'];
  expect(responseProblems(name, res.status ?? 200, body, contentType)).toEqual([]);
  return { status: res.status, body: body as Record<string, unknown> };
}

beforeAll(async () => {
  slack = await startFakeSlack();
});
beforeEach(() => {
  // A fresh client per test: no rate-limit slot carried over from the previous test.
  webhook = new SlackWebhook({
    url: slack.url,
    minIntervalMs: 1000,
    timeoutMs: 10_000,
    maxRetryAfterMs: 60_000,
  });
  slack.script();
  slack.requests.length = 0;
});
afterAll(async () => {
  await slack.close();
});

describe('notifyAnomalies on the local Cosmos DB server, Azurite and a Slack-like webhook', () => {
  it('opens alarms, sends one digest for the batch, and stays quiet on a replay and within the cooldown', async () => {
    const notify = trigger();
    const seed004 = { datetime: '2026-11-23T09:00:00Z', device: 'n2', temp: 88, AnomalyScore: 0.97 };
    const body = `${JSON.stringify(anomaly('n1', 0))}\n${JSON.stringify(seed004)}\n`;
    const first = await notify([body, [anomaly('n3', 0)]]);
    expect(first).toMatchObject({ anomalies: 3, opened: 3, alerted: 3, undeliverable: 0 });
    expect(slack.requests).toHaveLength(1);
    const text = slack.requests[0]?.body.text as string;
    expect(text).toContain('IoT alerts: 3 anomalies');
    slack.requests.length = 0;
    for (const id of ['n1', 'n2', 'n3']) expect(text).toContain(`|${id}>`);

    const replay = await notify([body, [anomaly('n3', 0)]]);
    expect(replay).toMatchObject({ duplicates: 3, alerted: 0 });
    const repeat = await notify([anomaly('n1', 1)], 10);
    expect(repeat).toMatchObject({ repeated: 1, alerted: 0 });
    expect(slack.requests).toHaveLength(0);

    clock += 11 * 60_000; // past the cooldown: a repeat alerts again
    // (A fresh webhook client: the trigger does not wait for the 1 s turn after the first message.)
    webhook = new SlackWebhook({
      url: slack.url,
      minIntervalMs: 1000,
      timeoutMs: 10_000,
      maxRetryAfterMs: 60_000,
    });
    expect(await trigger()([anomaly('n1', 2, 45)], 20)).toMatchObject({ repeated: 1, alerted: 1 });
    expect(slack.requests).toHaveLength(1);
    expect(slack.requests[0]?.body.text).toContain('×3');
  });

  it('marks alarms undeliverable when Slack refuses, and keeps unparseable bodies in dead letters', async () => {
    slack.script({ status: 404, body: 'channel_not_found' });
    const summary = await trigger()([anomaly('u1', 0), 'not json at all', 42], 100);
    expect(slack.requests).toHaveLength(1);
    expect(summary).toMatchObject({ opened: 1, undeliverable: 1, deadLetters: 2 });
    expect(logs.join('\n')).toContain('channel_not_found');
    const listed = await http('listAlarms', 'http://localhost/api/alarms?deviceId=u1');
    expect(listed.body.items).toMatchObject([
      { deviceId: 'u1', notification: 'undeliverable', status: 'open' },
    ]);
    const dead = await readLines(
      'connectionString' in config.storage ? config.storage.connectionString : '',
      config.storage.deadLetterContainer,
    );
    expect(dead.map((d) => d.reason).sort()).toEqual(['invalid-json', 'not-an-object']);
    // The same format as ingest's dead letters (review 9): text as `bodyText`, a JSON value as `body`.
    expect(dead.find((d) => d.reason === 'invalid-json')).toMatchObject({
      bodyText: 'not json at all',
      sequenceNumber: 101,
      partitionId: expect.any(String) as unknown,
    });
    expect(dead.find((d) => d.reason === 'not-an-object')).toMatchObject({ body: 42, sequenceNumber: 102 });
    // Undeliverable is final: the redelivery leaves it alone.
    expect(await redeliver()).toMatchObject({ claimed: 0 });
    expect(slack.requests).toHaveLength(1);
  });

  it('serves the alarm lifecycle over HTTP: list, acknowledge, close, 409 and 404', async () => {
    await trigger()([anomaly('h1', 0)], 200);
    const open = await http('listAlarms', 'http://localhost/api/alarms?deviceId=h1&status=open');
    const id = (open.body.items as { id: string }[])[0]?.id ?? '';
    expect(id).not.toBe('');
    expect(
      (await http('acknowledgeAlarm', `http://localhost/api/alarms/x/acknowledge`, id)).body,
    ).toMatchObject({
      status: 'acknowledged',
    });
    expect((await http('acknowledgeAlarm', `http://localhost/api/alarms/x/acknowledge`, id)).status).toBe(
      409,
    );
    expect((await http('closeAlarm', `http://localhost/api/alarms/x/close`, id)).body).toMatchObject({
      status: 'closed',
    });
    expect((await http('closeAlarm', `http://localhost/api/alarms/x/close`, 'nope')).status).toBe(404);
    expect((await http('listAlarms', 'http://localhost/api/alarms?status=bogus')).status).toBe(422);
  });
});

/** Polls `condition` (bounded: 400 × 25 ms), for events that happen in another request. */
async function eventually(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  expect(condition()).toBe(true);
}

const deadLetterLines = () =>
  readLines(
    'connectionString' in config.storage ? config.storage.connectionString : '',
    config.storage.deadLetterContainer,
  );

/** The dead-letter lines of the messages with sequence numbers first..last. */
const deadLettersOf = async (first: number, last = first) =>
  (await deadLetterLines()).filter((l) => {
    const n = Number(l.sequenceNumber);
    return n >= first && n <= last;
  });

describe('one message per alarm per cooldown, under concurrency and replay (issue 11 item 6)', () => {
  it('three invocations at once with the same device and rule send exactly one message', async () => {
    // Slack holds the first message until all three have recorded, so every invocation sees the alarm before
    // any notification is settled (the race that sent three messages).
    let release: () => void = () => undefined;
    slack.script({ status: 200, body: 'ok', after: new Promise<void>((r) => (release = r)) });
    const notify = trigger();
    const running = Promise.all([0, 1, 2].map((m) => notify([anomaly('c3', m)], 300 + m)));
    try {
      await eventually(() => slack.held === 1);
      for (let i = 0; i < 200 && (await alarmsOf('c3'))[0]?.count !== 3; i++)
        await new Promise((resolve) => setTimeout(resolve, 25));
    } finally {
      release();
    }
    const results = await running;
    expect(messagesFor('c3')).toHaveLength(1);
    expect(results.reduce((n, r) => n + r.alerted, 0)).toBe(1);
    expect(await alarmsOf('c3')).toMatchObject([{ count: 3, notification: 'sent' }]);
  });

  it('the same event delivered to two invocations at once sends exactly one message', async () => {
    const notify = trigger();
    await Promise.all([notify([anomaly('c2', 0)], 400), notify([anomaly('c2', 0)], 400)]);
    expect(messagesFor('c2')).toHaveLength(1);
    expect(await alarmsOf('c2')).toMatchObject([{ count: 1, notification: 'sent' }]);
  });

  it('a sender that dies between claim and send: nothing during its lease, one message after it', async () => {
    // What an invocation does before it dies: record, then claim the notification.
    const recorded: Anomaly = { ...anomaly('k1', 0), kind: 'threshold', score: undefined, raw: {} };
    const { alarm } = await adapters.alarms.record(recorded, { now: new Date(clock).toISOString() });
    const claim = await adapters.alarms.claimNotification(
      alarm.id,
      new Date(clock).toISOString(),
      new Date(clock + LEASE_MS).toISOString(),
    );
    expect(claim).toBeDefined();
    // The host replays the batch while the lease holds: recorded as a duplicate, not sent twice.
    expect(await trigger()([anomaly('k1', 0)], 500)).toMatchObject({ duplicates: 1, alerted: 0 });
    await redeliver();
    expect(messagesFor('k1')).toHaveLength(0);
    expect(await alarmsOf('k1')).toMatchObject([{ notification: 'notifying' }]);
    clock += LEASE_MS + 1000;
    await redeliver();
    expect(messagesFor('k1')).toHaveLength(1);
    await redeliver();
    expect(messagesFor('k1')).toHaveLength(1);
    expect(await alarmsOf('k1')).toMatchObject([{ notification: 'sent' }]);
  });
});

describe('a Slack outage does not lose alerts (issue 11 item 7)', () => {
  it('keeps the alarm pending through 5xx, lists it, and the redelivery delivers it once with back-off', async () => {
    slack.script({ status: 503, body: 'service unavailable' });
    expect(await trigger()([anomaly('o1', 0)], 600)).toMatchObject({ opened: 1, alerted: 0, pending: 1 });
    expect(await alarmsOf('o1')).toMatchObject([{ notification: 'pending', deliveryAttempts: 1 }]);
    const listed = await http('listAlarms', 'http://localhost/api/alarms?notification=pending&deviceId=o1');
    expect(listed.body.items).toMatchObject([{ deviceId: 'o1', notification: 'pending' }]);

    slack.script({ status: 500, body: 'oops' }, { status: 502, body: 'bad gateway' });
    const attempts = async (minutes: number) => {
      clock += minutes * 60_000;
      await redeliver();
      return messagesFor('o1').length;
    };
    expect(await attempts(0)).toBe(1); // backing off (30 s after the first failure)
    expect(await attempts(0.6)).toBe(2); // 500
    expect(await attempts(0.6)).toBe(2); // backing off 60 s now
    expect(await attempts(0.6)).toBe(3); // 502
    expect(await attempts(2.1)).toBe(4); // delivered
    expect(await attempts(60)).toBe(4); // for good
    expect(await alarmsOf('o1')).toMatchObject([{ notification: 'sent', deliveryAttempts: 0 }]);
  });

  it('digests what piled up during an outage into one message', async () => {
    slack.script(...Array.from({ length: 3 }, () => ({ status: 500, body: 'oops' })));
    for (const [i, id] of ['d1', 'd2', 'd3'].entries()) await trigger()([anomaly(id, 0)], 700 + i);
    clock += 31_000;
    slack.requests.length = 0;
    await redeliver();
    expect(slack.requests).toHaveLength(1);
    for (const id of ['d1', 'd2', 'd3']) expect(messagesFor(id)).toHaveLength(1);
  });

  it('gives up a notification pending past the horizon: undeliverable, logged, nothing sent', async () => {
    slack.script({ status: 500, body: 'oops' });
    await trigger()([anomaly('z1', 0)], 800);
    clock += HORIZON_MS + 60_000;
    slack.requests.length = 0;
    logs.length = 0;
    await redeliver();
    expect(messagesFor('z1')).toHaveLength(0);
    expect(await alarmsOf('z1')).toMatchObject([{ notification: 'undeliverable' }]);
  });
});

describe('Slack never holds alarms hostage (issue 11 item 10)', () => {
  it('a webhook answering Retry-After: 3600 holds neither the invocation nor the next device', async () => {
    slack.script({ status: 429, body: 'rate_limited', retryAfterSeconds: 3600 });
    expect(await trigger()([anomaly('r1', 0)], 900)).toMatchObject({ opened: 1, pending: 1 });
    expect(await trigger()([anomaly('r2', 0)], 901)).toMatchObject({ opened: 1, pending: 1 });
    expect(slack.requests).toHaveLength(1); // the second did not knock: Slack asked to wait
    // Retry-After capped at 60 s.
    expect(await alarmsOf('r1')).toMatchObject([
      { status: 'open', notification: 'pending', nextAttemptAt: new Date(clock + 60_000).toISOString() },
    ]);
    expect(await alarmsOf('r2')).toMatchObject([{ status: 'open', notification: 'pending' }]);
  });

  it("a webhook holding a request does not stall recording another device's alarm", async () => {
    let release: () => void = () => undefined;
    slack.script({ status: 200, body: 'ok', after: new Promise<void>((r) => (release = r)) });
    const held = trigger()([anomaly('s1', 0)], 1000);
    try {
      await eventually(() => slack.held === 1);
      const other = await trigger({ maxWaitMs: 200 })([anomaly('s2', 0)], 1001);
      expect(slack.held).toBe(1); // returned while the webhook still holds the first request
      expect(other).toMatchObject({ opened: 1, pending: 1 });
      expect(await alarmsOf('s2')).toMatchObject([{ status: 'open', notification: 'pending' }]);
    } finally {
      release();
    }
    expect(await held).toMatchObject({ alerted: 1 });
    await redeliver();
    expect(messagesFor('s2')).toHaveLength(1);
    expect(await alarmsOf('s2')).toMatchObject([{ notification: 'sent' }]);
  });
});

describe('nothing lost after the retry budget (issue 11 item 5)', () => {
  it('rethrows while retries remain, then parks the anomalies on the last attempt, re-processable', async () => {
    const down = new ServiceUnavailableError('Cosmos DB is unavailable (503).');
    const failing = Object.assign(Object.create(adapters.alarms) as AlarmStore, {
      record: () => Promise.reject(down),
    });
    const bytes = Buffer.from(`${JSON.stringify(anomaly('p1', 0))}\n${JSON.stringify(anomaly('p2', 0))}\n`);
    const batch = [bytes, anomaly('p3', 0)];
    await expect(trigger({ alarms: failing, retry: [1, 3] })(batch, 1100)).rejects.toBe(down);
    expect(await trigger({ alarms: failing, retry: [3, 3] })(batch, 1100)).toMatchObject({ parked: 3 });
    const parked = (await deadLetterLines()).filter((d) => d.reason === 'storage-failure');
    expect(parked).toMatchObject([
      {
        sequenceNumber: 1100,
        recordIndex: 0,
        body: anomaly('p1', 0),
        detail: expect.stringContaining('503') as unknown,
      },
      { sequenceNumber: 1100, recordIndex: 1, body: anomaly('p2', 0) },
      { sequenceNumber: 1101, recordIndex: 0, body: anomaly('p3', 0) },
    ]);
    // Re-processable: the parked bodies, fed back, record every anomaly.
    const replayed = await trigger()(
      parked.map((d) => d.body),
      1200,
    );
    expect(replayed).toMatchObject({ anomalies: 3, opened: 3 });
  });
});

describe('a failed record costs only its own device (review 8)', () => {
  const failingFor = (...deviceIds: string[]) =>
    Object.assign(Object.create(adapters.alarms) as AlarmStore, {
      record: (a: Anomaly, options?: { cooldownMs?: number; now?: string }) =>
        deviceIds.includes(a.deviceId)
          ? Promise.reject(new ServiceUnavailableError('Cosmos DB is unavailable (503).'))
          : adapters.alarms.record(a, options),
    });

  it("on the last attempt parks only the failed device's anomalies; the rest is recorded, dead letters once", async () => {
    const before = (await deadLetterLines()).length;
    const q2 = `${JSON.stringify(anomaly('q2', 0))}\n${JSON.stringify(anomaly('q2', 1))}\n`;
    const summary = await trigger({ alarms: failingFor('q2'), retry: [3, 3] })(
      [anomaly('q1', 0), q2, 'not json'],
      1300,
    );
    expect(summary).toMatchObject({ anomalies: 3, opened: 1, parked: 2, deadLetters: 1 });
    expect(await alarmsOf('q1')).toMatchObject([{ count: 1 }]);
    const lines = (await deadLetterLines()).slice(before);
    expect(lines.map((l) => l.reason).sort()).toEqual(['invalid-json', 'storage-failure', 'storage-failure']);
    expect(lines.filter((l) => l.reason === 'storage-failure')).toMatchObject([
      { sequenceNumber: 1301, recordIndex: 0, body: anomaly('q2', 0) },
      { sequenceNumber: 1301, recordIndex: 1, body: anomaly('q2', 1) },
    ]);
  });

  it('a repeated last attempt that parks another set of the same batch keeps both sets (review 2 finding 4)', async () => {
    const batch = [anomaly('y1', 0), anomaly('y2', 0), anomaly('y1', 1)];
    await trigger({ alarms: failingFor('y1'), retry: [3, 3] })(batch, 1350);
    // The host runs the last attempt again (its checkpoint was lost): another set fails, same first and last.
    await trigger({ alarms: failingFor('y1', 'y2'), retry: [3, 3] })(batch, 1350);
    const parked = await deadLettersOf(1350, 1352);
    const seen = parked.map(
      (l) => `${String(l.sequenceNumber)} ${(l.body as { deviceId: string }).deviceId}`,
    );
    expect(seen.sort()).toEqual(['1350 y1', '1350 y1', '1351 y2', '1352 y1', '1352 y1']);
  });

  it("a failing device does not leave other devices' records running after the invocation failed", async () => {
    const notify = trigger({ alarms: failingFor('x1'), retry: [0, 3] });
    await expect(
      notify([anomaly('x1', 0), anomaly('x2', 0), anomaly('x2', 1), anomaly('x2', 2)], 1400),
    ).rejects.toBeInstanceOf(ServiceUnavailableError);
    // Settled when the invocation ended, not overlapping the host's retry.
    expect(await alarmsOf('x2')).toMatchObject([{ count: 3 }]);
  });
});

describe('a permanent error is not retried as transient (review 2 finding 2)', () => {
  it('dead-letters a device id that is not well-formed on the first attempt, and records the rest', async () => {
    const body = `[${JSON.stringify(anomaly('lone1', 0))},{"deviceId":"\\ud800u","rule":"r","kind":"spike"}]`;
    const summary = await trigger({ retry: [0, 5] })([body], 1800);
    expect(summary).toMatchObject({ anomalies: 1, opened: 1, deadLetters: 1, parked: 0 });
    expect(await deadLettersOf(1800)).toMatchObject([
      {
        reason: 'invalid-anomaly',
        detail: 'deviceId holds a lone surrogate (not well-formed Unicode)',
        sequenceNumber: 1800,
        body: { deviceId: '\ud800u', rule: 'r', kind: 'spike' },
      },
    ]);
  });

  it('parks an anomaly whose alarm Cosmos DB refuses for good on the first attempt; it costs only itself', async () => {
    // An id the SDK cannot send (it throws URIError on every attempt), as a Cosmos DB 400 would be refused:
    // the real store and SDK, with the check in normalizeAnomaly bypassed.
    const unkeyable = Object.assign(Object.create(adapters.alarms) as AlarmStore, {
      record: (a: Anomaly, options?: { cooldownMs?: number; now?: string }) =>
        adapters.alarms.record(a.metric === 'bad' ? { ...a, deviceId: `${a.deviceId}\ud800` } : a, options),
    });
    const summary = await trigger({ alarms: unkeyable, retry: [0, 5] })(
      [{ ...anomaly('v1', 0), metric: 'bad' }, anomaly('v1', 1), anomaly('v2', 0)],
      1900,
    );
    expect(summary).toMatchObject({ anomalies: 3, opened: 2, deadLetters: 1, parked: 0 });
    expect(await alarmsOf('v1')).toMatchObject([{ count: 1, lastWindowEnd: anomaly('v1', 1).windowEnd }]);
    expect(await deadLettersOf(1900, 1902)).toMatchObject([
      {
        reason: 'invalid-anomaly',
        detail: expect.stringContaining('URIError') as unknown,
        sequenceNumber: 1900,
        recordIndex: 0,
        body: { ...anomaly('v1', 0), metric: 'bad' },
      },
    ]);
  });
});

describe('delivery bounded by the claims and the trigger (review 5 and 6)', () => {
  /** A long metric name: one line per section, so 50 alerts need two Slack messages. */
  const long = (deviceId: string) => ({ ...anomaly(deviceId, 0), metric: 'm'.repeat(2000) });

  it('the trigger sends at most one message, without waiting for the webhook; the timer sends the rest', async () => {
    const devices = Array.from({ length: 50 }, (_, i) => `w${i}`);
    const summary = await trigger()(devices.map(long), 1500);
    expect(slack.requests).toHaveLength(1);
    expect(summary).toMatchObject({ opened: 50, alerted: 49, pending: 1 });
    await redeliver();
    expect(slack.requests).toHaveLength(2);
    // (The text fallback is cut at 40,000 characters: count the alerts in the blocks.)
    const sections = slack.requests.flatMap((r) =>
      (r.body.blocks as { text: { text: string } }[]).slice(1).map((b) => b.text.text),
    );
    for (const id of devices) expect(sections.filter((t) => t.includes(`|${id}>`))).toHaveLength(1);
  });

  it('a claim that fails does not abandon the others, nor fail the redelivery', async () => {
    slack.script({ status: 500, body: 'oops' });
    await trigger()([anomaly('f1', 0), anomaly('f2', 0)], 1600);
    clock += 31_000;
    const { alarm } = (await alarmsOf('f1')).map((a) => ({ alarm: a }))[0] ?? { alarm: undefined };
    const flaky = Object.assign(Object.create(adapters.alarms) as AlarmStore, {
      claimNotification: (id: string, now: string, until: string) =>
        id === alarm?.id
          ? Promise.reject(new ServiceUnavailableError('Cosmos DB is unavailable (503).'))
          : adapters.alarms.claimNotification(id, now, until),
    });
    expect(await redeliver(5000, flaky)).toMatchObject({ claimErrors: 1 });
    expect(messagesFor('f2')).toHaveLength(2);
    expect(await alarmsOf('f2')).toMatchObject([{ notification: 'sent' }]);
    expect(await alarmsOf('f1')).toMatchObject([{ notification: 'pending' }]);
  });

  it('tries a settlement that fails again, so a sent alert does not stay claimed for the whole lease', async () => {
    let failures = 0;
    const flaky = Object.assign(Object.create(adapters.alarms) as AlarmStore, {
      settleNotification: (...args: Parameters<AlarmStore['settleNotification']>) =>
        failures++ === 0
          ? Promise.reject(new ServiceUnavailableError('Cosmos DB is unavailable (503).'))
          : adapters.alarms.settleNotification(...args),
    });
    expect(await trigger({ alarms: flaky })([anomaly('g1', 0)], 1700)).toMatchObject({ alerted: 1 });
    expect(await alarmsOf('g1')).toMatchObject([{ notification: 'sent' }]);
    expect(messagesFor('g1')).toHaveLength(1);
  });

  it("gives the notifier no more time than the claims' lease", async () => {
    let given: NotifyLimits | undefined;
    const recording: AlertNotifier = {
      notify: (alerts, limits) => {
        given = limits;
        return Promise.resolve(alerts.map(() => ({ outcome: 'logged' as const })));
      },
    };
    await adapters.alarms.record(
      { ...anomaly('l1', 0), kind: 'threshold', score: undefined, raw: {} },
      { now: new Date(clock).toISOString() },
    );
    await redeliver(5000, adapters.alarms, recording);
    expect(given?.timeMs).toBeGreaterThan(0);
    expect(given?.timeMs).toBeLessThan(LEASE_MS);
  });
});

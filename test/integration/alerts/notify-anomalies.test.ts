import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeAlarmHandlers } from '../../../src/alerts/http-handlers.js';
import { makeNotifyAnomalies } from '../../../src/alerts/notify-anomalies.js';
import { withProblemDetails } from '../../../src/http/problem.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { SlackWebhookNotifier } from '../../../src/infra/slack/slack-webhook-notifier.js';
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

function trigger(cooldownMs = 600_000) {
  const handler = makeNotifyAnomalies({
    alarms: adapters.alarms,
    notifier: new SlackWebhookNotifier({
      webhookUrl: slack.url,
      stateUrl: (id) => `http://localhost:7071/api/devices/${id}/state`,
      minIntervalMs: 1000,
      attempts: 2,
      log: (m) => logs.push(m),
    }),
    deadLetters: adapters.deadLetters,
    cooldownMs,
    now: () => new Date(clock),
  });
  return (bodies: unknown[], firstSeq = 1) => {
    const { triggerMetadata } = iotHubBatch(
      bodies.map((body, i) => ({ body, sequenceNumber: firstSeq + i })),
    );
    return handler(bodies, new InvocationContext({ triggerMetadata, logHandler: () => undefined }));
  };
}

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
    for (const id of ['n1', 'n2', 'n3']) expect(text).toContain(`|${id}>`);

    const replay = await notify([body, [anomaly('n3', 0)]]);
    expect(replay).toMatchObject({ duplicates: 3, alerted: 0 });
    const repeat = await notify([anomaly('n1', 1)], 10);
    expect(repeat).toMatchObject({ repeated: 1, alerted: 0 });
    expect(slack.requests).toHaveLength(1);

    clock += 11 * 60_000; // past the cooldown: a repeat alerts again
    expect(await notify([anomaly('n1', 2, 45)], 20)).toMatchObject({ repeated: 1, alerted: 1 });
    expect(slack.requests).toHaveLength(2);
    expect(slack.requests[1]?.body.text).toContain('×3');
  });

  it('marks alarms undeliverable when Slack refuses, and keeps unparseable bodies in dead letters', async () => {
    slack.script({ status: 404, body: 'channel_not_found' });
    const summary = await trigger()([anomaly('u1', 0), 'not json at all', 42], 100);
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

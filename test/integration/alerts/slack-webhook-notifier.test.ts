import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Alert } from '../../../src/alerts/alert-message.js';
import { LogNotifier, SlackWebhookNotifier } from '../../../src/infra/slack/slack-webhook-notifier.js';
import { startFakeSlack, type FakeSlack } from '../../../tools/fake-slack.js';

const alert = (i: number, overrides: Partial<Alert> = {}): Alert => ({
  alarmId: `alarm-${i}`,
  deviceId: `dev-${i}`,
  rule: 'temperature-high',
  kind: 'threshold',
  metric: 'temperature',
  value: 41.5,
  score: undefined,
  threshold: 40,
  at: '2026-11-23T10:00:00.000Z',
  count: 1,
  ...overrides,
});

let slack: FakeSlack;
let logs: string[];
const notifier = () =>
  new SlackWebhookNotifier({
    webhookUrl: slack.url,
    stateUrl: (id) => `https://app.example/api/devices/${encodeURIComponent(id)}/state`,
    attempts: 3,
    log: (m) => logs.push(m),
  });

beforeAll(async () => {
  slack = await startFakeSlack();
});
afterAll(async () => {
  await slack.close();
});
beforeEach(() => {
  slack.requests.length = 0;
  slack.script();
  logs = [];
});

describe('SlackWebhookNotifier against a local Slack-like webhook', () => {
  it('sends one alert as Block Kit with a text fallback and a link to the device state', async () => {
    expect(await notifier().notify([alert(1, { deviceId: 'dev<1>&' })])).toEqual(['sent']);
    expect(slack.requests).toHaveLength(1);
    const line =
      '• <https://app.example/api/devices/dev%3C1%3E%26/state|dev&lt;1&gt;&amp;> temperature-high: temperature = 41.5 (threshold 40) at 2026-11-23T10:00:00.000Z';
    expect(slack.requests[0]?.body).toEqual({
      text: `IoT alert\n${line}`,
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: 'IoT alert' } },
        { type: 'section', text: { type: 'mrkdwn', text: line } },
      ],
    });
  });

  it('folds a burst into one digest that names every alert', async () => {
    const burst = Array.from({ length: 120 }, (_, i) => alert(i, { score: 0.9, threshold: undefined }));
    expect(new Set(await notifier().notify(burst))).toEqual(new Set(['sent']));
    expect(slack.requests).toHaveLength(1);
    const text = slack.requests[0]?.body.text as string;
    for (let i = 0; i < 120; i++) expect(text).toContain(`|dev-${i}>`);
    expect(text.startsWith('IoT alerts: 120 anomalies')).toBe(true);
  });

  it('waits Retry-After on 429, then delivers', async () => {
    slack.script({ status: 429, body: 'rate_limited', retryAfterSeconds: 1 });
    expect(await notifier().notify([alert(1)])).toEqual(['sent']);
    expect(slack.requests).toHaveLength(2);
    const [first, second] = slack.requests;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(1000);
  });

  it('retries a 500, then delivers', async () => {
    slack.script({ status: 500, body: 'oops' });
    expect(await notifier().notify([alert(1)])).toEqual(['sent']);
    expect(slack.requests).toHaveLength(2);
  });

  it.each([
    [400, 'invalid_payload'],
    [404, 'channel_not_found'],
    [410, 'channel_is_archived'],
  ])(
    'does not retry %i %s: undeliverable, logged with the body but never the webhook URL',
    async (status, body) => {
      slack.script({ status, body });
      expect(await notifier().notify([alert(1), alert(2)])).toEqual(['undeliverable', 'undeliverable']);
      expect(slack.requests).toHaveLength(1);
      expect(logs.join('\n')).toContain(body);
      expect(logs.join('\n')).not.toContain('XXXXXXXX');
    },
  );

  it('spaces requests to the webhook at least one second apart', async () => {
    const n = notifier();
    await Promise.all([n.notify([alert(1)]), n.notify([alert(2)]), n.notify([alert(3)])]);
    const times = slack.requests.map((r) => r.at);
    expect(times).toHaveLength(3);
    for (let i = 1; i < times.length; i++)
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(950);
  });
});

describe('LogNotifier', () => {
  it('logs each alert and reports it as logged', async () => {
    const lines: string[] = [];
    expect(await new LogNotifier((m) => lines.push(m)).notify([alert(7)])).toEqual(['logged']);
    expect(lines).toEqual([
      'ALERT dev-7 temperature-high: temperature=41.5 at 2026-11-23T10:00:00.000Z (alarm alarm-7)',
    ]);
  });
});

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Alert, AlertLinks } from '../../../src/alerts/alert-message.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { SlackWebhook } from '../../../src/infra/slack/slack-webhook.js';
import { LogNotifier, SlackWebhookNotifier } from '../../../src/infra/slack/slack-webhook-notifier.js';
import type { ScheduledJobRun } from '../../../src/jobs/ports.js';
import { closedPort } from '../../fixtures/closed-port.js';
import { testConfig } from '../../support/local-env.js';
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
const webhook = (url = slack.url, timeoutMs = 10_000) =>
  new SlackWebhook({ url, minIntervalMs: 1000, timeoutMs, maxRetryAfterMs: 60_000 });
const stateApiUrl = (id: string) => `https://app.example/api/devices/${encodeURIComponent(id)}/state`;
/** With a console: each device id is a link (`<url|id>`), which the tests below look for. */
const CONSOLE_LINKS: AlertLinks = {
  stateApiUrl,
  deviceUrl: (id) => `https://console.example/devices/${encodeURIComponent(id)}`,
};
const notifier = (hook = webhook(), maxWaitMs = 5000, links: AlertLinks = CONSOLE_LINKS) =>
  new SlackWebhookNotifier({
    webhook: hook,
    links,
    maxWaitMs,
    log: (m) => logs.push(m),
  });
const sent = { outcome: 'sent' };

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
  it('sends one alert as Block Kit with a text fallback, naming the device state route (no key-protected link)', async () => {
    const withoutConsole = notifier(webhook(), 5000, { stateApiUrl });
    expect(await withoutConsole.notify([alert(1, { deviceId: 'dev<1>&' })])).toEqual([sent]);
    expect(slack.requests).toHaveLength(1);
    const line =
      '• dev&lt;1&gt;&amp; temperature-high: temperature = 41.5 (threshold 40) at 2026-11-23T10:00:00.000Z · state: `GET https://app.example/api/devices/dev%3C1%3E%26/state` (function key)';
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
    expect(await notifier().notify(burst)).toEqual(burst.map(() => sent));
    expect(slack.requests).toHaveLength(1);
    const text = slack.requests[0]?.body.text as string;
    for (let i = 0; i < 120; i++) expect(text).toContain(`|dev-${i}>`);
    expect(text.startsWith('IoT alerts: 120 anomalies')).toBe(true);
  });

  it('makes one attempt: a 429 asks for a retry after Retry-After, and the next request waits for it', async () => {
    slack.script({ status: 429, body: 'rate_limited', retryAfterSeconds: 2 });
    const hook = webhook();
    expect(await notifier(hook).notify([alert(1)])).toEqual([
      { outcome: 'retry', attempted: true, reason: 'Slack answered 429: rate_limited', retryAfterMs: 2000 },
    ]);
    expect(slack.requests).toHaveLength(1);
    expect(await notifier(hook, 5000).notify([alert(1)])).toEqual([sent]);
    const [first, second] = slack.requests;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(1950);
  });

  it('caps Retry-After: an hour becomes the configured maximum, and a caller does not wait for it', async () => {
    slack.script({ status: 429, body: 'rate_limited', retryAfterSeconds: 3600 });
    const hook = new SlackWebhook({
      url: slack.url,
      minIntervalMs: 1000,
      timeoutMs: 10_000,
      maxRetryAfterMs: 30_000,
    });
    expect(await notifier(hook).notify([alert(1)])).toMatchObject([
      { outcome: 'retry', retryAfterMs: 30_000 },
    ]);
    // The next caller gets no turn within its 5 s: it is told to come back, without a request.
    const [busy] = await notifier(hook, 5000).notify([alert(2)]);
    expect(busy).toMatchObject({ outcome: 'retry', attempted: false, reason: 'Slack webhook rate-limited' });
    expect(slack.requests).toHaveLength(1);
  });

  it.each([
    [500, 'oops'],
    [502, 'bad gateway'],
    [503, 'service unavailable'],
  ])('leaves %i %s to a retry: transient, never undeliverable', async (status, body) => {
    slack.script({ status, body });
    expect(await notifier().notify([alert(1), alert(2)])).toEqual([
      { outcome: 'retry', attempted: true, reason: `Slack answered ${status}: ${body}` },
      { outcome: 'retry', attempted: true, reason: `Slack answered ${status}: ${body}` },
    ]);
    expect(slack.requests).toHaveLength(1);
  });

  it('leaves a refused connection and a timeout to a retry', async () => {
    expect(
      await notifier(webhook(`http://127.0.0.1:${await closedPort()}/services/secret-path`)).notify([
        alert(1),
      ]),
    ).toEqual([{ outcome: 'retry', attempted: true, reason: 'Slack unreachable (ECONNREFUSED)' }]);
    let release: () => void = () => undefined;
    slack.script({ status: 200, body: 'ok', after: new Promise<void>((r) => (release = r)) });
    try {
      expect(await notifier(webhook(slack.url, 300)).notify([alert(2)])).toEqual([
        { outcome: 'retry', attempted: true, reason: 'Slack unreachable (timeout)' },
      ]);
    } finally {
      release();
    }
    expect(logs.join('\n')).not.toContain('secret-path');
  });

  it.each([
    [404, 'channel_not_found'],
    [410, 'channel_is_archived'],
  ])(
    'does not retry %i %s: undeliverable, logged with the body but never the webhook URL',
    async (status, body) => {
      slack.script({ status, body });
      const refused = { outcome: 'undeliverable', reason: `Slack refused the message (${status}): ${body}` };
      expect(await notifier().notify([alert(1), alert(2)])).toEqual([refused, refused]);
      expect(slack.requests).toHaveLength(1);
      expect(logs.join('\n')).toContain(body);
      expect(logs.join('\n')).not.toContain('XXXXXXXX');
    },
  );

  it('does not retry 400 invalid_payload for one alert: undeliverable, logged, never the webhook URL', async () => {
    slack.script({ status: 400, body: 'invalid_payload' });
    expect(await notifier().notify([alert(1)])).toEqual([
      { outcome: 'undeliverable', reason: 'Slack refused the message (400): invalid_payload' },
    ]);
    expect(slack.requests).toHaveLength(1);
    expect(logs.join('\n')).toContain('invalid_payload');
    expect(logs.join('\n')).not.toContain('XXXXXXXX');
  });

  it('re-sends a refused digest one alert at a time: only the alert Slack refuses is undeliverable (review 4)', async () => {
    slack.script(
      { status: 400, body: 'invalid_blocks' },
      { status: 200, body: 'ok' },
      { status: 400, body: 'invalid_blocks' },
      { status: 200, body: 'ok' },
    );
    const quick = new SlackWebhook({
      url: slack.url,
      minIntervalMs: 10,
      timeoutMs: 10_000,
      maxRetryAfterMs: 60_000,
    });
    const refused = { outcome: 'undeliverable', reason: 'Slack refused the message (400): invalid_blocks' };
    expect(await notifier(quick).notify([alert(1), alert(2), alert(3)])).toEqual([sent, refused, sent]);
    expect(slack.requests.map((r) => (String(r.body.text).match(/\|dev-\d>/g) ?? []).join())).toEqual([
      '|dev-1>,|dev-2>,|dev-3>',
      '|dev-1>',
      '|dev-2>',
      '|dev-3>',
    ]);
  });

  it('keeps every section of a message non-empty and within 3,000 characters, even for a huge line (review 4)', async () => {
    const huge = alert(1, { deviceId: 'd'.repeat(5000), metric: '<&>'.repeat(2000) });
    expect(await notifier().notify([alert(0), huge, alert(2)])).toEqual([sent, sent, sent]);
    const blocks = slack.requests.flatMap((r) => r.body.blocks as { type: string; text: { text: string } }[]);
    const sections = blocks.filter((b) => b.type === 'section').map((b) => b.text.text);
    expect(sections.length).toBeGreaterThan(0);
    for (const text of sections) {
      expect(text.trim()).not.toBe('');
      expect(text.length).toBeLessThanOrEqual(3000);
    }
    const text = sections.join('\n');
    for (const i of [0, 2]) expect(text).toContain(`|dev-${i}>`);
  });

  it('starts no request that could outlive the time it is given: the rest is left to a retry (review 5)', async () => {
    // 10 s per-attempt timeout, 1 s left: not even one attempt fits.
    expect(await notifier().notify([alert(1), alert(2)], { timeMs: 1000 })).toEqual([
      { outcome: 'retry', attempted: false, reason: expect.stringContaining('no time left') as unknown },
      { outcome: 'retry', attempted: false, reason: expect.stringContaining('no time left') as unknown },
    ]);
    expect(slack.requests).toHaveLength(0);
    // One message at most, no waiting for the webhook's turn (the trigger's limits): the second alert, which
    // needs a message of its own after a refusal, is left to a retry without a request.
    slack.script({ status: 400, body: 'invalid_blocks' }, { status: 200, body: 'ok' });
    expect(
      await notifier().notify([alert(3), alert(4)], { timeMs: 60_000, maxMessages: 1, maxWaitMs: 0 }),
    ).toMatchObject([
      { outcome: 'retry', attempted: false },
      { outcome: 'retry', attempted: false },
    ]);
    expect(slack.requests).toHaveLength(1);
  });

  it('spaces requests to the webhook at least one second apart', async () => {
    const n = notifier();
    await Promise.all([n.notify([alert(1)]), n.notify([alert(2)]), n.notify([alert(3)])]);
    const times = slack.requests.map((r) => r.at);
    expect(times).toHaveLength(3);
    for (let i = 1; i < times.length; i++)
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(950);
  });

  it('shares one rate limit between alerts and job notices of the instance (the adapters)', async () => {
    const { notifier: alerts, jobNotifier } = createAdapters(testConfig({ SlackWebhookUrl: slack.url }));
    const run: ScheduledJobRun = {
      run: 1,
      startedAt: '2026-11-23T02:00:00Z',
      status: 'completed',
      hubJobIds: [],
      statistics: { deviceCount: 1, succeededCount: 1, failedCount: 0, runningCount: 0, pendingCount: 0 },
    };
    await Promise.all([
      alerts.notify([alert(1)]),
      jobNotifier.runEnded('job-1', run),
      alerts.notify([alert(2)]),
      jobNotifier.runEnded('job-2', run),
    ]);
    const times = slack.requests.map((r) => r.at).sort((a, b) => a - b);
    expect(times).toHaveLength(4);
    for (let i = 1; i < times.length; i++)
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(950);
  });
});

describe('LogNotifier', () => {
  it('logs each alert and reports it as logged', async () => {
    const lines: string[] = [];
    expect(await new LogNotifier((m) => lines.push(m)).notify([alert(7)])).toEqual([{ outcome: 'logged' }]);
    expect(lines).toEqual([
      'ALERT dev-7 temperature-high: temperature=41.5 at 2026-11-23T10:00:00.000Z (alarm alarm-7)',
    ]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScheduledJobRun } from '../../../src/jobs/ports.js';
import { SlackJobNotifier } from '../../../src/infra/slack/job-notifier.js';
import { SlackWebhook } from '../../../src/infra/slack/slack-webhook.js';
import { closedPort } from '../../fixtures/closed-port.js';
import { startFakeSlack, type FakeSlack } from '../../../tools/fake-slack.js';

const hook = (url: string) =>
  new SlackWebhook({ url, minIntervalMs: 1000, timeoutMs: 5000, maxRetryAfterMs: 60_000 });

const run: ScheduledJobRun = {
  run: 3,
  startedAt: '2026-11-23T02:00:00Z',
  endedAt: '2026-11-23T02:05:00Z',
  status: 'completed',
  hubJobIds: ['job-x-r3-b0'],
  statistics: { deviceCount: 40, succeededCount: 38, failedCount: 2, runningCount: 0, pendingCount: 0 },
};

describe('SlackJobNotifier (a Slack-like local webhook)', () => {
  let slack: FakeSlack;
  beforeAll(async () => {
    slack = await startFakeSlack();
  });
  afterAll(() => slack.close());

  it('posts one line with the device counts', async () => {
    const logged: string[] = [];
    await new SlackJobNotifier(hook(slack.url), (m) => logged.push(m)).runEnded('job-x', run);
    expect(slack.requests.map((r) => r.body)).toEqual([
      { text: 'Job job-x run 3 completed: 38/40 devices succeeded, 2 failed' },
    ]);
    expect(logged).toEqual([]);
  });

  it('never throws: a refused or unreachable webhook is logged without its (secret) URL', async () => {
    const logged: string[] = [];
    slack.script({ status: 404, body: 'channel_not_found' });
    await new SlackJobNotifier(hook(slack.url), (m) => logged.push(m)).runEnded('job-x', {
      ...run,
      status: 'failed',
      failureReason: 'quota',
    });
    await new SlackJobNotifier(hook(`http://127.0.0.1:${await closedPort()}/hook-secret`), (m) =>
      logged.push(m),
    ).runEnded('job-x', run);
    expect(logged[0]).toMatch(/\(404\): channel_not_found.*run 3 failed.*\(quota\)/);
    expect(logged[1]).toMatch(/Slack unreachable \(ECONNREFUSED\)/);
    expect(logged.join('\n')).not.toContain('hook-secret');
  });

  it('logs the notice when no webhook is configured', async () => {
    const logged: string[] = [];
    await new SlackJobNotifier(undefined, (m) => logged.push(m)).runEnded('job-y', run);
    expect(logged).toEqual(['Job job-y run 3 completed: 38/40 devices succeeded, 2 failed']);
  });
});

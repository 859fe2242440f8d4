import { slackMessages, type Alert, type AlertLinks } from '../../alerts/alert-message.js';
import type { AlertNotifier, Delivery, NotifyLimits } from '../../alerts/notifier.js';
import type { PostResult, SlackWebhook } from './slack-webhook.js';

export interface SlackOptions {
  /** The instance's one client of the webhook (shared with job notices: one rate limit). */
  webhook: SlackWebhook;
  /** Where an alert points its reader: the console's device page, else the state API named as text. */
  links: AlertLinks;
  /** How long one notify call waits for its turn at the webhook, ms, before leaving the alerts to the outbox. */
  maxWaitMs: number;
  log: (message: string) => void;
}

const delivery = (result: PostResult): Delivery => {
  switch (result.outcome) {
    case 'sent':
      return { outcome: 'sent' };
    case 'refused':
      return { outcome: 'undeliverable', reason: result.reason };
    case 'failed':
    case 'busy':
      return {
        outcome: 'retry',
        reason: result.reason,
        attempted: result.outcome === 'failed',
        ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }),
      };
  }
};

/**
 * The messages of one notify call, within its limits: no request starts that could end after the time given
 * (queue wait + timeout), at most `maxMessages` go out, and after a transient failure, a refusal of the channel
 * or no turn at the webhook, the rest are not attempted.
 */
class Sending {
  private readonly deadline: number;
  private sent = 0;
  private stopped: PostResult | undefined;

  constructor(
    private readonly options: SlackOptions,
    private readonly limits: NotifyLimits | undefined,
  ) {
    this.deadline = Date.now() + (limits?.timeMs ?? Number.POSITIVE_INFINITY);
  }

  async send(body: object, alerts: number): Promise<PostResult> {
    if (this.stopped) return this.stopped;
    const { webhook, log } = this.options;
    if (this.sent >= (this.limits?.maxMessages ?? Number.POSITIVE_INFINITY))
      return { outcome: 'busy', reason: 'not attempted: no more messages in this delivery' };
    const timeoutMs = Math.min(webhook.timeoutMs, this.limits?.timeoutMs ?? Number.POSITIVE_INFINITY);
    const left = this.deadline - Date.now();
    if (left < timeoutMs) return { outcome: 'busy', reason: 'not attempted: no time left in this delivery' };
    const maxWaitMs = Math.min(this.options.maxWaitMs, this.limits?.maxWaitMs ?? left, left - timeoutMs);
    const result = await webhook.post(body, Math.max(0, maxWaitMs), timeoutMs);
    if (result.outcome !== 'busy') this.sent++;
    if (result.outcome === 'sent') return result;
    // Slack's answer, never the webhook URL (a secret).
    log(`Slack delivery of ${alerts} alert(s) failed: ${result.reason}`);
    if (result.outcome === 'refused') {
      if (result.scope === 'channel') this.stopped = result;
    } else {
      const { retryAfterMs } = result;
      this.stopped = {
        outcome: 'busy',
        reason: `not attempted after: ${result.reason}`,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      };
    }
    return result;
  }
}

/**
 * Sends alerts to a Slack incoming webhook: a burst becomes one digest message (more only beyond Slack's
 * size limits), with one attempt each. Slack's permanent refusals make alerts undeliverable: a refusal of the
 * channel (`channel_not_found`, `channel_is_archived`, 404, 410, …) all of them; a refusal of a digest's content
 * (`invalid_payload`, `invalid_blocks`, other 4xx) re-sends its alerts one by one first, so that one bad alert
 * costs only itself. Anything transient (5xx, 429, timeouts, connection failures, no turn at the webhook in
 * time, no time left in `limits`) asks for a retry, which the outbox schedules.
 */
export class SlackWebhookNotifier implements AlertNotifier {
  constructor(private readonly options: SlackOptions) {}

  async notify(alerts: readonly Alert[], limits?: NotifyLimits): Promise<Delivery[]> {
    const sending = new Sending(this.options, limits);
    const outcomes: Delivery[] = [];
    let first = 0;
    for (const message of slackMessages(alerts, this.options.links)) {
      const part = alerts.slice(first, first + message.alerts);
      first += message.alerts;
      const result = await sending.send(message.body, part.length);
      if (result.outcome === 'refused' && result.scope === 'message' && part.length > 1) {
        for (const alert of part) {
          const single = slackMessages([alert], this.options.links)[0]?.body ?? {};
          outcomes.push(delivery(await sending.send(single, 1)));
        }
      } else {
        for (let i = 0; i < part.length; i++) outcomes.push(delivery(result));
      }
    }
    return outcomes;
  }
}

/** The local default without a webhook: alerts are written to the function log (and kept in alarms). */
export class LogNotifier implements AlertNotifier {
  constructor(private readonly log: (message: string) => void) {}

  notify(alerts: readonly Alert[]): Promise<Delivery[]> {
    for (const a of alerts) {
      this.log(
        `ALERT ${a.deviceId} ${a.rule}: ${a.metric}=${String(a.value)} at ${a.at} (alarm ${a.alarmId})`,
      );
    }
    return Promise.resolve(alerts.map((): Delivery => ({ outcome: 'logged' })));
  }
}

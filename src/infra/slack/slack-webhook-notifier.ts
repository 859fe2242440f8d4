import { slackMessages, type Alert } from '../../alerts/alert-message.js';
import type { AlertNotifier, Delivery } from '../../alerts/notifier.js';
import type { PostResult, SlackWebhook } from './slack-webhook.js';

export interface SlackOptions {
  /** The instance's one client of the webhook (shared with job notices: one rate limit). */
  webhook: SlackWebhook;
  /** Link target for a device, e.g. `https://myapp.azurewebsites.net/api/devices/{id}/state`. */
  stateUrl: (deviceId: string) => string;
  /** How long one notify call waits for its turn at the webhook, ms, before leaving the alerts to the outbox. */
  maxWaitMs: number;
  log: (message: string) => void;
}

const delivery = (result: Exclude<PostResult, { outcome: 'sent' }>): Delivery =>
  result.outcome === 'refused'
    ? { outcome: 'undeliverable', reason: result.reason }
    : {
        outcome: 'retry',
        reason: result.reason,
        attempted: result.outcome === 'failed',
        ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }),
      };

/**
 * Sends alerts to a Slack incoming webhook: a burst becomes one digest message (more only beyond Slack's
 * size limits), with one attempt each. Slack's permanent refusals (`invalid_payload`, `channel_not_found`,
 * 410, other 4xx) make the alerts undeliverable; anything transient (5xx, 429, timeouts, connection failures,
 * no turn at the webhook in time) asks for a retry, which the outbox schedules.
 */
export class SlackWebhookNotifier implements AlertNotifier {
  constructor(private readonly options: SlackOptions) {}

  async notify(alerts: readonly Alert[]): Promise<Delivery[]> {
    const outcomes: Delivery[] = [];
    let failure: Delivery | undefined;
    for (const message of slackMessages(alerts, this.options.stateUrl)) {
      if (!failure) {
        const result = await this.options.webhook.post(message.body, this.options.maxWaitMs);
        if (result.outcome !== 'sent') {
          failure = delivery(result);
          // Slack's answer, never the webhook URL (a secret).
          this.options.log(`Slack delivery of ${alerts.length} alert(s) failed: ${result.reason}`);
        }
      }
      for (let i = 0; i < message.alerts; i++) outcomes.push(failure ?? { outcome: 'sent' });
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

import pRetry, { AbortError } from 'p-retry';
import { slackMessages, type Alert } from '../../alerts/alert-message.js';
import type { AlertNotifier, Delivery } from '../../alerts/notifier.js';

export interface SlackOptions {
  webhookUrl: string;
  /** Link target for a device, e.g. `https://myapp.azurewebsites.net/api/devices/{id}/state`. */
  stateUrl: (deviceId: string) => string;
  /** Minimum time between two requests to the webhook, ms (Slack allows about 1 per second). */
  minIntervalMs?: number;
  /** Attempts for 429 and transient failures (5xx, network, timeout). */
  attempts?: number;
  /** Per-request timeout, ms. */
  timeoutMs?: number;
  log: (message: string) => void;
}

/**
 * Sends alerts to a Slack incoming webhook: a burst becomes one digest message; requests to the webhook are
 * spaced at least `minIntervalMs` apart (retries included); 429 waits Retry-After; 5xx and timeouts retry with
 * backoff; a 4xx such as `invalid_payload` or `channel_not_found` is not retried, logged with Slack's answer,
 * and reported as undeliverable so the caller keeps the alert.
 */
export class SlackWebhookNotifier implements AlertNotifier {
  private nextSlot = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: SlackOptions) {}

  async notify(alerts: readonly Alert[]): Promise<Delivery[]> {
    if (alerts.length === 0) return [];
    const outcomes: Delivery[] = [];
    for (const message of slackMessages(alerts, this.options.stateUrl))
      outcomes.push(await this.send(message));
    // Every alert shares the outcome of the message(s) it was in; a partial failure marks all undeliverable.
    const delivered = outcomes.every((o) => o === 'sent');
    return alerts.map(() => (delivered ? 'sent' : 'undeliverable'));
  }

  private send(message: object): Promise<Delivery> {
    // Requests from this instance go out one at a time (the rate limit is per webhook).
    const result = this.queue.then(() => this.sendNow(message));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async sendNow(message: object): Promise<Delivery> {
    const { attempts = 5, timeoutMs = 10_000 } = this.options;
    try {
      await pRetry(
        async () => {
          await this.waitForSlot();
          let response: Response;
          try {
            response = await fetch(this.options.webhookUrl, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(message),
              signal: AbortSignal.timeout(timeoutMs),
            });
          } catch (error) {
            throw new Error(
              `Slack request failed: ${error instanceof Error ? error.message : String(error)}`,
            );
          }
          const body = await response.text();
          if (response.ok) return;
          if (response.status === 429) {
            const seconds = Number(response.headers.get('retry-after') ?? '1');
            this.delayNextSlot((Number.isFinite(seconds) ? seconds : 1) * 1000);
            throw new Error('Slack answered 429');
          }
          if (response.status >= 500) throw new Error(`Slack answered ${response.status}`);
          throw new AbortError(`Slack refused the message (${response.status}): ${body}`);
        },
        { retries: attempts - 1, minTimeout: 200, factor: 2, maxTimeout: 5000 },
      );
      return 'sent';
    } catch (error) {
      // The webhook URL is a secret: log Slack's answer, never the URL.
      this.options.log(
        `Slack delivery failed for good: ${error instanceof Error ? error.message : String(error)}`,
      );
      return 'undeliverable';
    }
  }

  private async waitForSlot(): Promise<void> {
    const wait = this.nextSlot - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    this.nextSlot = Date.now() + (this.options.minIntervalMs ?? 1000);
  }

  private delayNextSlot(ms: number): void {
    this.nextSlot = Math.max(this.nextSlot, Date.now() + ms);
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
    return Promise.resolve(alerts.map(() => 'logged' as const));
  }
}

import type { Alert } from './alert-message.js';

/**
 * What happened to one alert:
 * - `sent` / `logged`: delivered (to the channel, or to the function log when there is no channel);
 * - `undeliverable`: the channel refused it for good (e.g. Slack `invalid_payload`, `channel_not_found`, 410);
 * - `retry`: not delivered now, try again later: a transient failure (5xx, 429, timeout, refused or reset
 *   connection; `attempted`) or no turn at the channel in time (not `attempted`). `retryAfterMs` when the
 *   channel said how long to wait (already capped).
 */
export type Delivery =
  | { outcome: 'sent' | 'logged' }
  | { outcome: 'undeliverable'; reason: string }
  | { outcome: 'retry'; reason: string; attempted: boolean; retryAfterMs?: number };

/** Where alerts go: Slack, or the function log when no webhook is configured. */
export interface AlertNotifier {
  /**
   * Delivers alerts (as one message or a digest) with at most one attempt per message; one outcome per alert,
   * in order. Never throws for delivery and never waits long (bounded per-attempt timeout and queue wait).
   */
  notify(alerts: readonly Alert[]): Promise<Delivery[]>;
}

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

/** What one notify call may spend; alerts beyond it get `retry` (not attempted). */
export interface NotifyLimits {
  /** Time left, ms (the sender's claim runs out after it): no message is attempted that could end later. */
  timeMs: number;
  /** Most messages sent. */
  maxMessages?: number;
  /** Longest wait for the channel's turn, ms (at most the notifier's own). */
  maxWaitMs?: number;
  /** Per-attempt timeout, ms (at most the notifier's own). */
  timeoutMs?: number;
}

/** Where alerts go: Slack, or the function log when no webhook is configured. */
export interface AlertNotifier {
  /**
   * Delivers alerts (as one message or a digest) with at most one attempt per message, within `limits`; one
   * outcome per alert, in order. Never throws for delivery and never waits long (bounded per-attempt timeout
   * and queue wait).
   */
  notify(alerts: readonly Alert[], limits?: NotifyLimits): Promise<Delivery[]>;
}

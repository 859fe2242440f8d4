import type { Alert } from './alert-message.js';

/** What happened to one alert. */
export type Delivery = 'sent' | 'logged' | 'undeliverable';

/** Where alerts go: Slack, or the function log when no webhook is configured. */
export interface AlertNotifier {
  /** Delivers alerts (as one message or a digest); one outcome per alert, in order. Never throws for delivery. */
  notify(alerts: readonly Alert[]): Promise<Delivery[]>;
}

import type { AlarmStore } from './alarms.js';
import type { AlertNotifier } from './notifier.js';
import { deliverNotifications, outboxFor, type DeliverySummary, type OutboxPolicy } from './outbox.js';

export interface RedeliverAlertsDeps {
  alarms: AlarmStore;
  notifier: AlertNotifier;
  /** Lease, horizon and back-off of the alerts' outbox. */
  outbox: OutboxPolicy;
  /** Most notifications delivered per run (one digest; at most MAX_PER_DELIVERY). */
  batchSize?: number;
  now?: () => Date;
}

/** The part of the Functions invocation context this handler uses. */
interface TimerContext {
  log(...args: unknown[]): void;
  warn(...args: unknown[]): void;
}

/**
 * Timer trigger handler: delivers the notifications that piled up in the outbox (pending and due after their
 * back-off, or claimed by a sender whose lease expired), oldest first, as one digest sent within the claims'
 * lease; gives up those pending past the horizon. A claim that fails leaves only its notification for the next
 * run; failing to list what is due throws, and the next run tries again.
 */
export function makeRedeliverAlerts(deps: RedeliverAlertsDeps) {
  const now = () => (deps.now?.() ?? new Date()).getTime();
  return async function redeliverAlerts(_timer: unknown, context: TimerContext): Promise<DeliverySummary> {
    const due = await deps.alarms.listDueNotifications(new Date(now()).toISOString(), deps.batchSize ?? 500);
    const summary = await deliverNotifications(
      due.map((a) => a.id),
      outboxFor(deps, now, context),
    );
    if (due.length > 0) {
      context.log(
        `redeliverAlerts: ${due.length} due, ${summary.claimed} claimed (${summary.claimErrors} failed), ${summary.delivered} delivered, ${summary.pending} still pending, ${summary.undeliverable} undeliverable`,
      );
    }
    return summary;
  };
}

/**
 * The alerts' outbox: an alarm whose notification is `pending` is a message still to send. Senders (the
 * notifyAnomalies trigger right after recording, and the redeliverAlerts timer) claim a notification with an
 * ETag-guarded lease, send, then settle it, so that under concurrency and replay one alarm gets one message per
 * cooldown, and a sender that dies between claim and settle only delays it until the lease expires.
 */
import pLimit from 'p-limit';
import { alertOf } from './alert-message.js';
import type { Alarm, AlarmStore, NotificationSettlement } from './alarms.js';
import type { AlertNotifier, Delivery } from './notifier.js';

/** Longest back-off between two attempts, ms. */
const BACKOFF_MAX_MS = 30 * 60_000;

/** How the outbox hands out and retries notifications (settings Alerts__NotifyLeaseSeconds, …). */
export interface OutboxPolicy {
  /** How long a sender's claim lasts, ms; longer than one delivery can take. */
  leaseMs: number;
  /** A notification pending longer than this, ms, is given up as undeliverable. */
  horizonMs: number;
  /** Back-off after the first failed attempt, ms; doubles per failed attempt up to 30 min. */
  backoffBaseMs: number;
}

export interface OutboxDeps {
  alarms: AlarmStore;
  notifier: AlertNotifier;
  policy: OutboxPolicy;
  now: () => number;
  log: (message: string) => void;
}

export interface DeliverySummary {
  /** Notifications this sender claimed (the others were not due or taken by another sender). */
  claimed: number;
  delivered: number;
  /** Left pending for a later attempt. */
  pending: number;
  undeliverable: number;
  /** Claims whose settlement failed or whose lease was lost; the lease expiry hands them on. */
  unsettled: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The back-off before the next attempt after `failures` failed attempts, ms. */
export const backoffMs = (failures: number, baseMs: number) =>
  Math.min(BACKOFF_MAX_MS, baseMs * 2 ** failures);

function settlementOf(
  delivery: Delivery,
  alarm: Alarm,
  now: number,
  policy: OutboxPolicy,
): NotificationSettlement {
  switch (delivery.outcome) {
    case 'sent':
    case 'logged':
      return { state: delivery.outcome, at: iso(now) };
    case 'undeliverable':
      return { state: 'undeliverable', reason: delivery.reason };
    case 'retry': {
      const wait = Math.max(
        delivery.retryAfterMs ?? 0,
        delivery.attempted ? backoffMs(alarm.deliveryAttempts ?? 0, policy.backoffBaseMs) : 0,
      );
      return {
        state: 'pending',
        reason: delivery.reason,
        attempted: delivery.attempted,
        nextAttemptAt: iso(now + wait),
      };
    }
  }
}

/**
 * Delivers the notifications of these alarms that are due: claims each, gives up those pending past the
 * horizon, sends the rest as one message (a digest when several), and settles every claim. Never throws for a
 * failed delivery or settlement (the outbox keeps the notification); claim errors (store unavailable) throw.
 */
export async function deliverNotifications(
  ids: readonly string[],
  deps: OutboxDeps,
): Promise<DeliverySummary> {
  const summary: DeliverySummary = { claimed: 0, delivered: 0, pending: 0, undeliverable: 0, unsettled: 0 };
  const limit = pLimit(8);
  const started = deps.now();
  const claims = await Promise.all(
    [...new Set(ids)].map((id) =>
      limit(() => deps.alarms.claimNotification(id, iso(started), iso(started + deps.policy.leaseMs))),
    ),
  );
  const claimed = claims.filter((c) => c !== undefined);
  summary.claimed = claimed.length;
  if (claimed.length === 0) return summary;

  const expired = claimed.filter(
    (c) => started - Date.parse(c.alarm.pendingSince ?? c.alarm.createdAt) >= deps.policy.horizonMs,
  );
  const live = claimed.filter((c) => !expired.includes(c));
  const deliveries = live.length > 0 ? await deps.notifier.notify(live.map((c) => alertOf(c.alarm))) : [];
  const settledAt = deps.now();
  const settle = async ({ alarm, lease }: (typeof claimed)[number], settlement: NotificationSettlement) => {
    try {
      if (await deps.alarms.settleNotification(alarm.id, lease, settlement)) {
        if (settlement.state === 'pending') summary.pending++;
        else if (settlement.state === 'undeliverable') summary.undeliverable++;
        else summary.delivered++;
        return;
      }
      deps.log(`alerts: the claim on alarm ${alarm.id} expired before it was settled (${settlement.state})`);
    } catch (error) {
      deps.log(
        `alerts: could not settle alarm ${alarm.id} (${settlement.state}); it is delivered again after its lease: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    summary.unsettled++;
  };
  const horizonHours = deps.policy.horizonMs / 3_600_000;
  await Promise.all([
    ...expired.map((c) => {
      deps.log(`alerts: alarm ${c.alarm.id} stayed undelivered for ${horizonHours} h: given up`);
      return limit(() =>
        settle(c, { state: 'undeliverable', reason: `not delivered within ${horizonHours} h` }),
      );
    }),
    ...live.map((c, i) =>
      limit(() =>
        settle(
          c,
          settlementOf(
            deliveries[i] ?? { outcome: 'retry', reason: 'no outcome', attempted: false },
            c.alarm,
            settledAt,
            deps.policy,
          ),
        ),
      ),
    ),
  ]);
  return summary;
}

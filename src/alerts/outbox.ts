/**
 * The alerts' outbox: an alarm whose notification is `pending` is a message still to send. Senders (the
 * notifyAnomalies trigger right after recording, and the redeliverAlerts timer) claim a notification with an
 * ETag-guarded lease, send within that lease, then settle it, so that under concurrency and replay one alarm
 * gets one message per cooldown, and a sender that dies between claim and settle only delays it until the lease
 * expires.
 */
import pLimit from 'p-limit';
import { alertOf } from './alert-message.js';
import type { Alarm, AlarmStore, NotificationSettlement } from './alarms.js';
import type { AlertNotifier, Delivery, NotifyLimits } from './notifier.js';
import { errorText } from '../shared/error-text.js';

/** Longest back-off between two attempts, ms. */
const BACKOFF_MAX_MS = 30 * 60_000;

/** How the outbox hands out and retries notifications (settings Alerts__NotifyLeaseSeconds, …). */
export interface OutboxPolicy {
  /** How long a sender's claim lasts, ms; no message starts that could end after it (less the settling reserve: a tenth, at most 10 s). */
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
  /** Claims that failed (store unavailable): those notifications stay in the outbox. */
  claimErrors: number;
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

/** Attempts to settle one claim, and the wait before the second, ms (doubling). */
const SETTLE_ATTEMPTS = 3;
const SETTLE_RETRY_MS = 200;

/** Why a settlement stopped: its claim expired first (another sender may now claim and send it again). */
export class ClaimExpiredError extends Error {
  override readonly name = 'ClaimExpiredError';
}

/**
 * Settles a claim, trying again when the store fails, until the claim expires (`deadline`, ms on the `now`
 * clock): a sent alert whose settlement is lost stays claimed for the whole lease and is then sent again. Every
 * store request, the store's own retries of a 429 included, ends at the deadline: after it, another sender may
 * hold the claim and be sending, so the settlement can no longer prevent a second message; it would only hold
 * the invocation (and the trigger's partition). A retry after a write whose answer was lost finds the lease
 * gone (false): the notification was settled, only not counted.
 */
async function settleWithRetry(
  alarms: AlarmStore,
  claim: { id: string; lease: string; deadline: number },
  settlement: NotificationSettlement,
  now: () => number,
): Promise<boolean> {
  const controller = new AbortController();
  const expire = () => {
    controller.abort(new ClaimExpiredError(`the claim on alarm ${claim.id} expired before it was settled`));
  };
  const remaining = () => claim.deadline - now();
  const timer = setTimeout(expire, Math.max(0, remaining()));
  try {
    for (let attempt = 1; ; attempt++) {
      if (remaining() <= 0) expire();
      controller.signal.throwIfAborted();
      try {
        return await alarms.settleNotification(claim.id, claim.lease, settlement, {
          signal: controller.signal,
        });
      } catch (error) {
        if (attempt >= SETTLE_ATTEMPTS || controller.signal.aborted) throw error;
        const wait = SETTLE_RETRY_MS * 2 ** (attempt - 1);
        await new Promise((resolve) => setTimeout(resolve, Math.min(wait, Math.max(0, remaining()))));
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Most notifications one delivery claims; the rest stay pending for the next one. */
export const MAX_PER_DELIVERY = 500;

/** Part of a claim's lease kept for settling after the last message, ms: a tenth of the lease, at most 10 s. */
export const settleReserveMs = (leaseMs: number) => Math.min(10_000, leaseMs / 10);

type Claim = NonNullable<Awaited<ReturnType<AlarmStore['claimNotification']>>> & { until: number };

/** Claims each notification, each with its own lease from when it is made; a claim that fails costs only itself. */
async function claimAll(
  ids: readonly string[],
  deps: OutboxDeps,
  summary: DeliverySummary,
): Promise<Claim[]> {
  const limit = pLimit(8);
  const results = await Promise.allSettled(
    ids.map((id) =>
      limit(async () => {
        const at = deps.now();
        const until = at + deps.policy.leaseMs;
        const claim = await deps.alarms.claimNotification(id, iso(at), iso(until));
        return claim && { ...claim, until };
      }),
    ),
  );
  const claims: Claim[] = [];
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') {
      if (r.value) claims.push(r.value);
      return;
    }
    summary.claimErrors++;
    deps.log(`alerts: could not claim alarm ${ids[i] ?? ''}; it stays in the outbox: ${errorText(r.reason)}`);
  });
  return claims;
}

/** The outbox's dependencies for one handler invocation: the handler's store, notifier and policy; warnings to its log. */
export const outboxFor = (
  deps: { alarms: AlarmStore; notifier: AlertNotifier; outbox: OutboxPolicy },
  now: () => number,
  context: { warn(...args: unknown[]): void },
): OutboxDeps => ({
  alarms: deps.alarms,
  notifier: deps.notifier,
  policy: deps.outbox,
  now,
  log: (m) => {
    context.warn(m);
  },
});

/** Settles one claim (within its lease) and counts the outcome; a failed or lost settlement counts as unsettled. */
async function settleClaim(
  deps: OutboxDeps,
  summary: DeliverySummary,
  { alarm, lease, until }: Claim,
  settlement: NotificationSettlement,
): Promise<void> {
  let settled: boolean;
  try {
    settled = await settleWithRetry(
      deps.alarms,
      { id: alarm.id, lease, deadline: until },
      settlement,
      deps.now,
    );
  } catch (error) {
    deps.log(
      `alerts: could not settle alarm ${alarm.id} (${settlement.state}); it is delivered again after its lease: ${errorText(error)}`,
    );
    summary.unsettled++;
    return;
  }
  if (!settled) {
    deps.log(
      `alerts: the claim on alarm ${alarm.id} was no longer ours when settling (${settlement.state}): it expired, or a lost answer hid an earlier settlement`,
    );
    summary.unsettled++;
  } else if (settlement.state === 'pending') summary.pending++;
  else if (settlement.state === 'undeliverable') summary.undeliverable++;
  else summary.delivered++;
}

/**
 * Delivers the notifications of these alarms that are due (at most MAX_PER_DELIVERY): claims each, gives up
 * those pending past the horizon, sends the rest as one message (a digest when several) within the time the
 * claims leave (no message starts that could outlive the first lease to end) and `limits`, and settles every
 * claim. Never throws for a failed claim, delivery or settlement: the outbox keeps the notification.
 */
export async function deliverNotifications(
  ids: readonly string[],
  deps: OutboxDeps,
  limits: Omit<NotifyLimits, 'timeMs'> = {},
): Promise<DeliverySummary> {
  const summary: DeliverySummary = {
    claimed: 0,
    delivered: 0,
    pending: 0,
    undeliverable: 0,
    unsettled: 0,
    claimErrors: 0,
  };
  const claimed = await claimAll([...new Set(ids)].slice(0, MAX_PER_DELIVERY), deps, summary);
  summary.claimed = claimed.length;
  if (claimed.length === 0) return summary;

  const started = deps.now();
  const expired = claimed.filter(
    (c) => started - Date.parse(c.alarm.pendingSince ?? c.alarm.createdAt) >= deps.policy.horizonMs,
  );
  const live = claimed.filter((c) => !expired.includes(c));
  let firstExpiry = Number.POSITIVE_INFINITY;
  for (const c of live) firstExpiry = Math.min(firstExpiry, c.until);
  const timeMs = firstExpiry - started - settleReserveMs(deps.policy.leaseMs);
  const deliveries =
    live.length > 0
      ? await deps.notifier.notify(
          live.map((c) => alertOf(c.alarm)),
          { ...limits, timeMs },
        )
      : [];
  const settledAt = deps.now();
  const limit = pLimit(8);
  const settle = (c: Claim, settlement: NotificationSettlement) =>
    limit(() => settleClaim(deps, summary, c, settlement));
  const horizonHours = deps.policy.horizonMs / 3_600_000;
  await Promise.all([
    ...expired.map((c) => {
      deps.log(`alerts: alarm ${c.alarm.id} stayed undelivered for ${horizonHours} h: given up`);
      return settle(c, { state: 'undeliverable', reason: `not delivered within ${horizonHours} h` });
    }),
    ...live.map((c, i) =>
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
  ]);
  return summary;
}

import type { Anomaly } from './anomaly-records.js';

export type AlarmStatus = 'open' | 'acknowledged' | 'closed';

/**
 * Whether the people who should hear about an alarm have heard about it: `pending` (to be delivered: the
 * outbox), `notifying` (claimed by one sender until `notifyingUntil`), `sent` / `logged` (delivered), or
 * `undeliverable` (the channel refused it for good, or it stayed pending past the redelivery horizon).
 */
export type NotificationState = 'pending' | 'notifying' | 'sent' | 'logged' | 'undeliverable';

/**
 * An alarm (as in Remote Monitoring and ThingsBoard): opened by an anomaly, then acknowledged and closed by
 * people. Repeats of the same (device, rule) while it is not closed increment `count`.
 */
export interface Alarm {
  id: string;
  deviceId: string;
  rule: string;
  kind: Anomaly['kind'];
  metric: string;
  status: AlarmStatus;
  count: number;
  firstWindowEnd: string;
  lastWindowEnd: string;
  lastValue: number | undefined;
  lastScore: number | undefined;
  threshold: number | undefined;
  /** Window ends already counted (most recent first, bounded): makes replays idempotent. */
  windowEnds: string[];
  notification: NotificationState;
  /** When people were last told about this alarm (for the per-alarm cooldown). */
  lastNotifiedAt?: string;
  /** When the current notification became pending (for the redelivery horizon). */
  pendingSince?: string;
  /** Failed delivery attempts of the current notification (for the back-off). */
  deliveryAttempts?: number;
  /** A pending notification is not tried again before this time (back-off, Retry-After). */
  nextAttemptAt?: string;
  /** Why the last delivery attempt failed (the channel's answer; never a secret). */
  lastDeliveryError?: string;
  /** End of the current sender's claim (`notifying`); after it, another sender may take over. */
  notifyingUntil?: string;
  /** Identifies the current claim, so that only its holder settles it. */
  notifyingLease?: string;
  createdAt: string;
  updatedAt: string;
  acknowledgedAt?: string;
  closedAt?: string;
}

/** How many counted window ends an alarm remembers for idempotency. */
export const REMEMBERED_WINDOWS = 500;

/** A new alarm for an anomaly. */
export function openAlarm(id: string, anomaly: Anomaly, now: string): Alarm {
  return {
    id,
    deviceId: anomaly.deviceId,
    rule: anomaly.rule,
    kind: anomaly.kind,
    metric: anomaly.metric,
    status: 'open',
    count: 1,
    firstWindowEnd: anomaly.windowEnd,
    lastWindowEnd: anomaly.windowEnd,
    lastValue: anomaly.value,
    lastScore: anomaly.score,
    threshold: anomaly.threshold,
    windowEnds: [anomaly.windowEnd],
    notification: 'pending',
    pendingSince: now,
    createdAt: now,
    updatedAt: now,
  };
}

/**
 * Folds a repeat into an alarm that is not closed; undefined when the anomaly was already counted (a replay).
 * A repeat makes the notification pending again once the alarm's last notification is `cooldownMs` old (or
 * never went out); a notification still pending or being sent already covers the repeat.
 */
export function repeatAlarm(
  alarm: Alarm,
  anomaly: Anomaly,
  now: string,
  cooldownMs = Number.POSITIVE_INFINITY,
): Alarm | undefined {
  if (alarm.windowEnds.includes(anomaly.windowEnd)) return undefined;
  const newer = anomaly.windowEnd > alarm.lastWindowEnd;
  const settled = alarm.notification !== 'pending' && alarm.notification !== 'notifying';
  const cooledDown =
    alarm.lastNotifiedAt === undefined || Date.parse(now) - Date.parse(alarm.lastNotifiedAt) >= cooldownMs;
  return {
    ...alarm,
    ...(settled && cooledDown ? rearmed(now) : {}),
    count: alarm.count + 1,
    firstWindowEnd: anomaly.windowEnd < alarm.firstWindowEnd ? anomaly.windowEnd : alarm.firstWindowEnd,
    lastWindowEnd: newer ? anomaly.windowEnd : alarm.lastWindowEnd,
    lastValue: newer ? anomaly.value : alarm.lastValue,
    lastScore: newer ? anomaly.score : alarm.lastScore,
    windowEnds: [anomaly.windowEnd, ...alarm.windowEnds].slice(0, REMEMBERED_WINDOWS),
    updatedAt: now,
  };
}

/** The notification fields of a notification that starts over as pending. */
const rearmed = (now: string): Partial<Alarm> => ({
  notification: 'pending',
  pendingSince: now,
  deliveryAttempts: 0,
  nextAttemptAt: undefined,
  lastDeliveryError: undefined,
  notifyingUntil: undefined,
  notifyingLease: undefined,
});

/**
 * Whether a sender may claim the alarm's notification now: pending and due (not backing off), or claimed by a
 * sender whose lease expired (it crashed between claim and settle). An alarm closed before its notification
 * went out is still notified: every pending notification ends delivered or undeliverable.
 */
export function isNotificationDue(alarm: Alarm, now: string): boolean {
  if (alarm.notification === 'pending')
    return alarm.nextAttemptAt === undefined || alarm.nextAttemptAt <= now;
  return alarm.notification === 'notifying' && (alarm.notifyingUntil ?? '') <= now;
}

/** The alarm claimed by one sender (lease `lease`) until `until`. */
export const claimedAlarm = (alarm: Alarm, lease: string, until: string): Alarm => ({
  ...alarm,
  notification: 'notifying',
  notifyingLease: lease,
  notifyingUntil: until,
});

/** What became of a claimed notification. */
export type NotificationSettlement =
  /** Delivered at `at`. */
  | { state: 'sent' | 'logged'; at: string }
  /** Refused for good, or pending past the redelivery horizon. */
  | { state: 'undeliverable'; reason: string }
  /** Not delivered this time: pending again, not tried before `nextAttemptAt`; `attempted` counts a failure. */
  | { state: 'pending'; reason: string; nextAttemptAt: string; attempted: boolean };

/** The alarm after its claim is settled. */
export function settledAlarm(alarm: Alarm, settlement: NotificationSettlement): Alarm {
  const base: Alarm = { ...alarm, notifyingLease: undefined, notifyingUntil: undefined };
  switch (settlement.state) {
    case 'sent':
    case 'logged':
      return {
        ...base,
        notification: settlement.state,
        lastNotifiedAt: settlement.at,
        deliveryAttempts: 0,
        nextAttemptAt: undefined,
        lastDeliveryError: undefined,
      };
    case 'undeliverable':
      return {
        ...base,
        notification: 'undeliverable',
        nextAttemptAt: undefined,
        lastDeliveryError: settlement.reason,
      };
    case 'pending':
      return {
        ...base,
        notification: 'pending',
        deliveryAttempts: (alarm.deliveryAttempts ?? 0) + (settlement.attempted ? 1 : 0),
        nextAttemptAt: settlement.nextAttemptAt,
        lastDeliveryError: settlement.reason,
      };
  }
}

/** The transitions people may make; anything else is refused (HTTP 409). */
export function canTransition(from: AlarmStatus, to: AlarmStatus): boolean {
  return (
    (from === 'open' && (to === 'acknowledged' || to === 'closed')) ||
    (from === 'acknowledged' && to === 'closed')
  );
}

export interface AlarmQuery {
  deviceId?: string;
  status?: AlarmStatus;
  notification?: NotificationState;
  top: number;
  continuationToken?: string;
}

/**
 * Where alarms live (Cosmos DB `alarms`); the alarms whose notification is pending are the alerts' outbox.
 * Errors: AlarmNotFoundError, InvalidTransitionError, ThrottledError / ServiceUnavailableError (retry later).
 */
export interface AlarmStore {
  /**
   * Creates or updates the alarm for an anomaly; 'duplicate' when a replay changes nothing. A repeat makes
   * the notification pending again after `cooldownMs` (see repeatAlarm; default: never), measured at `now`
   * (ISO 8601; default: the store's clock).
   */
  record(
    anomaly: Anomaly,
    options?: { cooldownMs?: number; now?: string },
  ): Promise<{ alarm: Alarm; outcome: 'opened' | 'repeated' | 'duplicate' }>;
  get(id: string): Promise<Alarm | undefined>;
  list(query: AlarmQuery): Promise<{ items: Alarm[]; continuationToken?: string }>;
  transition(id: string, to: 'acknowledged' | 'closed'): Promise<Alarm>;
  /** Up to `limit` alarms whose notification is due at `now` (isNotificationDue), oldest first. */
  listDueNotifications(now: string, limit: number): Promise<Alarm[]>;
  /**
   * Claims the alarm's notification, when it is due at `now`, for one sender until `until` (an ETag-guarded write): the claimed alarm
   * and its lease, or undefined when it is not due (already delivered, or claimed by another sender).
   */
  claimNotification(
    id: string,
    now: string,
    until: string,
  ): Promise<{ alarm: Alarm; lease: string } | undefined>;
  /**
   * Settles a claim; false (and nothing written) when the lease is no longer this sender's. Once `signal`
   * aborts, it sends no further request and rejects with the signal's reason (the caller's deadline), even while
   * the store's client waits to retry.
   */
  settleNotification(
    id: string,
    lease: string,
    settlement: NotificationSettlement,
    options?: { signal?: AbortSignal },
  ): Promise<boolean>;
}

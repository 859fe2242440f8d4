import type { Anomaly } from './anomaly-records.js';

export type AlarmStatus = 'open' | 'acknowledged' | 'closed';

/** Whether the people who should hear about an alarm have heard about it. */
export type NotificationState = 'pending' | 'sent' | 'logged' | 'undeliverable';

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
    createdAt: now,
    updatedAt: now,
  };
}

/**
 * Folds a repeat into an alarm that is not closed; undefined when the anomaly was already counted (a replay).
 */
export function repeatAlarm(alarm: Alarm, anomaly: Anomaly, now: string): Alarm | undefined {
  if (alarm.windowEnds.includes(anomaly.windowEnd)) return undefined;
  const newer = anomaly.windowEnd > alarm.lastWindowEnd;
  return {
    ...alarm,
    count: alarm.count + 1,
    firstWindowEnd: anomaly.windowEnd < alarm.firstWindowEnd ? anomaly.windowEnd : alarm.firstWindowEnd,
    lastWindowEnd: newer ? anomaly.windowEnd : alarm.lastWindowEnd,
    lastValue: newer ? anomaly.value : alarm.lastValue,
    lastScore: newer ? anomaly.score : alarm.lastScore,
    windowEnds: [anomaly.windowEnd, ...alarm.windowEnds].slice(0, REMEMBERED_WINDOWS),
    updatedAt: now,
  };
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
  top: number;
  continuationToken?: string;
}

/** Where alarms live (Cosmos DB `alarms`). Errors: AlarmNotFoundError, InvalidTransitionError. */
export interface AlarmStore {
  /** Creates or updates the alarm for an anomaly; 'duplicate' when a replay changes nothing. */
  record(anomaly: Anomaly): Promise<{ alarm: Alarm; outcome: 'opened' | 'repeated' | 'duplicate' }>;
  get(id: string): Promise<Alarm | undefined>;
  list(query: AlarmQuery): Promise<{ items: Alarm[]; continuationToken?: string }>;
  transition(id: string, to: 'acknowledged' | 'closed'): Promise<Alarm>;
  /** Records what happened to the notification; `at` marks a successful one (sent or logged). */
  setNotification(id: string, state: NotificationState, at?: string): Promise<void>;
}

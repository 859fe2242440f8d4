import pLimit, { type LimitFunction } from 'p-limit';
import { deadLetterBlob } from '../telemetry/archive-layout.js';
import type { TriggerContext } from '../telemetry/ingest-telemetry.js';
import {
  readIotHubBatchMetadata,
  UNKNOWN_MESSAGE,
  type IotHubMessageMeta,
} from '../telemetry/iothub-batch.js';
import type { DeadLetterStore } from '../telemetry/ports.js';
import type { DeadLetter } from '../telemetry/records.js';
import { isNotificationDue, type AlarmStore } from './alarms.js';
import { parseAnomalyBody, type Anomaly } from './anomaly-records.js';
import type { AlertNotifier, NotifyLimits } from './notifier.js';
import { deliverNotifications, outboxFor, type DeliverySummary, type OutboxPolicy } from './outbox.js';
import { errorText } from '../shared/error-text.js';
import { AlarmRejectedError } from '../shared/errors.js';
import { attemptOf, parkLastAttempt } from '../telemetry/parking.js';

export interface NotifyAnomaliesDeps {
  alarms: AlarmStore;
  notifier: AlertNotifier;
  /** Where bodies that are no anomaly at all, and anomalies given up after the last retry, are kept. */
  deadLetters: DeadLetterStore;
  /** No second alert for the same alarm within this time, ms. */
  cooldownMs: number;
  /** The registered retry policy's maxRetryCount, used when the host sends no retry context. */
  maxRetryCount: number;
  /** Lease, horizon and back-off of the alerts' outbox. */
  outbox: OutboxPolicy;
  now?: () => Date;
}

export interface NotifySummary {
  anomalies: number;
  opened: number;
  repeated: number;
  duplicates: number;
  /** Notifications delivered by this invocation. */
  alerted: number;
  /** Notifications left pending for the redelivery (a transient failure, or no turn at the channel in time). */
  pending: number;
  undeliverable: number;
  deadLetters: number;
  /** Anomalies and dead letters parked (`storage-failure`) because storing them failed on the last attempt. */
  parked: number;
}

/**
 * The trigger's delivery: one message at most, no wait for the webhook's turn and a short per-attempt timeout
 * (ms), so that Slack holds an Event Hub partition for seconds at worst; what does not go out stays pending for
 * the redeliverAlerts timer.
 */
export const TRIGGER_DELIVERY: Omit<NotifyLimits, 'timeMs'> = {
  maxMessages: 1,
  maxWaitMs: 0,
  timeoutMs: 3_000,
};

/** An anomaly with where it came from (for a dead letter, should recording it fail for good). */
interface Received {
  anomaly: Anomaly;
  meta: IotHubMessageMeta;
  /** Position among the anomalies of its message. */
  index: number;
}

/** Every message of a batch as anomalies and dead letters (bodies that hold no anomaly). */
function parseBatch(
  bodies: readonly unknown[],
  metas: readonly IotHubMessageMeta[],
  partitionId: string,
  nowMs: number,
) {
  const received: Received[] = [];
  const dead: DeadLetter[] = [];
  bodies.forEach((body, i) => {
    const meta = metas[i] ?? UNKNOWN_MESSAGE;
    const parsed = parseAnomalyBody(body, new Date(meta.enqueuedTimeMs ?? nowMs).toISOString());
    parsed.anomalies.forEach((anomaly, index) => received.push({ anomaly, meta, index }));
    for (const u of parsed.unparseable) {
      const detail = u.detail ?? (u.reason === 'invalid-json' ? 'not JSON' : 'an anomaly is a JSON object');
      dead.push({ reason: u.reason, detail, meta, partitionId, body: u.body });
    }
  });
  return { received, dead };
}

/**
 * An anomaly whose recording failed on the last attempt (or was refused for good, on any attempt), as a dead
 * letter that can be fed back as it is.
 */
const parkedAnomaly = (r: Received, partitionId: string, error: unknown): DeadLetter => ({
  ...(error instanceof AlarmRejectedError
    ? { reason: 'invalid-anomaly', detail: `alarm write refused: ${errorText(error)}` }
    : { reason: 'storage-failure', detail: `alarm write failed: ${errorText(error)}` }),
  meta: r.meta,
  partitionId,
  body: r.anomaly.raw,
  recordIndex: r.index,
});

/** An anomaly that could not be recorded, with why. */
interface Unrecorded {
  received: Received;
  error: unknown;
}

/**
 * Records anomalies: those of one device in order, devices in parallel (through `limit`); a failure stops only
 * its device. Returns the alarms whose notification is due, the anomalies that failed (to retry) and those
 * refused for good.
 */
async function recordAnomalies(
  deps: NotifyAnomaliesDeps,
  limit: LimitFunction,
  received: readonly Received[],
  summary: NotifySummary,
): Promise<{ due: string[]; failed: Unrecorded[]; rejected: Unrecorded[] }> {
  const byDevice = new Map<string, Received[]>();
  for (const r of received) {
    const list = byDevice.get(r.anomaly.deviceId);
    if (list) list.push(r);
    else byDevice.set(r.anomaly.deviceId, [r]);
  }
  const due = new Set<string>();
  const failed: Unrecorded[] = [];
  const rejected: Unrecorded[] = [];
  const recordDevice = async (list: readonly Received[]) => {
    for (const [k, r] of list.entries()) {
      const at = new Date(nowMs(deps)).toISOString();
      try {
        const { alarm, outcome } = await deps.alarms.record(r.anomaly, {
          cooldownMs: deps.cooldownMs,
          now: at,
        });
        summary[outcome === 'opened' ? 'opened' : outcome === 'repeated' ? 'repeated' : 'duplicates']++;
        // A replayed anomaly whose alarm is still pending (an earlier attempt died) is delivered now.
        if (isNotificationDue(alarm, at)) due.add(alarm.id);
      } catch (error) {
        // Refused for good (AlarmRejectedError): costs only this anomaly, which is dead-lettered now.
        if (error instanceof AlarmRejectedError) {
          rejected.push({ received: r, error });
          continue;
        }
        // The device's later anomalies wait too: its alarms see them in order.
        for (const rest of list.slice(k)) failed.push({ received: rest, error });
        return;
      }
    }
  };
  // Every device's chain has ended when this returns: nothing keeps writing after the invocation.
  await Promise.allSettled([...byDevice.values()].map((list) => limit(() => recordDevice(list))));
  return { due: [...due], failed, rejected };
}

const nowMs = (deps: NotifyAnomaliesDeps) => (deps.now?.() ?? new Date()).getTime();

/** Delivery never fails the invocation: whatever is not delivered stays pending in the outbox. */
async function deliverDue(
  deps: NotifyAnomaliesDeps,
  due: string[],
  summary: NotifySummary,
  context: TriggerContext,
): Promise<void> {
  let delivered: DeliverySummary | undefined;
  try {
    const outbox = outboxFor(deps, () => nowMs(deps), context);
    delivered = await deliverNotifications(due, outbox, TRIGGER_DELIVERY);
  } catch (error) {
    context.warn(`notifyAnomalies left ${due.length} notification(s) to the redelivery`, errorText(error));
  }
  summary.alerted = delivered?.delivered ?? 0;
  summary.undeliverable = delivered?.undeliverable ?? 0;
  summary.pending = delivered ? delivered.pending + delivered.unsettled + delivered.claimErrors : due.length;
}

const emptySummary = (anomalies: number, deadLetters: number): NotifySummary => ({
  anomalies,
  opened: 0,
  repeated: 0,
  duplicates: 0,
  alerted: 0,
  pending: 0,
  undeliverable: 0,
  deadLetters,
  parked: 0,
});

/**
 * Event Hub trigger handler for the ASA `anomalies` hub. Records first: every anomaly creates or updates its
 * alarm, and an alarm people should hear about (new, or repeating after the cooldown) gets a pending
 * notification. Then delivers from the outbox within TRIGGER_DELIVERY; what is not delivered stays pending for
 * redeliverAlerts. A failure to record costs only its device, as in ingest: the host retries the batch (every
 * step is idempotent), and on the last attempt only what failed is parked in dead letters (`storage-failure`):
 * the anomalies of devices whose recording failed, and dead letters that could not be written.
 */
export function makeNotifyAnomalies(deps: NotifyAnomaliesDeps) {
  const limit = pLimit(8);

  return async function notifyAnomalies(messages: unknown, context: TriggerContext): Promise<NotifySummary> {
    const bodies: unknown[] = Array.isArray(messages) ? messages : [messages];
    const { partitionId, messages: metas } = readIotHubBatchMetadata(context.triggerMetadata, bodies.length);
    const { received, dead } = parseBatch(bodies, metas, partitionId, nowMs(deps));
    const summary = emptySummary(received.length, dead.length);
    const { retryCount, lastAttempt } = attemptOf(context, deps.maxRetryCount);

    const [unwritten, recorded] = await Promise.all([
      writeDeadLetters(deps.deadLetters, dead, partitionId),
      recordAnomalies(deps, limit, received, summary),
    ]);
    // Anomalies refused for good are dead letters on every attempt: a retry could not change their fate.
    const refused = recorded.rejected.map((f) => parkedAnomaly(f.received, partitionId, f.error));
    const unrefused = await writeDeadLetters(deps.deadLetters, refused, partitionId, '.rejected');
    summary.deadLetters += refused.length;
    const failure = unwritten ?? recorded.failed[0] ?? unrefused;
    if (failure && !lastAttempt) {
      context.warn(
        `notifyAnomalies attempt ${retryCount + 1} failed; the host will retry`,
        errorText(failure.error),
      );
      throw failure.error;
    }
    // The checkpoint moves on after the last attempt: park exactly what failed, so nothing is lost silently.
    const parked = [
      ...(unwritten ? dead : []),
      ...(unrefused ? refused : []),
      ...recorded.failed.map((f) => parkedAnomaly(f.received, partitionId, f.error)),
    ];
    if (parked.length > 0) {
      const what = `${parked.length} anomalies or dead letters`;
      const log = {
        function: 'notifyAnomalies',
        what,
        attempts: retryCount + 1,
        partitionId,
        folder: 'anomalies/',
      };
      await parkLastAttempt(deps.deadLetters, parked, log, context);
      summary.parked = parked.length;
    }

    await deliverDue(deps, recorded.due, summary, context);
    context.log(
      `notifyAnomalies: ${summary.anomalies} anomalies, ${summary.opened} alarms opened, ${summary.repeated} repeated, ${summary.duplicates} replays, ${summary.alerted} alerted, ${summary.pending} pending, ${summary.undeliverable} undeliverable, ${summary.deadLetters} dead letters, ${summary.parked} parked`,
    );
    return summary;
  };
}

/** Anomaly dead letters live under `anomalies/` in the dead-letter container, named as ingest's. */
const anomalyBlob = (letters: readonly DeadLetter[], partitionId: string, suffix?: string) => {
  const blob = deadLetterBlob(letters, partitionId, suffix);
  return blob && { name: `anomalies/${blob.name}`, lines: blob.lines };
};

/** Writes the batch's dead letters (write-once: a replay finds them written); the error, if that failed. */
async function writeDeadLetters(
  store: DeadLetterStore,
  dead: readonly DeadLetter[],
  partitionId: string,
  suffix?: string,
): Promise<{ error: unknown } | undefined> {
  const blob = anomalyBlob(dead, partitionId, suffix);
  try {
    if (blob) await store.park(blob.name, blob.lines);
    return undefined;
  } catch (error) {
    return { error };
  }
}

import pLimit from 'p-limit';
import { batchKey, hourPath } from '../telemetry/archive-layout.js';
import type { TriggerContext } from '../telemetry/ingest-telemetry.js';
import { readIotHubBatchMetadata, type IotHubMessageMeta } from '../telemetry/iothub-batch.js';
import type { JsonLinesStore } from '../telemetry/ports.js';
import { isNotificationDue, type AlarmStore } from './alarms.js';
import { parseAnomalyBody, type Anomaly } from './anomaly-records.js';
import type { AlertNotifier } from './notifier.js';
import { deliverNotifications, type DeliverySummary, type OutboxPolicy } from './outbox.js';

export interface NotifyAnomaliesDeps {
  alarms: AlarmStore;
  notifier: AlertNotifier;
  /** Where bodies that are no anomaly at all, and batches given up after the last retry, are kept. */
  deadLetters: JsonLinesStore;
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
  /** True when recording failed on the last attempt and the whole batch went to dead letters. */
  batchDeadLettered: boolean;
}

/** Error text safe for logs: message only. */
const errorText = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** A body as a dead-letter line keeps it: text as-is (valid UTF-8), other bytes as base64, JSON values as such. */
function originalBody(body: unknown): { body: unknown } | { bodyBase64: string } {
  if (!(body instanceof Uint8Array)) return { body };
  try {
    return { body: new TextDecoder('utf-8', { fatal: true }).decode(body) };
  } catch {
    return { bodyBase64: Buffer.from(body).toString('base64') };
  }
}

interface Batch {
  partitionId: string;
  metas: IotHubMessageMeta[];
  bodies: unknown[];
}

function deadLetterLine(batch: Batch, i: number, reason: string, extra: object, fallbackMs: number): string {
  const enqueued = batch.metas[i]?.enqueuedTimeMs ?? fallbackMs;
  return JSON.stringify({
    reason,
    ...extra,
    partitionId: batch.partitionId,
    sequenceNumber: batch.metas[i]?.sequenceNumber,
    enqueuedTime: new Date(enqueued).toISOString(),
  });
}

async function putDeadLetters(
  store: JsonLinesStore,
  batch: Batch,
  lines: string[],
  suffix: string,
  nowMs: number,
): Promise<string> {
  const key = batchKey(
    batch.metas.map((m) => m.sequenceNumber),
    lines,
  );
  const name = `anomalies/${hourPath(batch.metas[0]?.enqueuedTimeMs ?? nowMs)}/${batch.partitionId}-${key}${suffix}.jsonl`;
  await store.put(name, lines);
  return name;
}

/**
 * The last attempt failed: the checkpoint moves on after this invocation, so the whole batch is parked in dead
 * letters (`storage-failure`, original bodies) to be re-processed instead of being lost silently.
 */
async function parkBatch(
  store: JsonLinesStore,
  batch: Batch,
  error: unknown,
  context: TriggerContext,
  attempts: number,
  nowMs: number,
): Promise<void> {
  const lines = batch.bodies.map((body, i) =>
    deadLetterLine(batch, i, 'storage-failure', { detail: errorText(error), ...originalBody(body) }, nowMs),
  );
  let name: string;
  try {
    name = await putDeadLetters(store, batch, lines, '.batch', nowMs);
  } catch (deadLetterError) {
    context.error(
      `notifyAnomalies LOST a batch: partition ${batch.partitionId}; dead-letter write failed too`,
      errorText(deadLetterError),
    );
    throw deadLetterError;
  }
  context.error(
    `notifyAnomalies gave up after ${attempts} attempts; batch of ${batch.bodies.length} parked in dead letters as ${name}`,
  );
}

/**
 * Event Hub trigger handler for the ASA `anomalies` hub. Records first: every anomaly creates or updates its
 * alarm, and an alarm people should hear about (new, or repeating after the cooldown) gets a pending
 * notification. Then delivers from the outbox (one attempt, one message or digest, bounded in time); what is not
 * delivered stays pending for redeliverAlerts. Recording errors are retried by the host; on the last attempt
 * the whole batch is parked in dead letters (`storage-failure`, original bodies) instead of being lost.
 */
export function makeNotifyAnomalies(deps: NotifyAnomaliesDeps) {
  const limit = pLimit(8);
  const now = () => (deps.now?.() ?? new Date()).getTime();

  const record = async (anomalies: Anomaly[], summary: NotifySummary): Promise<string[]> => {
    // Anomalies of one device are recorded in order; different devices in parallel.
    const byDevice = new Map<string, Anomaly[]>();
    for (const a of anomalies) {
      const list = byDevice.get(a.deviceId);
      if (list) list.push(a);
      else byDevice.set(a.deviceId, [a]);
    }
    const due = new Set<string>();
    await Promise.all(
      [...byDevice.values()].map((list) =>
        limit(async () => {
          for (const anomaly of list) {
            const at = new Date(now()).toISOString();
            const { alarm, outcome } = await deps.alarms.record(anomaly, {
              cooldownMs: deps.cooldownMs,
              now: at,
            });
            summary[outcome === 'opened' ? 'opened' : outcome === 'repeated' ? 'repeated' : 'duplicates']++;
            // A replayed anomaly whose alarm is still pending (an earlier attempt died) is delivered now.
            if (isNotificationDue(alarm, at)) due.add(alarm.id);
          }
        }),
      ),
    );
    return [...due];
  };

  return async function notifyAnomalies(messages: unknown, context: TriggerContext): Promise<NotifySummary> {
    const bodies: unknown[] = Array.isArray(messages) ? messages : [messages];
    const { partitionId, messages: metas } = readIotHubBatchMetadata(context.triggerMetadata, bodies.length);
    const batch: Batch = { partitionId, metas, bodies };
    const anomalies: Anomaly[] = [];
    const dead: string[] = [];
    bodies.forEach((body, i) => {
      const enqueued = metas[i]?.enqueuedTimeMs ?? now();
      const parsed = parseAnomalyBody(body, new Date(enqueued).toISOString());
      for (const a of parsed.anomalies) anomalies.push(a);
      for (const u of parsed.unparseable)
        dead.push(deadLetterLine(batch, i, u.reason, originalBody(u.body), now()));
    });
    const summary: NotifySummary = {
      anomalies: anomalies.length,
      opened: 0,
      repeated: 0,
      duplicates: 0,
      alerted: 0,
      pending: 0,
      undeliverable: 0,
      deadLetters: dead.length,
      batchDeadLettered: false,
    };

    let due: string[];
    try {
      if (dead.length > 0) await putDeadLetters(deps.deadLetters, batch, dead, '', now());
      due = await record(anomalies, summary);
    } catch (error) {
      const retryCount = context.retryContext?.retryCount ?? 0;
      const maxRetryCount = context.retryContext?.maxRetryCount ?? deps.maxRetryCount;
      if (maxRetryCount < 0 || retryCount < maxRetryCount) {
        context.warn(
          `notifyAnomalies attempt ${retryCount + 1} failed; the host will retry`,
          errorText(error),
        );
        throw error;
      }
      await parkBatch(deps.deadLetters, batch, error, context, retryCount + 1, now());
      summary.batchDeadLettered = true;
      return summary;
    }

    // Delivery never fails the invocation: whatever is not delivered stays pending in the outbox.
    let delivered: DeliverySummary | undefined;
    try {
      delivered = await deliverNotifications(due, {
        alarms: deps.alarms,
        notifier: deps.notifier,
        policy: deps.outbox,
        now,
        log: (m) => {
          context.warn(m);
        },
      });
    } catch (error) {
      context.warn(`notifyAnomalies left ${due.length} notification(s) to the redelivery`, errorText(error));
    }
    summary.alerted = delivered?.delivered ?? 0;
    summary.undeliverable = delivered?.undeliverable ?? 0;
    summary.pending = delivered ? delivered.pending + delivered.unsettled : due.length;
    context.log(
      `notifyAnomalies: ${summary.anomalies} anomalies, ${summary.opened} alarms opened, ${summary.repeated} repeated, ${summary.duplicates} replays, ${summary.alerted} alerted, ${summary.pending} pending, ${summary.undeliverable} undeliverable, ${summary.deadLetters} dead letters`,
    );
    return summary;
  };
}

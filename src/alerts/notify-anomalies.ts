import pLimit from 'p-limit';
import { batchKey, hourPath } from '../telemetry/archive-layout.js';
import type { TriggerContext } from '../telemetry/ingest-telemetry.js';
import { readIotHubBatchMetadata } from '../telemetry/iothub-batch.js';
import type { JsonLinesStore } from '../telemetry/ports.js';
import { alertOf, type Alert } from './alert-message.js';
import type { Alarm, AlarmStore } from './alarms.js';
import { parseAnomalyBody, type Anomaly } from './anomaly-records.js';
import type { AlertNotifier } from './notifier.js';

export interface NotifyAnomaliesDeps {
  alarms: AlarmStore;
  notifier: AlertNotifier;
  /** Where bodies that are no anomaly at all are kept (with a reason). */
  deadLetters: JsonLinesStore;
  /** No second alert for the same alarm within this time, ms. */
  cooldownMs: number;
  now?: () => Date;
}

export interface NotifySummary {
  anomalies: number;
  opened: number;
  repeated: number;
  duplicates: number;
  alerted: number;
  undeliverable: number;
  deadLetters: number;
}

/**
 * Event Hub trigger handler for the ASA `anomalies` hub: every anomaly creates or updates its alarm, and alarms
 * that people have not heard about (new, or repeating after the cooldown) go out as one notification.
 * Replays are harmless: alarms count each (device, rule, window end) once, and an alarm whose notification
 * is still pending (an earlier attempt crashed) is notified on the replay.
 */
export function makeNotifyAnomalies(deps: NotifyAnomaliesDeps) {
  const limit = pLimit(8);
  const now = () => (deps.now?.() ?? new Date()).getTime();

  return async function notifyAnomalies(messages: unknown, context: TriggerContext): Promise<NotifySummary> {
    const bodies: unknown[] = Array.isArray(messages) ? messages : [messages];
    const { partitionId, messages: metas } = readIotHubBatchMetadata(context.triggerMetadata, bodies.length);
    const anomalies: Anomaly[] = [];
    const dead: string[] = [];
    bodies.forEach((body, i) => {
      const enqueued = metas[i]?.enqueuedTimeMs ?? now();
      const parsed = parseAnomalyBody(body, new Date(enqueued).toISOString());
      for (const a of parsed.anomalies) anomalies.push(a);
      for (const u of parsed.unparseable) {
        dead.push(
          JSON.stringify({
            reason: u.reason,
            partitionId,
            sequenceNumber: metas[i]?.sequenceNumber,
            enqueuedTime: new Date(enqueued).toISOString(),
            ...(u.body instanceof Uint8Array
              ? { bodyBase64: Buffer.from(u.body).toString('base64') }
              : { body: u.body }),
          }),
        );
      }
    });
    if (dead.length > 0) {
      const key = batchKey(
        metas.map((m) => m.sequenceNumber),
        dead,
      );
      await deps.deadLetters.put(
        `anomalies/${hourPath(metas[0]?.enqueuedTimeMs ?? now())}/${partitionId}-${key}.jsonl`,
        dead,
      );
    }

    // Anomalies of one device are recorded in order; different devices in parallel.
    const byDevice = new Map<string, Anomaly[]>();
    for (const a of anomalies) {
      const list = byDevice.get(a.deviceId);
      if (list) list.push(a);
      else byDevice.set(a.deviceId, [a]);
    }
    const summary: NotifySummary = {
      anomalies: anomalies.length,
      opened: 0,
      repeated: 0,
      duplicates: 0,
      alerted: 0,
      undeliverable: 0,
      deadLetters: dead.length,
    };
    const toAlert = new Map<string, Alarm>();
    await Promise.all(
      [...byDevice.values()].map((list) =>
        limit(async () => {
          for (const anomaly of list) {
            const { alarm, outcome } = await deps.alarms.record(anomaly);
            summary[outcome === 'opened' ? 'opened' : outcome === 'repeated' ? 'repeated' : 'duplicates']++;
            const cooledDown =
              alarm.lastNotifiedAt === undefined ||
              now() - Date.parse(alarm.lastNotifiedAt) >= deps.cooldownMs;
            if (
              alarm.status !== 'closed' &&
              (alarm.notification === 'pending' || (outcome === 'repeated' && cooledDown))
            ) {
              toAlert.set(alarm.id, alarm);
            }
          }
        }),
      ),
    );

    const alerts: Alert[] = [...toAlert.values()].map(alertOf);
    const deliveries = await deps.notifier.notify(alerts);
    const at = new Date(now()).toISOString();
    await Promise.all(
      alerts.map((alert, i) => {
        const delivery = deliveries[i] ?? 'undeliverable';
        if (delivery === 'undeliverable') summary.undeliverable++;
        else summary.alerted++;
        return deps.alarms.setNotification(
          alert.alarmId,
          delivery,
          delivery === 'undeliverable' ? undefined : at,
        );
      }),
    );
    context.log(
      `notifyAnomalies: ${summary.anomalies} anomalies, ${summary.opened} alarms opened, ${summary.repeated} repeated, ${summary.duplicates} replays, ${summary.alerted} alerted, ${summary.undeliverable} undeliverable, ${summary.deadLetters} dead letters`,
    );
    return summary;
  };
}

import { describe, expect, it } from 'vitest';
import {
  claimedAlarm,
  isNotificationDue,
  openAlarm,
  REMEMBERED_WINDOWS,
  repeatAlarm,
  settledAlarm,
  type Alarm,
} from '../../../src/alerts/alarms.js';
import type { Anomaly } from '../../../src/alerts/anomaly-records.js';

const at = (minute: number) => new Date(Date.UTC(2026, 10, 23, 10, minute)).toISOString();
const anomaly = (minute: number): Anomaly => ({
  deviceId: 'd1',
  rule: 'temperature-high',
  kind: 'threshold',
  metric: 'temperature',
  value: 41,
  score: undefined,
  threshold: 40,
  windowEnd: at(minute),
  raw: {},
});
const COOLDOWN = 10 * 60_000;

describe('alarm notifications (the outbox)', () => {
  const opened = openAlarm('a1', anomaly(0), at(0));

  it('opens pending and due; a claim makes it not due until the lease expires', () => {
    expect(opened).toMatchObject({ notification: 'pending', pendingSince: at(0) });
    expect(isNotificationDue(opened, at(0))).toBe(true);
    const claimed = claimedAlarm(opened, 'lease-1', at(2));
    expect(isNotificationDue(claimed, at(1))).toBe(false);
    expect(isNotificationDue(claimed, at(2))).toBe(true);
  });

  it('does not re-arm a repeat while a notification is pending or being sent, nor within the cooldown', () => {
    const claimed = claimedAlarm(opened, 'lease-1', at(2));
    expect(repeatAlarm(claimed, anomaly(1), at(1), COOLDOWN)).toMatchObject({
      notification: 'notifying',
      count: 2,
    });
    const sent = settledAlarm(claimed, { state: 'sent', at: at(1) });
    expect(sent).toMatchObject({ notification: 'sent', lastNotifiedAt: at(1) });
    expect(sent.notifyingLease).toBeUndefined();
    expect(repeatAlarm(sent, anomaly(5), at(5), COOLDOWN)?.notification).toBe('sent');
    expect(repeatAlarm(sent, anomaly(11), at(11), COOLDOWN)).toMatchObject({
      notification: 'pending',
      pendingSince: at(11),
      deliveryAttempts: 0,
    });
  });

  it('backs off a transient failure and counts attempts; a deferral is not a failed attempt', () => {
    const failed = settledAlarm(claimedAlarm(opened, 'l', at(2)), {
      state: 'pending',
      reason: 'Slack answered 503',
      attempted: true,
      nextAttemptAt: at(5),
    });
    expect(failed).toMatchObject({ notification: 'pending', deliveryAttempts: 1, nextAttemptAt: at(5) });
    expect(isNotificationDue(failed, at(4))).toBe(false);
    expect(isNotificationDue(failed, at(5))).toBe(true);
    const deferred: Alarm = settledAlarm(claimedAlarm(failed, 'm', at(7)), {
      state: 'pending',
      reason: 'Slack webhook busy',
      attempted: false,
      nextAttemptAt: at(5),
    });
    expect(deferred.deliveryAttempts).toBe(1);
  });
});

describe('alarm document size', () => {
  it('stays bounded however many times the alarm repeats (a device that stays above the threshold)', () => {
    let alarm = openAlarm('a', anomaly(0), at(0));
    for (let i = 1; i <= 5_000; i++) {
      const next = repeatAlarm(
        alarm,
        { ...anomaly(0), windowEnd: new Date(Date.parse(at(0)) + i * 500).toISOString() },
        at(1),
      );
      if (!next) throw new Error('a new window end must count');
      alarm = next;
    }
    expect(alarm.count).toBe(5_001);
    expect(alarm.windowEnds).toHaveLength(REMEMBERED_WINDOWS);
    // What the store writes on every repeat: far below Cosmos DB's 2 MB item limit, and the same at any count.
    expect(Buffer.byteLength(JSON.stringify(alarm))).toBeLessThan(16 * 1024);
  });
});

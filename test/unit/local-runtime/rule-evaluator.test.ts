import { describe, expect, it } from 'vitest';
import { LocalRuleEvaluator } from '../../../tools/local-runtime/rule-evaluator.js';

// The embedded runtime's rule evaluator keeps bounded state (issue 13, item 5: `emitted`/`recent` never shrank).
const MINUTE = 60_000;
const reading = (deviceId: string, time: number, temperature: number) => ({
  deviceId,
  time,
  values: { temperature },
});

describe('local rule evaluator', () => {
  it('emits a threshold anomaly once, when the third reading above 40 °C arrives within 5 minutes', () => {
    const evaluator = new LocalRuleEvaluator();
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    expect(evaluator.add(reading('d', t0, 45))).toEqual([]);
    expect(evaluator.add(reading('d', t0 + 1000, 46))).toEqual([]);
    const out = evaluator.add(reading('d', t0 + 2000, 47));
    expect(out.map((o) => [o.deviceId, o.rule, o.windowEnd])).toEqual([
      ['d', 'temperature-high', new Date(t0 + 2000).toISOString()],
    ]);
    // Later readings re-evaluate the window; what was emitted is not emitted again.
    expect(evaluator.add(reading('d', t0 + 3000, 20))).toEqual([]);
  });

  it('keeps readings only within the rule window and at most maxPointsPerDevice per device', () => {
    const evaluator = new LocalRuleEvaluator({ maxPointsPerDevice: 100 });
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    // Two hours at 2 readings/s: the old evaluator kept 15 minutes of them (1,800).
    for (let i = 0; i < 2 * 3600 * 2; i++) evaluator.add(reading('d', t0 + i * 500, 20));
    expect(evaluator.size().points).toBe(100);
    const sparse = new LocalRuleEvaluator();
    for (let i = 0; i < 100; i++) sparse.add(reading('s', t0 + i * 2 * MINUTE, 20));
    expect(sparse.size().points).toBe(3); // readings 2 minutes apart: 3 inside a 5-minute window
  });

  it('forgets emitted anomalies whose window is past, and the least recently heard-from devices', () => {
    const evaluator = new LocalRuleEvaluator({ maxDevices: 50 });
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    let emitted = 0;
    // An hour of bursts above the threshold, every 10 minutes: one anomaly each.
    for (let burst = 0; burst < 6; burst++) {
      for (let i = 0; i < 3; i++)
        emitted += evaluator.add(reading('hot', t0 + burst * 10 * MINUTE + i * 1000, 45)).length;
    }
    expect(emitted).toBe(6);
    expect(evaluator.size().emitted).toBeLessThanOrEqual(1);
    for (let d = 0; d < 500; d++) evaluator.add(reading(`dev-${d}`, t0 + 2 * 3600_000, 20));
    expect(evaluator.size().devices).toBe(50);
  });
});

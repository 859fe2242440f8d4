import { describe, expect, it } from 'vitest';
import {
  InvalidAnomalyError,
  MAX_IDENTITY_LENGTH,
  normalizeAnomaly,
  parseAnomalyBody,
} from '../../../src/alerts/anomaly-records.js';

const NOW = '2026-11-23T10:00:00.000Z';
const ours = {
  deviceId: 'd1',
  rule: 'temperature-high',
  kind: 'threshold',
  metric: 'temperature',
  value: 41.5,
  threshold: 40,
  windowEnd: '2026-11-23T09:59:00Z',
};

describe('anomaly records', () => {
  it('reads our output schema', () => {
    expect(normalizeAnomaly(ours, NOW)).toMatchObject({
      deviceId: 'd1',
      rule: 'temperature-high',
      kind: 'threshold',
      metric: 'temperature',
      value: 41.5,
      threshold: 40,
      score: undefined,
      windowEnd: '2026-11-23T09:59:00.000Z',
    });
  });

  it("reads seed 004's change-point shape and seed 000's threshold shape", () => {
    expect(
      normalizeAnomaly(
        { datetime: '2026-11-23T09:00:00Z', device: 'dev-7', temp: 88, AnomalyScore: 0.97 },
        NOW,
      ),
    ).toMatchObject({ deviceId: 'dev-7', kind: 'changepoint', metric: 'temp', value: 88, score: 0.97 });
    expect(
      normalizeAnomaly({ UTCDateTime: '2026-11-23T09:00:00Z', Device_Id: 'dev-8', Count: 5 }, NOW),
    ).toMatchObject({
      deviceId: 'dev-8',
      kind: 'threshold',
      metric: 'count',
      value: 5,
      windowEnd: '2026-11-23T09:00:00.000Z',
    });
  });

  it('turns an unknown shape into a generic alert that keeps the record', () => {
    const anomaly = normalizeAnomaly({ foo: 'bar' }, NOW);
    expect(anomaly).toMatchObject({ deviceId: 'unknown', kind: 'unknown', rule: 'unknown', windowEnd: NOW });
    expect(anomaly.raw).toEqual({ foo: 'bar' });
  });

  it('accepts one object, an array, line-separated JSON as text or bytes', () => {
    const line = JSON.stringify(ours);
    for (const body of [
      ours,
      [ours, ours],
      `${line}\n${line}\n`,
      Buffer.from(`${line}\r\n${line}`),
      JSON.stringify([ours]),
    ]) {
      const parsed = parseAnomalyBody(body, NOW);
      expect(parsed.unparseable).toEqual([]);
      expect(parsed.anomalies.length).toBeGreaterThanOrEqual(1);
      expect(parsed.anomalies.every((a) => a.deviceId === 'd1')).toBe(true);
    }
  });

  it('reports unparseable lines and non-object values without losing the good ones', () => {
    const parsed = parseAnomalyBody(`${JSON.stringify(ours)}\nnot json\n42`, NOW);
    expect(parsed.anomalies).toHaveLength(1);
    expect(parsed.unparseable).toEqual([
      { reason: 'invalid-json', body: 'not json' },
      { reason: 'not-an-object', body: 42 },
    ]);
    expect(parseAnomalyBody(Buffer.from([0xff, 0xfe]), NOW).unparseable).toHaveLength(1);
  });

  it("reads a Buffer of ASA's line-separated JSON (dataType 'binary'), bad lines apart", () => {
    const line = JSON.stringify(ours);
    const parsed = parseAnomalyBody(
      Buffer.from(`${line}\n${JSON.stringify({ ...ours, deviceId: 'd2' })}\n{"cut":\n`),
      NOW,
    );
    expect(parsed.anomalies.map((a) => a.deviceId)).toEqual(['d1', 'd2']);
    expect(parsed.unparseable).toEqual([{ reason: 'invalid-json', body: '{"cut":' }]);
  });

  it('keeps bytes that are not UTF-8 as they came, for the dead letter (not a lossy decoding)', () => {
    const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    expect(parseAnomalyBody(bytes, NOW).unparseable).toEqual([{ reason: 'invalid-json', body: bytes }]);
  });

  it('a timestamp no Date can hold costs nothing: every record of the body is read once (review 2 finding 1)', () => {
    const a = { ...ours, deviceId: 'a' };
    const c = { ...ours, deviceId: 'c' };
    // An epoch in nanoseconds, and other numbers beyond ±8.64e15 ms, in each shape's time field.
    for (const bad of [
      { ...ours, deviceId: 'b', windowEnd: 1.7e18 },
      { ...ours, deviceId: 'b', windowEnd: undefined, eventTime: -9e15 },
      { datetime: 1.7e18, device: 'b', temp: 1, AnomalyScore: 0.9 },
      { UTCDateTime: 1.7e18, Device_Id: 'b', Count: 3 },
      { time: 1.7e18, ConnectionDeviceId: 'b' },
    ]) {
      for (const body of [
        [a, bad, c],
        JSON.stringify([a, bad, c]),
        Buffer.from(JSON.stringify([a, bad, c])),
      ]) {
        const parsed = parseAnomalyBody(body, NOW);
        expect(parsed.unparseable).toEqual([]);
        expect(parsed.anomalies.map((x) => x.deviceId)).toEqual(['a', 'b', 'c']);
        expect(parsed.anomalies[1]?.windowEnd).toBe(NOW); // the fallback, as for any unreadable time
      }
    }
  });

  it('refuses a device id or rule that cannot key an alarm, as its own dead letter (review 2 finding 2)', () => {
    const lone = { ...ours, deviceId: '\ud800x' };
    const longRule = { ...ours, rule: 'r'.repeat(MAX_IDENTITY_LENGTH + 1) };
    expect(() => normalizeAnomaly(lone, NOW)).toThrow(InvalidAnomalyError);
    expect(() => normalizeAnomaly({ device: '\udfffy', AnomalyScore: 1 }, NOW)).toThrow(/lone surrogate/);
    expect(() => normalizeAnomaly(longRule, NOW)).toThrow(/rule is 129 characters long/);
    // Paired surrogates (an emoji) and the longest id IoT Hub allows are fine.
    const fine = { ...ours, deviceId: `😀${'d'.repeat(MAX_IDENTITY_LENGTH - 2)}` };
    expect(normalizeAnomaly(fine, NOW).deviceId).toBe(fine.deviceId);

    // "\ud800x" is valid JSON: the body parses, and only the bad records are dead letters.
    const body = `[${JSON.stringify({ ...ours, deviceId: 'a' })},{"deviceId":"\\ud800x","rule":"r","kind":"spike"},${JSON.stringify(longRule)}]`;
    const parsed = parseAnomalyBody(body, NOW);
    expect(parsed.anomalies.map((x) => x.deviceId)).toEqual(['a']);
    expect(parsed.unparseable).toEqual([
      {
        reason: 'invalid-anomaly',
        detail: 'deviceId holds a lone surrogate (not well-formed Unicode)',
        body: { deviceId: '\ud800x', rule: 'r', kind: 'spike' },
      },
      {
        reason: 'invalid-anomaly',
        detail: `rule is ${MAX_IDENTITY_LENGTH + 1} characters long, more than ${MAX_IDENTITY_LENGTH}`,
        body: longRule,
      },
    ]);
  });
});

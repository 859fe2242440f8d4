import { describe, expect, it } from 'vitest';
import { normalizeAnomaly, parseAnomalyBody } from '../../../src/alerts/anomaly-records.js';

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
});

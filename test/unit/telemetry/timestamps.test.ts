import { describe, expect, it } from 'vitest';
import { DEFAULT_INGEST_OPTIONS } from '../../../src/telemetry/ingest-options.js';
import {
  chooseTimestamp,
  parseIsoTimestamp,
  parseTimestampValue,
} from '../../../src/telemetry/timestamps.js';

const NOON_UTC = Date.UTC(2026, 1, 14, 12, 0, 0);

describe('parseIsoTimestamp', () => {
  it.each([
    ['2026-02-14T12:00:00Z', NOON_UTC],
    ['2026-02-14T12:00:00z', NOON_UTC],
    ['2026-02-14T12:00:00+00:00', NOON_UTC],
    ['2026-02-14T12:00:00+0000', NOON_UTC],
    ['2026-02-14T17:30:00+05:30', NOON_UTC],
    ['2026-02-14T04:00:00-0800', NOON_UTC],
    ['2026-02-14T04:00:00-08:00', NOON_UTC],
    ['2026-02-14T13:00:00+01', NOON_UTC],
    ['2026-02-14T12:00Z', NOON_UTC],
  ])('reads the offset of %s', (text, expected) => {
    expect(parseIsoTimestamp(text)).toBe(expected);
  });

  it('treats a date-time without offset as UTC', () => {
    expect(parseIsoTimestamp('2026-02-14T12:00:00')).toBe(NOON_UTC);
  });

  it('accepts a space instead of T, and surrounding whitespace', () => {
    expect(parseIsoTimestamp('2026-02-14 12:00:00Z')).toBe(NOON_UTC);
    expect(parseIsoTimestamp('  2026-02-14T12:00:00Z \n')).toBe(NOON_UTC);
  });

  it.each([
    ['1', 100],
    ['12', 120],
    ['123', 123],
    ['1234', 123],
    ['12345', 123],
    ['123456', 123],
    ['1234567', 123],
    ['12345678', 123],
    ['999999999', 999],
  ])('truncates a fraction of %s to whole milliseconds (%i)', (fraction, ms) => {
    expect(parseIsoTimestamp(`2026-02-14T12:00:00.${fraction}Z`)).toBe(NOON_UTC + ms);
  });

  it('reads every three-digit fraction exactly (no floating-point off-by-one)', () => {
    const wrong: string[] = [];
    for (let ms = 0; ms < 1000; ms++) {
      const fraction = String(ms).padStart(3, '0');
      if (parseIsoTimestamp(`2026-02-14T12:00:00.${fraction}Z`) !== NOON_UTC + ms) wrong.push(fraction);
    }
    expect(wrong).toEqual([]);
  });

  it('accepts a comma as the decimal sign', () => {
    expect(parseIsoTimestamp('2026-02-14T12:00:00,5Z')).toBe(NOON_UTC + 500);
  });

  it('accepts 29 February in a leap year only', () => {
    expect(parseIsoTimestamp('2024-02-29T00:00:00Z')).toBe(Date.UTC(2024, 1, 29));
    expect(parseIsoTimestamp('2025-02-29T00:00:00Z')).toBeUndefined();
  });

  it('reads toISOString() output exactly, across centuries and leap days', () => {
    let seed = 42;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const ms = Math.floor((seed / 2 ** 31) * 4_102_444_800_000); // 1970 .. 2100
      const text = new Date(ms).toISOString();
      expect(parseIsoTimestamp(text)).toBe(ms);
      expect(parseIsoTimestamp(text.replace(/\.\d+Z$/, 'Z'))).toBe(Math.floor(ms / 1000) * 1000);
    }
  });

  // Regression: Date.UTC maps years 0-99 to 1900-1999.
  it('keeps years below 100 as written', () => {
    const year50 = new Date(0);
    year50.setUTCFullYear(50, 0, 1);
    expect(parseIsoTimestamp('0050-01-01T00:00:00Z')).toBe(year50.getTime());
  });

  it.each([
    '2026-02-31T00:00:00Z',
    '2026-04-31T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-00-10T00:00:00Z',
    '2026-01-00T00:00:00Z',
    '2026-01-01T24:00:00Z',
    '2026-01-01T12:60:00Z',
    '2026-01-01T12:00:61Z',
    '2026-01-01T12:00:00+24:00',
    '2026-01-01T12:00:00+05:60',
    '2026-01-01T12:00:00+5',
    '2026-01-01T12:00:00 UTC',
    '2026-01-01',
    '14/02/2026 12:00',
    'yesterday',
    '',
  ])('refuses %j', (text) => {
    expect(parseIsoTimestamp(text)).toBeUndefined();
  });
});

describe('parseTimestampValue', () => {
  const SECONDS = 1_771_070_400; // 2026-02-14T12:00:00Z

  it('reads numbers below 1e11 as epoch seconds and others as milliseconds', () => {
    expect(parseTimestampValue(SECONDS)).toBe(NOON_UTC);
    expect(parseTimestampValue(NOON_UTC)).toBe(NOON_UTC);
    expect(parseTimestampValue(99_999_999_999)).toBe(99_999_999_999_000);
    expect(parseTimestampValue(1e11)).toBe(1e11);
  });

  it('keeps the milliseconds of fractional epoch seconds', () => {
    expect(parseTimestampValue(SECONDS + 0.25)).toBe(NOON_UTC + 250);
  });

  it('reads numeric strings like numbers', () => {
    expect(parseTimestampValue(String(SECONDS))).toBe(NOON_UTC);
    expect(parseTimestampValue(String(NOON_UTC))).toBe(NOON_UTC);
    expect(parseTimestampValue(`${SECONDS}.5`)).toBe(NOON_UTC + 500);
  });

  it('reads ISO strings', () => {
    expect(parseTimestampValue('2026-02-14T13:00:00+01:00')).toBe(NOON_UTC);
  });

  it.each([0, -1, -SECONDS, '0', '-1771070400', Number.NaN, Number.POSITIVE_INFINITY, '1e12', ' 1771070400'])(
    'refuses %s',
    (value) => {
      expect(parseTimestampValue(value)).toBeUndefined();
    },
  );

  it.each([[null], [undefined], [true], [{}], [[]], [new Date(NOON_UTC)]])(
    'refuses the non-number, non-string %j',
    (value) => {
      expect(parseTimestampValue(value)).toBeUndefined();
    },
  );

  it('refuses strings longer than 40 characters', () => {
    expect(parseTimestampValue(`2026-02-14T12:00:00.${'0'.repeat(21)}Z`)).toBeUndefined();
  });
});

describe('chooseTimestamp', () => {
  const enqueued = NOON_UTC;
  const options = {
    timestampFields: ['timestamp', 'ts', 'time'],
    maxFutureSkewMs: 300_000,
    earliestTimestampMs: Date.UTC(2000, 0, 1),
  };
  const iso = (ms: number) => new Date(ms).toISOString();

  it('uses the enqueued time when no configured field is present', () => {
    expect(chooseTimestamp({ temperature: 21, eventTime: iso(enqueued - 1000) }, enqueued, options)).toEqual({
      timestampMs: enqueued,
      timeSource: 'enqueued',
    });
  });

  it('takes the first configured field that is present, in configuration order', () => {
    const payload = { time: iso(enqueued - 3000), ts: iso(enqueued - 2000), timestamp: iso(enqueued - 1000) };
    expect(chooseTimestamp(payload, enqueued, options)).toEqual({
      timestampMs: enqueued - 1000,
      timeSource: 'device',
      field: 'timestamp',
    });
    const { timestamp: _, ...withoutTimestamp } = payload;
    expect(chooseTimestamp(withoutTimestamp, enqueued, options)).toMatchObject({ field: 'ts' });
  });

  it('accepts epoch seconds and milliseconds from the payload', () => {
    expect(chooseTimestamp({ ts: (enqueued - 5000) / 1000 }, enqueued, options).timestampMs).toBe(
      enqueued - 5000,
    );
    expect(chooseTimestamp({ ts: enqueued - 5000 }, enqueued, options).timestampMs).toBe(enqueued - 5000);
  });

  it('accepts a device time exactly at the future-skew limit and at the earliest instant', () => {
    expect(chooseTimestamp({ ts: enqueued + 300_000 }, enqueued, options)).toMatchObject({
      timeSource: 'device',
    });
    expect(chooseTimestamp({ ts: iso(options.earliestTimestampMs) }, enqueued, options)).toMatchObject({
      timestampMs: options.earliestTimestampMs,
      timeSource: 'device',
    });
  });

  it('falls back to the enqueued time for a time too far in the future, still naming the field', () => {
    expect(chooseTimestamp({ ts: enqueued + 300_001 }, enqueued, options)).toEqual({
      timestampMs: enqueued,
      timeSource: 'enqueued',
      field: 'ts',
    });
  });

  it('falls back to the enqueued time for a time before the earliest instant (unset device clock)', () => {
    expect(chooseTimestamp({ timestamp: '1970-01-01T00:00:05Z' }, enqueued, options)).toEqual({
      timestampMs: enqueued,
      timeSource: 'enqueued',
      field: 'timestamp',
    });
    expect(chooseTimestamp({ timestamp: options.earliestTimestampMs - 1 }, enqueued, options)).toMatchObject({
      timeSource: 'enqueued',
      field: 'timestamp',
    });
  });

  it('skips a field whose value is no timestamp and tries the next one', () => {
    expect(chooseTimestamp({ time: 'noon-ish' }, enqueued, options)).toEqual({
      timestampMs: enqueued,
      timeSource: 'enqueued',
    });
    expect(chooseTimestamp({ ts: 'noon-ish', time: iso(enqueued - 5000) }, enqueued, options)).toEqual({
      timestampMs: enqueued - 5000,
      timeSource: 'device',
      field: 'time',
    });
  });

  it('ignores inherited properties', () => {
    const payload = Object.create({ ts: iso(enqueued - 1000) }) as Record<string, unknown>;
    expect(chooseTimestamp(payload, enqueued, options)).toEqual({
      timestampMs: enqueued,
      timeSource: 'enqueued',
    });
  });

  it('uses the default fields, including EventEnqueuedUtcTime', () => {
    expect(
      chooseTimestamp({ EventEnqueuedUtcTime: iso(enqueued - 60_000) }, enqueued, DEFAULT_INGEST_OPTIONS),
    ).toEqual({ timestampMs: enqueued - 60_000, timeSource: 'device', field: 'EventEnqueuedUtcTime' });
  });
});

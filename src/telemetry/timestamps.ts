import type { IngestOptions } from './ingest-options.js';

// ISO 8601 date-time with optional fraction and an offset written as Z, ±HH, ±HHMM or ±HH:MM.
const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : (DAYS[month - 1] ?? 31);
}

// The form nearly every device sends (what toISOString() writes): parsed natively after a cheap range check.
const UTC_MILLIS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,3})?Z$/;
const digit = (text: string, i: number) => text.charCodeAt(i) - 48;

/** Parses ISO 8601 (any offset form; no offset means UTC) to epoch ms, or undefined. */
export function parseIsoTimestamp(text: string): number | undefined {
  if (UTC_MILLIS.test(text)) {
    // Date.parse accepts 31 February and 24:00; refuse those as the general path does.
    const year = digit(text, 0) * 1000 + digit(text, 1) * 100 + digit(text, 2) * 10 + digit(text, 3);
    const month = digit(text, 5) * 10 + digit(text, 6);
    const day = digit(text, 8) * 10 + digit(text, 9);
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || digit(text, 11) * 10 + digit(text, 12) > 23) {
      return undefined;
    }
    const t = Date.parse(text);
    return Number.isNaN(t) ? undefined : t;
  }
  const m = ISO.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, off] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = s === undefined ? 0 : Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  const ms = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  const year = Number(y);
  // Date.UTC would roll 31 February over to March; refuse instead.
  if (day > daysInMonth(year, month)) return undefined;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, keeps years 0-99 as written.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, Math.min(second, 59), ms);
  let t = date.getTime();
  if (off !== undefined && off !== 'Z' && off !== 'z') {
    const sign = off.startsWith('-') ? -1 : 1;
    const digits = off.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 23 || om > 59) return undefined;
    t -= sign * (oh * 60 + om) * 60_000;
  }
  return t;
}

/** Epoch seconds or milliseconds: values below 1e11 are seconds (1e11 s is the year 5138). */
function fromEpoch(n: number): number | undefined {
  if (!Number.isFinite(n) || n <= 0) return undefined;
  return n < 1e11 ? Math.round(n * 1000) : Math.round(n);
}

/** Turns a payload value into epoch ms, or undefined when it is no timestamp. */
export function parseTimestampValue(value: unknown): number | undefined {
  if (typeof value === 'number') return fromEpoch(value);
  if (typeof value !== 'string' || value.length > 40) return undefined;
  if (value.charCodeAt(4) !== 45 /* '-' */ && /^\d+(\.\d+)?$/.test(value)) return fromEpoch(Number(value));
  return parseIsoTimestamp(value);
}

export type TimeSource = 'device' | 'enqueued';

/**
 * Picks a record's timestamp: the first configured payload field that holds a timestamp decides. If that
 * timestamp is implausible (too far in the future, or before the earliest accepted instant), or no field holds
 * one, the IoT Hub enqueued time is used instead. Returns the deciding field so it is not projected as a value.
 */
export function chooseTimestamp(
  payload: Readonly<Record<string, unknown>>,
  enqueuedTimeMs: number,
  options: Pick<IngestOptions, 'timestampFields' | 'maxFutureSkewMs' | 'earliestTimestampMs'>,
): { timestampMs: number; timeSource: TimeSource; field?: string } {
  for (const field of options.timestampFields) {
    if (!Object.hasOwn(payload, field)) continue;
    const t = parseTimestampValue(payload[field]);
    if (t === undefined) continue;
    if (t >= options.earliestTimestampMs && t <= enqueuedTimeMs + options.maxFutureSkewMs) {
      return { timestampMs: t, timeSource: 'device', field };
    }
    // A present but implausible timestamp: fall back, and still keep the field out of the values.
    return { timestampMs: enqueuedTimeMs, timeSource: 'enqueued', field };
  }
  return { timestampMs: enqueuedTimeMs, timeSource: 'enqueued' };
}

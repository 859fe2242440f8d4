import type { IngestOptions } from './ingest-options.js';

// ISO 8601 date-time with optional fraction and an offset written as Z, ±HH, ±HHMM or ±HH:MM.
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : (DAYS[month - 1] ?? 31);
}

const digit = (text: string, i: number) => {
  const d = text.charCodeAt(i) - 48;
  return d >= 0 && d <= 9 ? d : NaN;
};
const two = (text: string, i: number) => digit(text, i) * 10 + digit(text, i + 1);

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/**
 * The form nearly every device sends, `YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z` (what toISOString() writes), read
 * digit by digit: the hot path of ingestion. Returns undefined for anything else (or out of range).
 */
function parseUtcFast(text: string): number | undefined {
  const n = text.length;
  if (n < 20 || n > 24 || text.charCodeAt(n - 1) !== 90 /* Z */) return undefined;
  if (text[4] !== '-' || text[7] !== '-' || text[10] !== 'T' || text[13] !== ':' || text[16] !== ':')
    return undefined;
  let ms = 0;
  if (n > 20) {
    if (text[19] !== '.' || n === 21) return undefined;
    for (let i = 20; i < n - 1; i++) ms = ms * 10 + digit(text, i);
    ms *= n === 22 ? 100 : n === 23 ? 10 : 1;
  }
  const year = two(text, 0) * 100 + two(text, 2);
  const month = two(text, 5);
  const day = two(text, 8);
  const hour = two(text, 11);
  const minute = two(text, 14);
  const second = two(text, 17);
  if (!(month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month))) return undefined;
  if (!(hour <= 23 && minute <= 59 && second <= 59 && ms >= 0)) return undefined;
  return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms;
}

/** Parses ISO 8601 (any offset form; no offset means UTC) to epoch ms, or undefined. */
export function parseIsoTimestamp(text: string): number | undefined {
  const fast = parseUtcFast(text);
  if (fast !== undefined) return fast;
  const m = ISO.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, off] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = s === undefined ? 0 : Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return undefined;
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

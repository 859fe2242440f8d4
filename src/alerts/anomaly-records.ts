/**
 * The anomaly records that Stream Analytics writes to the `anomalies` hub, normalized to one schema whatever
 * shape they arrive in. See asa/README.md for the output schema of our own queries.
 */
import { isUtf8 } from 'node:buffer';

/** One anomaly in the project's output schema. */
export interface Anomaly {
  deviceId: string;
  /** The rule (query step) that fired, e.g. `temperature-high`, `temperature-spike`. */
  rule: string;
  kind: 'threshold' | 'spike' | 'dip' | 'changepoint' | 'unknown';
  metric: string;
  value: number | undefined;
  /** Anomaly score (spike/dip/change-point) or undefined. */
  score: number | undefined;
  /** Threshold crossed (threshold rules) or undefined. */
  threshold: number | undefined;
  /** End of the window (or event time) the anomaly belongs to, ISO 8601 UTC: with device and rule, its identity. */
  windowEnd: string;
  /** The record as received, for unknown shapes and for the audit trail. */
  raw: Record<string, unknown>;
}

export type ParsedAnomalies = {
  anomalies: Anomaly[];
  /** Bodies, lines or records that hold no usable anomaly; `detail` says why when the reason alone does not. */
  unparseable: {
    reason: 'invalid-json' | 'not-an-object' | 'invalid-anomaly';
    detail?: string;
    body: unknown;
  }[];
};

/** A record that cannot become an alarm (an identity that storage cannot key): dead-lettered, never retried. */
export class InvalidAnomalyError extends Error {
  override readonly name = 'InvalidAnomalyError';
}

/**
 * Longest device id and rule, UTF-16 code units. IoT Hub device ids are at most 128; with both at most 128,
 * an alarm id (device, rule and window end, percent-encoded) stays far below Cosmos DB's 1,023-byte id limit.
 */
export const MAX_IDENTITY_LENGTH = 128;

const KINDS = new Set(['threshold', 'spike', 'dip', 'changepoint']);

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v)
    ? v
    : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))
      ? Number(v)
      : undefined;

function isoTime(v: unknown): string | undefined {
  if (typeof v !== 'string' && typeof v !== 'number') return undefined;
  const date = new Date(typeof v === 'number' ? v : Date.parse(v));
  // Beyond ±8.64e15 ms (an epoch in ns, say) a Date is invalid, and toISOString would throw.
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** Throws InvalidAnomalyError unless `value` can key an alarm: well-formed UTF-16 (no lone surrogate), not too long. */
function checkIdentity(field: 'deviceId' | 'rule', value: string): void {
  if (/\p{Cs}/u.test(value))
    throw new InvalidAnomalyError(`${field} holds a lone surrogate (not well-formed Unicode)`);
  if (value.length > MAX_IDENTITY_LENGTH)
    throw new InvalidAnomalyError(
      `${field} is ${value.length} characters long, more than ${MAX_IDENTITY_LENGTH}`,
    );
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);

/**
 * Maps one record of any known shape (ours or the seed queries') to an Anomaly; unknown shapes give a generic
 * one. Throws InvalidAnomalyError for a device id or rule that cannot key an alarm (checkIdentity).
 */
export function normalizeAnomaly(record: Record<string, unknown>, fallbackTime: string): Anomaly {
  const anomaly = mapRecord(record, fallbackTime);
  checkIdentity('deviceId', anomaly.deviceId);
  checkIdentity('rule', anomaly.rule);
  return anomaly;
}

/** The seed queries' record shapes: the field naming the device, the field that marks the shape, and the rest. */
interface SeedShape {
  device: string;
  marker: string;
  rule: string;
  kind: Anomaly['kind'];
  metric: string;
  value: string;
  score?: string;
  time: string;
}

const SEED_SHAPES: readonly SeedShape[] = [
  // Seed 004 (ChangePoint on temperature): { datetime, device, temp, AnomalyScore }.
  {
    device: 'device',
    marker: 'AnomalyScore',
    rule: 'changepoint',
    kind: 'changepoint',
    metric: 'temp',
    value: 'temp',
    score: 'AnomalyScore',
    time: 'datetime',
  },
  // Seed 000 (threshold over a sliding window): { UTCDateTime, Device_Id, Count }.
  {
    device: 'Device_Id',
    marker: 'Count',
    rule: 'threshold-count',
    kind: 'threshold',
    metric: 'count',
    value: 'Count',
    time: 'UTCDateTime',
  },
];

function mapRecord(record: Record<string, unknown>, fallbackTime: string): Anomaly {
  // Our schema.
  if (text(record.deviceId) && text(record.rule) && text(record.kind)) {
    const kind = String(record.kind);
    return {
      deviceId: String(record.deviceId),
      rule: String(record.rule),
      kind: KINDS.has(kind) ? (kind as Anomaly['kind']) : 'unknown',
      metric: text(record.metric) ?? 'unknown',
      value: num(record.value),
      score: num(record.score),
      threshold: num(record.threshold),
      windowEnd: isoTime(record.windowEnd) ?? isoTime(record.eventTime) ?? fallbackTime,
      raw: record,
    };
  }
  // A seed query's shape, or anything else: a generic alert that keeps the record, never a crash.
  const seed = SEED_SHAPES.find((shape) => text(record[shape.device]) && shape.marker in record);
  const deviceId = seed
    ? String(record[seed.device])
    : (text(record.deviceId) ??
      text(record.device) ??
      text(record.Device_Id) ??
      text(record.ConnectionDeviceId) ??
      'unknown');
  const time = seed ? isoTime(record[seed.time]) : (isoTime(record.windowEnd) ?? isoTime(record.time));
  return {
    deviceId,
    rule: seed?.rule ?? text(record.rule) ?? 'unknown',
    kind: seed?.kind ?? 'unknown',
    metric: seed?.metric ?? text(record.metric) ?? 'unknown',
    value: num(record[seed?.value ?? 'value']),
    score: seed?.score === undefined ? undefined : num(record[seed.score]),
    threshold: undefined,
    windowEnd: time ?? fallbackTime,
    raw: record,
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Every body form ASA produces: one object, a JSON array, or line-separated JSON (as text or bytes). A body that
 * is none of those is returned as unparseable (for dead letters); a non-object element likewise.
 */
export function parseAnomalyBody(body: unknown, fallbackTime: string): ParsedAnomalies {
  const out: ParsedAnomalies = { anomalies: [], unparseable: [] };
  // One record at a time: a record that fails costs only itself (its own dead letter, with its own reason).
  const add = (value: unknown) => {
    if (Array.isArray(value)) value.forEach(add);
    else if (isRecord(value)) {
      try {
        out.anomalies.push(normalizeAnomaly(value, fallbackTime));
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        out.unparseable.push({ reason: 'invalid-anomaly', detail, body: value });
      }
    } else out.unparseable.push({ reason: 'not-an-object', body: value });
  };
  // Only JSON.parse is guarded: what happens to a parsed value is add's business, never "not JSON".
  const parse = (source: string): { value: unknown } | undefined => {
    try {
      return { value: JSON.parse(source) as unknown };
    } catch {
      return undefined;
    }
  };
  const fromText = (source: string) => {
    const whole = parse(source);
    if (whole) {
      add(whole.value);
      return;
    }
    // Not one JSON value: try line-separated JSON, line by line.
    for (const line of source.split(/\r?\n/)) {
      if (line.trim() === '') continue;
      const parsed = parse(line);
      if (parsed) add(parsed.value);
      else out.unparseable.push({ reason: 'invalid-json', body: line });
    }
  };
  // Bytes (the trigger's dataType is 'binary'): UTF-8 text is read as above; other bytes stay as they came.
  if (body instanceof Uint8Array) {
    if (isUtf8(body)) fromText(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    else out.unparseable.push({ reason: 'invalid-json', body });
  } else if (typeof body === 'string') fromText(body);
  else add(body);
  return out;
}

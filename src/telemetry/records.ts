import { isUtf8 } from 'node:buffer';
import { propertyIgnoringCase, type IotHubMessageMeta } from './iothub-batch.js';
import type { IngestOptions } from './ingest-options.js';
import { parseJsonText } from './json-text.js';
import { chooseTimestamp, type TimeSource } from './timestamps.js';

/** Streams that project into a section of the device's last-known values (seed 002 §2.2.2). */
export const STATE_STREAMS = ['telemetry', 'diagnostics', 'metadata'] as const;
export type StateStream = (typeof STATE_STREAMS)[number];
export const DEFAULT_STREAM: StateStream = 'telemetry';

/** Payload fields that describe the record rather than the device, so they are never projected as values. */
const CONVENTION_FIELDS = new Set(['_subject', '_version']);

/** One accepted data record: a message body, or one element of a body that is a JSON array. */
export interface TelemetryRecord {
  deviceId: string;
  moduleId: string | undefined;
  partitionId: string;
  sequenceNumber: number;
  /** Position in a message whose body is a JSON array; 0 otherwise. */
  recordIndex: number;
  offset: string | undefined;
  enqueuedTimeMs: number;
  stream: string;
  version: string | undefined;
  timestampMs: number;
  timeSource: TimeSource;
  /** The payload field the timestamp came from, if any. */
  timestampField: string | undefined;
  /** The record's values; numbers a double cannot hold faithfully are the string of their source text. */
  payload: Record<string, unknown>;
  /** The record's exact JSON text as the device sent it, when the body arrived as bytes or text. */
  source: string | undefined;
  properties: Record<string, unknown>;
}

export type DeadLetterReason =
  | 'invalid-json'
  | 'not-an-object'
  | 'no-identity'
  | 'no-sequence-number'
  | 'no-enqueued-time'
  | 'state-rejected'
  | 'too-large'
  | 'too-deep'
  | 'too-many-fields'
  | 'storage-failure'
  /** An anomaly that cannot become an alarm (see InvalidAnomalyError), or whose alarm write was refused for good. */
  | 'invalid-anomaly';

/** A message (or part of one) that could not be processed, kept with its raw body. */
export interface DeadLetter {
  reason: DeadLetterReason;
  detail: string;
  meta: IotHubMessageMeta;
  partitionId: string;
  /** The body as it arrived: bytes, text, or a value the host had already parsed. */
  body: unknown;
  /** Set when the letter is one record of a message: its position in the body. */
  recordIndex?: number;
  /** The record's exact JSON text (then it stands for `body`). */
  source?: string;
  /** For a body that is an array: how many elements are not objects, and the first few of them. */
  badElements?: { count: number; first: { index: number; value: unknown }[] };
}

/** How many bad array elements of one message a dead letter shows (the whole body is kept once anyway). */
export const BAD_ELEMENTS_SHOWN = 10;

export interface ParsedMessage {
  records: TelemetryRecord[];
  deadLetters: DeadLetter[];
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/** Stream names become blob path segments: keep them short and safe, whatever a device sends. */
export function normalizeStreamName(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined;
  const name = raw
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '_')
    .replace(/^[_-]+/, '')
    .slice(0, 64);
  return name === '' ? undefined : name;
}

/** Size of a body in UTF-8 bytes without encoding it when the answer is obvious. */
function byteLength(text: string, limit: number): number {
  return text.length * 3 <= limit ? text.length : Buffer.byteLength(text, 'utf8');
}

interface Limits {
  maxDepth: number;
  maxFields: number;
  /** Set for bodies delivered already parsed, whose serialized size can only be estimated. */
  maxBytes: number | undefined;
}
type ShapeProblem = 'too-deep' | 'too-many-fields' | 'too-large';
interface Tally {
  fields: number;
  bytes: number;
}

/** Depth, node count and (optionally) estimated size of a JSON value, stopping at the first limit passed. */
function measure(value: object, limits: Limits): ShapeProblem | undefined {
  return walk(value, 1, limits, { fields: 0, bytes: 2 });
}

function walk(v: object, depth: number, limits: Limits, tally: Tally): ShapeProblem | undefined {
  if (depth > limits.maxDepth) return 'too-deep';
  const countBytes = limits.maxBytes !== undefined;
  if (Array.isArray(v)) {
    tally.fields += v.length;
    if (tally.fields > limits.maxFields) return 'too-many-fields';
    for (const c of v as unknown[]) {
      if (countBytes) tally.bytes += typeof c === 'string' ? c.length + 3 : 8;
      if (typeof c === 'object' && c !== null) {
        const problem = walk(c, depth + 1, limits, tally);
        if (problem) return problem;
      }
    }
  } else {
    const record = v as Record<string, unknown>;
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue;
      if (++tally.fields > limits.maxFields) return 'too-many-fields';
      const c = record[key];
      if (countBytes) tally.bytes += key.length + 4 + (typeof c === 'string' ? c.length + 3 : 8);
      if (typeof c === 'object' && c !== null) {
        const problem = walk(c, depth + 1, limits, tally);
        if (problem) return problem;
      }
    }
  }
  return countBytes && tally.bytes > (limits.maxBytes ?? Infinity) ? 'too-large' : undefined;
}

interface Decoded {
  value: unknown;
  /** Exact text of the value (bodies that arrived as bytes or text). */
  source: string | undefined;
  elementSources: string[] | undefined;
}

/** Bytes (dataType 'binary', what we register) or text are parsed here, once; other values came parsed. */
function decodeBody(body: unknown, maxBytes: number): Decoded | { reason: DeadLetterReason; detail: string } {
  let text: string;
  if (body instanceof Uint8Array) {
    if (body.byteLength > maxBytes)
      return { reason: 'too-large', detail: `${body.byteLength} bytes > ${maxBytes}` };
    if (!isUtf8(body)) return { reason: 'invalid-json', detail: 'body is not UTF-8' };
    text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  } else if (typeof body === 'string') {
    const size = byteLength(body, maxBytes);
    if (size > maxBytes) return { reason: 'too-large', detail: `${size} bytes > ${maxBytes}` };
    text = body;
  } else {
    return { value: body, source: undefined, elementSources: undefined };
  }
  try {
    return parseJsonText(text);
  } catch {
    return { reason: 'invalid-json', detail: 'body is not UTF-8 JSON' };
  }
}

/** Why a message cannot be processed, as its dead letter will say. */
type Refusal = { reason: DeadLetterReason; detail: string };

/** The envelope facts every record needs, all from IoT Hub's trigger metadata (never from the payload). */
interface Envelope {
  deviceId: string;
  sequenceNumber: number;
  enqueuedTimeMs: number;
}

function envelopeOf(meta: IotHubMessageMeta): Envelope | Refusal {
  const { deviceId, sequenceNumber, enqueuedTimeMs } = meta;
  if (deviceId === undefined)
    return { reason: 'no-identity', detail: 'no iothub-connection-device-id system property' };
  if (sequenceNumber === undefined)
    return { reason: 'no-sequence-number', detail: 'no sequence number in trigger metadata' };
  if (enqueuedTimeMs === undefined)
    return { reason: 'no-enqueued-time', detail: 'no enqueued time in trigger metadata' };
  return { deviceId, sequenceNumber, enqueuedTimeMs };
}

/**
 * The body as a JSON object or array within the size, depth and breadth limits. Bodies delivered already parsed
 * have no byte size: it is estimated while bounding nesting and breadth.
 */
function boundedValue(body: unknown, options: IngestOptions): (Decoded & { isArray: boolean }) | Refusal {
  const decoded = decodeBody(body, options.maxRecordBytes);
  if ('reason' in decoded) return decoded;
  const { value } = decoded;
  const isArray = Array.isArray(value);
  if (!isArray && !isPlainObject(value))
    return { reason: 'not-an-object', detail: `body is ${value === null ? 'null' : typeof value}` };
  const shape = measure(value, {
    maxDepth: options.maxDepth + (isArray ? 1 : 0),
    maxFields: options.maxFields,
    maxBytes: typeof body === 'object' && !(body instanceof Uint8Array) ? options.maxRecordBytes : undefined,
  });
  if (shape === undefined) return { ...decoded, isArray };
  const detail =
    shape === 'too-deep'
      ? `nesting deeper than ${options.maxDepth}`
      : shape === 'too-many-fields'
        ? `more than ${options.maxFields} fields`
        : `about ${options.maxRecordBytes}+ bytes once serialized`;
  return { reason: shape, detail };
}

/**
 * Turns one IoT Hub message into records, or dead letters when it cannot be processed. Never throws for bad
 * input. The device id comes only from IoT Hub's authenticated system property, never from the payload.
 */
export function parseMessage(
  body: unknown,
  meta: IotHubMessageMeta,
  partitionId: string,
  options: IngestOptions,
): ParsedMessage {
  const envelope = envelopeOf(meta);
  if ('reason' in envelope) return deadMessage(envelope.reason, envelope.detail, meta, partitionId, body);
  const decoded = boundedValue(body, options);
  if ('reason' in decoded) return deadMessage(decoded.reason, decoded.detail, meta, partitionId, body);
  const { value, source, elementSources, isArray } = decoded;

  const items: unknown[] = isArray ? (value as unknown[]) : [value];
  const propertyStream = streamFromProperties(meta.properties);
  const result: ParsedMessage = { records: [], deadLetters: [] };
  const bad: NonNullable<DeadLetter['badElements']> = { count: 0, first: [] };

  for (let recordIndex = 0; recordIndex < items.length; recordIndex++) {
    const item = items[recordIndex];
    if (!isPlainObject(item)) {
      if (++bad.count <= BAD_ELEMENTS_SHOWN) bad.first.push({ index: recordIndex, value: item });
      continue;
    }
    const { timestampMs, timeSource, field } = chooseTimestamp(item, envelope.enqueuedTimeMs, options);
    const version = item._version;
    result.records.push({
      deviceId: envelope.deviceId,
      moduleId: meta.moduleId,
      partitionId,
      sequenceNumber: envelope.sequenceNumber,
      recordIndex,
      offset: meta.offset,
      enqueuedTimeMs: envelope.enqueuedTimeMs,
      stream: propertyStream ?? normalizeStreamName(item._subject) ?? DEFAULT_STREAM,
      version: typeof version === 'string' || typeof version === 'number' ? String(version) : undefined,
      timestampMs,
      timeSource,
      timestampField: field,
      payload: item,
      source: isArray ? elementSources?.[recordIndex] : source,
      properties: meta.properties,
    });
  }
  // One letter per message, however many elements are bad: a count, the first few, and the body once.
  if (bad.count > 0) {
    result.deadLetters.push({
      reason: 'not-an-object',
      detail: `${bad.count} of ${items.length} array elements are not objects`,
      meta,
      partitionId,
      body,
      badElements: bad,
    });
  }
  return result;
}

function deadMessage(
  reason: DeadLetterReason,
  detail: string,
  meta: IotHubMessageMeta,
  partitionId: string,
  body: unknown,
): ParsedMessage {
  return { records: [], deadLetters: [{ reason, detail, meta, partitionId, body }] };
}

/** The stream named by the `stream-id` or `subject` application property, if any. */
function streamFromProperties(properties: Record<string, unknown>): string | undefined {
  for (const _ in properties) {
    return (
      normalizeStreamName(propertyIgnoringCase(properties, 'stream-id')) ??
      normalizeStreamName(propertyIgnoringCase(properties, 'subject'))
    );
  }
  return undefined; // no properties at all: the common case, and the cheap one
}

/** True for payload keys that are values of the device (not convention fields, not the timestamp field). */
export const isValueField = (record: TelemetryRecord, key: string): boolean =>
  key !== record.timestampField && !CONVENTION_FIELDS.has(key);

export const isStateStream = (stream: string): stream is StateStream =>
  (STATE_STREAMS as readonly string[]).includes(stream);

/**
 * The replay format (docs/adr/0013): how archived records travel from the raw archive to the `replay` hub and
 * back into the ingest pipeline. The one module `npm run replay` (tools/replay/) and the `replayTelemetry`
 * trigger share. Pure: no SDK, no I/O.
 *
 * One replay event is one original IoT Hub message: its envelope (device id, module id, partition, sequence
 * number, offset, enqueued time, application properties) and every archived record of it (a body that was a
 * JSON array gave one record per element), each with its exact JSON text, stream, timestamp and time source. The
 * body is this JSON document as UTF-8 bytes; application property `replay-format` names the version.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { TimeSource } from './timestamps.js';

/** Value of the `replay-format` application property, and of the body's `format`. */
export const REPLAY_FORMAT = 'iot-replay/1';
/** Application property naming the replay format (the body says it too). */
export const REPLAY_FORMAT_PROPERTY = 'replay-format';

/** One archived record of a message. */
export interface ReplayRecord {
  /** Position in a message whose body was a JSON array; 0 otherwise. */
  recordIndex: number;
  stream: string;
  /** The timestamp ingest chose (ISO 8601) and where it came from. */
  timestamp: string;
  timeSource: TimeSource;
  /** The record's exact JSON text as the device sent it. */
  source: string;
}

/** One original IoT Hub message rebuilt from the archive: what one replay event carries. */
export interface ReplayMessage {
  format: typeof REPLAY_FORMAT;
  deviceId: string;
  moduleId?: string;
  /** The IoT Hub partition it came from (sequence numbers are comparable within it only). */
  partitionId: string;
  sequenceNumber: number;
  offset?: string;
  /** IoT Hub enqueued time, ISO 8601. */
  enqueuedTime: string;
  properties: Record<string, unknown>;
  records: ReplayRecord[];
}

/** One archive line (archive-layout.ts `archiveLine`) read back: its envelope and the record's exact text. */
export interface ArchivedRecord {
  deviceId: string;
  moduleId: string | undefined;
  partitionId: string;
  sequenceNumber: number;
  recordIndex: number;
  offset: string | undefined;
  enqueuedTimeMs: number;
  stream: string;
  timestamp: string;
  timeSource: TimeSource;
  properties: Record<string, unknown>;
  source: string;
}

type Rec = Record<string, unknown>;
const isRecord = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isText = (v: unknown): v is string => typeof v === 'string' && v !== '';
const isTimeSource = (v: unknown): v is TimeSource => v === 'device' || v === 'enqueued';

/**
 * The raw text of the top-level member `key` of a JSON object text already known to be valid. The archive
 * splices a record's source in as `body` byte for byte; `JSON.parse` alone would round numbers a double cannot
 * hold, so the exact text is cut out here.
 */
export function topLevelMember(text: string, key: string): string | undefined {
  let depth = 0;
  let memberKey: string | undefined;
  let valueStart = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x5c) i++;
        else if (s === 0x22) break;
      }
      // A string at depth 1 outside a value is a member name.
      if (depth === 1 && valueStart < 0) memberKey = JSON.parse(text.slice(start, i + 1)) as string;
    } else if (c === 0x3a && depth === 1 && valueStart < 0) {
      valueStart = i + 1;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
    } else if ((c === 0x2c && depth === 1) || ((c === 0x7d || c === 0x5d) && depth-- === 1)) {
      if (memberKey === key && valueStart >= 0) return text.slice(valueStart, i).trim();
      memberKey = undefined;
      valueStart = -1;
    }
  }
  return undefined;
}

/** Reads one archive line; undefined for a line that is not one (a torn or foreign line is skipped, not fatal). */
export function parseArchiveLine(line: string): ArchivedRecord | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed)) return undefined;
  const { deviceId, moduleId, partitionId, sequenceNumber, recordIndex, offset, enqueuedTime } = parsed;
  const { stream, timestamp, timeSource, properties, bodyText } = parsed;
  const enqueuedTimeMs = typeof enqueuedTime === 'string' ? Date.parse(enqueuedTime) : NaN;
  if (!isText(deviceId) || !isText(partitionId) || !isIndex(sequenceNumber) || !isIndex(recordIndex))
    return undefined;
  if (!isText(stream) || typeof timestamp !== 'string' || !isTimeSource(timeSource)) return undefined;
  if (Number.isNaN(enqueuedTimeMs)) return undefined;
  // A source with a line break is archived as the string `bodyText` (JSON Lines cannot carry it raw).
  const source = typeof bodyText === 'string' ? bodyText : topLevelMember(line, 'body');
  if (source === undefined) return undefined;
  return {
    deviceId,
    moduleId: isText(moduleId) ? moduleId : undefined,
    partitionId,
    sequenceNumber,
    recordIndex,
    offset: isText(offset) ? offset : undefined,
    enqueuedTimeMs,
    stream,
    timestamp,
    timeSource,
    properties: isRecord(properties) ? properties : {},
    source,
  };
}

/**
 * The replay messages of one partition's archived records, in sequence order: the records of one message (same
 * sequence number) become one message, in record order, each record once (the archive may hold a record twice
 * under two blob names, docs/adr/0003).
 */
export function toReplayMessages(records: Iterable<ArchivedRecord>): ReplayMessage[] {
  const bySequence = new Map<number, { first: ArchivedRecord; records: Map<number, ArchivedRecord> }>();
  for (const r of records) {
    let m = bySequence.get(r.sequenceNumber);
    if (!m) bySequence.set(r.sequenceNumber, (m = { first: r, records: new Map() }));
    if (!m.records.has(r.recordIndex)) m.records.set(r.recordIndex, r);
  }
  return [...bySequence.values()]
    .sort((a, b) => a.first.sequenceNumber - b.first.sequenceNumber)
    .map(({ first, records: byIndex }) => ({
      format: REPLAY_FORMAT,
      deviceId: first.deviceId,
      ...(first.moduleId === undefined ? {} : { moduleId: first.moduleId }),
      partitionId: first.partitionId,
      sequenceNumber: first.sequenceNumber,
      ...(first.offset === undefined ? {} : { offset: first.offset }),
      enqueuedTime: new Date(first.enqueuedTimeMs).toISOString(),
      properties: first.properties,
      records: [...byIndex.values()]
        .sort((a, b) => a.recordIndex - b.recordIndex)
        .map((r) => ({
          recordIndex: r.recordIndex,
          stream: r.stream,
          timestamp: r.timestamp,
          timeSource: r.timeSource,
          source: r.source,
        })),
    }));
}

/** The body of a replay event: the message as JSON text. */
export const encodeReplayMessage = (message: ReplayMessage): string => JSON.stringify(message);

/**
 * Replay event bodies above this are gzip-compressed. A 256 KiB IoT Hub message of tiny array records becomes
 * ~4 MB of envelope JSON (each record's text escaped, plus its index, stream and time), past Event Hubs' 1 MiB
 * event limit; compressed it fits, and the records of one message stay in one event (its counts stay exact).
 */
export const REPLAY_GZIP_ABOVE_BYTES = 64 * 1024;

/** Largest decompressed replay event accepted (bounds a decompression bomb; far above any real message). */
const MAX_REPLAY_JSON_BYTES = 64 * 1024 * 1024;

/** A replay event's body bytes: JSON text, gzip-compressed when larger than REPLAY_GZIP_ABOVE_BYTES. */
export function replayEventBody(message: ReplayMessage): Buffer {
  const json = Buffer.from(encodeReplayMessage(message));
  return json.length > REPLAY_GZIP_ABOVE_BYTES ? gzipSync(json) : json;
}

/** Gzip's magic bytes: JSON text never starts with 0x1f. */
const isGzip = (body: unknown): body is Uint8Array =>
  body instanceof Uint8Array && body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b;

/** Why a replay event cannot be used (the reason names a dead-letter reason of records.ts). */
export interface ReplayRefusal {
  reason: 'invalid-json' | 'not-an-object' | 'no-identity' | 'no-sequence-number' | 'no-enqueued-time';
  detail: string;
}

function bodyText(body: unknown): string | undefined {
  if (body instanceof Uint8Array)
    return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString();
  return typeof body === 'string' ? body : undefined;
}

function decodeRecord(v: unknown): ReplayRecord | undefined {
  if (!isRecord(v)) return undefined;
  const { recordIndex, stream, timestamp, timeSource, source } = v;
  if (!isIndex(recordIndex) || !isText(stream) || typeof timestamp !== 'string') return undefined;
  if (!isTimeSource(timeSource) || typeof source !== 'string') return undefined;
  return { recordIndex, stream, timestamp, timeSource, source };
}

/** Reads a replay event's body (bytes, text, or a value the host parsed); a refusal says why it is unusable. */
export function decodeReplayMessage(given: unknown): ReplayMessage | ReplayRefusal {
  let body = given;
  if (isGzip(given)) {
    try {
      body = gunzipSync(given, { maxOutputLength: MAX_REPLAY_JSON_BYTES });
    } catch {
      return { reason: 'invalid-json', detail: 'replay event body is not valid gzip (or too large)' };
    }
  }
  const text = bodyText(body);
  let value: unknown = body;
  if (text !== undefined) {
    try {
      value = JSON.parse(text);
    } catch {
      return { reason: 'invalid-json', detail: 'replay event body is not JSON' };
    }
  }
  if (!isRecord(value) || value.format !== REPLAY_FORMAT)
    return { reason: 'not-an-object', detail: `replay event is not ${REPLAY_FORMAT}` };
  const { deviceId, moduleId, partitionId, sequenceNumber, offset, enqueuedTime, properties } = value;
  if (!isText(deviceId)) return { reason: 'no-identity', detail: 'replay event has no deviceId' };
  if (!isIndex(sequenceNumber) || !isText(partitionId))
    return { reason: 'no-sequence-number', detail: 'replay event has no partitionId/sequenceNumber' };
  if (typeof enqueuedTime !== 'string' || Number.isNaN(Date.parse(enqueuedTime)))
    return { reason: 'no-enqueued-time', detail: 'replay event has no enqueuedTime' };
  const raw = Array.isArray(value.records) ? (value.records as unknown[]) : [];
  const records = raw.map(decodeRecord);
  if (raw.length === 0 || records.some((r) => r === undefined))
    return { reason: 'not-an-object', detail: 'replay event records are missing or malformed' };
  return {
    format: REPLAY_FORMAT,
    deviceId,
    ...(isText(moduleId) ? { moduleId } : {}),
    partitionId,
    sequenceNumber,
    ...(isText(offset) ? { offset } : {}),
    enqueuedTime,
    properties: isRecord(properties) ? properties : {},
    records: records as ReplayRecord[],
  };
}

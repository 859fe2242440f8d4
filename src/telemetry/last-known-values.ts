import {
  isStateStream,
  isValueField,
  STATE_STREAMS,
  type StateStream,
  type TelemetryRecord,
} from './records.js';
import { DEFAULT_INGEST_OPTIONS } from './ingest-options.js';
import type { TimeSource } from './timestamps.js';

/** The last known value of one field, and where it came from. */
export interface FieldValue {
  value: unknown;
  /** Device time of the record that carried it (ISO 8601, UTC), or its enqueued time; see `timeSource`. */
  timestamp: string;
  timeSource: TimeSource;
  sequenceNumber: number;
  /** Position of the record within a message whose body was a JSON array. */
  recordIndex: number;
  /** The record's `_version`, when it had one. */
  version?: string;
}

/** Field name → last known value. Dictionaries have no prototype, so `__proto__` is just a name. */
export type FieldMap = Record<string, FieldValue>;

/**
 * A device's last-known values (seed 002 §3.5): a projection per field, not per message. It is a
 * last-writer-wins map ordered by (timestamp, sequenceNumber, recordIndex), so merging is commutative,
 * associative and idempotent: replays and reordering cannot regress a field.
 */
export interface DeviceState {
  deviceId: string;
  /**
   * Highest sequence number merged, per IoT Hub partition (sequence numbers are only comparable within one);
   * messages at or below it are not counted again.
   */
  sequenceNumbers: Record<string, number>;
  /** Earliest and latest IoT Hub enqueued time seen (ISO 8601). */
  firstSeen: string;
  lastSeen: string;
  /** Messages and records counted once each (replays are not counted; see docs/adr/0003). */
  counts: { messages: number; records: Record<string, number> };
  telemetry: FieldMap;
  diagnostics: FieldMap;
  metadata: FieldMap;
}

/** What one batch says about one device, before it meets the stored state. */
export interface DeviceDelta {
  deviceId: string;
  partitionId: string;
  minEnqueuedMs: number;
  maxEnqueuedMs: number;
  sections: Record<StateStream, FieldMap>;
  /** Records per sequence number and stream, for idempotent counting. */
  recordsBySequence: Map<number, Map<string, number>>;
}

const dict = <T>(): Record<string, T> => Object.create(null) as Record<string, T>;

/** Copies a dictionary into a prototype-less one, so that any key, `__proto__` included, is plain data. */
function copyDict<T>(source: Readonly<Record<string, T>> | undefined): Record<string, T> {
  const out = dict<T>();
  if (source) for (const key of Object.keys(source)) out[key] = source[key] as T;
  return out;
}

/** True when `a` is strictly newer than `b`. ISO strings from toISOString() sort as time does. */
function isNewer(a: FieldValue, b: FieldValue): boolean {
  if (a.timestamp !== b.timestamp) return a.timestamp > b.timestamp;
  if (a.sequenceNumber !== b.sequenceNumber) return a.sequenceNumber > b.sequenceNumber;
  return a.recordIndex > b.recordIndex;
}

function toFieldValue(record: TelemetryRecord, value: unknown, timestamp: string): FieldValue {
  const fv: FieldValue = {
    value,
    timestamp,
    timeSource: record.timeSource,
    sequenceNumber: record.sequenceNumber,
    recordIndex: record.recordIndex,
  };
  if (record.version !== undefined) fv.version = record.version;
  return fv;
}

/** True when record `a` is strictly newer than `b` (same order as isNewer, on numbers). */
function isNewerRecord(a: TelemetryRecord, b: TelemetryRecord): boolean {
  if (a.timestampMs !== b.timestampMs) return a.timestampMs > b.timestampMs;
  if (a.sequenceNumber !== b.sequenceNumber) return a.sequenceNumber > b.sequenceNumber;
  return a.recordIndex > b.recordIndex;
}

/** Folds a batch's records into one delta per device (the coalescing step: one write per device). */
export function projectBatch(records: Iterable<TelemetryRecord>): Map<string, DeviceDelta> {
  // Hot path: remember the winning record per field and build each FieldValue once, at the end.
  const winners = new Map<string, Record<StateStream, Map<string, TelemetryRecord>>>();
  const deltas = new Map<string, DeviceDelta>();
  for (const record of records) {
    let delta = deltas.get(record.deviceId);
    let won = winners.get(record.deviceId);
    if (!delta || !won) {
      delta = {
        deviceId: record.deviceId,
        partitionId: record.partitionId,
        minEnqueuedMs: record.enqueuedTimeMs,
        maxEnqueuedMs: record.enqueuedTimeMs,
        sections: { telemetry: dict(), diagnostics: dict(), metadata: dict() },
        recordsBySequence: new Map(),
      };
      won = { telemetry: new Map(), diagnostics: new Map(), metadata: new Map() };
      deltas.set(record.deviceId, delta);
      winners.set(record.deviceId, won);
    }
    if (record.enqueuedTimeMs < delta.minEnqueuedMs) delta.minEnqueuedMs = record.enqueuedTimeMs;
    if (record.enqueuedTimeMs > delta.maxEnqueuedMs) delta.maxEnqueuedMs = record.enqueuedTimeMs;
    let perStream = delta.recordsBySequence.get(record.sequenceNumber);
    if (!perStream)
      delta.recordsBySequence.set(record.sequenceNumber, (perStream = new Map<string, number>()));
    perStream.set(record.stream, (perStream.get(record.stream) ?? 0) + 1);

    if (!isStateStream(record.stream)) continue;
    const section = won[record.stream];
    for (const name in record.payload) {
      if (!Object.hasOwn(record.payload, name) || !isValueField(record, name)) continue;
      const current = section.get(name);
      if (current === undefined || isNewerRecord(record, current)) section.set(name, record);
    }
  }
  for (const [deviceId, won] of winners) {
    const delta = deltas.get(deviceId);
    if (!delta) continue;
    const iso = new Map<TelemetryRecord, string>();
    for (const stream of STATE_STREAMS) {
      for (const [name, record] of won[stream]) {
        let timestamp = iso.get(record);
        if (timestamp === undefined)
          iso.set(record, (timestamp = new Date(record.timestampMs).toISOString()));
        delta.sections[stream][name] = toFieldValue(record, record.payload[name], timestamp);
      }
    }
  }
  return deltas;
}

/**
 * Merges a delta into the stored state. Returns undefined when nothing would change (a replay), so the
 * caller skips the write altogether.
 */
export function mergeState(
  current: DeviceState | undefined,
  delta: DeviceDelta,
  limits: {
    maxStateFieldsPerSection: number;
    /** Told about each new field left out because its section is full. */
    onFieldDropped?: (stream: StateStream, name: string) => void;
  } = { maxStateFieldsPerSection: DEFAULT_INGEST_OPTIONS.maxStateFieldsPerSection },
): DeviceState | undefined {
  let changed = current === undefined;
  const sequenceNumbers = copyDict(current?.sequenceNumbers);
  const watermark = sequenceNumbers[delta.partitionId] ?? -1;

  const next: DeviceState = {
    deviceId: delta.deviceId,
    sequenceNumbers,
    firstSeen: current?.firstSeen ?? new Date(delta.minEnqueuedMs).toISOString(),
    lastSeen: current?.lastSeen ?? new Date(delta.maxEnqueuedMs).toISOString(),
    counts: { messages: current?.counts.messages ?? 0, records: copyDict(current?.counts.records) },
    telemetry: copyDict(current?.telemetry),
    diagnostics: copyDict(current?.diagnostics),
    metadata: copyDict(current?.metadata),
  };

  for (const [sequenceNumber, perStream] of delta.recordsBySequence) {
    if (sequenceNumber <= watermark) continue;
    next.counts.messages += 1;
    for (const [stream, n] of perStream) next.counts.records[stream] = (next.counts.records[stream] ?? 0) + n;
    sequenceNumbers[delta.partitionId] = Math.max(sequenceNumbers[delta.partitionId] ?? -1, sequenceNumber);
    changed = true;
  }

  const first = new Date(delta.minEnqueuedMs).toISOString();
  const last = new Date(delta.maxEnqueuedMs).toISOString();
  if (first < next.firstSeen) [next.firstSeen, changed] = [first, true];
  if (last > next.lastSeen) [next.lastSeen, changed] = [last, true];

  for (const stream of STATE_STREAMS) {
    const target = next[stream];
    const incoming = delta.sections[stream];
    let size = Object.keys(target).length;
    for (const name of Object.keys(incoming)) {
      const candidate = incoming[name] as FieldValue;
      const existing = target[name];
      if (existing === undefined) {
        if (size >= limits.maxStateFieldsPerSection) {
          limits.onFieldDropped?.(stream, name);
          continue;
        }
        size++;
      } else if (!isNewer(candidate, existing)) continue;
      target[name] = candidate;
      changed = true;
    }
  }
  return changed ? next : undefined;
}

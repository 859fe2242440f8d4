/**
 * The only module that reads raw Event Hub trigger metadata. It narrows what the IoT Hub built-in endpoint
 * delivers for a `cardinality: 'many'` batch into typed per-message records.
 *
 * The v4 Node library lower-cases the first letter of every metadata key (`SystemPropertiesArray` becomes
 * `systemPropertiesArray`, an application property `Subject` becomes `subject`), so look-ups of application
 * properties here are case-insensitive. The extension also copies `SequenceNumber`, `Offset` and
 * `EnqueuedTimeUtc` into every system-properties entry; the library's recursive camel-casing makes them
 * `sequenceNumber`, `offset`, `enqueuedTimeUtc`. `sequenceNumberArray` is a `long[]` (`collectionSint64`), which
 * may arrive as numbers, strings or Long-like `{ low, high, unsigned }` objects depending on decoding.
 */

/** What IoT Hub tells us about one message, as opposed to what the device wrote in it. */
export interface IotHubMessageMeta {
  /** Authenticated device id (`iothub-connection-device-id`); the only device id we trust. */
  deviceId: string | undefined;
  moduleId: string | undefined;
  sequenceNumber: number | undefined;
  offset: string | undefined;
  /** IoT Hub enqueued time, epoch ms. */
  enqueuedTimeMs: number | undefined;
  /** Application properties set by the device. */
  properties: Record<string, unknown>;
}

/** A message IoT Hub told us nothing about. */
export const UNKNOWN_MESSAGE: Readonly<IotHubMessageMeta> = Object.freeze({
  deviceId: undefined,
  moduleId: undefined,
  sequenceNumber: undefined,
  offset: undefined,
  enqueuedTimeMs: undefined,
  properties: {},
});

export interface IotHubBatchMeta {
  partitionId: string;
  messages: IotHubMessageMeta[];
}

import { parseIsoTimestamp } from './timestamps.js';

type Rec = Record<string, unknown>;

const isRecord = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const arrayAt = (meta: Rec, key: string): unknown[] => {
  const v = meta[key];
  return Array.isArray(v) ? v : [];
};

/**
 * A `long` decoded by protobufjs without long conversion (`collectionSint64` of the worker protocol): a `Long`
 * instance or a plain `{ low, high, unsigned }`, both 32-bit words.
 */
function longLikeToNumber(v: Rec): number | undefined {
  const { low, high, unsigned } = v;
  if (typeof low !== 'number' || typeof high !== 'number') return undefined;
  if (!Number.isInteger(low) || !Number.isInteger(high)) return undefined;
  const hi = unsigned === true ? high >>> 0 : high | 0;
  const value = hi * 2 ** 32 + (low >>> 0);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** A sequence number: a non-negative safe integer from a number, bigint, numeric string or Long-like object. */
function toNumber(v: unknown): number | undefined {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'bigint') n = Number(v);
  else if (typeof v === 'string' && v.trim() !== '') n = Number(v);
  else if (isRecord(v)) n = longLikeToNumber(v);
  return n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function toEpochMs(v: unknown): number | undefined {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.getTime();
  if (typeof v === 'string') {
    const ms = parseIsoTimestamp(v) ?? Date.parse(v);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Offsets and partition ids: text, or a number / Long-like `long` (the older Event Hubs offset type). */
function toText(v: unknown): string | undefined {
  if (typeof v === 'string') return v !== '' ? v : undefined;
  if (typeof v === 'number') return String(v);
  const n = isRecord(v) ? longLikeToNumber(v) : undefined;
  return n === undefined ? undefined : String(n);
}

/** Narrows `context.triggerMetadata` of an IoT Hub batch of `count` messages. */
export function readIotHubBatchMetadata(triggerMetadata: unknown, count: number): IotHubBatchMeta {
  const meta: Rec = isRecord(triggerMetadata) ? triggerMetadata : {};
  const system = arrayAt(meta, 'systemPropertiesArray');
  const props = arrayAt(meta, 'propertiesArray');
  const seqs = arrayAt(meta, 'sequenceNumberArray');
  const offsets = arrayAt(meta, 'offsetArray');
  const enqueued = arrayAt(meta, 'enqueuedTimeUtcArray');
  const partitionContext = meta.partitionContext;
  const partitionId =
    (isRecord(partitionContext) ? toText(partitionContext.partitionId) : undefined) ?? 'unknown';

  const messages: IotHubMessageMeta[] = [];
  for (let i = 0; i < count; i++) {
    const sys = isRecord(system[i]) ? (system[i] as Rec) : {};
    const p = props[i];
    messages.push({
      deviceId: toText(sys['iothub-connection-device-id']),
      moduleId: toText(sys['iothub-connection-module-id']),
      sequenceNumber:
        toNumber(seqs[i]) ?? toNumber(sys.sequenceNumber) ?? toNumber(sys['x-opt-sequence-number']),
      offset: toText(offsets[i]) ?? toText(sys.offset) ?? toText(sys['x-opt-offset']),
      enqueuedTimeMs:
        toEpochMs(enqueued[i]) ??
        toEpochMs(sys.enqueuedTimeUtc) ??
        toEpochMs(sys['iothub-enqueuedtime']) ??
        toEpochMs(sys['x-opt-enqueued-time']),
      properties: isRecord(p) ? p : {},
    });
  }
  return { partitionId, messages };
}

/** Reads an application property by name, ignoring case (see the module comment). */
export function propertyIgnoringCase(properties: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(properties, name)) return properties[name];
  const lower = name.toLowerCase();
  for (const key of Object.keys(properties)) if (key.toLowerCase() === lower) return properties[key];
  return undefined;
}

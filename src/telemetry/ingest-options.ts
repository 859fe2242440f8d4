/** Limits and conventions applied to every telemetry record. */
export interface IngestOptions {
  /** Payload fields tried in order for the device timestamp. */
  timestampFields: readonly string[];
  /** How far (ms) a device timestamp may lie ahead of the IoT Hub enqueued time before it is distrusted. */
  maxFutureSkewMs: number;
  /** Device timestamps before this instant (epoch ms) are distrusted (unset real-time clocks send 1970). */
  earliestTimestampMs: number;
  /** Largest accepted message body, in bytes (IoT Hub's own limit is 256 KiB). */
  maxRecordBytes: number;
  /** Deepest accepted nesting of objects/arrays in a record. */
  maxDepth: number;
  /** Most keys and array items accepted in one record, counted over the whole tree. */
  maxFields: number;
  /**
   * Most fields kept per state section of one device; new fields beyond it are archived but not projected, so
   * a device inventing keys cannot grow its document to Cosmos DB's 2 MB item limit.
   */
  maxStateFieldsPerSection: number;
}

export const DEFAULT_INGEST_OPTIONS: IngestOptions = {
  timestampFields: ['timestamp', 'ts', 'time', 'datetime', 'dateTime', 'eventTime', 'EventEnqueuedUtcTime'],
  maxFutureSkewMs: 300_000,
  earliestTimestampMs: Date.UTC(2000, 0, 1),
  maxRecordBytes: 262_144,
  maxDepth: 16,
  maxFields: 1_000,
  maxStateFieldsPerSection: 500,
};

/**
 * Defaults of the state cache (Ingest__StateCache*): devices kept, how long an entry is trusted, and its bound
 * in bytes of serialized state (256 MiB: room for the cache on a 2 GB Flex Consumption instance, ADR 0003).
 */
export const DEFAULT_STATE_CACHE = {
  size: 10_000,
  ttlSeconds: 300,
  maxBytes: 256 * 1024 * 1024,
} as const;

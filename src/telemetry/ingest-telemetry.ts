import pLimit from 'p-limit';
import { archiveBlobs, deadLetterBlob, type BlobBatch } from './archive-layout.js';
import { readIotHubBatchMetadata, UNKNOWN_MESSAGE } from './iothub-batch.js';
import type { IngestOptions } from './ingest-options.js';
import { mergeState, projectBatch } from './last-known-values.js';
import type { DeadLetterStore, DeviceStateStore, JsonLinesStore, RawArchive } from './ports.js';
import { StateRejectedError } from '../shared/errors.js';
import { isStateStream, parseMessage, type DeadLetter, type TelemetryRecord } from './records.js';

/** The part of the Functions invocation context this handler uses (InvocationContext satisfies it). */
export interface TriggerContext {
  triggerMetadata?: Record<string, unknown>;
  retryContext?: { retryCount: number; maxRetryCount: number };
  log(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface IngestTelemetryDeps {
  stateStore: DeviceStateStore;
  archive: RawArchive;
  deadLetters: DeadLetterStore;
  options: IngestOptions & {
    /** Devices written in parallel per batch. */
    stateWriteConcurrency: number;
    /** The registered retry policy's maxRetryCount, used when the host sends no retry context. */
    maxRetryCount: number;
  };
}

/** What one invocation did; returned for tests and benchmarks, logged for operators. */
export interface IngestSummary {
  messages: number;
  records: number;
  devices: number;
  stateWrites: number;
  archiveBlobs: number;
  deadLetters: number;
  otherStreams: Record<string, number>;
  /** New fields left out of state because their section was full (still in the archive). */
  droppedStateFields: number;
  /** Devices whose state the store refused for good; their records went to dead letters. */
  stateRejectedDevices: number;
  /** True when storage failed on the last attempt and the whole batch went to dead letters. */
  batchDeadLettered: boolean;
}

async function putAll(store: JsonLinesStore, blobs: readonly BlobBatch[]): Promise<void> {
  await Promise.all(blobs.map((b) => store.put(b.name, b.lines)));
}

/**
 * Event Hub trigger handler for IoT Hub telemetry: archives raw records, dead-letters what it cannot process,
 * then merges last-known values with one write per distinct device. At-least-once safe (docs/adr/0003).
 */
export function makeIngestTelemetry(deps: IngestTelemetryDeps) {
  const { stateStore, archive, deadLetters, options } = deps;
  const limit = pLimit(options.stateWriteConcurrency);

  return async function ingestTelemetry(messages: unknown, context: TriggerContext): Promise<IngestSummary> {
    const bodies: unknown[] = Array.isArray(messages) ? messages : [messages];
    const { partitionId, messages: metas } = readIotHubBatchMetadata(context.triggerMetadata, bodies.length);

    const records: TelemetryRecord[] = [];
    const dead: DeadLetter[] = [];
    bodies.forEach((body, i) => {
      const meta = metas[i];
      if (!meta) return;
      const parsed = parseMessage(body, meta, partitionId, options);
      for (const r of parsed.records) records.push(r);
      for (const d of parsed.deadLetters) dead.push(d);
    });

    const summary: IngestSummary = {
      messages: bodies.length,
      records: records.length,
      devices: 0,
      stateWrites: 0,
      archiveBlobs: 0,
      deadLetters: dead.length,
      otherStreams: Object.create(null) as Record<string, number>,
      droppedStateFields: 0,
      stateRejectedDevices: 0,
      batchDeadLettered: false,
    };
    for (const r of records) {
      if (!isStateStream(r.stream))
        summary.otherStreams[r.stream] = (summary.otherStreams[r.stream] ?? 0) + 1;
    }

    try {
      // Archive (and dead letters) first: if the state store then fails, the raw data is already safe.
      const blobs = archiveBlobs(records);
      const deadBlob = deadLetterBlob(dead, partitionId);
      await Promise.all([putAll(archive, blobs), putAll(deadLetters, deadBlob ? [deadBlob] : [])]);
      summary.archiveBlobs = blobs.length;

      const deltas = [...projectBatch(records).values()];
      summary.devices = deltas.length;
      const limits = {
        maxStateFieldsPerSection: options.maxStateFieldsPerSection,
        onFieldDropped: () => {
          summary.droppedStateFields++;
        },
      };
      const outcomes = await Promise.allSettled(
        deltas.map((delta) =>
          limit(() => stateStore.update(delta.deviceId, (current) => mergeState(current, delta, limits))),
        ),
      );
      // A transient failure retries the whole batch (merges are idempotent); a device whose state the store
      // refuses for good must not hold its partition hostage: its records go to dead letters instead.
      const transient = outcomes.find(
        (o): o is PromiseRejectedResult =>
          o.status === 'rejected' && !(o.reason instanceof StateRejectedError),
      );
      if (transient) throw transient.reason;
      const rejected = new Map<string, string>();
      outcomes.forEach((o, i) => {
        const deviceId = deltas[i]?.deviceId;
        if (o.status === 'rejected' && deviceId !== undefined) rejected.set(deviceId, errorText(o.reason));
      });
      if (rejected.size > 0) {
        const letters = records
          .filter((r) => rejected.has(r.deviceId))
          .map((r) => recordDeadLetter(r, rejected));
        const blob = deadLetterBlob(letters, partitionId, '.state-rejected');
        if (blob) await deadLetters.put(blob.name, blob.lines);
        summary.stateRejectedDevices = rejected.size;
        context.error(
          `ingestTelemetry: state refused for ${rejected.size} device(s); records parked in ${blob?.name ?? ''}`,
        );
      }
      summary.stateWrites = outcomes.filter(
        (o) => o.status === 'fulfilled' && o.value !== 'unchanged',
      ).length;
    } catch (error) {
      const retryCount = context.retryContext?.retryCount ?? 0;
      const maxRetryCount = context.retryContext?.maxRetryCount ?? options.maxRetryCount;
      const lastAttempt = maxRetryCount >= 0 && retryCount >= maxRetryCount;
      if (!lastAttempt) {
        context.warn(
          `ingestTelemetry attempt ${retryCount + 1} failed; the host will retry`,
          errorText(error),
        );
        throw error;
      }
      // The checkpoint moves on after this invocation: park the whole batch so nothing is lost silently.
      const whole: DeadLetter[] = bodies.map((body, i) => ({
        reason: 'storage-failure',
        detail: errorText(error),
        meta: metas[i] ?? UNKNOWN_MESSAGE,
        partitionId,
        body,
      }));
      const blob = deadLetterBlob(whole, partitionId, '.batch');
      try {
        if (blob) await deadLetters.put(blob.name, blob.lines);
      } catch (deadLetterError) {
        context.error(
          `ingestTelemetry LOST a batch: partition ${partitionId}, ${blob?.name ?? ''}; dead-letter write failed too`,
          errorText(deadLetterError),
        );
        throw deadLetterError;
      }
      summary.batchDeadLettered = true;
      context.error(
        `ingestTelemetry gave up after ${retryCount + 1} attempts; batch of ${bodies.length} parked in dead letters as ${blob?.name ?? '(empty)'}`,
      );
      return summary;
    }

    if (summary.deadLetters > 0)
      context.warn(`ingestTelemetry dead-lettered ${summary.deadLetters} record(s)`);
    if (summary.droppedStateFields > 0) {
      context.warn(
        `ingestTelemetry left ${summary.droppedStateFields} new field(s) out of state: section full (Ingest__MaxStateFieldsPerSection)`,
      );
    }
    if (Object.keys(summary.otherStreams).length > 0) {
      context.log('ingestTelemetry archived records of streams without state', summary.otherStreams);
    }
    context.log(
      `ingestTelemetry partition ${partitionId}: ${summary.messages} messages, ${summary.records} records, ${summary.devices} devices, ${summary.stateWrites} state writes, ${summary.archiveBlobs} archive blobs`,
    );
    return summary;
  };
}

/** A record whose device state was refused, as a dead letter with its original payload. */
function recordDeadLetter(r: TelemetryRecord, reasons: ReadonlyMap<string, string>): DeadLetter {
  return {
    reason: 'state-rejected',
    detail: reasons.get(r.deviceId) ?? '',
    partitionId: r.partitionId,
    meta: {
      deviceId: r.deviceId,
      moduleId: r.moduleId,
      sequenceNumber: r.sequenceNumber,
      offset: r.offset,
      enqueuedTimeMs: r.enqueuedTimeMs,
      properties: r.properties,
    },
    body: r.payload,
  };
}

/** Error text safe for logs: message only, never a request with its headers. */
function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

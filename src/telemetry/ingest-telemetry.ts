import pLimit, { type LimitFunction } from 'p-limit';
import { archiveBlobs, deadLetterBlob } from './archive-layout.js';
import { readIotHubBatchMetadata, UNKNOWN_MESSAGE, type IotHubMessageMeta } from './iothub-batch.js';
import type { IngestOptions } from './ingest-options.js';
import { mergeState, projectBatch } from './last-known-values.js';
import type { DeadLetterStore, DeviceStateStore, RawArchive } from './ports.js';
import { errorText } from '../shared/error-text.js';
import { attemptOf, parkLastAttempt } from './parking.js';
import { StateRejectedError } from '../shared/errors.js';
import {
  isStateStream,
  parseMessage,
  type DeadLetter,
  type DeadLetterReason,
  type TelemetryRecord,
} from './records.js';

/** The part of the Functions invocation context this handler uses (InvocationContext satisfies it). */
export interface TriggerContext {
  triggerMetadata?: Record<string, unknown>;
  retryContext?: { retryCount: number; maxRetryCount: number };
  log(...args: unknown[]): void;
  /** The Functions context has it; a bare fake may leave it out (then `log` is used). */
  debug?(...args: unknown[]): void;
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

/** What the pipeline after parsing needs (a replay has no archive to write). */
export type PipelineDeps = Omit<IngestTelemetryDeps, 'archive'>;

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
  /**
   * Dead-letter lines written on the last attempt for what storage kept failing to take (reason
   * `storage-failure`): records not archived, records of devices whose state write failed, dead letters.
   */
  parked: number;
}

/** What the raw archive and dead-letter writes of one attempt left undone. */
interface RawOutcome {
  blobs: number;
  /** Records whose archive blob could not be written. */
  unarchived: Set<TelemetryRecord>;
  /** Dead letters whose blob could not be written. */
  unwritten: DeadLetter[];
  error: unknown;
}

/**
 * Writes every archive blob and the dead-letter blob, each on its own: one failed blob fails only its lines.
 * Without an archive (a replay: its records are archived already) only the dead letters are written.
 */
async function storeRaw(
  mode: PipelineMode,
  deadLetters: DeadLetterStore,
  records: readonly TelemetryRecord[],
  dead: readonly DeadLetter[],
  partitionId: string,
): Promise<RawOutcome> {
  const { archive } = mode;
  const groups = archive ? archiveBlobs(records) : [];
  const deadBlob = deadLetterBlob(dead, partitionId);
  const outcomes = await Promise.allSettled([
    ...groups.map((b) => (archive as RawArchive).archive(b.name, b.lines)),
    deadBlob
      ? deadLetters.park(`${mode.deadLetterFolder}${deadBlob.name}`, deadBlob.lines)
      : Promise.resolve('exists' as const),
  ]);
  const result: RawOutcome = { blobs: 0, unarchived: new Set(), unwritten: [], error: undefined };
  outcomes.forEach((o, i) => {
    const group = groups[i];
    if (o.status === 'fulfilled') {
      if (group) result.blobs++;
      return;
    }
    result.error ??= o.reason;
    if (group) for (const r of group.records) result.unarchived.add(r);
    else result.unwritten = [...dead];
  });
  return result;
}

/** A record as a dead letter: its exact source (or payload) with the envelope, to be processed again later. */
function recordDeadLetter(r: TelemetryRecord, reason: DeadLetterReason, detail: string): DeadLetter {
  return {
    reason,
    detail,
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
    recordIndex: r.recordIndex,
    ...(r.source === undefined ? {} : { source: r.source }),
  };
}

/** Merges each device's delta; reports the devices refused for good and those that failed transiently. */
async function writeState(
  deps: PipelineDeps,
  limit: LimitFunction,
  records: readonly TelemetryRecord[],
  summary: IngestSummary,
) {
  const deltas = [...projectBatch(records).values()];
  summary.devices = deltas.length;
  const limits = {
    maxStateFieldsPerSection: deps.options.maxStateFieldsPerSection,
    onFieldDropped: () => {
      summary.droppedStateFields++;
    },
  };
  const outcomes = await Promise.allSettled(
    deltas.map((delta) =>
      limit(() => deps.stateStore.update(delta.deviceId, (current) => mergeState(current, delta, limits))),
    ),
  );
  const rejected = new Map<string, string>();
  const failed = new Map<string, unknown>();
  outcomes.forEach((o, i) => {
    const deviceId = deltas[i]?.deviceId;
    if (o.status === 'fulfilled' || deviceId === undefined) return;
    if (o.reason instanceof StateRejectedError) rejected.set(deviceId, errorText(o.reason));
    else failed.set(deviceId, o.reason);
  });
  summary.stateWrites = outcomes.filter((o) => o.status === 'fulfilled' && o.value !== 'unchanged').length;
  return { rejected, failed };
}

/** What storage kept failing to take, as `storage-failure` dead letters: unwritten ones, unarchived records, state. */
function storageFailures(
  raw: RawOutcome,
  archived: readonly TelemetryRecord[],
  stateFailed: ReadonlyMap<string, unknown>,
): DeadLetter[] {
  const parked: DeadLetter[] = [...raw.unwritten];
  const archiveError = `archive write failed: ${errorText(raw.error)}`;
  for (const r of raw.unarchived) parked.push(recordDeadLetter(r, 'storage-failure', archiveError));
  for (const r of archived) {
    const error = stateFailed.get(r.deviceId);
    if (error !== undefined)
      parked.push(recordDeadLetter(r, 'storage-failure', `state write failed: ${errorText(error)}`));
  }
  return parked;
}

/**
 * Dead-letters (`.state-rejected`) the records of the devices whose state the store refused for good; the letters,
 * the blob's name, and whether the write failed.
 */
async function writeRejected(
  deadLetters: DeadLetterStore,
  archived: readonly TelemetryRecord[],
  rejected: ReadonlyMap<string, string>,
  partitionId: string,
  folder: string,
): Promise<{ letters: DeadLetter[]; blob: string; failed?: { error: unknown } }> {
  const letters = archived
    .filter((r) => rejected.has(r.deviceId))
    .map((r) => recordDeadLetter(r, 'state-rejected', rejected.get(r.deviceId) ?? ''));
  const found = deadLetterBlob(letters, partitionId, '.state-rejected');
  const blob = found ? `${folder}${found.name}` : '';
  try {
    if (found) await deadLetters.park(blob, found.lines);
    return { letters, blob };
  } catch (error) {
    return { letters, blob, failed: { error } };
  }
}

/** How one run of the pipeline treats the raw archive, and the name it logs under. */
export interface PipelineMode {
  /** The function's name in logs. */
  name: string;
  /** Where accepted records are archived; undefined for a replay (its records are archived already). */
  archive: RawArchive | undefined;
  /** Prefix of the dead-letter blobs this run writes ('' for ingest, `replay/` for a replay). */
  deadLetterFolder: string;
}

/** One partition's parsed batch, ready for the pipeline. */
export interface ParsedBatch {
  messages: number;
  partitionId: string;
  records: TelemetryRecord[];
  dead: DeadLetter[];
}

/**
 * The pipeline after parsing: archive (unless replaying) and dead letters first, then last-known values with one
 * write per distinct device; on the last attempt, what failed is parked. See makeIngestTelemetry.
 */
export async function applyBatch(
  deps: PipelineDeps,
  limit: LimitFunction,
  batch: ParsedBatch,
  context: TriggerContext,
  mode: PipelineMode,
): Promise<IngestSummary> {
  const { deadLetters, options } = deps;
  const { records, dead, partitionId } = batch;
  const summary = newSummary(batch.messages, records, dead.length);
  const { retryCount, lastAttempt } = attemptOf(context, options.maxRetryCount);
  const retry = (error: unknown): never => {
    context.warn(`${mode.name} attempt ${retryCount + 1} failed; the host will retry`, errorText(error));
    throw error;
  };

  // Archive (and dead letters) first: once archived, a record is safe whatever happens to state.
  const raw = await storeRaw(mode, deadLetters, records, dead, partitionId);
  if (raw.error !== undefined && !lastAttempt) retry(raw.error);
  summary.archiveBlobs = raw.blobs;
  const archived = raw.unarchived.size === 0 ? records : records.filter((r) => !raw.unarchived.has(r));
  const state = await writeState(deps, limit, archived, summary);
  if (state.failed.size > 0 && !lastAttempt) retry(state.failed.values().next().value);

  // The checkpoint moves on after the last attempt: park exactly what failed, so nothing is lost silently.
  const parked = storageFailures(raw, archived, state.failed);
  if (state.rejected.size > 0) {
    const folder = mode.deadLetterFolder;
    const written = await writeRejected(deadLetters, archived, state.rejected, partitionId, folder);
    if (written.failed) {
      if (!lastAttempt) retry(written.failed.error);
      for (const l of written.letters) parked.push(l);
    }
    summary.stateRejectedDevices = state.rejected.size;
    context.error(
      `${mode.name}: state refused for ${state.rejected.size} device(s); records parked in ${written.blob}`,
    );
  }
  if (parked.length > 0) {
    const what = `${parked.length} record(s)`;
    const log = { function: mode.name, what, attempts: retryCount + 1, partitionId };
    await parkLastAttempt(deadLetters, parked, { ...log, folder: mode.deadLetterFolder }, context);
    summary.parked = parked.length;
  }
  logSummary(context, partitionId, summary, mode.name);
  return summary;
}

/**
 * Event Hub trigger handler for IoT Hub telemetry: archives raw records, dead-letters what it cannot process,
 * then merges last-known values with one write per distinct device. At-least-once safe (docs/adr/0003).
 *
 * A record can only cost its own device: a transient storage failure retries the batch (every step is
 * idempotent), and on the last attempt only what failed is parked in dead letters (`storage-failure`): the
 * records not archived, and the records of devices whose state write failed. Everything else is applied.
 */
export function makeIngestTelemetry(deps: IngestTelemetryDeps) {
  const limit = pLimit(deps.options.stateWriteConcurrency);
  const mode: PipelineMode = { name: 'ingestTelemetry', archive: deps.archive, deadLetterFolder: '' };

  return async function ingestTelemetry(messages: unknown, context: TriggerContext): Promise<IngestSummary> {
    const bodies: unknown[] = Array.isArray(messages) ? messages : [messages];
    const { partitionId, messages: metas } = readIotHubBatchMetadata(context.triggerMetadata, bodies.length);
    const { records, dead } = parseBatch(bodies, metas, partitionId, deps.options);
    return applyBatch(deps, limit, { messages: bodies.length, partitionId, records, dead }, context, mode);
  };
}

/** Every message of a batch as records and dead letters. */
function parseBatch(
  bodies: readonly unknown[],
  metas: readonly IotHubMessageMeta[],
  partitionId: string,
  options: IngestOptions,
): { records: TelemetryRecord[]; dead: DeadLetter[] } {
  const records: TelemetryRecord[] = [];
  const dead: DeadLetter[] = [];
  bodies.forEach((body, i) => {
    const parsed = parseMessage(body, metas[i] ?? UNKNOWN_MESSAGE, partitionId, options);
    for (const r of parsed.records) records.push(r);
    for (const d of parsed.deadLetters) dead.push(d);
  });
  return { records, dead };
}

export function newSummary(
  messages: number,
  records: readonly TelemetryRecord[],
  deadLetters: number,
): IngestSummary {
  const summary: IngestSummary = {
    messages,
    records: records.length,
    devices: 0,
    stateWrites: 0,
    archiveBlobs: 0,
    deadLetters,
    otherStreams: Object.create(null) as Record<string, number>,
    droppedStateFields: 0,
    stateRejectedDevices: 0,
    parked: 0,
  };
  for (const r of records) {
    if (!isStateStream(r.stream)) summary.otherStreams[r.stream] = (summary.otherStreams[r.stream] ?? 0) + 1;
  }
  return summary;
}

function logSummary(
  context: TriggerContext,
  partitionId: string,
  summary: IngestSummary,
  name: string,
): void {
  if (summary.deadLetters > 0) context.warn(`${name} dead-lettered ${summary.deadLetters} message(s)`);
  if (summary.droppedStateFields > 0) {
    context.warn(
      `${name} left ${summary.droppedStateFields} new field(s) out of state: section full (Ingest__MaxStateFieldsPerSection)`,
    );
  }
  if (Object.keys(summary.otherStreams).length > 0) {
    context.log(`${name} archived records of streams without state`, summary.otherStreams);
  }
  // The per-batch line is routine: debug when nothing went wrong, so a busy run is not one line per batch.
  const clean =
    summary.deadLetters === 0 &&
    summary.droppedStateFields === 0 &&
    summary.stateRejectedDevices === 0 &&
    summary.parked === 0;
  const write = clean && context.debug ? context.debug.bind(context) : context.log.bind(context);
  write(
    `${name} partition ${partitionId}: ${summary.messages} messages, ${summary.records} records, ${summary.devices} devices, ${summary.stateWrites} state writes, ${summary.archiveBlobs} archive blobs`,
  );
}

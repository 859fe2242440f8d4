import pLimit from 'p-limit';
import {
  applyBatch,
  newSummary,
  type IngestSummary,
  type PipelineDeps,
  type PipelineMode,
  type TriggerContext,
} from './ingest-telemetry.js';
import type { IngestOptions } from './ingest-options.js';
import { readIotHubBatchMetadata, UNKNOWN_MESSAGE, type IotHubMessageMeta } from './iothub-batch.js';
import { parseJsonText } from './json-text.js';
import { decodeReplayMessage, type ReplayMessage } from './replay-envelope.js';
import type { DeadLetter, TelemetryRecord } from './records.js';
import { chooseTimestamp } from './timestamps.js';

/** Dead letters of a replay go under this folder of the dead-letter container, apart from ingest's. */
export const REPLAY_DEAD_LETTER_FOLDER = 'replay/';

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function metaOf(m: ReplayMessage): IotHubMessageMeta {
  return {
    deviceId: m.deviceId,
    moduleId: m.moduleId,
    sequenceNumber: m.sequenceNumber,
    offset: m.offset,
    enqueuedTimeMs: Date.parse(m.enqueuedTime),
    properties: m.properties,
  };
}

/**
 * The telemetry records of one replayed message, identity and metadata from its envelope, timestamp and time
 * source as ingest chose them. The field a timestamp came from is the one today's Ingest__TimestampFields
 * picks (the archive does not name it): the same as at ingest unless that setting changed.
 */
export function replayRecords(
  m: ReplayMessage,
  options: IngestOptions,
): { records: TelemetryRecord[]; dead: DeadLetter[] } {
  const meta = metaOf(m);
  const enqueuedTimeMs = meta.enqueuedTimeMs ?? 0;
  const records: TelemetryRecord[] = [];
  const dead: DeadLetter[] = [];
  for (const r of m.records) {
    let payload: unknown;
    try {
      payload = parseJsonText(r.source).value;
    } catch {
      payload = undefined;
    }
    const timestampMs = Date.parse(r.timestamp);
    if (!isPlainObject(payload) || Number.isNaN(timestampMs)) {
      const detail = 'replayed record is not a JSON object with a timestamp';
      const letter = { reason: 'not-an-object' as const, detail, meta, partitionId: m.partitionId };
      dead.push({ ...letter, body: r.source, recordIndex: r.recordIndex, source: r.source });
      continue;
    }
    const version = payload._version;
    records.push({
      deviceId: m.deviceId,
      moduleId: m.moduleId,
      partitionId: m.partitionId,
      sequenceNumber: m.sequenceNumber,
      recordIndex: r.recordIndex,
      offset: m.offset,
      enqueuedTimeMs,
      stream: r.stream,
      version: typeof version === 'string' || typeof version === 'number' ? String(version) : undefined,
      timestampMs,
      timeSource: r.timeSource,
      timestampField: chooseTimestamp(payload, enqueuedTimeMs, options).field,
      payload,
      source: r.source,
      properties: m.properties,
    });
  }
  return { records, dead };
}

/** Adds `b` into `a` (one invocation's summary over several original partitions). */
function addSummary(a: IngestSummary, b: IngestSummary): IngestSummary {
  for (const key of [
    'records',
    'devices',
    'stateWrites',
    'archiveBlobs',
    'deadLetters',
    'droppedStateFields',
    'stateRejectedDevices',
    'parked',
  ] as const)
    a[key] += b[key];
  for (const [stream, n] of Object.entries(b.otherStreams))
    a.otherStreams[stream] = (a.otherStreams[stream] ?? 0) + n;
  return a;
}

/** One original partition's share of a replay batch. */
interface PartitionShare {
  messages: number;
  records: TelemetryRecord[];
  dead: DeadLetter[];
}

/**
 * Event Hub trigger handler for the `replay` hub (`npm run replay`, docs/adr/0013): runs the ingest pipeline on
 * archived records, taking device identity and IoT Hub metadata from the replay envelope (trusted: only the
 * operator may send to that hub), and never writes the archive again. State merges are idempotent, so replaying
 * data already applied writes nothing. Dead letters of a replay go under `replay/`.
 */
export function makeReplayTelemetry(deps: PipelineDeps) {
  const limit = pLimit(deps.options.stateWriteConcurrency);
  const mode: PipelineMode = {
    name: 'replayTelemetry',
    archive: undefined,
    deadLetterFolder: REPLAY_DEAD_LETTER_FOLDER,
  };

  return async function replayTelemetry(messages: unknown, context: TriggerContext): Promise<IngestSummary> {
    const bodies: unknown[] = Array.isArray(messages) ? messages : [messages];
    const { partitionId: replayPartition } = readIotHubBatchMetadata(context.triggerMetadata, 0);
    // Sequence numbers (and the state's counting watermark) are per original partition: one pipeline run each.
    const shares = new Map<string, PartitionShare>();
    const share = (partitionId: string) => {
      let s = shares.get(partitionId);
      if (!s) shares.set(partitionId, (s = { messages: 0, records: [], dead: [] }));
      return s;
    };
    for (const body of bodies) {
      const decoded = decodeReplayMessage(body);
      if ('reason' in decoded) {
        const letter = { ...decoded, meta: UNKNOWN_MESSAGE, partitionId: `replay-${replayPartition}` };
        const s = share(letter.partitionId);
        s.messages++;
        s.dead.push({ ...letter, body });
        continue;
      }
      const s = share(decoded.partitionId);
      s.messages++;
      const { records, dead } = replayRecords(decoded, deps.options);
      for (const r of records) s.records.push(r);
      for (const d of dead) s.dead.push(d);
    }
    const total = newSummary(bodies.length, [], 0);
    for (const [partitionId, s] of shares) {
      const batch = { messages: s.messages, partitionId, records: s.records, dead: s.dead };
      addSummary(total, await applyBatch(deps, limit, batch, context, mode));
    }
    return total;
  };
}

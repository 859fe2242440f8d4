import { createHash } from 'node:crypto';
import type { DeadLetter, TelemetryRecord } from './records.js';

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** `yyyy/MM/dd/HH` in UTC: date-sortable folders, as the cold path expects. */
export function hourPath(epochMs: number): string {
  const d = new Date(epochMs);
  return `${pad(d.getUTCFullYear(), 4)}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${pad(d.getUTCHours())}`;
}

/** One archive line: the original record plus an envelope of what IoT Hub told us about it. */
export function archiveLine(r: TelemetryRecord): string {
  return JSON.stringify({
    deviceId: r.deviceId,
    moduleId: r.moduleId,
    partitionId: r.partitionId,
    sequenceNumber: r.sequenceNumber,
    recordIndex: r.recordIndex,
    offset: r.offset,
    enqueuedTime: new Date(r.enqueuedTimeMs).toISOString(),
    stream: r.stream,
    timestamp: new Date(r.timestampMs).toISOString(),
    timeSource: r.timeSource,
    properties: r.properties,
    body: r.payload,
  });
}

function rawBody(body: unknown): { body?: unknown; bodyBase64?: string } {
  if (body instanceof Uint8Array) return { bodyBase64: Buffer.from(body).toString('base64') };
  return { body };
}

/** One dead-letter line: the reason, the envelope, and the body as it arrived (base64 when binary). */
export function deadLetterLine(d: DeadLetter): string {
  return JSON.stringify({
    reason: d.reason,
    detail: d.detail,
    deviceId: d.meta.deviceId,
    partitionId: d.partitionId,
    sequenceNumber: d.meta.sequenceNumber,
    offset: d.meta.offset,
    enqueuedTime:
      d.meta.enqueuedTimeMs === undefined ? undefined : new Date(d.meta.enqueuedTimeMs).toISOString(),
    properties: d.meta.properties,
    ...rawBody(d.body),
  });
}

/**
 * A batch's identity in blob names: `{first}-{last}` sequence number, or a content hash when IoT Hub gave none.
 * Both ends matter: a replay with other batch boundaries (a checkpoint that landed mid-way) must get a
 * different name, or its write-once put would find the shorter blob and skip records it never stored.
 */
export function batchKey(sequenceNumbers: readonly (number | undefined)[], lines: readonly string[]): string {
  let first = Infinity;
  let last = -Infinity;
  for (const n of sequenceNumbers) {
    if (n === undefined) continue;
    if (n < first) first = n;
    if (n > last) last = n;
  }
  if (first !== Infinity) return `${first}-${last}`;
  return `h${createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16)}`;
}

export interface BlobBatch {
  name: string;
  lines: string[];
}

/**
 * Groups accepted records into one blob per (stream, hour, partition, batch):
 * `{stream}/{yyyy}/{MM}/{dd}/{HH}/{partitionId}-{firstSeq}-{lastSeq}.jsonl`. The name depends only on the
 * records, so a replayed batch maps to the same blob.
 */
export function archiveBlobs(records: readonly TelemetryRecord[]): BlobBatch[] {
  const groups = new Map<string, { records: TelemetryRecord[]; prefix: string; partitionId: string }>();
  for (const r of records) {
    const prefix = `${r.stream}/${hourPath(r.enqueuedTimeMs)}`;
    const key = `${prefix}|${r.partitionId}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { records: [], prefix, partitionId: r.partitionId }));
    g.records.push(r);
  }
  return [...groups.values()].map((g) => {
    g.records.sort((a, b) => a.sequenceNumber - b.sequenceNumber || a.recordIndex - b.recordIndex);
    const lines = g.records.map(archiveLine);
    return {
      name: `${g.prefix}/${g.partitionId}-${batchKey(
        g.records.map((r) => r.sequenceNumber),
        lines,
      )}.jsonl`,
      lines,
    };
  });
}

/** The dead letters of one batch: `{yyyy}/{MM}/{dd}/{HH}/{partitionId}-{firstSeq}-{lastSeq}{suffix}.jsonl`. */
export function deadLetterBlob(
  deadLetters: readonly DeadLetter[],
  partitionId: string,
  suffix = '',
): BlobBatch | undefined {
  if (deadLetters.length === 0) return undefined;
  const lines = deadLetters.map(deadLetterLine);
  const enqueued = deadLetters.map((d) => d.meta.enqueuedTimeMs).filter((t): t is number => t !== undefined);
  const hour = hourPath(enqueued.length > 0 ? Math.min(...enqueued) : 0);
  const key = batchKey(
    deadLetters.map((d) => d.meta.sequenceNumber),
    lines,
  );
  return { name: `${hour}/${partitionId}-${key}${suffix}.jsonl`, lines };
}

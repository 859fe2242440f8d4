import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { DeadLetter, TelemetryRecord } from './records.js';

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** `yyyy/MM/dd/HH` in UTC: date-sortable folders, as the cold path expects. */
export function hourPath(epochMs: number): string {
  const d = new Date(epochMs);
  return `${pad(d.getUTCFullYear(), 4)}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${pad(d.getUTCHours())}`;
}

/**
 * Appends the body to a JSON line whose other fields are `envelope`. A record's exact source text is spliced
 * in as `body` byte for byte (still one JSON value for readers); if that text holds a line break (pretty-printed
 * JSON), which JSON Lines cannot carry raw, it goes in as the string `bodyText`. Without a source (a value the
 * host had already parsed), `body` is that value serialized.
 */
function withRecordBody(
  envelope: Record<string, unknown>,
  source: string | undefined,
  value: unknown,
): string {
  const head = JSON.stringify(envelope).slice(0, -1);
  if (source === undefined) return `${head},"body":${JSON.stringify(value)}}`;
  if (!/[\r\n]/.test(source)) return `${head},"body":${source}}`;
  return `${head},"bodyText":${JSON.stringify(source)}}`;
}

/** One archive line: the record exactly as sent, plus an envelope of what IoT Hub told us about it. */
export function archiveLine(r: TelemetryRecord): string {
  return withRecordBody(
    {
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
    },
    r.source,
    r.payload,
  );
}

/** A message body as it arrived: UTF-8 text as-is (`bodyText`), other bytes as `bodyBase64`, values as `body`. */
function rawBody(body: unknown): { body?: unknown; bodyText?: string; bodyBase64?: string } {
  if (body instanceof Uint8Array) {
    const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    return isUtf8(bytes) ? { bodyText: bytes.toString('utf8') } : { bodyBase64: bytes.toString('base64') };
  }
  if (typeof body === 'string') return { bodyText: body };
  return { body };
}

/** One dead-letter line: the reason, the envelope, and the body exactly as it arrived (see rawBody). */
export function deadLetterLine(d: DeadLetter): string {
  const envelope = {
    reason: d.reason,
    detail: d.detail,
    deviceId: d.meta.deviceId,
    partitionId: d.partitionId,
    sequenceNumber: d.meta.sequenceNumber,
    recordIndex: d.recordIndex,
    offset: d.meta.offset,
    enqueuedTime:
      d.meta.enqueuedTimeMs === undefined ? undefined : new Date(d.meta.enqueuedTimeMs).toISOString(),
    properties: d.meta.properties,
    badElements: d.badElements,
  };
  if (d.source !== undefined) return withRecordBody(envelope, d.source, d.body);
  return JSON.stringify({ ...envelope, ...rawBody(d.body) });
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
  return linesHash(lines);
}

/** `h` and the first 16 hex digits of the lines' SHA-256: names a blob by what it holds. */
const linesHash = (lines: readonly string[]) =>
  `h${createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16)}`;

export interface BlobBatch {
  name: string;
  lines: string[];
}

/** An archive blob with the records it holds (so a failed write can name exactly what it failed to store). */
export interface ArchiveBlob extends BlobBatch {
  records: readonly TelemetryRecord[];
}

/**
 * Groups accepted records into one blob per (stream, hour, partition, batch):
 * `{stream}/{yyyy}/{MM}/{dd}/{HH}/{partitionId}-{firstSeq}-{lastSeq}.jsonl`. The name depends only on the
 * records, so a replayed batch maps to the same blob.
 */

export function archiveBlobs(records: readonly TelemetryRecord[]): ArchiveBlob[] {
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
      records: g.records,
    };
  });
}

/**
 * The dead letters of one batch: `{yyyy}/{MM}/{dd}/{HH}/{partitionId}-{firstSeq}-{lastSeq}-h{hash}{suffix}.jsonl`,
 * `{hash}` from the lines. Which letters a batch has can vary between attempts (what failed to store, what a
 * store refused): two different sets of the same batch get two blobs, never an 'exists' that drops the second;
 * a replay of the same set finds its own blob.
 */
export function deadLetterBlob(
  deadLetters: readonly DeadLetter[],
  partitionId: string,
  suffix = '',
): BlobBatch | undefined {
  if (deadLetters.length === 0) return undefined;
  const lines = deadLetters.map(deadLetterLine);
  let earliest = Infinity;
  for (const d of deadLetters) {
    const t = d.meta.enqueuedTimeMs;
    if (t !== undefined && t < earliest) earliest = t;
  }
  const hour = hourPath(earliest === Infinity ? 0 : earliest);
  const content = linesHash(lines);
  const batch = batchKey(
    deadLetters.map((d) => d.meta.sequenceNumber),
    lines,
  );
  const key = batch === content ? content : `${batch}-${content}`;
  return { name: `${hour}/${partitionId}-${key}${suffix}.jsonl`, lines };
}

/**
 * Reads the raw archive for a replay (docs/adr/0013): lists only the hour prefixes of the range
 * (`{stream}/{yyyy}/{MM}/{dd}/{HH}/`, archive-layout.ts, found by date-sortable delimiter listings), groups blobs by (hour, IoT Hub partition), and merges each
 * group's blobs into replay messages in sequence order, each record once.
 */
import type { ContainerClient } from '@azure/storage-blob';
import {
  parseArchiveLine,
  toReplayMessages,
  type ArchivedRecord,
  type ReplayMessage,
} from '../../src/telemetry/replay-envelope.js';

/** What to replay: enqueued times in [fromMs, toMs), optionally some streams and devices only. */
export interface ArchiveRange {
  fromMs: number;
  toMs: number;
  /** Streams to read; all streams found at the container's top level when absent. */
  streams?: readonly string[];
  devices?: ReadonlySet<string>;
}

export interface ArchiveBlobRef {
  name: string;
  stream: string;
  /** Lowest and highest sequence number in the blob, from its name (0 / Infinity when the name has none). */
  first: number;
  last: number;
  bytes: number;
}

/** The blobs of one IoT Hub partition in one hour, over every stream read. */
export interface ArchiveGroup {
  /** `{yyyy/MM/dd/HH}|{partitionId}`: the checkpoint's unit. */
  key: string;
  hour: string;
  partitionId: string;
  blobs: ArchiveBlobRef[];
}

const SEQUENCED = /^(.+)-(\d+)-(\d+)\.jsonl$/;
const HASHED = /^(.+)-h[0-9a-f]{16}\.jsonl$/;

/** Numbers compare as numbers (partition "10" after "9"), other ids as text. */
const comparePartitions = (a: string, b: string) =>
  /^\d+$/.test(a) && /^\d+$/.test(b) ? Number(a) - Number(b) : a < b ? -1 : a > b ? 1 : 0;

/** The order groups are replayed in (and a checkpoint's `done` compared): hour, then partition. */
export function compareGroupKeys(a: string, b: string): number {
  const [ha = '', pa = ''] = a.split('|');
  const [hb = '', pb = ''] = b.split('|');
  return ha < hb ? -1 : ha > hb ? 1 : comparePartitions(pa, pb);
}

/** [start, end) in epoch ms of a `yyyy[/MM[/dd[/HH]]]` folder. */
function folderSpan(parts: readonly number[]): [number, number] {
  const [y = 0, m = 1, d = 1, h = 0] = parts;
  const start = Date.UTC(y, m - 1, d, h);
  const end =
    parts.length === 1
      ? Date.UTC(y + 1, 0, 1)
      : parts.length === 2
        ? Date.UTC(y, m, 1)
        : parts.length === 3
          ? Date.UTC(y, m - 1, d + 1)
          : Date.UTC(y, m - 1, d, h + 1);
  return [start, end];
}

/**
 * The hour folders (`{stream}/yyyy/MM/dd/HH/`) of a stream that overlap [fromMs, toMs): a delimiter listing per
 * level, descending only into the years, months and days that overlap the range. The calls grow with the
 * folders that exist in the range, not with its width (a range of ten years costs what its data costs).
 */
async function hourFolders(container: ContainerClient, stream: string, fromMs: number, toMs: number) {
  let level = [`${stream}/`];
  for (let depth = 1; depth <= 4; depth++) {
    const next: string[] = [];
    for (const prefix of level) {
      for await (const item of container.listBlobsByHierarchy('/', { prefix })) {
        if (item.kind !== 'prefix') continue;
        const parts = item.name
          .slice(stream.length + 1, -1)
          .split('/')
          .map(Number);
        if (parts.length !== depth || parts.some((n) => !Number.isInteger(n))) continue;
        const [start, end] = folderSpan(parts);
        if (start < toMs && end > fromMs) next.push(item.name);
      }
    }
    level = next;
  }
  return level.sort();
}

/** Stream folders at the container's top level (one delimiter listing). */
async function discoverStreams(container: ContainerClient): Promise<string[]> {
  const streams: string[] = [];
  for await (const item of container.listBlobsByHierarchy('/')) {
    if (item.kind === 'prefix') streams.push(item.name.replace(/\/$/, ''));
  }
  return streams.sort();
}

function blobRef(name: string, stream: string, hour: string, bytes: number) {
  const file = name.slice(`${stream}/${hour}/`.length);
  const sequenced = SEQUENCED.exec(file);
  if (sequenced) {
    const [, partitionId = '', first = '0', last = '0'] = sequenced;
    return { partitionId, ref: { name, stream, first: Number(first), last: Number(last), bytes } };
  }
  // A name without sequence numbers (IoT Hub gave none): read it first, it bounds nothing.
  const partitionId = HASHED.exec(file)?.[1] ?? 'unknown';
  return { partitionId, ref: { name, stream, first: 0, last: Infinity, bytes } };
}

/**
 * The groups of the range in replay order. Lists the blobs of the hour folders in the range only; `listed`
 * receives each hour prefix whose blobs were listed (tests count them).
 */
export async function listArchiveGroups(
  container: ContainerClient,
  range: ArchiveRange,
  listed: string[] = [],
): Promise<ArchiveGroup[]> {
  const streams = range.streams ?? (await discoverStreams(container));
  const groups = new Map<string, ArchiveGroup>();
  for (const stream of streams) {
    for (const prefix of await hourFolders(container, stream, range.fromMs, range.toMs)) {
      listed.push(prefix);
      const hour = prefix.slice(stream.length + 1, -1);
      for await (const blob of container.listBlobsFlat({ prefix })) {
        const { partitionId, ref } = blobRef(blob.name, stream, hour, blob.properties.contentLength ?? 0);
        const key = `${hour}|${partitionId}`;
        let group = groups.get(key);
        if (!group) groups.set(key, (group = { key, hour, partitionId, blobs: [] }));
        group.blobs.push(ref);
      }
    }
  }
  for (const g of groups.values()) g.blobs.sort((a, b) => a.first - b.first || a.last - b.last);
  return [...groups.values()].sort((a, b) => compareGroupKeys(a.key, b.key));
}

/** How many blob downloads run ahead of the merge. */
const READ_AHEAD = 8;

/**
 * The group's replay messages in sequence order, in chunks. Blobs are read in order of their first sequence
 * number; a message is released once no unread blob can hold a record of it (every unread blob starts above
 * it), so memory holds only the overlap of blobs, not the hour.
 */
export async function* readGroupMessages(
  container: ContainerClient,
  group: ArchiveGroup,
  range: ArchiveRange,
  onBlob: (bytes: number) => void = () => undefined,
): AsyncGenerator<ReplayMessage[]> {
  const download = (b: ArchiveBlobRef) => container.getBlobClient(b.name).downloadToBuffer();
  const pending = group.blobs.slice(0, READ_AHEAD).map(download);
  const buffer = new Map<number, ArchivedRecord[]>();
  for (let i = 0; i < group.blobs.length; i++) {
    const next = group.blobs[i + READ_AHEAD];
    if (next) pending.push(download(next));
    const text = (await pending[i])?.toString('utf8') ?? '';
    pending[i] = Promise.resolve(Buffer.alloc(0)); // let the bytes go
    onBlob(Buffer.byteLength(text));
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const r = parseArchiveLine(line);
      if (!r || r.enqueuedTimeMs < range.fromMs || r.enqueuedTimeMs >= range.toMs) continue;
      if (range.devices && !range.devices.has(r.deviceId)) continue;
      const list = buffer.get(r.sequenceNumber);
      if (list) list.push(r);
      else buffer.set(r.sequenceNumber, [r]);
    }
    const bound = group.blobs[i + 1]?.first ?? Infinity;
    const ready = [...buffer.keys()].filter((seq) => seq < bound);
    if (ready.length === 0) continue;
    const records = ready.flatMap((seq) => buffer.get(seq) ?? []);
    for (const seq of ready) buffer.delete(seq);
    yield toReplayMessages(records);
  }
}

/**
 * Pulls chunks from `source` ahead of its consumer, pausing once `limit` messages wait: the next group is read
 * while the current one is being sent.
 */
export async function* readAhead(
  source: AsyncIterable<ReplayMessage[]>,
  limit: number,
): AsyncGenerator<ReplayMessage[]> {
  const buffer: ReplayMessage[][] = [];
  let buffered = 0;
  // Written by the pump below: fields, so that the loop's checks are not narrowed away.
  const pump: { finished: boolean; failure?: { error: unknown } } = { finished: false };
  let wake: (() => void) | undefined;
  let space: (() => void) | undefined;
  void (async () => {
    try {
      for await (const chunk of source) {
        buffer.push(chunk);
        buffered += chunk.length;
        wake?.();
        while (buffered >= limit) await new Promise<void>((resolve) => (space = resolve));
      }
    } catch (error) {
      pump.failure = { error };
    } finally {
      pump.finished = true;
      wake?.();
    }
  })();
  for (;;) {
    const chunk = buffer.shift();
    if (chunk) {
      buffered -= chunk.length;
      space?.();
      yield chunk;
      continue;
    }
    if (pump.failure) throw pump.failure.error;
    if (pump.finished) return;
    await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
  }
}

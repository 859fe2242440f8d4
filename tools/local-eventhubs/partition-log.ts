import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';

/** One event kept by a partition, as stored: the sender's encoded message plus what the service stamped. */
export interface StoredEvent {
  sequenceNumber: number;
  offset: number;
  enqueuedTimeMs: number;
  partitionKey: string | undefined;
  raw: Buffer;
}

/** Retention of one partition: the oldest events go first once either bound is passed. */
export interface Retention {
  /** Events older than this are dropped (ms). */
  maxAgeMs: number;
  /** Bytes kept per partition: message bytes plus RECORD_OVERHEAD per event. */
  maxBytes: number;
  /**
   * Told when the size bound drops events (which a slow reader may not have read: Event Hubs itself expires by
   * time only), with how many; at most once a minute per partition.
   */
  onSizeDrop?: (dropped: number) => void;
}

/** What a partition reports through `$management`. */
export interface PartitionState {
  beginSequenceNumber: number;
  lastSequenceNumber: number;
  lastOffset: number;
  lastEnqueuedTimeMs: number;
  isEmpty: boolean;
}

/** Bytes a kept event counts beyond its message (its record header and bookkeeping). */
export const RECORD_OVERHEAD = 64;
const FRAME = 8; // u32 payload length + u32 CRC-32 of the payload
const KIND_EVENT = 1;
const KIND_MARKER = 2;
const NO_KEY = 0xffff;
/** Rewrite the file once it holds this many bytes of dropped events and at least as many as it keeps. */
const COMPACT_MIN_DEAD_BYTES = 1024 * 1024;

type Item = { raw: Buffer; partitionKey: string | undefined };

interface Pending {
  items: readonly Item[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The events of one partition, in sequence-number order. In memory always; with a file, every append is written
 * and fsynced before it becomes visible and before `append` resolves (one fsync covers all appends queued
 * meanwhile). File: length-prefixed, CRC-checked records; a torn or corrupt tail is cut off on open.
 */
export class PartitionLog {
  private events: StoredEvent[] = [];
  private head = 0;
  private keptBytes = 0;
  private nextSequence = 0;
  private nextOffset = 0;
  /** The sequence number after the last visible event. */
  private nextVisible = 0;
  private last: { offset: number; timeMs: number } = { offset: -1, timeMs: 0 };
  private fileBytes = 0;
  /** Events dropped by the size bound since the last report (Retention.onSizeDrop). */
  private droppedBySize = 0;
  private lastSizeDropReport = -Infinity;
  private handle: FileHandle | undefined;
  private queue: Pending[] = [];
  private flushing = false;
  private closed = false;
  private failed: Error | undefined;
  private readonly listeners = new Set<() => void>();

  private constructor(
    private readonly retention: Retention,
    private readonly file: string | undefined,
  ) {}

  /** Opens a partition, reloading `file` (when given) and continuing its numbering. */
  static async open(retention: Retention, file?: string): Promise<PartitionLog> {
    const log = new PartitionLog(retention, file);
    if (file !== undefined) await log.load(file);
    return log;
  }

  /** Events kept in memory. */
  get size(): number {
    return this.events.length - this.head;
  }

  /** Stamps and stores events; resolves once they are durable (with a file) and visible to receivers. */
  append(items: readonly Item[], nowMs = Date.now()): Promise<void> {
    if (this.closed) return Promise.reject(new Error('partition closed'));
    if (this.failed) return Promise.reject(this.failed);
    if (this.file === undefined) {
      this.publish(this.stamp(items, nowMs), nowMs);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ items, resolve, reject });
      void this.flush();
    });
  }

  /** Gives events their sequence numbers, offsets and enqueued time, in the order they are written. */
  private stamp(items: readonly Item[], nowMs: number): StoredEvent[] {
    const events: StoredEvent[] = [];
    for (const item of items) {
      const event: StoredEvent = {
        sequenceNumber: this.nextSequence++,
        offset: this.nextOffset,
        enqueuedTimeMs: Math.max(nowMs, this.last.timeMs),
        partitionKey: item.partitionKey,
        raw: item.raw,
      };
      this.nextOffset += Math.max(1, item.raw.length);
      this.last = { offset: event.offset, timeMs: event.enqueuedTimeMs };
      events.push(event);
    }
    return events;
  }

  /** The kept event with this sequence number, if any. */
  at(sequenceNumber: number): StoredEvent | undefined {
    const first = this.events[this.head];
    if (!first) return undefined;
    const event = this.events[this.head + sequenceNumber - first.sequenceNumber];
    // Numbers are gapless by construction (stamped only for what was written); never hand out a wrong event.
    return event?.sequenceNumber === sequenceNumber ? event : undefined;
  }

  /** The sequence number the next visible event will have. */
  get endSequence(): number {
    return this.nextVisible;
  }

  /** The sequence number of the oldest kept event (or of the next one when none is kept). */
  get firstSequence(): number {
    return this.events[this.head]?.sequenceNumber ?? this.nextVisible;
  }

  /** The first kept sequence number whose event satisfies `pred` (monotonic over the log), or the end. */
  firstWhere(pred: (event: StoredEvent) => boolean): number {
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pred(this.events[mid] as StoredEvent)) hi = mid;
      else lo = mid + 1;
    }
    return this.events[lo]?.sequenceNumber ?? this.endSequence;
  }

  /** Partition properties for `$management`. */
  state(): PartitionState {
    const visibleLast = this.events[this.events.length - 1];
    return {
      beginSequenceNumber: this.firstSequence,
      lastSequenceNumber: this.endSequence - 1,
      lastOffset: visibleLast?.offset ?? this.last.offset,
      lastEnqueuedTimeMs: visibleLast?.enqueuedTimeMs ?? this.last.timeMs,
      isEmpty: this.size === 0,
    };
  }

  /** Calls `listener` whenever events become visible; returns the unsubscribe function. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Drops events past the retention bounds. */
  enforceRetention(nowMs = Date.now()): void {
    const oldest = nowMs - this.retention.maxAgeMs;
    let event = this.events[this.head];
    while (event && (this.keptBytes > this.retention.maxBytes || event.enqueuedTimeMs < oldest)) {
      if (event.enqueuedTimeMs >= oldest) this.droppedBySize++;
      this.keptBytes -= event.raw.length + RECORD_OVERHEAD;
      this.events[this.head] = undefined as unknown as StoredEvent;
      this.head++;
      event = this.events[this.head];
    }
    if (this.droppedBySize > 0 && nowMs - this.lastSizeDropReport >= 60_000) {
      this.retention.onSizeDrop?.(this.droppedBySize);
      this.droppedBySize = 0;
      this.lastSizeDropReport = nowMs;
    }
    // Reclaim the array's dropped prefix once it is most of the array (amortised O(1) per event).
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  /** Waits for queued writes, then closes the file (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    this.listeners.clear();
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  private publish(events: StoredEvent[], nowMs: number): void {
    for (const event of events) {
      this.events.push(event);
      this.keptBytes += event.raw.length + RECORD_OVERHEAD;
      this.nextVisible = event.sequenceNumber + 1;
    }
    this.enforceRetention(nowMs);
    for (const listener of this.listeners) listener();
  }

  /**
   * Writes everything queued with one write and one fsync, then publishes it; repeats while more is queued.
   * Numbers are stamped here, in write order; a failed write or fsync is cut back off the file and its numbers
   * are given back, so what was acknowledged stays gapless and nothing unacknowledged survives a restart.
   */
  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0 && !this.failed) {
        const batch = this.queue;
        this.queue = [];
        const mark = { sequence: this.nextSequence, offset: this.nextOffset, last: this.last };
        const now = Date.now();
        const stamped = batch.map((pending) => this.stamp(pending.items, now));
        try {
          const records: Buffer[] = [];
          for (const events of stamped) for (const event of events) records.push(encodeEvent(event));
          const bytes = Buffer.concat(records);
          const handle = await this.fileHandle();
          for (let written = 0; written < bytes.length;) {
            written += (await handle.write(bytes, written, bytes.length - written)).bytesWritten;
          }
          await handle.datasync();
          this.fileBytes += bytes.length;
        } catch (error) {
          this.nextSequence = mark.sequence;
          this.nextOffset = mark.offset;
          this.last = mark.last;
          await this.cutBack(error);
          for (const pending of batch) pending.reject(error);
          continue;
        }
        stamped.forEach((events) => {
          this.publish(events, now);
        });
        for (const pending of batch) pending.resolve();
        await this.compactIfWorthIt().catch((error: unknown) => {
          this.fail(error);
        });
      }
      for (const pending of this.queue.splice(0)) pending.reject(this.failed);
    } finally {
      this.flushing = false;
    }
  }

  /** Truncates the file back to its last acknowledged byte; if even that fails, the partition stops taking events. */
  private async cutBack(cause: unknown): Promise<void> {
    try {
      const handle = await this.fileHandle();
      await handle.truncate(this.fileBytes);
      await handle.datasync();
    } catch {
      this.fail(cause);
    }
  }

  private fail(cause: unknown): void {
    const reason = cause instanceof Error ? cause.message : String(cause);
    this.failed ??= new Error(`partition file ${this.file ?? ''} failed and takes no more events: ${reason}`);
  }

  private async fileHandle(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    const file = this.file as string;
    await mkdir(dirname(file), { recursive: true });
    this.handle = await open(file, 'a');
    return this.handle;
  }

  /** Rewrites the file with only the kept events once dropped ones dominate it (tmp file, fsync, rename). */
  private async compactIfWorthIt(): Promise<void> {
    const dead = this.fileBytes - this.keptBytes;
    if (dead < COMPACT_MIN_DEAD_BYTES || dead < this.keptBytes) return;
    const file = this.file as string;
    const records: Buffer[] = [encodeMarker(this.nextSequence, this.nextOffset, this.last)];
    for (let i = this.head; i < this.events.length; i++)
      records.push(encodeEvent(this.events[i] as StoredEvent));
    const bytes = Buffer.concat(records);
    const tmp = `${file}.compact`;
    const out = await open(tmp, 'w');
    try {
      await out.write(bytes);
      await out.sync();
    } finally {
      await out.close();
    }
    await this.handle?.close();
    this.handle = undefined;
    await rename(tmp, file);
    await syncDirectory(dirname(file));
    this.fileBytes = bytes.length;
  }

  private async load(file: string): Promise<void> {
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const good = this.replay(data);
    if (good < data.length && wholeRecordAfter(data, good)) {
      // Not a torn tail: acknowledged records follow the damage. Cutting would delete them; refuse instead.
      throw new Error(
        `${file}: damaged record at byte ${good} is followed by whole records; refusing to start ` +
          `(move the file aside to discard this partition's events)`,
      );
    }
    if (good < data.length) {
      // A torn or corrupt tail (a crash mid-write): cut it so later appends follow the last whole record.
      const handle = await open(file, 'r+');
      try {
        await handle.truncate(good);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    this.fileBytes = good;
    this.nextVisible = this.nextSequence;
    this.enforceRetention();
  }

  /** Applies the file's records; returns the length of its whole, valid prefix. */
  private replay(data: Buffer): number {
    let pos = 0;
    while (pos + FRAME <= data.length) {
      const length = data.readUInt32BE(pos);
      const end = pos + FRAME + length;
      if (end > data.length) break;
      const payload = data.subarray(pos + FRAME, end);
      if (crc32(payload) !== data.readUInt32BE(pos + 4)) break;
      const record = decodeRecord(payload);
      if (record === undefined) break;
      if (record.kind === KIND_MARKER) {
        this.nextSequence = record.event.sequenceNumber;
        this.nextOffset = record.event.offset;
        this.last = { offset: record.lastOffset, timeMs: record.event.enqueuedTimeMs };
      } else {
        const event = { ...record.event, raw: Buffer.from(record.event.raw) };
        this.events.push(event);
        this.keptBytes += event.raw.length + RECORD_OVERHEAD;
        this.nextSequence = event.sequenceNumber + 1;
        this.nextOffset = event.offset + Math.max(1, event.raw.length);
        this.last = { offset: event.offset, timeMs: event.enqueuedTimeMs };
      }
      pos = end;
    }
    return pos;
  }
}

/** True when a whole, CRC-valid record starts anywhere after `from` (a torn tail holds none). */
function wholeRecordAfter(data: Buffer, from: number): boolean {
  for (let pos = from + 1; pos + FRAME <= data.length; pos++) {
    const length = data.readUInt32BE(pos);
    const end = pos + FRAME + length;
    if (length < 25 || end > data.length) continue;
    if (crc32(data.subarray(pos + FRAME, end)) === data.readUInt32BE(pos + 4)) return true;
  }
  return false;
}

function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  payload.copy(out, FRAME);
  return out;
}

function encodeEvent(event: StoredEvent): Buffer {
  const key = event.partitionKey === undefined ? undefined : Buffer.from(event.partitionKey, 'utf8');
  const head = Buffer.allocUnsafe(1 + 24 + 2);
  head.writeUInt8(KIND_EVENT, 0);
  head.writeDoubleBE(event.sequenceNumber, 1);
  head.writeDoubleBE(event.offset, 9);
  head.writeDoubleBE(event.enqueuedTimeMs, 17);
  head.writeUInt16BE(key === undefined ? NO_KEY : key.length, 25);
  return frame(Buffer.concat(key === undefined ? [head, event.raw] : [head, key, event.raw]));
}

/** A marker carries the numbering across a compaction that kept no event. */
function encodeMarker(
  nextSequence: number,
  nextOffset: number,
  last: { offset: number; timeMs: number },
): Buffer {
  const payload = Buffer.allocUnsafe(1 + 32);
  payload.writeUInt8(KIND_MARKER, 0);
  payload.writeDoubleBE(nextSequence, 1);
  payload.writeDoubleBE(nextOffset, 9);
  payload.writeDoubleBE(last.timeMs, 17);
  payload.writeDoubleBE(last.offset, 25);
  return frame(payload);
}

function decodeRecord(payload: Buffer): { kind: number; event: StoredEvent; lastOffset: number } | undefined {
  if (payload.length < 25) return undefined;
  const kind = payload.readUInt8(0);
  const sequenceNumber = payload.readDoubleBE(1);
  const offset = payload.readDoubleBE(9);
  const enqueuedTimeMs = payload.readDoubleBE(17);
  if (kind === KIND_MARKER) {
    if (payload.length < 33) return undefined;
    const event = { sequenceNumber, offset, enqueuedTimeMs, partitionKey: undefined, raw: Buffer.alloc(0) };
    return { kind, event, lastOffset: payload.readDoubleBE(25) };
  }
  if (kind !== KIND_EVENT || payload.length < 27) return undefined;
  const keyLength = payload.readUInt16BE(25);
  const keyEnd = keyLength === NO_KEY ? 27 : 27 + keyLength;
  if (keyEnd > payload.length) return undefined;
  const partitionKey = keyLength === NO_KEY ? undefined : payload.toString('utf8', 27, keyEnd);
  const raw = payload.subarray(keyEnd);
  return { kind, event: { sequenceNumber, offset, enqueuedTimeMs, partitionKey, raw }, lastOffset: offset };
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename is then as durable as they make it.
  } finally {
    await handle.close();
  }
}

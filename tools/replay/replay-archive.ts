/**
 * `npm run replay` as a library (docs/adr/0013): reads the raw archive of a time range and re-sends each original
 * message, with its archived envelope, to the replay hub; or, as a dry run, counts what it would send.
 */
import type { EventData, EventHubProducerClient } from '@azure/event-hubs';
import type { ContainerClient } from '@azure/storage-blob';
import pLimit from 'p-limit';
import {
  replayEventBody,
  REPLAY_FORMAT,
  REPLAY_FORMAT_PROPERTY,
  type ReplayMessage,
} from '../../src/telemetry/replay-envelope.js';
import {
  compareGroupKeys,
  listArchiveGroups,
  readAhead,
  readGroupMessages,
  type ArchiveGroup,
  type ArchiveRange,
} from './archive-reader.js';
import {
  CheckpointWriter,
  newCheckpoint,
  readCheckpoint,
  type CheckpointScope,
  type CheckpointState,
} from './checkpoint.js';

export interface ReplayOptions extends ArchiveRange {
  container: ContainerClient;
  /** Where events go; not used by a dry run. */
  producer?: EventHubProducerClient;
  /** The hub's name, recorded in the checkpoint's scope. */
  hub: string;
  dryRun?: boolean;
  /** Resume from and record progress in this file. */
  checkpointFile?: string;
  /** Devices whose batches are in flight at once (default 32). */
  concurrency?: number;
  /** Messages gathered before they are sent (default 5,000): bounds memory. */
  roundSize?: number;
  /** Stops before the next batch (a kill, for tests); batches in flight still finish and are recorded. */
  signal?: AbortSignal;
  onProgress?: (progress: ReplayProgress) => void;
}

export interface ReplayProgress {
  messages: number;
  records: number;
  batches: number;
  bytesRead: number;
  /** Bytes of every blob of the range: bytesRead / totalBytes is the fraction done. */
  totalBytes: number;
  elapsedMs: number;
}

export interface ReplaySummary extends ReplayProgress {
  /** Prefixes listed (one per stream and hour of the range). */
  listedPrefixes: string[];
  blobs: number;
  /** Messages skipped because the checkpoint says they were sent. */
  skipped: number;
  /** Dry run: records per `stream yyyy/MM/dd/HH`. */
  counts: Map<string, number>;
}

/** One replay event: the message as JSON bytes, partition key = device id (set on the batch). */
export function replayEvent(m: ReplayMessage): EventData {
  return {
    body: replayEventBody(m),
    contentType: 'application/json',
    messageId: `${m.partitionId}:${m.sequenceNumber}`,
    properties: { [REPLAY_FORMAT_PROPERTY]: REPLAY_FORMAT, 'replay-device-id': m.deviceId },
  };
}

const scopeOf = (o: ReplayOptions): CheckpointScope => ({
  from: new Date(o.fromMs).toISOString(),
  to: new Date(o.toMs).toISOString(),
  streams: o.streams ? [...o.streams].sort() : null,
  devices: o.devices ? [...o.devices].sort() : null,
  hub: o.hub,
});

const emptyAcked = () => Object.create(null) as Record<string, number>;

/** Whether the checkpoint says this message of `group` was sent. */
function alreadySent(state: CheckpointState, group: ArchiveGroup, m: ReplayMessage): boolean {
  if (state.done !== null && compareGroupKeys(group.key, state.done) <= 0) return true;
  if (state.group !== group.key) return false;
  return m.sequenceNumber <= state.position || m.sequenceNumber <= (state.acked[m.deviceId] ?? -1);
}

/** Replays the range; resolves with what was read and sent. */
export async function replayArchive(options: ReplayOptions): Promise<ReplaySummary> {
  const started = Date.now();
  const listedPrefixes: string[] = [];
  const groups = await listArchiveGroups(options.container, options, listedPrefixes);
  const scope = scopeOf(options);
  const file = options.dryRun ? undefined : options.checkpointFile;
  const state = file ? readCheckpoint(file, scope) : newCheckpoint(scope);
  const writer = new CheckpointWriter(file);
  const summary: ReplaySummary = {
    messages: 0,
    records: 0,
    batches: 0,
    bytesRead: 0,
    totalBytes: groups.reduce((n, g) => n + g.blobs.reduce((m, b) => m + b.bytes, 0), 0),
    elapsedMs: 0,
    listedPrefixes,
    blobs: groups.reduce((n, g) => n + g.blobs.length, 0),
    skipped: 0,
    counts: new Map(),
  };
  const progress = () => {
    summary.elapsedMs = Date.now() - started;
    options.onProgress?.(summary);
  };
  const sender = options.dryRun ? undefined : new RoundSender(options, state, writer, summary, progress);
  const roundSize = options.roundSize ?? 5_000;
  const onBlob = (bytes: number) => void (summary.bytesRead += bytes);
  const todo = groups.filter((g) => state.done === null || compareGroupKeys(g.key, state.done) > 0);
  const read = (g: ArchiveGroup | undefined) =>
    g && readAhead(readGroupMessages(options.container, g, options, onBlob), roundSize);
  let next = read(todo[0]);
  for (const [i, group] of todo.entries()) {
    const current = next;
    next = read(todo[i + 1]); // the next group is read while this one is sent
    if (!current) break;
    let round: ReplayMessage[] = [];
    for await (const messages of current) {
      for (const m of messages) {
        if (alreadySent(state, group, m)) summary.skipped++;
        else if (!sender) count(summary, group, m);
        else round.push(m);
      }
      if (sender && round.length >= roundSize) {
        await sender.send(group, round);
        round = [];
      }
    }
    if (sender) {
      await sender.send(group, round);
      Object.assign(state, { done: group.key, group: null, position: -1, acked: emptyAcked() });
      await writer.save(state);
    }
    progress();
  }
  summary.elapsedMs = Date.now() - started;
  return summary;
}

function count(summary: ReplaySummary, group: ArchiveGroup, m: ReplayMessage): void {
  summary.messages++;
  for (const r of m.records) {
    summary.records++;
    const key = `${r.stream} ${group.hour}`;
    summary.counts.set(key, (summary.counts.get(key) ?? 0) + 1);
  }
}

/** Sends rounds of one group: per device in order, devices in parallel; records each acknowledged batch. */
class RoundSender {
  private readonly limit: ReturnType<typeof pLimit>;
  constructor(
    private readonly options: ReplayOptions,
    private readonly state: CheckpointState,
    private readonly writer: CheckpointWriter,
    private readonly summary: ReplaySummary,
    private readonly progress: () => void,
  ) {
    this.limit = pLimit(options.concurrency ?? 32);
  }

  async send(group: ArchiveGroup, round: readonly ReplayMessage[]): Promise<void> {
    if (round.length === 0) return;
    if (this.state.group !== group.key)
      Object.assign(this.state, { group: group.key, position: -1, acked: emptyAcked() });
    const byDevice = new Map<string, ReplayMessage[]>();
    for (const m of round) {
      const list = byDevice.get(m.deviceId);
      if (list) list.push(m);
      else byDevice.set(m.deviceId, [m]);
    }
    // Settled, not all: on an abort or a failure every batch in flight still finishes and is recorded first.
    const outcomes = await Promise.allSettled(
      [...byDevice].map(([id, list]) => this.limit(() => this.sendDevice(id, list))),
    );
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw failed.reason;
    this.state.position = round.reduce((n, m) => Math.max(n, m.sequenceNumber), this.state.position);
    this.state.acked = emptyAcked();
    await this.writer.save(this.state);
  }

  /** One device's messages in order, in as few batches as fit (createBatch sizes them for the hub). */
  private async sendDevice(deviceId: string, messages: readonly ReplayMessage[]): Promise<void> {
    const producer = this.options.producer;
    if (!producer) throw new Error('replay: no producer');
    let batch = await producer.createBatch({ partitionKey: deviceId });
    let inBatch: ReplayMessage[] = [];
    const flush = async () => {
      if (this.options.signal?.aborted) throw new Error('replay aborted');
      await producer.sendBatch(batch);
      const last = inBatch[inBatch.length - 1];
      if (last) this.state.acked[deviceId] = last.sequenceNumber;
      this.summary.batches++;
      this.summary.messages += inBatch.length;
      this.summary.records += inBatch.reduce((n, m) => n + m.records.length, 0);
      await this.writer.save(this.state);
      this.progress();
    };
    for (const m of messages) {
      const event = replayEvent(m);
      if (batch.tryAdd(event)) {
        inBatch.push(m);
        continue;
      }
      if (inBatch.length === 0)
        throw new Error(`replay: message ${m.partitionId}:${m.sequenceNumber} fits no batch`);
      await flush();
      batch = await producer.createBatch({ partitionKey: deviceId });
      inBatch = [];
      if (!batch.tryAdd(event))
        throw new Error(`replay: message ${m.partitionId}:${m.sequenceNumber} fits no batch`);
      inBatch.push(m);
    }
    if (inBatch.length > 0) await flush();
  }
}

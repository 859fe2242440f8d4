/**
 * An in-process Event Hub whose events survive a crash, for runs with a data folder: every published event is
 * appended to `{folder}/<hub>.jsonl` and the gateway answers 204 only once it is fsynced (one fsync serves all
 * events waiting at that moment); each consumer group's checkpoints go to the same file (without waiting). On
 * start the events some consumer group had not checkpointed are published again with their original sequence
 * numbers and enqueued times (at-least-once, as Event Hubs redelivers after the last checkpoint; each group resumes
 * after its own checkpoint), new events continue each partition's numbering where the previous run stopped (so a
 * batch never reuses an earlier run's sequence numbers: archive blob names and state's watermark depend on them),
 * and the file is rewritten with just those events, the checkpoints and each partition's next sequence number.
 */
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonLines, writeAtomically, writeAtomicallySync } from '../atomic-file.js';
import { LocalHub, PARTITIONS, type HubEvent } from './event-hubs.js';

/** File size after which the next write rewrites it with only the events not yet checkpointed everywhere. */
const COMPACT_AFTER_BYTES = 64 * 1024 * 1024;

interface Line {
  /** An event: partition, sequence number, body (base64), properties, system properties, enqueued time. */
  e?: {
    p: number;
    s: number;
    b: string;
    pr: Record<string, unknown>;
    sy: Record<string, unknown>;
    t?: string;
  };
  /** A partition's next sequence number (written by a rewrite, which may keep none of its events). */
  n?: { p: number; s: number };
  /** A checkpoint: consumer group, partition, last sequence number handled. */
  c?: { g: string; p: number; s: number };
  /** A consumer group that reads this hub. */
  g?: string;
}

/** A partition key for each partition, to publish a recovered event into the partition it was in. */
const keyOfPartition = Array.from({ length: PARTITIONS }, (_, p) => {
  for (let i = 0; ; i++) if (LocalHub.partitionOf(`p${i}`) === p) return `p${i}`;
});

interface Waiter {
  target: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class DurableLocalHub extends LocalHub {
  private readonly file: string;
  private readonly checkpoints = new Map<string, number[]>();
  private queue: string[] = [];
  private appended = 0;
  private written = 0;
  private bytes = 0;
  private waiters: Waiter[] = [];
  private writing: Promise<void> | undefined;
  private handle: FileHandle | undefined;
  private recovering = false;

  constructor(name: string, folder: string) {
    super(name);
    this.file = join(folder, `${encodeURIComponent(name)}.jsonl`);
  }

  /** Publishes again what the previous run acknowledged and not every consumer group handled; returns how many. */
  recover(): number {
    const events: NonNullable<Line['e']>[] = [];
    const next = Array.from({ length: PARTITIONS }, () => 1);
    const atLeast = (p: number, s: number) => {
      if (s > (next[p] ?? 1)) next[p] = s;
    };
    for (const line of readJsonLines<Line>(this.file)) {
      if (line.g !== undefined && !this.checkpoints.has(line.g)) this.checkpoints.set(line.g, zeros());
      if (line.c) {
        (this.checkpoints.get(line.c.g) ?? [])[line.c.p] = line.c.s;
        atLeast(line.c.p, line.c.s + 1);
      }
      if (line.n) atLeast(line.n.p, line.n.s);
      if (line.e) {
        events.push(line.e);
        atLeast(line.e.p, line.e.s + 1);
      }
    }
    const handled = this.handledEverywhere();
    const recovered = events.filter((e) => e.s > (handled[e.p] ?? 0));
    this.partitions.forEach((partition, p) => {
      partition.startAt(recovered.find((e) => e.p === p)?.s ?? next[p] ?? 1);
    });
    this.recovering = true;
    for (const e of recovered)
      this.publish(Buffer.from(e.b, 'base64'), keyOfPartition[e.p] ?? '', e.pr, e.sy, e.t);
    this.recovering = false;
    const text = this.compacted();
    writeAtomicallySync(this.file, text);
    this.bytes = text.length;
    return recovered.length;
  }

  override publish(
    body: unknown,
    partitionKey: string,
    properties: Record<string, unknown>,
    system: Record<string, unknown>,
    enqueuedTime?: string,
  ): void {
    super.publish(body, partitionKey, properties, system, enqueuedTime);
    if (this.recovering) return;
    const p = LocalHub.partitionOf(partitionKey);
    const event = this.partitions[p]?.last();
    if (event) this.append({ e: lineOf(event, p) });
  }

  override consume(
    consumerGroup: string,
    maxBatch: number,
    handle: (batch: HubEvent[], partitionId: string) => Promise<void>,
  ) {
    if (!this.checkpoints.has(consumerGroup)) {
      this.checkpoints.set(consumerGroup, zeros());
      this.append({ g: consumerGroup });
    }
    return super.consume(consumerGroup, maxBatch, async (batch, partitionId) => {
      await handle(batch, partitionId);
      const last = batch.at(-1)?.sequenceNumber ?? 0;
      const p = Number(partitionId);
      (this.checkpoints.get(consumerGroup) ?? [])[p] = last;
      this.append({ c: { g: consumerGroup, p, s: last } });
    });
  }

  /** A group resumes after its own checkpoint (an event it handled before a restart is not delivered again). */
  protected override startPosition(consumerGroup: string, partition: number): number {
    const checkpoint = this.checkpoints.get(consumerGroup)?.[partition] ?? 0;
    return Math.max(super.startPosition(consumerGroup, partition), checkpoint + 1);
  }

  /** Resolves once every event published so far is on disk (the gateway's 204 waits for it). */
  synced(): Promise<void> {
    if (this.written >= this.appended) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ target: this.appended, resolve, reject }));
  }

  /** Writes what is queued and closes the file. */
  async close(): Promise<void> {
    await this.synced().catch(() => undefined);
    await this.writing;
    await this.handle?.close();
    this.handle = undefined;
  }

  private append(line: Line): void {
    this.queue.push(`${JSON.stringify(line)}\n`);
    this.appended++;
    this.writing ??= this.drain().finally(() => (this.writing = undefined));
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const text = this.queue.join('');
      this.queue = [];
      const target = this.appended;
      try {
        if (this.bytes + text.length > COMPACT_AFTER_BYTES) {
          // The rewrite is taken from memory at once: it holds every event queued so far.
          await this.rewrite();
        } else {
          this.handle ??= await open(this.file, 'a');
          await this.handle.write(text);
          await this.handle.datasync();
          this.bytes += text.length;
        }
        this.written = target;
        this.release(target, (w) => {
          w.resolve();
        });
      } catch (error) {
        this.release(target, (w) => {
          w.reject(error);
        });
      }
    }
  }

  private release(target: number, how: (waiter: Waiter) => void): void {
    const now = this.waiters.filter((w) => w.target <= target);
    this.waiters = this.waiters.filter((w) => w.target > target);
    for (const w of now) how(w);
  }

  /** The file anew: the consumer groups, their checkpoints, and the events not yet handled by every group. */
  private async rewrite(): Promise<void> {
    const text = this.compacted();
    // Appends and rewrites take turns (drain): the append handle reopens on the next append.
    await this.handle?.close();
    this.handle = undefined;
    await writeAtomically(this.file, text);
    this.bytes = text.length;
  }

  private compacted(): string {
    const handled = this.handledEverywhere();
    const lines: Line[] = [];
    for (const [g, sequence] of this.checkpoints) {
      lines.push({ g });
      sequence.forEach((s, p) => lines.push({ c: { g, p, s } }));
    }
    this.partitions.forEach((partition, p) => {
      lines.push({ n: { p, s: partition.next } });
      for (const event of partition.kept())
        if (event.sequenceNumber > (handled[p] ?? 0)) lines.push({ e: lineOf(event, p) });
    });
    return lines.map((line) => `${JSON.stringify(line)}\n`).join('');
  }

  /** Per partition, the last sequence number every known consumer group has handled. */
  private handledEverywhere(): number[] {
    const groups = [...this.checkpoints.values()];
    return zeros().map((_, p) =>
      groups.length === 0 ? 0 : groups.reduce((low, g) => Math.min(low, g[p] ?? 0), Infinity),
    );
  }
}

const zeros = () => Array.from({ length: PARTITIONS }, () => 0);

function lineOf(event: HubEvent, p: number): NonNullable<Line['e']> {
  const system = Object.fromEntries(
    Object.entries(event.systemProperties).filter(([key]) => !key.startsWith('x-opt-')),
  );
  return {
    p,
    s: event.sequenceNumber,
    b: event.body.toString('base64'),
    pr: event.properties,
    sy: system,
    t: event.enqueuedTime,
  };
}

/** An in-process hub; with a folder, one whose acknowledged events survive a crash (recovered here). */
export function localHub(name: string, folder: string | undefined, log: (message: string) => void): LocalHub {
  if (folder === undefined) return new LocalHub(name);
  mkdirSync(folder, { recursive: true });
  const hub = new DurableLocalHub(name, folder);
  const recovered = hub.recover();
  if (recovered > 0)
    log(`event hubs: ${recovered} events of ${name} not yet handled by every consumer, delivered again`);
  return hub;
}

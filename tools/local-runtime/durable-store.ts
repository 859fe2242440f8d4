/**
 * The durable engine's persistence: where instances are kept between runs, and the saver that writes changed
 * instances in order (one instance's saves never overtake each other) until the shutdown's last save.
 */
import type { Instance, InstanceSnapshot } from './durable-history.js';
import type { TimerQueue } from './durable-timers.js';

/** Where instances are kept between runs (Azurite Tables in the embedded runtime). */
export interface InstanceStore {
  save(snapshot: InstanceSnapshot): Promise<void>;
  loadAll(): Promise<InstanceSnapshot[]>;
  delete(instanceId: string): Promise<void>;
}

/** A start whose instance could not be saved: nothing was started (the caller answers 503, not 202). */
export class InstanceNotSavedError extends Error {
  constructor(instanceId: string, cause: unknown) {
    super(`Instance '${instanceId}' could not be saved: ${String(cause)}`, { cause });
  }
}

/** The snapshot of an instance with its current execution's timers. */
export function snapshotOf(i: Instance, timers: TimerQueue): InstanceSnapshot {
  const { createdTime, lastUpdatedTime, running, episodes: _e, executions: _x, waiters: _w, ...kept } = i;
  return {
    ...kept,
    createdTime: createdTime.toISOString(),
    lastUpdatedTime: lastUpdatedTime.toISOString(),
    running: [...running.entries()],
    timers: timers.snapshotOf(i),
  };
}

/** Tracks changed ("dirty") instances and saves them to the store, in order, until closed. */
export class InstanceSaver {
  private readonly dirty = new Set<Instance>();
  private saveQueue: Promise<void> = Promise.resolve();
  private flushing: Promise<void> = Promise.resolve();
  /** Set by saveAll: the store is about to stop, nothing more is written to it. */
  private closed = false;

  constructor(
    private readonly store: InstanceStore | undefined,
    private readonly timers: TimerQueue,
    private readonly log: ((message: string) => void) | undefined,
  ) {}

  /** Whether a flush would write something. */
  get pending(): boolean {
    return this.store !== undefined && !this.closed && this.dirty.size > 0;
  }

  /** Marks the instance as changed since its last save. */
  changed(instance: Instance): void {
    this.dirty.add(instance);
  }

  /** Forgets an unsaved change (the instance is saved now, or gone). */
  forget(instance: Instance): void {
    this.dirty.delete(instance);
  }

  /** Saves one instance after every save already queued: saves of one instance reach the store in order. */
  saveNow(instance: Instance): Promise<void> {
    const store = this.store;
    if (!store) return Promise.resolve();
    // The snapshot is taken when its turn comes, so it is never older than one saved before it.
    const saved = this.saveQueue.then(() => store.save(snapshotOf(instance, this.timers)));
    this.saveQueue = saved.catch(() => undefined);
    return saved;
  }

  /** Deletes a purged instance from the store (logged, not awaited, when it fails). */
  delete(instanceId: string): void {
    void this.store?.delete(instanceId).catch((error: unknown) => {
      this.log?.(`durable store: purge of ${instanceId} failed: ${String(error)}`);
    });
  }

  /**
   * Saves what is not saved yet and waits for a save in progress; afterwards nothing more is saved (the last
   * step of a shutdown, before the storage goes away). Resolves with how many instances this call saved.
   */
  async saveAll(): Promise<number> {
    const count = this.dirty.size;
    await this.flush();
    this.closed = true;
    return count;
  }

  /** One flush at a time: a shutdown's saveAll waits for the pump's save in progress. */
  flush(): Promise<void> {
    const next = this.flushing.then(() => this.flushDirty());
    this.flushing = next;
    return next;
  }

  private async flushDirty(): Promise<void> {
    if (!this.store || this.closed || this.dirty.size === 0) return;
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const instance of batch) {
      try {
        await this.saveNow(instance);
      } catch (error) {
        // Saved again on its next change; retrying at once would spin while the store is down.
        this.log?.(`durable store: saving ${instance.instanceId} failed: ${String(error)}`);
      }
    }
  }
}

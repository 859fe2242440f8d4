/** The durable engine's timers: durable timers of orchestrations and the back-off timers of activity retries. */
import type { Instance, InstanceSnapshot, Retry } from './durable-history.js';

export interface PendingTimer {
  instance: Instance;
  generation: number;
  timerId: number;
  fireAt: Date;
  /** Index of the CreateTimer action (for cancellation); absent for retry back-off timers. */
  actionIndex?: number;
  retry?: Retry;
}

/** How long a retry waits before its attempt `retry.attempt + 1` (ms): the back-off, capped. */
export function retryDelay(retry: Retry): number {
  const { firstRetryIntervalInMilliseconds: first, backoffCoefficient = 1 } = retry.options;
  const cap = retry.options.maxRetryIntervalInMilliseconds ?? Number.MAX_SAFE_INTEGER;
  return Math.min(cap, first * backoffCoefficient ** (retry.attempt - 1));
}

/** The pending timers of every instance. */
export class TimerQueue {
  private timers: PendingTimer[] = [];

  add(timer: PendingTimer): void {
    this.timers.push(timer);
  }

  /** The timer due first, if any. */
  earliest(): PendingTimer | undefined {
    return this.timers.reduce<PendingTimer | undefined>(
      (earliest, t) => (earliest === undefined || t.fireAt < earliest.fireAt ? t : earliest),
      undefined,
    );
  }

  remove(timer: PendingTimer): void {
    this.timers = this.timers.filter((t) => t !== timer);
  }

  /** Drops every timer of the instance (it finished or continued as new). */
  dropAll(instance: Instance): void {
    this.timers = this.timers.filter((t) => t.instance !== instance);
  }

  /** Drops the instance's timers whose CreateTimer action was cancelled (e.g. it lost a Task.any race). */
  dropCancelled(instance: Instance, cancelled: (actionIndex: number) => boolean): void {
    this.timers = this.timers.filter(
      (t) => t.instance !== instance || t.actionIndex === undefined || !cancelled(t.actionIndex),
    );
  }

  /** The current execution's timers of the instance, as a snapshot keeps them. */
  snapshotOf(i: Instance): InstanceSnapshot['timers'] {
    return this.timers
      .filter((t) => t.instance === i && t.generation === i.generation)
      .map((t) => ({
        timerId: t.timerId,
        fireAt: t.fireAt.toISOString(),
        ...(t.actionIndex === undefined ? {} : { actionIndex: t.actionIndex }),
        ...(t.retry ? { retry: t.retry } : {}),
      }));
  }

  /** Sets a restored instance's timers again. */
  restore(instance: Instance, timers: InstanceSnapshot['timers']): void {
    for (const t of timers) {
      this.timers.push({
        instance,
        generation: instance.generation,
        timerId: t.timerId,
        fireAt: new Date(t.fireAt),
        ...(t.actionIndex === undefined ? {} : { actionIndex: t.actionIndex }),
        ...(t.retry ? { retry: t.retry } : {}),
      });
    }
  }
}

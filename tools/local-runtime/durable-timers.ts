/** The durable engine's timers: durable timers of orchestrations and the back-off timers of activity retries. */
import type { Instance, InstanceSnapshot, Retry } from './durable-history.js';

/**
 * Long timers (replay schema V3 and later), with the Azure Storage provider's defaults that the extension hands
 * to the orchestrator (`maximumShortTimerDuration`, `longRunningTimerIntervalDuration`): a timer due more than 6
 * days ahead is a chain of timers, each at most 3 days long, the last one ending at the requested time.
 */
export const MAXIMUM_SHORT_TIMER_MS = 6 * 24 * 3600_000;
export const LONG_RUNNING_TIMER_INTERVAL_MS = 3 * 24 * 3600_000;
/** The same durations as the extension writes them into the orchestration trigger (.NET TimeSpan). */
export const MAXIMUM_SHORT_TIMER_DURATION = '6.00:00:00';
export const LONG_RUNNING_TIMER_INTERVAL_DURATION = '3.00:00:00';

/**
 * When the next timer of a wait until `finalFireAt`, started at `now`, fires: `finalFireAt` itself, or (long
 * timers) `now` plus the interval, as durable-js' LongTimerTask and the extension's CreateTimer loop compute it.
 */
export function nextTimerSegment(now: Date, finalFireAt: Date, longTimers: boolean): Date {
  if (!longTimers || finalFireAt.getTime() - now.getTime() <= MAXIMUM_SHORT_TIMER_MS) return finalFireAt;
  return new Date(now.getTime() + LONG_RUNNING_TIMER_INTERVAL_MS);
}

export interface PendingTimer {
  instance: Instance;
  generation: number;
  timerId: number;
  fireAt: Date;
  /** Index of the CreateTimer action (for cancellation); absent for retry back-off timers. */
  actionIndex?: number;
  retry?: Retry;
  /** A segment of a long timer: the time the orchestrator asked for (a next segment follows until then). */
  finalFireAt?: Date;
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
        ...(t.finalFireAt ? { finalFireAt: t.finalFireAt.toISOString() } : {}),
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
        ...(t.finalFireAt ? { finalFireAt: new Date(t.finalFireAt) } : {}),
      });
    }
  }
}

/**
 * Throttling never fails a device (issue 12, item 5): an activity that meets a throttled or briefly unavailable
 * service answers "throttled" instead of failing, and the orchestrator waits on a durable timer (the service's
 * Retry-After when it gave one, otherwise 10 s doubling, each wait between 1 s and 5 min, at most 20 waits) and
 * calls it again. Other domain errors are verdicts (a stale catalog entry, an invalid template, a device that
 * is gone): the activity answers "refused" and the orchestrator fails at once, without pointless retries.
 * Anything else (an unexpected error) is left to the activity's retry policy.
 */
import type { OrchestrationContext, RetryOptions, Task } from 'durable-functions';
import { DomainError, ServiceUnavailableError } from '../shared/errors.js';

/** What a patient activity answers: its value, a throttling (wait and call again), or a final refusal. */
export type PatientReply<T> =
  | { kind: 'done'; value: T }
  | { kind: 'throttled'; retryAfterMs?: number }
  | { kind: 'refused'; reason: string };

/** Waits a throttled activity may cost before the workflow gives up on it. */
export const MAX_THROTTLE_WAITS = 20;

/** The wait before call number `wait + 1`, ms: Retry-After when given, else 10 s doubling; 1 s to 5 min. */
export const throttleDelayMs = (wait: number, retryAfterMs?: number): number =>
  Math.min(300_000, Math.max(1000, retryAfterMs ?? 10_000 * 2 ** (wait - 1)));

/** The throttled answer for a ThrottledError / ServiceUnavailableError, with its Retry-After in ms. */
export const throttledReply = (
  error: ServiceUnavailableError,
): { kind: 'throttled'; retryAfterMs?: number } => ({
  kind: 'throttled',
  ...(error.retryAfterSeconds !== undefined ? { retryAfterMs: error.retryAfterSeconds * 1000 } : {}),
});

/** Wraps an activity handler so that throttling and final refusals become replies (see the module comment). */
export function patient<I, O>(handler: (input: I) => Promise<O>): (input: I) => Promise<PatientReply<O>> {
  return async (input) => {
    try {
      return { kind: 'done', value: await handler(input) };
    } catch (error) {
      // Throttling, outages and ETag races that outlasted their retries (ConcurrentUpdateError) are worth a wait;
      // every other domain error is the service's verdict.
      if (error instanceof ServiceUnavailableError) return throttledReply(error);
      if (error instanceof DomainError) return { kind: 'refused', reason: error.message };
      throw error;
    }
  };
}

/** Thrown in the orchestrator when the cancel event arrived: the workflow compensates and ends cancelled. */
export class WorkflowCancelledError extends Error {
  constructor() {
    super('cancelled by request');
    this.name = 'WorkflowCancelledError';
  }
}

/**
 * A workflow's cancel event, watched from its first step on. The runtime only notices an external event once
 * its task has been yielded, so the first step is awaited together with it; from then on `requested` tells
 * whether the cancel has arrived, while the step itself always runs to its end (its effect is then known).
 */
export class CancelWatch {
  private watched = false;
  constructor(
    private readonly context: OrchestrationContext,
    readonly event: Task,
  ) {}

  /** Whether the cancel has arrived (a method, not a getter: it changes between two yields). */
  requested(): boolean {
    return this.event.isCompleted;
  }

  /** Waits for `step` (its result or its error), watching the cancel event meanwhile. */
  *await(step: Task): Generator<Task, unknown, unknown> {
    if (!this.watched && !this.event.isCompleted) {
      this.watched = true;
      yield this.context.df.Task.any([step, this.event]);
    }
    return yield step;
  }
}

export interface PatientCallOptions {
  /** The workflow's cancel event: watched while the activity runs, and it ends a throttle wait early. */
  cancel?: CancelWatch;
  /** Told about each wait (for the custom status). */
  onWait?: (wait: number, delayMs: number) => void;
}

/**
 * Calls a `patient` activity from an orchestrator: waits on a durable timer while it answers throttled, throws
 * its refusal as an Error (no retry), and returns its value. Deterministic: time from `currentUtcDateTime`.
 */
export function* callPatiently(
  context: OrchestrationContext,
  activity: string,
  retry: RetryOptions,
  input: unknown,
  options: PatientCallOptions = {},
): Generator<Task, unknown, unknown> {
  for (let wait = 1; ; wait++) {
    const task = context.df.callActivityWithRetry(activity, retry, input);
    const reply = (options.cancel ? yield* options.cancel.await(task) : yield task) as PatientReply<unknown>;
    if (reply.kind === 'done') return reply.value;
    if (reply.kind === 'refused') throw new Error(reply.reason);
    if (wait > MAX_THROTTLE_WAITS) throw new Error(`still throttled after ${MAX_THROTTLE_WAITS} waits`);
    const delay = throttleDelayMs(wait, reply.retryAfterMs);
    options.onWait?.(wait, delay);
    const timer = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + delay));
    if (!options.cancel) {
      yield timer;
      continue;
    }
    if (options.cancel.requested()) throw new WorkflowCancelledError();
    const winner = (yield context.df.Task.any([timer, options.cancel.event])) as Task;
    if (winner === options.cancel.event) {
      timer.cancel();
      throw new WorkflowCancelledError();
    }
  }
}

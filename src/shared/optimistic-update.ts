import pRetry from 'p-retry';
import { ConcurrentUpdateError, PreconditionFailedError } from './errors.js';

/** Attempts of one optimistic update when Concurrency__MaxAttempts is not set. */
export const DEFAULT_MAX_ATTEMPTS = 10;

/**
 * The wait before attempt n + 1, ms: `minTimeout · factor^(n-1)`, times a random factor in [1, 2) (p-retry's
 * `randomize`, so writers that lost together do not collide again in step), at most `maxTimeout`.
 */
export const BACKOFF = { minTimeout: 10, factor: 2, maxTimeout: 1000, randomize: true } as const;

let maxAttemptsSetting = DEFAULT_MAX_ATTEMPTS;

/** Races that already outlasted their own update's attempts: an enclosing update does not retry them again. */
const exhausted = new WeakSet<ConcurrentUpdateError>();

/** Sets the process-wide attempt limit of every optimistic update (Concurrency__MaxAttempts), once at start-up. */
export function setMaxAttempts(attempts: number): void {
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError('maxAttempts must be an integer ≥ 1');
  maxAttemptsSetting = attempts;
}

export interface OptimisticOptions {
  /** Attempts in all, the first included; the process-wide setting when absent. */
  maxAttempts?: number;
  /** Ends the retries (and the wait between them) with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * The one optimistic-concurrency loop: runs `attempt` (read afresh → change → write conditionally on the ETag it
 * read) until it does not lose a race. `attempt` throws ConcurrentUpdateError when its conditional write finds
 * the entity changed; that alone is retried, after a jittered exponential backoff (BACKOFF), at most
 * `maxAttempts` attempts in all. Any other error ends it at once, and so does the final ConcurrentUpdateError of
 * an update nested in `attempt` (retries never multiply). When every attempt lost: ConcurrentUpdateError saying
 * that `what` kept changing (HTTP 503 with Retry-After).
 */
export async function optimisticUpdate<T>(
  what: string,
  attempt: (attemptNumber: number) => Promise<T>,
  options: OptimisticOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? maxAttemptsSetting;
  try {
    return await pRetry(attempt, {
      ...BACKOFF,
      retries: maxAttempts - 1,
      shouldRetry: ({ error }) => error instanceof ConcurrentUpdateError && !exhausted.has(error),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (!(error instanceof ConcurrentUpdateError) || exhausted.has(error)) throw error;
    const final = new ConcurrentUpdateError(
      `${what} kept changing under concurrent updates (${maxAttempts} attempts); retry.`,
    );
    exhausted.add(final);
    throw final;
  }
}

/**
 * For a write guarded by the ETag the client sent (`If-Match`): a lost race means the client's ETag is stale,
 * which is the client's 412 (PreconditionFailedError), not a race of ours to retry. Without `ifMatch`, or for any
 * other error, `error` unchanged.
 */
export function clientPrecondition(error: unknown, ifMatch: string | undefined, what: string): unknown {
  return ifMatch !== undefined && error instanceof ConcurrentUpdateError
    ? new PreconditionFailedError(`${what} was changed since ETag ${ifMatch}.`)
    : error;
}

/**
 * A function's retry policy as the Functions host applies it to a failed Event Hub batch: the function's own
 * `retry` (the v4 library's `retryOptions`: durations as `{ seconds }`), else host.json's `retry` (durations as
 * TimeSpan text, `hh:mm:ss`), else no retry. Delays follow the WebJobs SDK: `FixedDelayRetryAttribute` waits
 * `delayInterval` each time; `ExponentialBackoffRetryAttribute` uses `RandomizedExponentialBackoffStrategy`:
 * `minimumInterval` first, then `minimumInterval + r × 2^(n-1) × minimumInterval` with r drawn in [0.8, 1.2),
 * and `maximumInterval` from the first value that reaches it on.
 */

/** A duration as the library sends it (`{ seconds }`), or as host.json writes it (`00:00:02`). */
export type RetryDuration = { seconds?: number; nanos?: number } | string;

/** A retry policy as registered (RpcRetryOptions) or written in host.json. */
export interface RetryOptions {
  strategy?: string;
  /** The library sets both `strategy` and `retryStrategy`. */
  retryStrategy?: string;
  /** Retries after the first attempt; -1 retries until the batch succeeds (or the runtime stops). */
  maxRetryCount?: number;
  delayInterval?: RetryDuration;
  minimumInterval?: RetryDuration;
  maximumInterval?: RetryDuration;
}

/** WebJobs SDK RandomizedExponentialBackoffStrategy.RandomizationFactor. */
const RANDOMIZATION = 0.2;

/**
 * Milliseconds of a duration. TimeSpan text in the forms .NET's TimeSpan.Parse reads: `d` (days), `hh:mm`,
 * `hh:mm:ss`, `d.hh:mm:ss`, each with optional fractions of a second.
 */
export function durationMs(value: RetryDuration | undefined): number {
  if (value === undefined) return 0;
  if (typeof value !== 'string') return (value.seconds ?? 0) * 1000 + (value.nanos ?? 0) / 1e6;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 86_400_000;
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d+)?))?$/.exec(text);
  if (!match) throw new Error(`retry interval '${value}' is not a TimeSpan (hh:mm:ss)`);
  const [, days = '0', hours = '0', minutes = '0', seconds = '0'] = match;
  return (((Number(days) * 24 + Number(hours)) * 60 + Number(minutes)) * 60 + Number(seconds)) * 1000;
}

/** Why the host would refuse this policy at indexing (WebJobs retry attributes), or undefined. */
export function retryProblem(options: RetryOptions): string | undefined {
  const strategy = options.strategy ?? options.retryStrategy;
  const count = options.maxRetryCount;
  if (count === undefined || !Number.isInteger(count) || count < -1)
    return "'maxRetryCount' must be an integer greater than or equal to -1";
  try {
    if (strategy === 'fixedDelay') {
      if (options.delayInterval === undefined) return "fixedDelay needs a 'delayInterval'";
      durationMs(options.delayInterval);
      return undefined;
    }
    if (strategy === 'exponentialBackoff') {
      if (options.minimumInterval === undefined || options.maximumInterval === undefined)
        return "exponentialBackoff needs 'minimumInterval' and 'maximumInterval'";
      if (durationMs(options.minimumInterval) > durationMs(options.maximumInterval))
        return "'maximumInterval' must be greater than or equal to the 'minimumInterval'";
      return undefined;
    }
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return `unknown retry strategy '${String(strategy)}' (fixedDelay or exponentialBackoff)`;
}

/**
 * Checks every function's retry policy (its own, else host.json's) before anything starts, as the host's
 * indexing does; throws one error naming every function whose policy the host would refuse.
 */
export function assertRetryPolicies(
  registrations: readonly { metadata: { name: string; retryOptions?: RetryOptions } }[],
  hostRetry: RetryOptions | undefined,
): void {
  const problems = registrations.flatMap(({ metadata }) => {
    const policy = metadata.retryOptions ?? hostRetry;
    const problem = policy && retryProblem(policy);
    return problem ? [`The '${metadata.name}' function is in error: retry policy: ${problem}.`] : [];
  });
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

/** One batch's retries: how many, and the delay before each (call once per retry, in order). */
export interface RetrySchedule {
  /** Retries after the first attempt (Infinity for -1). */
  maxRetries: number;
  nextDelayMs(): number;
}

/** The delays of one failing batch under `options` (none: no retry); `random` in [0, 1) as Math.random. */
export function retrySchedule(
  options: RetryOptions | undefined,
  random: () => number = Math.random,
): RetrySchedule {
  const count = options?.maxRetryCount ?? 0;
  const maxRetries = count === -1 ? Infinity : Math.max(0, count);
  const strategy = options?.strategy ?? options?.retryStrategy;
  if (strategy === 'fixedDelay') {
    const delay = durationMs(options?.delayInterval);
    return { maxRetries, nextDelayMs: () => delay };
  }
  const min = durationMs(options?.minimumInterval);
  const max = durationMs(options?.maximumInterval);
  let current = 0;
  let exponent = 0;
  return {
    maxRetries,
    nextDelayMs: () => {
      if (current === max) return current; // at the cap (or a zero cap): stays there
      const factor = 1 - RANDOMIZATION + random() * 2 * RANDOMIZATION;
      const backoff = exponent === 0 ? min : min + factor * 2 ** (exponent - 1) * min;
      if (backoff < max) {
        current = Math.round(backoff);
        exponent++;
      } else current = max;
      return current;
    },
  };
}

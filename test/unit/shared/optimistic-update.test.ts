import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ConcurrentUpdateError,
  PreconditionFailedError,
  ThrottledError,
} from '../../../src/shared/errors.js';
import {
  BACKOFF,
  DEFAULT_MAX_ATTEMPTS,
  clientPrecondition,
  optimisticUpdate,
  setMaxAttempts,
} from '../../../src/shared/optimistic-update.js';

const lost = () => new ConcurrentUpdateError('changed');

/** An attempt that loses `races` times, then answers 'done'; counts its calls. */
function racing(races: number) {
  const calls: number[] = [];
  const attempt = (n: number) => {
    calls.push(n);
    return calls.length <= races ? Promise.reject(lost()) : Promise.resolve('done');
  };
  return { calls, attempt };
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  setMaxAttempts(DEFAULT_MAX_ATTEMPTS);
});

describe('optimisticUpdate', () => {
  it('re-runs an attempt that lost a race, numbering the attempts, and answers its value', async () => {
    const { calls, attempt } = racing(2);
    expect(await optimisticUpdate('Device d1', attempt, { maxAttempts: 5 })).toBe('done');
    expect(calls).toEqual([1, 2, 3]);
  });

  it('stops after maxAttempts attempts in all, with ConcurrentUpdateError naming what kept changing', async () => {
    const { calls, attempt } = racing(Number.POSITIVE_INFINITY);
    const error = await optimisticUpdate('Device d1', attempt, { maxAttempts: 4 }).catch((e: unknown) => e);
    expect(calls).toHaveLength(4);
    expect(error).toBeInstanceOf(ConcurrentUpdateError);
    expect((error as ConcurrentUpdateError).message).toMatch(/^Device d1 kept changing .*4 attempts/);
    expect((error as ConcurrentUpdateError).retryAfterSeconds).toBe(1);
  });

  it('uses the process-wide limit (Concurrency__MaxAttempts) when none is given, 10 by default', async () => {
    expect(DEFAULT_MAX_ATTEMPTS).toBe(10);
    setMaxAttempts(2);
    const { calls, attempt } = racing(Number.POSITIVE_INFINITY);
    await expect(optimisticUpdate('x', attempt)).rejects.toBeInstanceOf(ConcurrentUpdateError);
    expect(calls).toHaveLength(2);
    expect(() => {
      setMaxAttempts(0);
    }).toThrow(RangeError);
  });

  it.each([
    ['a throttled store', new ThrottledError('slow down', 3)],
    ["the client's stale If-Match", new PreconditionFailedError('stale')],
    ['a bug', new TypeError('boom')],
  ])('does not retry any other error (%s): it ends at once with that very error', async (_, thrown) => {
    const attempt = vi.fn(() => Promise.reject(thrown));
    await expect(optimisticUpdate('x', attempt, { maxAttempts: 5 })).rejects.toBe(thrown);
    expect(attempt).toHaveBeenCalledTimes(1);
  });

  it('does not retry a nested update that already gave up: retries never multiply', async () => {
    const inner = racing(Number.POSITIVE_INFINITY);
    let outer = 0;
    const error = await optimisticUpdate(
      'outer',
      () => {
        outer++;
        return optimisticUpdate('inner', inner.attempt, { maxAttempts: 3 });
      },
      { maxAttempts: 5 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConcurrentUpdateError);
    expect((error as Error).message).toMatch(/^inner kept changing/);
    expect(outer).toBe(1);
    expect(inner.calls).toHaveLength(3);
  });

  it('ends with the signal’s reason once it aborts, without another attempt', async () => {
    const controller = new AbortController();
    const reason = new Error('deadline');
    let calls = 0;
    const attempt = () => {
      calls++;
      controller.abort(reason);
      return Promise.reject(lost());
    };
    await expect(optimisticUpdate('x', attempt, { maxAttempts: 5, signal: controller.signal })).rejects.toBe(
      reason,
    );
    expect(calls).toBe(1);
  });

  it.each([
    ['lowest', 0],
    ['highest', 0.999_999],
  ])('waits a jittered, bounded, growing backoff between attempts (%s jitter)', async (_, random) => {
    vi.useFakeTimers();
    vi.spyOn(Math, 'random').mockReturnValue(random);
    const timers = vi.spyOn(globalThis, 'setTimeout');
    const { attempt } = racing(Number.POSITIVE_INFINITY);
    const outcome = optimisticUpdate('x', attempt, { maxAttempts: 10 }).catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    expect(await outcome).toBeInstanceOf(ConcurrentUpdateError);
    const waits = timers.mock.calls.map((call) => call[1] ?? 0);
    expect(waits).toHaveLength(9); // between 10 attempts
    waits.forEach((ms, i) => {
      const base = BACKOFF.minTimeout * BACKOFF.factor ** i;
      // p-retry's jitter multiplies by [1, 2); every wait is capped.
      expect(ms).toBeGreaterThanOrEqual(Math.min(base, BACKOFF.maxTimeout));
      expect(ms).toBeLessThanOrEqual(Math.min(2 * base, BACKOFF.maxTimeout));
    });
    if (random > 0) expect(waits[0]).toBeGreaterThan(BACKOFF.minTimeout); // the jitter is applied
  });
});

describe('clientPrecondition', () => {
  it("makes a lost race on the client's own If-Match a 412, and leaves everything else alone", () => {
    const mapped = clientPrecondition(lost(), '"etag-1"', "Device 'd1'");
    expect(mapped).toBeInstanceOf(PreconditionFailedError);
    expect((mapped as Error).message).toBe(`Device 'd1' was changed since ETag "etag-1".`);
    const race = lost();
    expect(clientPrecondition(race, undefined, 'x')).toBe(race);
    const throttled = new ThrottledError('slow');
    expect(clientPrecondition(throttled, '"e"', 'x')).toBe(throttled);
  });
});

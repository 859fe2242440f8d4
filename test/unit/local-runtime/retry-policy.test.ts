/**
 * Retry policies as the Functions host reads them: TimeSpan text in the forms .NET parses, and the policies the
 * host refuses at indexing (ExponentialBackoffRetryAttribute / FixedDelayRetryAttribute), refused at start here
 * too instead of retrying with a zero delay for ever.
 */
import { describe, expect, it } from 'vitest';
import { assertRetryPolicies, durationMs } from '../../../tools/local-runtime/retry-policy.js';

const registration = (name: string, retryOptions?: Record<string, unknown>) => ({
  metadata: { name, ...(retryOptions ? { retryOptions } : {}) },
});

describe('retry policies as the host reads them', () => {
  it('reads TimeSpan text as .NET does: d, hh:mm, hh:mm:ss, d.hh:mm:ss and fractions', () => {
    expect(durationMs('1')).toBe(86_400_000);
    expect(durationMs('00:05')).toBe(300_000);
    expect(durationMs('00:00:02')).toBe(2000);
    expect(durationMs('1.02:00:00')).toBe(93_600_000);
    expect(durationMs('00:00:00.5')).toBe(500);
    expect(() => durationMs('five seconds')).toThrow(/TimeSpan/);
  });

  it('refuses at start the policies the host refuses, naming the function', () => {
    const bad = [
      registration('minAboveMax', {
        strategy: 'exponentialBackoff',
        maxRetryCount: 3,
        minimumInterval: { seconds: 10 },
        maximumInterval: { seconds: 1 },
      }),
      registration('noMaximum', {
        strategy: 'exponentialBackoff',
        maxRetryCount: -1,
        minimumInterval: { seconds: 1 },
      }),
      registration('belowMinusOne', {
        strategy: 'fixedDelay',
        maxRetryCount: -2,
        delayInterval: { seconds: 1 },
      }),
      registration('noDelay', { strategy: 'fixedDelay', maxRetryCount: 2 }),
      registration('unknown', { strategy: 'linear', maxRetryCount: 2 }),
    ];
    let message = '';
    try {
      assertRetryPolicies(bad, undefined);
    } catch (error) {
      message = String(error);
    }
    for (const name of ['minAboveMax', 'noMaximum', 'belowMinusOne', 'noDelay', 'unknown'])
      expect(message).toContain(`The '${name}' function is in error`);
  });

  it('accepts valid policies, no policy, and checks host.json retry for functions without their own', () => {
    const good = [
      registration('none'),
      registration('fixed', { strategy: 'fixedDelay', maxRetryCount: 3, delayInterval: { seconds: 2 } }),
      registration('backoff', {
        strategy: 'exponentialBackoff',
        maxRetryCount: -1,
        minimumInterval: { seconds: 2 },
        maximumInterval: { seconds: 60 },
      }),
    ];
    expect(() => {
      assertRetryPolicies(good, undefined);
    }).not.toThrow();
    expect(() => {
      assertRetryPolicies(good, {
        strategy: 'exponentialBackoff',
        maxRetryCount: 2,
        minimumInterval: '00:01:00',
        maximumInterval: '00:00:01',
      });
    }).toThrow(/'none' function is in error/);
  });
});

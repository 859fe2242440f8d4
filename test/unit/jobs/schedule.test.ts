import { describe, expect, it } from 'vitest';
import { nextRun, parseRepeat } from '../../../src/jobs/schedule.js';

describe('job repeat rules', () => {
  it.each([
    ['PT15M', 15 * 60_000],
    ['PT1H30M', 90 * 60_000],
    ['P1D', 86_400_000],
    ['P1DT12H', 1.5 * 86_400_000],
    ['PT45S', 45_000],
  ])('reads the ISO 8601 duration %s', (text, ms) => {
    expect(parseRepeat(text)).toEqual({ kind: 'interval', milliseconds: ms });
  });

  it.each(['P', 'PT', 'P1Y', '15m', 'every hour', '* * * *', '61 * * * *'])('refuses %j', (text) => {
    expect(parseRepeat(text)).toBeUndefined();
  });

  it('computes the next cron occurrence in UTC strictly after the given time', () => {
    const repeat = parseRepeat('0 3 * * *');
    expect(repeat).toEqual({ kind: 'cron', expression: '0 3 * * *' });
    if (!repeat) return;
    expect(nextRun(repeat, new Date('2026-11-23T02:59:59Z')).toISOString()).toBe('2026-11-23T03:00:00.000Z');
    expect(nextRun(repeat, new Date('2026-11-23T03:00:00Z')).toISOString()).toBe('2026-11-24T03:00:00.000Z');
  });

  it('adds an interval to the given time', () => {
    const repeat = parseRepeat('PT30M');
    if (!repeat) throw new Error('unparsed');
    expect(nextRun(repeat, new Date('2026-11-23T10:00:00Z')).toISOString()).toBe('2026-11-23T10:30:00.000Z');
  });
});

import { CronExpressionParser } from 'cron-parser';

/** A repeat rule: an ISO 8601 duration (`PT15M`, `P1D`) or a 5-field cron expression in UTC (`0 3 * * *`). */
export type Repeat = { kind: 'interval'; milliseconds: number } | { kind: 'cron'; expression: string };

/** Shortest repeat accepted: IoT Hub jobs take minutes, and S1 runs one at a time. */
export const MIN_REPEAT_MS = 60_000;

const DURATION = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

/** Parses a repeat rule; undefined when it is neither a duration nor a cron expression. */
export function parseRepeat(text: string): Repeat | undefined {
  const duration = DURATION.exec(text);
  if (duration && text !== 'P' && !text.endsWith('T')) {
    const [, d = '0', h = '0', m = '0', s = '0'] = duration;
    return {
      kind: 'interval',
      milliseconds: ((Number(d) * 24 + Number(h)) * 60 * 60 + Number(m) * 60 + Number(s)) * 1000,
    };
  }
  if (text.trim().split(/\s+/).length !== 5) return undefined;
  try {
    CronExpressionParser.parse(text, { tz: 'UTC' });
    return { kind: 'cron', expression: text };
  } catch {
    return undefined;
  }
}

/**
 * The next run strictly after `after` (pure: orchestrators call it with `currentUtcDateTime`). Intervals count
 * from `anchor` (the first scheduled start), so runs do not drift later by their own duration.
 */
export function nextRun(repeat: Repeat, after: Date, anchor: Date = after): Date {
  if (repeat.kind === 'interval') {
    const elapsed = after.getTime() - anchor.getTime();
    const periods = elapsed < 0 ? 0 : Math.floor(elapsed / repeat.milliseconds) + 1;
    return new Date(anchor.getTime() + periods * repeat.milliseconds);
  }
  return CronExpressionParser.parse(repeat.expression, { currentDate: after, tz: 'UTC' }).next().toDate();
}

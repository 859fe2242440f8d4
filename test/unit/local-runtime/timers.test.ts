import { describe, expect, it } from 'vitest';
import { startTimers, type TimerRegistration } from '../../../tools/local-runtime/timers.js';

const timer = (
  name: string,
  schedule: string,
  callback: TimerRegistration['callback'],
): TimerRegistration => ({
  metadata: { name, bindings: { timer: { type: 'timerTrigger', direction: 'in', schedule } } },
  callback,
});

describe('timer triggers of the embedded runtime', () => {
  it('runs a timer function on its NCRONTAB schedule (settings resolved), one run at a time, until stopped', async () => {
    const calls: { timer: unknown; functionName: string }[] = [];
    let active = 0;
    let overlapped = false;
    let reached: () => void = () => undefined;
    const twice = new Promise<void>((resolve) => (reached = resolve));
    const timers = startTimers(
      [
        timer('everySecond', '%Schedule%', async (t, context) => {
          overlapped ||= active > 0;
          active++;
          calls.push({ timer: t, functionName: (context as { functionName: string }).functionName });
          if (calls.length === 2) reached();
          await new Promise((resolve) => setTimeout(resolve, 50));
          active--;
        }),
        {
          metadata: { name: 'notATimer', bindings: { req: { type: 'httpTrigger', direction: 'in' } } },
          callback: () => Promise.resolve(),
        },
      ],
      { settings: { Schedule: '* * * * * *' }, log: () => undefined },
    );
    expect(timers.count).toBe(1);
    await twice;
    await timers.stop();
    const after = calls.length;
    expect(overlapped).toBe(false);
    expect(calls[0]).toMatchObject({
      functionName: 'everySecond',
      timer: { isPastDue: false, scheduleStatus: { next: expect.any(String) as unknown } },
    });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(calls.length).toBe(after); // stopped: no more runs
  });

  it('keeps running after an invocation fails, and logs the failure', async () => {
    const logs: string[] = [];
    let runs = 0;
    let reached: () => void = () => undefined;
    const second = new Promise<void>((resolve) => (reached = resolve));
    const timers = startTimers(
      [
        timer('flaky', '* * * * * *', () => {
          runs++;
          if (runs === 2) reached();
          return Promise.reject(new Error('boom'));
        }),
      ],
      { settings: {}, log: (m) => logs.push(m) },
    );
    await second;
    await timers.stop();
    expect(logs).toContain('[flaky] failed: boom');
  });
});

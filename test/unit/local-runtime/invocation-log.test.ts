import { describe, expect, it } from 'vitest';
import {
  InvocationTracker,
  levelOfHost,
  makeLogger,
  parseLogLevel,
  type LogLevel,
} from '../../../tools/local-runtime/invocation-log.js';

const collect = () => {
  const lines: { line: string; level: LogLevel }[] = [];
  return { lines, log: (line: string, level: LogLevel = 'info') => lines.push({ line, level }) };
};

describe('log levels', () => {
  it('parses --log-level / LOG_LEVEL (default info), with the Functions host’s names as aliases', () => {
    expect(parseLogLevel(undefined)).toBe('info');
    expect(parseLogLevel('DEBUG')).toBe('debug');
    expect(parseLogLevel('information')).toBe('info');
    expect(parseLogLevel('warning')).toBe('warn');
    expect(parseLogLevel('trace')).toBe('debug');
    expect(() => parseLogLevel('verbose')).toThrow(/one of error, warn, info, debug/);
  });

  it('maps context.log / debug / warn / error levels', () => {
    expect(['information', 'debug', 'trace', 'warning', 'error', 'critical'].map(levelOfHost)).toEqual([
      'info',
      'debug',
      'debug',
      'warn',
      'error',
      'error',
    ]);
  });

  it('prints a line only at or above the threshold', () => {
    const printed: string[] = [];
    const log = makeLogger('info', (line) => printed.push(line));
    log('d', 'debug');
    log('i');
    log('w', 'warn');
    expect(printed).toEqual(['i', 'w']);
    const debug: string[] = [];
    makeLogger('debug', (line) => debug.push(line))('d', 'debug');
    expect(debug).toEqual(['d']);
  });
});

describe('InvocationTracker', () => {
  it('logs Executing at debug and Executed (Succeeded, Duration) at info for an HTTP invocation', async () => {
    const { lines, log } = collect();
    const wrapped = new InvocationTracker().wrap('getHealth', 'http', log, (x: number) =>
      Promise.resolve(x + 1),
    );
    expect(await wrapped(1)).toBe(2);
    expect(lines[0]).toEqual({
      line: expect.stringMatching(/^Executing 'Functions\.getHealth' \(Reason=/) as unknown,
      level: 'debug',
    });
    expect(lines[1]).toEqual({
      line: expect.stringMatching(
        /^Executed 'Functions\.getHealth' \(Succeeded, Id=[\w-]+, Duration=\d+ms\)$/,
      ) as unknown,
      level: 'info',
    });
  });

  it('logs a successful Event Hub batch at debug, a failed one at info with the error, and rethrows', async () => {
    const { lines, log } = collect();
    const tracker = new InvocationTracker();
    await tracker.wrap('ingestTelemetry', 'eventHub', log, () => Promise.resolve())();
    const failing = tracker.wrap('ingestTelemetry', 'eventHub', log, () => Promise.reject(new Error('boom')));
    await expect(failing()).rejects.toThrow('boom');
    const executed = lines.filter((l) => l.line.startsWith('Executed'));
    expect(executed.map((l) => l.level)).toEqual(['debug', 'info']);
    expect(executed[1]?.line).toMatch(/\(Failed, Id=[\w-]+, Duration=\d+ms\): Error: boom$/);
  });

  it('counts running invocations and resolves idle() when the last one ends', async () => {
    const tracker = new InvocationTracker();
    let release: () => void = () => undefined;
    const run = tracker.wrap(
      'slow',
      'timer',
      () => undefined,
      () => new Promise<void>((r) => (release = r)),
    );
    const pending = run();
    expect(tracker.inFlight).toBe(1);
    let idle = false;
    const waiting = tracker.idle().then(() => (idle = true));
    await Promise.resolve();
    expect(idle).toBe(false);
    release();
    await pending;
    await waiting;
    expect(idle).toBe(true);
    expect(tracker.inFlight).toBe(0);
  });
});

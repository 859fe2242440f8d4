/**
 * Log levels and per-invocation lines of the embedded local runtime, in the style of `func start`:
 * `Executing 'Functions.x' (Reason='…', Id=…)` then `Executed 'Functions.x' (Succeeded|Failed, Id=…, Duration=Nms)`.
 *
 * Levels: HTTP and timer invocations are logged at info (one line each, as `func start` prints them); Event Hub
 * batches at debug when they succeed (at simulator rates they would drown everything else) and at info when
 * they fail. `Executing` lines are debug; a failed invocation's `Executed` line is always printed at info.
 */
import { performance } from 'node:perf_hooks';
import { formatError } from './log-format.js';

/** Log levels, most severe first; a threshold prints its own level and the ones before it. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Writes one line at a level (default info). */
export type Logger = (message: string, level?: LogLevel) => void;

/** `--log-level` / `LOG_LEVEL` text → level; the Functions host's names (information, warning, trace) work too. */
export function parseLogLevel(text: string | undefined): LogLevel {
  const value = (text ?? 'info').trim().toLowerCase();
  const aliases: Record<string, LogLevel> = {
    information: 'info',
    warning: 'warn',
    trace: 'debug',
    critical: 'error',
  };
  const level = aliases[value] ?? value;
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new Error(`log level must be one of ${LOG_LEVELS.join(', ')}, got '${text ?? ''}'`);
  return level as LogLevel;
}

/** The level of a `context.log`/`context.debug`/… call (the host's level names). */
export function levelOfHost(level: string): LogLevel {
  if (level === 'error' || level === 'critical') return 'error';
  if (level === 'warning') return 'warn';
  if (level === 'debug' || level === 'trace') return 'debug';
  return 'info';
}

/** A logger that prints through `write` only the lines at or above `threshold`. */
export function makeLogger(threshold: LogLevel, write: (line: string, level: LogLevel) => void): Logger {
  const limit = LOG_LEVELS.indexOf(threshold);
  return (message, level = 'info') => {
    if (LOG_LEVELS.indexOf(level) <= limit) write(message, level);
  };
}

/** The trigger kinds the runtime serves, for the `Reason` of an invocation and its level. */
export type TriggerKind = 'http' | 'eventHub' | 'timer';

const REASONS: Record<TriggerKind, string> = {
  http: 'This function was programmatically called via the host APIs.',
  eventHub: "New events detected on 'EventHub'.",
  timer: 'Timer fired',
};

/** Counts running invocations so that a shutdown can wait for them. */
export class InvocationTracker {
  private running = 0;
  private waiters: (() => void)[] = [];

  /** Invocations still running. */
  get inFlight(): number {
    return this.running;
  }

  /** Resolves when no invocation is running (at once if none is). */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * The callback wrapped so that each call is counted and logged (`Executing`/`Executed` with status and
   * duration); what it returns or throws is passed on unchanged.
   */
  wrap<A extends unknown[], R>(
    name: string,
    kind: TriggerKind,
    log: Logger,
    callback: (...args: A) => Promise<R>,
  ): (...args: A) => Promise<R> {
    return async (...args: A) => {
      const id = crypto.randomUUID();
      const started = performance.now();
      this.running++;
      log(`Executing 'Functions.${name}' (Reason='${REASONS[kind]}', Id=${id})`, 'debug');
      let failed: unknown;
      try {
        // eslint-disable-next-line no-restricted-syntax -- forwards the host's few trigger arguments as-is
        return await callback(...args);
      } catch (error) {
        failed = error ?? new Error('undefined thrown');
        throw error;
      } finally {
        const duration = Math.round(performance.now() - started);
        const status = failed === undefined ? 'Succeeded' : 'Failed';
        const quiet = failed === undefined && kind === 'eventHub';
        log(
          `Executed 'Functions.${name}' (${status}, Id=${id}, Duration=${duration}ms)` +
            (failed === undefined ? '' : `: ${formatError(failed)}`),
          quiet ? 'debug' : 'info',
        );
        this.running--;
        if (this.running === 0) {
          const waiters = this.waiters;
          this.waiters = [];
          for (const resolve of waiters) resolve();
        }
      }
    };
  }
}

/**
 * Timer triggers for the embedded local runtime: each timer-triggered function runs on its NCRONTAB schedule
 * (six fields with seconds, UTC, `%Setting%` resolved), one invocation at a time per function as the Functions
 * host's singleton lock does; a tick that finds the previous run still going is skipped, and the next run is
 * told it is past due.
 */
import functions from '@azure/functions';
import { CronExpressionParser } from 'cron-parser';
import { randomUUID } from 'node:crypto';
import { resolveBindingExpression } from './binding-expressions.js';
import { levelOfHost, type Logger } from './invocation-log.js';
import { formatLogArgs } from './log-format.js';

const { InvocationContext } = functions;

/** What the runtime knows of one registration (see functions-core.cts). */
export interface TimerRegistration {
  metadata: { name: string; bindings: Record<string, Record<string, unknown>> };
  callback: (...args: unknown[]) => Promise<unknown>;
}

export interface TimerOptions {
  /** App settings, for `%Setting%` in a schedule. */
  settings: Record<string, string>;
  log: Logger;
}

export interface Timers {
  /** Functions being scheduled. */
  count: number;
  /** Stops scheduling and waits for running invocations. */
  stop(): Promise<void>;
}

/** setTimeout's limit (about 24.8 days): longer waits are taken in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

const scheduleOf = (
  registration: TimerRegistration,
  settings: Record<string, string>,
): string | undefined => {
  const binding = Object.values(registration.metadata.bindings).find((b) => b.type === 'timerTrigger');
  if (typeof binding?.schedule !== 'string') return undefined;
  return resolveBindingExpression(binding.schedule, settings, registration.metadata.name);
};

/** What every scheduled function shares: pending timeouts, running invocations, and whether it is stopped. */
interface Scheduling {
  handles: Set<NodeJS.Timeout>;
  running: Set<Promise<void>>;
  stopped: () => boolean;
}

/** The timer argument the host gives a timer-triggered function. */
const timerInfo = (isPastDue: boolean, last: Date | undefined, next: Date) => ({
  isPastDue,
  schedule: { adjustForDST: false },
  scheduleStatus: {
    last: (last ?? new Date(0)).toISOString(),
    next: next.toISOString(),
    lastUpdated: new Date().toISOString(),
  },
});

/** Runs one function on its schedule, one invocation at a time (a tick during a run is missed, then past due). */
function schedule(registration: TimerRegistration, cron: string, options: TimerOptions, shared: Scheduling) {
  const { name } = registration.metadata;
  let last: Date | undefined;
  let busy = false;
  let missed = false;
  const nextAfter = (date: Date) =>
    CronExpressionParser.parse(cron, { currentDate: date, tz: 'UTC' }).next().toDate();

  const invoke = async (next: Date) => {
    busy = true;
    const context = new InvocationContext({
      functionName: name,
      invocationId: randomUUID(),
      logHandler: (level, ...args) => {
        options.log(`[${name}] ${formatLogArgs(args)}`, levelOfHost(level));
      },
    });
    const timer = timerInfo(missed, last, next);
    missed = false;
    last = new Date();
    try {
      await registration.callback(timer, context);
    } catch (error) {
      options.log(`[${name}] failed: ${error instanceof Error ? error.message : 'error'}`);
    } finally {
      busy = false;
    }
  };

  const arm = (after: Date) => {
    if (shared.stopped()) return;
    const at = nextAfter(after);
    const wait = () => {
      const remaining = at.getTime() - Date.now();
      const handle = setTimeout(
        () => {
          shared.handles.delete(handle);
          if (shared.stopped()) return;
          if (at.getTime() > Date.now()) {
            wait();
            return;
          }
          if (busy) missed = true;
          else {
            const run = invoke(nextAfter(at)).finally(() => shared.running.delete(run));
            shared.running.add(run);
          }
          arm(at);
        },
        Math.min(Math.max(0, remaining), MAX_TIMEOUT_MS),
      );
      shared.handles.add(handle);
    };
    wait();
  };
  arm(new Date());
}

/** Starts every registration whose trigger is a timer; the others are ignored. */
export function startTimers(registrations: readonly TimerRegistration[], options: TimerOptions): Timers {
  let stopped = false;
  const shared: Scheduling = { handles: new Set(), running: new Set(), stopped: () => stopped };
  let count = 0;
  for (const registration of registrations) {
    const cron = scheduleOf(registration, options.settings);
    if (cron === undefined) continue;
    count++;
    schedule(registration, cron, options, shared);
  }
  return {
    count,
    stop: async () => {
      stopped = true;
      for (const handle of shared.handles) clearTimeout(handle);
      shared.handles.clear();
      await Promise.all([...shared.running]);
    },
  };
}

/**
 * Loads the app through its real entry point (`src/index.ts`) with a local provider of `@azure/functions-core`,
 * the module the Functions host gives the v4 library, and hands back what it registered.
 */
import Module, { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { triggerBinding, type Registration } from './event-hubs.js';
import type { InvocationTracker, Logger } from './invocation-log.js';

/** The composition root's module: its registrations went to the provider; its config and adapters are reused. */
export type AppModule = typeof import('../../src/index.js');

export interface LoadedApp {
  app: AppModule;
  registrations: Registration[];
}

/** Imports the app once with `@azure/functions-core` resolved to `functionsCore` (default: the compiled one here). */
export async function loadApp(functionsCore?: string): Promise<LoadedApp> {
  const core = functionsCore ?? fileURLToPath(new URL('./functions-core.cjs', import.meta.url));
  const internals = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
  };
  const original = internals._resolveFilename;
  internals._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]) {
    // eslint-disable-next-line no-restricted-syntax -- forwards Node's own few resolver arguments
    return request === '@azure/functions-core' ? core : original.call(this, request, ...rest);
  };
  const quiet = console.warn;
  console.warn = () => undefined; // the library's notice about running outside the real host
  let app: AppModule;
  try {
    app = await import('../../src/index.js');
  } finally {
    console.warn = quiet;
  }
  const { registrations } = createRequire(import.meta.url)(core) as { registrations: Registration[] };
  return { app, registrations };
}

const KIND = { httpTrigger: 'http', eventHubTrigger: 'eventHub', timerTrigger: 'timer' } as const;

/**
 * The registrations of one trigger type; every trigger the runtime serves is counted (a shutdown waits for it)
 * and logged (Executing/Executed) through `invocations`.
 */
export function registrationsOf(
  registrations: readonly Registration[],
  invocations: InvocationTracker,
  log: Logger,
): (type: string) => Registration[] {
  const tracked = (r: Registration): Registration => {
    const type = String(triggerBinding(r)?.type) as keyof typeof KIND;
    if (!(type in KIND)) return r;
    return { ...r, callback: invocations.wrap(r.metadata.name, KIND[type], log, r.callback) };
  };
  return (type) => registrations.filter((r) => triggerBinding(r)?.type === type).map(tracked);
}

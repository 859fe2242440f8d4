import Module, { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface Registration {
  metadata: {
    name: string;
    bindings: Record<string, Record<string, unknown>>;
    retryOptions?: Record<string, unknown>;
  };
  callback: (...args: unknown[]) => Promise<unknown>;
}

/**
 * Loads the real entry point (src/index.ts) with a recording `@azure/functions-core`, as the Functions host
 * would, after putting `settings` into the environment. Returns every registration in order.
 */
export async function loadEntryPoint(settings: Record<string, string>): Promise<Registration[]> {
  const fake = fileURLToPath(new URL('./functions-core.cjs', import.meta.url));
  const moduleInternals = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
  };
  const original = moduleInternals._resolveFilename;
  moduleInternals._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]) {
    return request === '@azure/functions-core' ? fake : original.call(this, request, ...rest);
  };
  Object.assign(process.env, settings);
  await import('../../src/index.js');
  // The same CommonJS instance the library required (a dynamic import would go through vitest's own loader).
  const core = createRequire(import.meta.url)(fake) as { registrations: Registration[] };
  return core.registrations;
}

/** The registrations whose trigger has the given binding type (`orchestrationTrigger`, `activityTrigger`, …). */
export function byTrigger(
  registrations: readonly Registration[],
  type: string,
): Map<string, Registration['callback']> {
  return new Map(
    registrations
      .filter((r) => Object.values(r.metadata.bindings).some((b) => b.type === type))
      .map((r) => [r.metadata.name, r.callback]),
  );
}

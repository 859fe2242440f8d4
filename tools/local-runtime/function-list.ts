import { triggerBinding, type Registration } from './event-hubs.js';

/** Trigger types the runtime lists; orchestrations and activities are the durable engine's, listed as such. */
const SHOWN = new Set([
  'httpTrigger',
  'eventHubTrigger',
  'timerTrigger',
  'orchestrationTrigger',
  'activityTrigger',
]);

/**
 * The functions of the app as `func start` lists them on start: HTTP functions with their methods and URL
 * (`name: [GET,POST] http://localhost:7071/api/route`), every other function with its trigger type.
 */
export function describeFunctions(
  registrations: readonly Registration[],
  origin: string,
  routePrefix: string,
): string {
  const shown = registrations
    .map((registration) => ({ registration, binding: triggerBinding(registration) ?? {} }))
    .filter(({ binding }) => SHOWN.has(String(binding.type)));
  const http = shown.filter(({ binding }) => binding.type === 'httpTrigger');
  const others = shown.filter(({ binding }) => binding.type !== 'httpTrigger');
  return [
    'Functions:',
    ...http.map(({ registration, binding }) => {
      const name = registration.metadata.name;
      const route = typeof binding.route === 'string' ? binding.route : name;
      const methods = ((binding.methods as string[] | undefined) ?? ['GET', 'POST']).map((m) =>
        m.toUpperCase(),
      );
      return `  ${name}: [${methods.join(',')}] ${origin}/${routePrefix}/${route}`;
    }),
    ...others.map(({ registration, binding }) => `  ${registration.metadata.name}: ${String(binding.type)}`),
  ].join('\n');
}

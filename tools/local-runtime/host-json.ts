/** The host.json settings the embedded runtime honours, read from the one host.json of the repository. */
import { existsSync, readFileSync } from 'node:fs';
import type { RetryOptions } from './retry-policy.js';

export interface HostJsonSettings {
  /** `extensions.http.routePrefix` (default `api`). */
  routePrefix: string;
  /** `extensions.eventHubs.maxEventBatchSize` (default 100). */
  maxEventBatchSize: number;
  /** `extensions.durableTask.hubName`: the durable task hub (default `TestHubName`, the extension's). */
  taskHub: string;
  /** `retry`: the retry policy of a function that registers none (durations as TimeSpan text). */
  retry: RetryOptions | undefined;
}

/** Reads host.json at the repository root: two levels up from the sources, three from dist/. */
export function readHostJson(): HostJsonSettings {
  const url = [
    new URL('../../host.json', import.meta.url),
    new URL('../../../host.json', import.meta.url),
  ].find((candidate) => existsSync(candidate));
  const hostJson = JSON.parse(readFileSync(url ?? 'host.json', 'utf8')) as {
    retry?: RetryOptions;
    extensions?: {
      http?: { routePrefix?: string };
      eventHubs?: { maxEventBatchSize?: number };
      durableTask?: { hubName?: string };
    };
  };
  return {
    routePrefix: hostJson.extensions?.http?.routePrefix ?? 'api',
    maxEventBatchSize: hostJson.extensions?.eventHubs?.maxEventBatchSize ?? 100,
    taskHub: hostJson.extensions?.durableTask?.hubName ?? 'TestHubName',
    retry: hostJson.retry,
  };
}

/**
 * Every Cosmos DB adapter of the state store, the device catalog and the orphan log answers an outage the same way,
 * through translateCosmosError: throttling is ThrottledError, an unavailable service, a refused connection or
 * a dropped one is ServiceUnavailableError, so the HTTP edge answers 503 + Retry-After and never 500 (review
 * finding 9: the device catalog mapped only 429, the state store not 503/408/timeouts, the orphan log nothing).
 * Outages are real: a loopback port nobody listens on, or the fault proxy in front of the local Cosmos DB server.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withProblemDetails } from '../../../src/http/problem.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import { makeProvisioningHandlers } from '../../../src/provisioning/http-handlers.js';
import { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import type { DeviceRecord } from '../../../src/provisioning/catalog.js';
import { ServiceUnavailableError, ThrottledError } from '../../../src/shared/errors.js';
import { startFaultProxy, type FaultKind, type FaultProxy, onlyFault } from '../../../tools/fault-proxy.js';
import { closedPort } from '../../fixtures/closed-port.js';
import { testConfig } from '../../support/local-env.js';

const record = (id: string): DeviceRecord => ({
  id,
  status: 'enabled',
  metadata: {},
  createdAt: '2026-11-23T10:00:00.000Z',
  updatedAt: '2026-11-23T10:00:00.000Z',
});

/** Every Cosmos DB call of the three adapters, each expected to fail with `expected`. */
function cosmosCalls(adapters: Adapters): [string, () => Promise<unknown>][] {
  const { stateStore, catalog, orphans } = adapters;
  return [
    ['stateStore.get', () => stateStore.get('dev-1')],
    ['stateStore.update', () => stateStore.update('dev-1', () => undefined)],
    ['stateStore.delete', () => stateStore.delete('dev-1')],
    ['catalog.create', () => catalog.create(record('dev-2'))],
    ['catalog.get', () => catalog.get('dev-1')],
    ['catalog.replace', () => catalog.replace(record('dev-1'))],
    ['catalog.delete', () => catalog.delete('dev-1')],
    ['catalog.query', () => catalog.query({ top: 5 })],
    // A token was supplied, but the failure is the outage, not the token.
    ['catalog.query (token)', () => catalog.query({ top: 5, continuationToken: '{"token":"x"}' })],
    [
      'orphans.record',
      () => orphans.record({ deviceId: 'dev-1', reason: 'test', at: '2026-11-23T10:00:00Z' }),
    ],
  ];
}

async function failures(adapters: Adapters, only?: readonly string[]): Promise<[string, string][]> {
  const outcomes: [string, string][] = [];
  for (const [name, run] of cosmosCalls(adapters)) {
    if (only && !only.includes(name)) continue;
    try {
      await run();
      outcomes.push([name, 'resolved']);
    } catch (error) {
      outcomes.push([name, error instanceof Error ? error.constructor.name : typeof error]);
    }
  }
  return outcomes;
}

/** The app's adapters with Cosmos DB behind `endpoint` (its database and containers made first when `ready`). */
async function adaptersAt(endpoint: string, ready: boolean): Promise<Adapters> {
  const adapters = createAdapters(testConfig({ CosmosDb__accountEndpoint: endpoint }));
  if (ready) {
    // Create the containers while the proxy forwards (rate 0), so the faults hit document operations only.
    await adapters.stateStore.get('warm-up');
    await adapters.catalog.get('warm-up');
    await adapters.orphans.record({ deviceId: 'warm-up', reason: 'warm-up', at: '2026-11-23T10:00:00Z' });
  }
  return adapters;
}

describe('Cosmos DB adapters during an outage', () => {
  const proxies: FaultProxy[] = [];
  const proxy = async (kind: FaultKind) => {
    const started = await startFaultProxy({
      target: inject('localServices').cosmosEndpoint,
      dependency: 'cosmos',
      weights: onlyFault(kind),
      retryAfterMs: 10,
      holdMs: 50,
      afterUpstreamShare: 0,
    });
    proxies.push(started);
    return started;
  };
  let unavailable: FaultProxy;
  let unavailableAdapters: Adapters;
  beforeAll(async () => {
    unavailable = await proxy('unavailable');
    unavailableAdapters = await adaptersAt(`${unavailable.origin}/`, true);
  });
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
  });

  it('answers ServiceUnavailableError when nothing listens at the endpoint', async () => {
    const adapters = await adaptersAt(`https://127.0.0.1:${await closedPort()}/`, false);
    const outcomes = await failures(adapters);
    expect(outcomes).toEqual(outcomes.map(([name]) => [name, 'ServiceUnavailableError']));
  });

  it('answers ServiceUnavailableError when Cosmos DB answers 503', async () => {
    unavailable.setRate(1);
    const outcomes = await failures(unavailableAdapters);
    unavailable.setRate(0);
    expect(outcomes).toEqual(outcomes.map(([name]) => [name, 'ServiceUnavailableError']));
    expect(unavailable.counts().injected.unavailable).toBeGreaterThanOrEqual(outcomes.length);
  });

  it('answers ServiceUnavailableError when connections are reset', async () => {
    const reset = await proxy('reset');
    const adapters = await adaptersAt(`${reset.origin}/`, true);
    reset.setRate(1);
    // The SDK retries resets for several seconds per call: one call of each adapter is enough.
    const outcomes = await failures(adapters, ['stateStore.update', 'catalog.get']);
    expect(outcomes).toHaveLength(2);
    reset.setRate(0);
    expect(outcomes).toEqual(outcomes.map(([name]) => [name, 'ServiceUnavailableError']));
  }, 60_000);

  it('answers ThrottledError with the retry hint once the SDK has given up retrying 429s', async () => {
    const throttle = await proxy('throttle');
    const adapters = await adaptersAt(`${throttle.origin}/`, true);
    throttle.setRate(1);
    const outcomes = await failures(adapters);
    let caught: unknown;
    await adapters.catalog.get('dev-1').catch((error: unknown) => (caught = error));
    throttle.setRate(0);
    expect(outcomes).toEqual(outcomes.map(([name]) => [name, 'ThrottledError']));
    expect(caught).toBeInstanceOf(ThrottledError);
    expect((caught as ThrottledError).retryAfterSeconds).toBe(1);
  }, 60_000);

  it('is 503 with Retry-After on /api/devices, never 500', async () => {
    const handlers = makeProvisioningHandlers(
      new ProvisioningService({ ...unavailableAdapters, hostName: 'testhub', maxMetadataBytes: 8192 }),
    );
    unavailable.setRate(1);
    const calls: [keyof typeof handlers, string, Record<string, string>][] = [
      ['listDevices', '/api/devices?continuationToken=abc', {}],
      ['getDevice', '/api/devices/dev-1', { id: 'dev-1' }],
    ];
    const answers: [string, number | undefined, string | undefined][] = [];
    for (const [name, path, params] of calls) {
      const response = (await withProblemDetails(handlers[name])(
        new HttpRequest({ method: 'GET', url: `http://localhost:7071${path}`, params }),
        new InvocationContext({ functionName: name }),
      )) as HttpResponseInit;
      answers.push([name, response.status, new Headers(response.headers).get('retry-after') ?? undefined]);
    }
    unavailable.setRate(0);
    const retryAfter: unknown = expect.stringMatching(/^\d+$/);
    expect(answers).toEqual(calls.map(([name]) => [name, 503, retryAfter]));
  });
});

describe('ServiceUnavailableError and ThrottledError', () => {
  it('are what the HTTP edge maps to 503 (ThrottledError is one)', () => {
    expect(new ThrottledError('x')).toBeInstanceOf(ServiceUnavailableError);
  });
});

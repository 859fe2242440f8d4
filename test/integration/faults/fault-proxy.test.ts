/**
 * The fault proxy (tools/fault-proxy.ts) in front of each real local dependency: transparent at rate 0, the
 * service's own failure answers when it injects, connection-level faults the client sees as errors, lost
 * answers after the upstream did the work, a seeded and countable fault sequence, and the Cosmos SDK kept on
 * the proxy by the rewritten account document.
 */
import { CosmosClient } from '@azure/cosmos';
import { BlobServiceClient } from '@azure/storage-blob';
import http from 'node:http';
import https from 'node:https';
import { Agent } from 'node:https';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFakeIotHub, type FakeIotHub } from '../../fixtures/fake-iothub.js';
import { startFakeSlack, type FakeSlack } from '../../../tools/fake-slack.js';
import {
  onlyFault,
  seededRandom,
  startFaultProxy,
  type Dependency,
  type FaultProxy,
} from '../../../tools/fault-proxy.js';
import { AZURITE_DEV_KEY } from '../../../tools/local-services.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with Node's clients (HTTPS without certificate checks: loopback test servers only). */
function request(url: string, init: { method?: string; body?: string } = {}): Promise<Reply> {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      target,
      { method: init.method ?? 'GET', rejectUnauthorized: false, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

let slack: FakeSlack;
let hub: FakeIotHub;
const proxies: FaultProxy[] = [];
const proxy = async (...args: Parameters<typeof startFaultProxy>) => {
  const started = await startFaultProxy(...args);
  proxies.push(started);
  return started;
};

beforeAll(async () => {
  slack = await startFakeSlack();
  hub = await startFakeIotHub();
});

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await slack.close();
  await hub.close();
});

describe('fault proxy', () => {
  it('forwards requests and answers unchanged at rate 0', async () => {
    const p = await proxy({ target: new URL(slack.url).origin, dependency: 'slack' });
    const path = new URL(slack.url).pathname;
    const reply = await request(`${p.origin}${path}`, { method: 'POST', body: '{"text":"hello"}' });
    expect(reply).toMatchObject({ status: 200, body: 'ok' });
    expect(slack.requests.at(-1)?.body).toEqual({ text: 'hello' });
    expect(p.counts()).toMatchObject({ requests: 1, forwarded: 1, injected: { throttle: 0, reset: 0 } });
  });

  it('serves HTTPS in front of an HTTPS upstream (the IoT Hub fake) and passes its answers through', async () => {
    const p = await proxy({ target: `https://127.0.0.1:${hub.port}`, dependency: 'iothub' });
    expect(p.origin).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const direct = await request(`https://127.0.0.1:${hub.port}/devices/x?api-version=2021-04-12`);
    const proxied = await request(`${p.origin}/devices/x?api-version=2021-04-12`);
    expect(proxied.status).toBe(direct.status);
    expect(proxied.body).toBe(direct.body);
  });

  it.each<[Dependency, number, Record<string, string | RegExp>]>([
    ['cosmos', 429, { 'x-ms-retry-after-ms': '1500', 'x-ms-substatus': '3200' }],
    ['blob', 503, { 'x-ms-error-code': 'ServerBusy' }],
    ['slack', 429, { 'retry-after': '2' }],
    ['iothub', 429, { 'iothub-errorcode': 'ThrottlingException', 'retry-after': '2' }],
  ])('throttles %s as the service does (%d with its retry hint)', async (dependency, status, headers) => {
    const p = await proxy({
      target: new URL(slack.url).origin,
      dependency,
      rate: 1,
      weights: onlyFault('throttle'),
      retryAfterMs: 1500,
    });
    const before = slack.requests.length;
    const reply = await request(`${p.origin}/x`, { method: 'POST', body: '{}' });
    expect(reply.status).toBe(status);
    expect(reply.headers).toMatchObject(headers);
    expect(slack.requests.length).toBe(before); // never reached the upstream
    expect(p.counts()).toMatchObject({ requests: 1, forwarded: 0, injected: { throttle: 1 } });
  });

  it.each<[Dependency, RegExp]>([
    ['cosmos', /ServiceUnavailable/],
    ['blob', /<Code>ServerBusy<\/Code>/],
    ['slack', /service_unavailable/],
    ['iothub', /ErrorCode:ServiceUnavailable/],
  ])('answers %s unavailable with 503 and the service body', async (dependency, body) => {
    const p = await proxy({
      target: new URL(slack.url).origin,
      dependency,
      rate: 1,
      weights: onlyFault('unavailable'),
    });
    const reply = await request(`${p.origin}/x`);
    expect(reply.status).toBe(503);
    expect(reply.body).toMatch(body);
  });

  it('resets connections and holds-then-drops timeouts before the upstream sees the request', async () => {
    for (const kind of ['reset', 'timeout'] as const) {
      const p = await proxy({
        target: new URL(slack.url).origin,
        dependency: 'slack',
        rate: 1,
        weights: onlyFault(kind),
        holdMs: 50,
        afterUpstreamShare: 0,
      });
      const before = slack.requests.length;
      await expect(request(`${p.origin}/x`, { method: 'POST', body: '{}' })).rejects.toThrow(
        /ECONNRESET|socket hang up/,
      );
      expect(slack.requests.length).toBe(before);
      expect(p.counts().injected[kind]).toBe(1);
    }
  });

  it('loses the answer after the upstream handled the request (a write that happened, seen as a failure)', async () => {
    const p = await proxy({
      target: new URL(slack.url).origin,
      dependency: 'slack',
      rate: 1,
      weights: onlyFault('reset'),
      afterUpstreamShare: 1,
    });
    const before = slack.requests.length;
    await expect(request(`${p.origin}/x`, { method: 'POST', body: '{"n":1}' })).rejects.toThrow();
    expect(slack.requests.length).toBe(before + 1);
    expect(p.counts()).toMatchObject({ forwarded: 1, lostAnswers: 1, injected: { reset: 1 } });
  });

  it('answers slowly but correctly', async () => {
    const p = await proxy({
      target: new URL(slack.url).origin,
      dependency: 'slack',
      rate: 1,
      weights: onlyFault('slow'),
      slowMs: 20,
    });
    expect(await request(`${p.origin}/x`, { method: 'POST', body: '{}' })).toMatchObject({ status: 200 });
    expect(p.counts().injected.slow).toBe(1);
  });

  it('draws faults from a seeded PRNG at the configured rate, which can change at run time', async () => {
    expect(Array.from({ length: 5 }, seededRandom(7))).toEqual(Array.from({ length: 5 }, seededRandom(7)));
    const run = async (seed: number) => {
      const p = await proxy({
        target: new URL(slack.url).origin,
        dependency: 'slack',
        rate: 0.3,
        weights: { throttle: 1, unavailable: 1, timeout: 0, reset: 0, slow: 0 },
        seed,
      });
      const statuses: number[] = [];
      for (let i = 0; i < 200; i++)
        statuses.push((await request(`${p.origin}/x`, { method: 'POST', body: '{}' })).status);
      p.setRate(0);
      for (let i = 0; i < 20; i++)
        statuses.push((await request(`${p.origin}/x`, { method: 'POST', body: '{}' })).status);
      return { statuses, counts: p.counts() };
    };
    const first = await run(42);
    const second = await run(42);
    expect(second.statuses).toEqual(first.statuses);
    const faults = first.counts.injected.throttle + first.counts.injected.unavailable;
    expect(faults).toBeGreaterThan(30);
    expect(faults).toBeLessThan(90);
    expect(first.statuses.slice(200).every((s) => s !== 429 && s !== 503)).toBe(true);
    expect(first.counts).toMatchObject({ requests: 220, forwarded: 220 - faults });
  });

  it('keeps the Cosmos SDK on the proxy (account document rewritten) and its 429s are retried by the SDK', async () => {
    const { cosmosEndpoint, cosmosKey } = inject('localServices');
    const p = await proxy({
      target: cosmosEndpoint,
      dependency: 'cosmos',
      retryAfterMs: 10,
      weights: onlyFault('throttle'),
    });
    const account = await request(`${p.origin}/`);
    const upstreamPort = new URL(cosmosEndpoint).port;
    expect(account.body).toContain(p.origin);
    expect(account.body).not.toContain(`:${upstreamPort}`);

    const client = new CosmosClient({
      endpoint: `${p.origin}/`,
      key: cosmosKey,
      agent: new Agent({ rejectUnauthorized: false }),
    });
    const { database } = await client.databases.createIfNotExists({ id: 'fault-proxy-test' });
    const { container } = await database.containers.createIfNotExists({
      id: 'items',
      partitionKey: { paths: ['/id'] },
    });
    p.setRate(0.5);
    const proxyBefore = p.counts();
    for (let i = 0; i < 10; i++) await container.items.upsert({ id: `item-${i}` });
    const after = p.counts();
    expect(after.requests - proxyBefore.requests).toBeGreaterThanOrEqual(10);
    expect(after.injected.throttle).toBeGreaterThan(0);
    p.setRate(0);
    const { resources } = await container.items.readAll().fetchAll();
    expect(resources.map((r) => r.id).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `item-${i}`).sort(),
    );
  }, 60_000);

  it('sits in front of Azurite Blob for the storage SDK', async () => {
    const { blobEndpoint } = inject('localServices');
    const upstream = new URL(blobEndpoint);
    const p = await proxy({
      target: upstream.origin,
      dependency: 'blob',
      rate: 1,
      weights: onlyFault('throttle'),
    });
    const service = BlobServiceClient.fromConnectionString(
      `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${AZURITE_DEV_KEY};BlobEndpoint=${p.origin}${upstream.pathname};`,
      { retryOptions: { maxTries: 2, retryDelayInMs: 10, maxRetryDelayInMs: 10 } },
    );
    const container = service.getContainerClient('fault-proxy-test');
    await expect(container.createIfNotExists()).rejects.toMatchObject({ statusCode: 503 });
    p.setRate(0);
    await container.createIfNotExists();
    await container.getBlockBlobClient('a.txt').upload('hello', 5);
    expect((await container.getBlobClient('a.txt').downloadToBuffer()).toString()).toBe('hello');
    expect(p.counts().injected.throttle).toBe(2);
  });
});

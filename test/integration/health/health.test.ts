/**
 * GET /api/health against the local services: Cosmos DB server, Azurite (Blob, and Tables for the identity
 * store) and a local Slack webhook. "Down" is a loopback port nobody listens on: a real refusal, no stubs.
 */
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHealth, makeGetHealth } from '../../../src/health/health.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { startFakeSlack, type FakeSlack } from '../../../tools/fake-slack.js';
import { AZURITE_DEV_KEY } from '../../../tools/local-services.js';
import { routeHostToLoopback, startFakeIotHub } from '../../fixtures/fake-iothub.js';
import { responseProblems } from '../../support/openapi.js';
import { testConfig, testSettings } from '../../support/local-env.js';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  return port;
}

describe('GET /api/health on the local services', () => {
  let slack: FakeSlack;
  beforeAll(async () => {
    slack = await startFakeSlack();
  });
  afterAll(async () => {
    await slack.close();
  });

  it('is 200 with cosmos, blob, identity store and slack ok, and posts nothing to Slack', async () => {
    const { health } = createAdapters(testConfig({ SlackWebhookUrl: slack.url }));
    const response = await makeGetHealth({ probes: health })();
    expect(response.jsonBody.dependencies.map((d) => [d.name, d.status])).toEqual([
      ['cosmos', 'ok'],
      ['blob', 'ok'],
      ['identityStore', 'ok'],
      ['slack', 'ok'],
    ]);
    expect(response.status).toBe(200);
    expect(responseProblems('getHealth', 200, response.jsonBody)).toEqual([]);
    expect(slack.requests).toEqual([]);
    expect(JSON.stringify(response.jsonBody)).not.toContain('T000/B000');
  });

  it('is 503 naming cosmos when Cosmos DB is down, with no endpoint or key in the body', async () => {
    const port = await closedPort();
    const settings = testSettings({ CosmosDb__accountEndpoint: `https://127.0.0.1:${port}/` });
    const { health } = createAdapters(testConfig(settings));
    const response = await makeGetHealth({ probes: health })();
    expect(response.status).toBe(503);
    expect(response.jsonBody.dependencies.find((d) => d.name === 'cosmos')).toMatchObject({
      status: 'unavailable',
    });
    expect(response.jsonBody.dependencies.filter((d) => d.status === 'ok').map((d) => d.name)).toEqual([
      'blob',
      'identityStore',
    ]);
    const body = JSON.stringify(response.jsonBody);
    for (const secret of [String(port), '127.0.0.1', settings.CosmosDbKey ?? 'no key', 'AccountKey']) {
      expect(body).not.toContain(secret);
    }
  });

  it('is 503 naming slack when the webhook host refuses connections', async () => {
    const port = await closedPort();
    const { health } = createAdapters(
      testConfig({ SlackWebhookUrl: `http://127.0.0.1:${port}/services/T1/B1/SECRET` }),
    );
    const response = await makeGetHealth({ probes: health })();
    expect(response.status).toBe(503);
    expect(response.jsonBody.dependencies.find((d) => d.name === 'slack')?.status).toBe('unavailable');
    expect(JSON.stringify(response.jsonBody)).not.toContain('SECRET');
  });

  it('aborts a hung identity-store probe when it times out, leaving no request behind', async () => {
    // A Table endpoint that accepts connections and never answers.
    const sockets = new Set<Socket>();
    const hung = createServer((socket) => {
      socket.resume(); // read (and ignore) the request, so the socket sees the client close it
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const { port } = hung.address() as { port: number };
    try {
      const { health } = createAdapters(
        testConfig({
          IdentityStorageConnectionString:
            'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;' +
            `AccountKey=${AZURITE_DEV_KEY};TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1;`,
        }),
      );
      const report = await checkHealth(health, 500);
      expect(report.dependencies.find((d) => d.name === 'identityStore')).toMatchObject({
        status: 'unavailable',
        reason: 'timeout',
      });
      // The probe's request was cancelled with it: its connection closes (waited for, at most 5 s).
      for (let i = 0; i < 50 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(sockets.size).toBe(0);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) =>
        hung.close(() => {
          resolve();
        }),
      );
    }
  });

  it('probes an IoT Hub identity store without a registry operation (no quota spent, no credentials sent)', async () => {
    const hub = await startFakeIotHub();
    const restore = routeHostToLoopback(hub.hostName, hub.port);
    try {
      const { health } = createAdapters(
        testConfig({
          IdentityStore: 'iothub',
          IotHubRegistryConnectionString: hub.connectionString,
          IotHubHostName: hub.hostName,
        }),
      );
      const report = await checkHealth(health);
      expect(report.dependencies.find((d) => d.name === 'identityStore')?.status).toBe('ok');
      expect(hub.requests.length).toBeGreaterThan(0);
      expect(hub.requests.filter((r) => r.authorized || r.path.startsWith('/devices'))).toEqual([]);
    } finally {
      restore();
      await hub.close();
    }
  });
});

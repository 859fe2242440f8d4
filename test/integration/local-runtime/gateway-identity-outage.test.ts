/**
 * The device gateway of the embedded runtime during an identity-store outage: the identity store's Table
 * endpoint is a loopback port nobody listens on (a real connection refusal, no stubbed SDK). A valid-looking
 * device token must get 503 with Retry-After, never 401: device SDKs give up on 401 and retry on 503.
 */
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { AZURITE_DEV_KEY } from '../../../tools/local-services.js';
import { testSettings } from '../../support/local-env.js';

/** A loopback port that was free a moment ago and that nothing listens on now. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  return port;
}

describe('device gateway while the identity store is unavailable', () => {
  let runtime: Runtime;
  const logs: string[] = [];

  beforeAll(async () => {
    const port = await closedPort();
    runtime = await startRuntime({
      settings: testSettings({
        IdentityStorageConnectionString:
          'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;' +
          `AccountKey=${AZURITE_DEV_KEY};TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1;`,
      }),
      port: 0,
      log: (message) => logs.push(message),
      functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
    });
  });
  afterAll(async () => {
    await runtime.stop();
  });

  const token = (deviceId: string) =>
    createSasToken(
      `localhost/devices/${deviceId}`,
      Buffer.alloc(32, 7).toString('base64'),
      Math.floor(Date.now() / 1000) + 600,
    );

  it('answers telemetry with a device token 503 + Retry-After, not 401', async () => {
    const response = await fetch(`${runtime.origin}/devices/dev-1/messages/events`, {
      method: 'POST',
      headers: { authorization: token('dev-1'), 'content-type': 'application/json' },
      body: '{"temperature":21}',
    });
    expect(response.status).toBe(503);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    const body = await response.text();
    expect(body).not.toContain('127.0.0.1');
    expect(body).not.toContain(AZURITE_DEV_KEY);
  });

  it('answers the direct-method routes with a device token 503 as well', async () => {
    const pending = await fetch(`${runtime.origin}/devices/dev-1/methods/pending?waitSeconds=0`, {
      headers: { authorization: token('dev-1') },
    });
    expect(pending.status).toBe(503);
    const answer = await fetch(`${runtime.origin}/devices/dev-1/methods/req-1/response`, {
      method: 'POST',
      headers: { authorization: token('dev-1') },
      body: '{"status":200}',
    });
    expect(answer.status).toBe(503);
  });

  it('still answers 401 when there is no token at all (no look-up needed to refuse it)', async () => {
    const response = await fetch(`${runtime.origin}/devices/dev-1/messages/events`, {
      method: 'POST',
      body: '{}',
    });
    expect(response.status).toBe(401);
  });
});

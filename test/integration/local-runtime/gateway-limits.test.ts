/**
 * The embedded runtime's device gateway and durable API where issue 13 found them lax: a telemetry message above
 * IoT Hub's 256 KB limit is refused with IoT Hub's own 413 answer (it used to be accepted and kept in memory),
 * delivered events do not pile up in the in-process hubs, and a purge answer counts what it deleted.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { testEventHubs, testSettings } from '../../support/local-env.js';

describe('embedded runtime: gateway limits and bounded memory', () => {
  let runtime: Runtime;
  const deviceId = `limits-${Date.now()}`;
  let token = '';

  beforeAll(async () => {
    runtime = await startRuntime({
      settings: testSettings(),
      localEventHubs: testEventHubs,
      port: 0,
      log: () => undefined,
      functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
    });
    const registered = await fetch(`${runtime.apiBaseUrl}/devices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: deviceId }),
    });
    expect(registered.status).toBe(201);
    const { keys } = (await registered.json()) as { keys: { primaryKey: string } };
    token = createSasToken(
      `localhost/devices/${deviceId}`,
      keys.primaryKey,
      Math.floor(Date.now() / 1000) + 600,
    );
  });
  afterAll(async () => {
    await runtime.stop();
  });

  const sendBytes = (body: string) =>
    fetch(`${runtime.origin}/devices/${deviceId}/messages/events`, {
      method: 'POST',
      headers: { authorization: token, 'content-type': 'application/json' },
      body,
    });
  /** A JSON message of exactly `bytes` bytes. */
  const messageOf = (bytes: number) => {
    const head = '{"pad":"';
    return `${head}${'x'.repeat(bytes - head.length - 2)}"}`;
  };

  it('refuses a message above 256 KB with 413 in IoT Hub shape, and accepts one of exactly 256 KB', async () => {
    const tooLarge = await sendBytes(messageOf(256 * 1024 + 1));
    expect(tooLarge.status).toBe(413);
    const body = (await tooLarge.json()) as { Message?: string; ExceptionMessage?: string };
    expect(body.Message).toMatch(/^ErrorCode:MessageTooLarge;/);
    expect(body.ExceptionMessage).toMatch(/^Tracking ID:/);
    const tenMegabytes = await sendBytes(messageOf(10 * 1024 * 1024));
    expect(tenMegabytes.status).toBe(413);
    expect((await sendBytes(messageOf(256 * 1024))).status).toBe(204);
  });

  it('keeps each accepted message once in the endpoint, and ingest stores it', async () => {
    const before = runtime.memory().hubEvents;
    for (let i = 0; i < 20; i++) expect((await sendBytes(`{"temperature":${20 + i / 10}}`)).status).toBe(204);
    // 204 means stored by the endpoint: all 20 are there at once, no more (no reading of 40 °C: no anomalies).
    expect(runtime.memory().hubEvents - before).toBe(20);
    const end = Date.now() + 20_000;
    let state = await fetch(`${runtime.apiBaseUrl}/devices/${deviceId}/state`);
    while (state.status !== 200 && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      state = await fetch(`${runtime.apiBaseUrl}/devices/${deviceId}/state`);
    }
    expect(state.status).toBe(200);
  });

  it('answers a purge of an unknown instance 404 with instancesDeleted 0', async () => {
    const response = await fetch(
      `${runtime.origin}/runtime/webhooks/durabletask/instances/no-such-instance`,
      {
        method: 'DELETE',
      },
    );
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ instancesDeleted: 0 });
  });
});

/**
 * The device gateway publishes over AMQP to the local Event Hubs endpoint (issue 16): a 204 means the endpoint
 * holds the event with IoT Hub's annotations, and when the endpoint is gone the gateway answers 503 (device
 * SDKs retry it), never 204. The runtime still stops cleanly without its endpoint.
 */
import { EventHubConsumerClient, type ReceivedEventData } from '@azure/event-hubs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { localEventHubSettings } from '../../../tools/local-services.js';
import { testSettings } from '../../support/local-env.js';

describe('device gateway on the local Event Hubs endpoint', () => {
  let endpoint: LocalEventHubs;
  let runtime: Runtime;
  let token = '';
  const deviceId = `gw-${Date.now()}`;
  const logs: string[] = [];

  beforeAll(async () => {
    endpoint = await startLocalEventHubs({ port: 0 });
    runtime = await startRuntime({
      settings: testSettings(localEventHubSettings(endpoint.connectionString())),
      port: 0,
      log: (line) => logs.push(line),
      localEventHubs: { connectionString: endpoint.connectionString(), retained: () => endpoint.retained() },
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
  }, 60_000);
  afterAll(async () => {
    await runtime.stop();
    await endpoint.stop();
  }, 60_000);

  const send = (body: unknown) =>
    fetch(`${runtime.origin}/devices/${deviceId}/messages/events`, {
      method: 'POST',
      headers: {
        authorization: token,
        'content-type': 'application/json',
        'iothub-messageid': 'msg-1',
        'iothub-app-stream-id': 'telemetry',
      },
      body: JSON.stringify(body),
    });

  it('204 once the endpoint holds the event, with the annotations and properties IoT Hub delivers', async () => {
    expect((await send({ temperature: 20.5 })).status).toBe(204);
    expect(runtime.memory().hubEvents).toBe(endpoint.retained());
    expect(runtime.memory().hubEvents).toBeGreaterThan(0);
    const consumer = new EventHubConsumerClient('$Default', endpoint.connectionString(), 'iothub-events');
    try {
      const event = await new Promise<ReceivedEventData>((resolve, reject) => {
        consumer.subscribe(
          {
            processEvents: async (events) => {
              const mine = events.find(
                (e) => e.systemProperties?.['iothub-connection-device-id'] === deviceId,
              );
              if (mine) resolve(mine);
              return Promise.resolve();
            },
            processError: async (error) => {
              reject(error);
              return Promise.resolve();
            },
          },
          { startPosition: { offset: '-1' }, maxWaitTimeInSeconds: 1, skipParsingBodyAsJson: true },
        );
      });
      expect(event.partitionKey).toBe(deviceId);
      expect(event.properties).toEqual({ 'stream-id': 'telemetry' });
      expect(event.messageId).toBe('msg-1');
      expect(event.contentType).toBe('application/json');
      expect(event.systemProperties).toMatchObject({
        'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
        'iothub-message-source': 'Telemetry',
      });
      expect(Date.parse(String(event.systemProperties?.['iothub-enqueuedtime']))).not.toBeNaN();
      expect(JSON.parse((event.body as Buffer).toString('utf8'))).toEqual({ temperature: 20.5 });
    } finally {
      await consumer.close();
    }
  });

  it('503 in IoT Hub shape when the endpoint is gone (never 204), and the failure is logged', async () => {
    await endpoint.stop();
    const response = await send({ temperature: 21 });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { Message?: string }).Message).toMatch(
      /^ErrorCode:ServiceUnavailable;/,
    );
    expect(logs.some((line) => line.includes(`publishing a message of ${deviceId} failed`))).toBe(true);
  }, 60_000);
});

/**
 * End to end, over HTTP only: the backend as `npm start` runs it on a machine without Core Tools (the built
 * start script as a child process, on free ports, throwaway in-memory data), driven the way a user or a
 * device would drive it. Slack is a local webhook.
 */
import { EventHubConsumerClient, type ReceivedEventData } from '@azure/event-hubs';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { startFakeSlack, type FakeSlack } from '../../../tools/fake-slack.js';
import { localEventHubsConnectionString } from '../../../tools/local-eventhubs/config.js';
import { AZURITE_DEV_KEY } from '../../../tools/local-services.js';

let child: ChildProcess;
let output = '';
let api = '';
let origin = '';
let blobEndpoint = '';
let eventHubsPort = 0;
let slack: FakeSlack;
const ports: number[] = [];

const json = async (response: Response) => (await response.json()) as Record<string, unknown>;
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}.\n${output.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const isOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      resolve(false);
    });
  });

const keysOf = new Map<string, string>();
const send = (deviceId: string, body: unknown, properties: Record<string, string> = {}) =>
  post(`${origin}/devices/${deviceId}/messages/events`, body, {
    authorization: createSasToken(
      `localhost/devices/${deviceId}`,
      keysOf.get(deviceId) ?? '',
      Math.floor(Date.now() / 1000) + 600,
    ),
    ...Object.fromEntries(Object.entries(properties).map(([k, v]) => [`iothub-app-${k}`, v])),
  });

beforeAll(async () => {
  // npm start runs the build first (when a source is newer than dist/); do the same here.
  execFileSync(process.execPath, ['tools/build-if-stale.js'], { stdio: 'ignore' });
  slack = await startFakeSlack();
  child = spawn(
    process.execPath,
    [
      'dist/tools/start-local.js',
      '--in-memory',
      '--embedded',
      ...[
        '--http-port',
        '--blob-port',
        '--queue-port',
        '--table-port',
        '--cosmos-port',
        '--eventhubs-port',
      ].flatMap((flag) => [flag, '0']),
    ],
    { env: { ...process.env, SlackWebhookUrl: slack.url, Alerts__CooldownMinutes: '0' }, stdio: 'pipe' },
  );
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await until('the API', () => Promise.resolve(/API base URL\s+(\S+)/.exec(output)?.[1]), 60_000);
  api = /API base URL\s+(\S+)/.exec(output)?.[1] ?? '';
  origin = new URL(api).origin;
  blobEndpoint = /Azurite Blob\s+(\S+)/.exec(output)?.[1] ?? '';
  for (const m of output.matchAll(/(?:Azurite \w+|Cosmos DB)\s+https?:\/\/127\.0\.0\.1:(\d+)/g))
    ports.push(Number(m[1]));
  eventHubsPort = Number(/Event Hubs\s+amqp:\/\/localhost:(\d+)/.exec(output)?.[1] ?? 0);
  ports.push(eventHubsPort);
  ports.push(Number(new URL(api).port));
}, 120_000);

afterAll(async () => {
  if (child.exitCode === null) child.kill('SIGTERM');
  await slack.close();
});

describe('npm start on a machine without Core Tools (embedded local runtime), over HTTP only', () => {
  it('prints the health of every dependency in its banner once ready, and serves GET /api/health', async () => {
    expect(output).toMatch(
      /health\s+ok \(cosmos ok \d+ ms, blob ok \d+ ms, identityStore ok \d+ ms, slack ok \d+ ms\)/,
    );
    const response = await fetch(`${api}/health`);
    expect(response.status).toBe(200);
    expect(await json(response)).toMatchObject({ status: 'ok' });
  });

  it('registers devices, ingests telemetry through the gateway with SAS tokens, and serves their state', async () => {
    for (const id of ['e2e-1', 'e2e-2']) {
      const response = await post(`${api}/devices`, { id, metadata: { site: 'lab' } });
      expect(response.status).toBe(201);
      keysOf.set(id, ((await json(response)).keys as { primaryKey: string }).primaryKey);
    }
    expect(
      (await send('e2e-1', { temperature: 21.5, humidity: 40 }, { 'stream-id': 'telemetry' })).status,
    ).toBe(204);
    const state = await until('state', async () => {
      const r = await fetch(`${api}/devices/e2e-1/state`);
      return r.status === 200 ? json(r) : undefined;
    });
    expect(state.telemetry).toMatchObject({ temperature: { value: 21.5 }, humidity: { value: 40 } });
  });

  it('archives the raw message in Azurite', async () => {
    // Azurite's Blob REST API with its documented development account (containers are private).
    const container = new BlobServiceClient(
      blobEndpoint,
      new StorageSharedKeyCredential('devstoreaccount1', AZURITE_DEV_KEY),
    ).getContainerClient('telemetry-raw');
    const names = await until('an archive blob', async () => {
      const found: string[] = [];
      if (!(await container.exists())) return undefined;
      for await (const blob of container.listBlobsFlat()) found.push(blob.name);
      return found.length > 0 ? found : undefined;
    });
    expect(names[0]).toMatch(/^telemetry\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/\d+-\d+-\d+\.jsonl$/);
    const lines = (await container.getBlobClient(names[0] ?? '').downloadToBuffer()).toString('utf8');
    expect(lines).toContain('"deviceId":"e2e-1"');
  });

  it('carried the message over AMQP: the endpoint holds it with IoT Hub annotations, as the archive envelope says', async () => {
    const container = new BlobServiceClient(
      blobEndpoint,
      new StorageSharedKeyCredential('devstoreaccount1', AZURITE_DEV_KEY),
    ).getContainerClient('telemetry-raw');
    let line: Record<string, unknown> | undefined;
    for await (const blob of container.listBlobsFlat()) {
      const text = (await container.getBlobClient(blob.name).downloadToBuffer()).toString('utf8');
      for (const l of text.split('\n'))
        if (l.includes('"deviceId":"e2e-1"')) line ??= JSON.parse(l) as Record<string, unknown>;
    }
    expect(line).toBeDefined();
    // A consumer group of its own ($Default) reads the event back from the endpoint's IoT Hub events hub.
    const consumer = new EventHubConsumerClient(
      '$Default',
      localEventHubsConnectionString(eventHubsPort),
      'iothub-events',
    );
    try {
      const event = await new Promise<ReceivedEventData>((resolve, reject) => {
        consumer.subscribe(
          String(line?.partitionId),
          {
            processEvents: async (events) => {
              if (events[0]) resolve(events[0]);
              return Promise.resolve();
            },
            processError: async (error) => {
              reject(error);
              return Promise.resolve();
            },
          },
          {
            startPosition: { sequenceNumber: Number(line?.sequenceNumber), isInclusive: true },
            maxWaitTimeInSeconds: 1,
            skipParsingBodyAsJson: true,
          },
        );
      });
      expect(event.sequenceNumber).toBe(line?.sequenceNumber);
      expect(event.offset).toBe(line?.offset);
      expect(event.enqueuedTimeUtc.toISOString()).toBe(line?.enqueuedTime);
      expect(event.properties).toEqual({ 'stream-id': 'telemetry' });
      expect(event.systemProperties).toMatchObject({
        'iothub-connection-device-id': 'e2e-1',
        'iothub-message-source': 'Telemetry',
      });
      expect(JSON.parse((event.body as Buffer).toString('utf8'))).toEqual({
        temperature: 21.5,
        humidity: 40,
      });
    } finally {
      await consumer.close();
    }
  });

  it('refuses a bad token (401) and, once the device is deactivated, its next message (403)', async () => {
    const forged = await post(
      `${origin}/devices/e2e-2/messages/events`,
      { temperature: 1 },
      {
        authorization: createSasToken(
          'localhost/devices/e2e-2',
          Buffer.alloc(32).toString('base64'),
          9_999_999_999,
        ),
      },
    );
    expect(forged.status).toBe(401);
    expect((await post(`${api}/devices/e2e-2/deactivate`, {})).status).toBe(200);
    expect((await send('e2e-2', { temperature: 22 })).status).toBe(403);
  });

  it('turns three readings above 40 °C into an alarm and a Slack message', async () => {
    for (const temperature of [45, 46, 47]) expect((await send('e2e-1', { temperature })).status).toBe(204);
    const alarms = await until('an alarm', async () => {
      const body = await json(await fetch(`${api}/alarms?deviceId=e2e-1`));
      const items = body.items as { rule: string }[];
      return items.length > 0 ? items : undefined;
    });
    expect(alarms[0]).toMatchObject({ deviceId: 'e2e-1', rule: 'temperature-high', status: 'open' });
    const message = await until('a Slack message', () =>
      Promise.resolve(slack.requests.find((r) => JSON.stringify(r.body).includes('e2e-1'))),
    );
    expect(JSON.stringify(message.body)).toContain('temperature-high');
    // The link follows this run's HTTP port (PublicApiBaseUrl is not set explicitly).
    expect(JSON.stringify(message.body)).toContain(`${api}/devices/e2e-1/state`);
  });

  it('runs a bulk provisioning workflow to completion through its status route, without the system key', async () => {
    const response = await post(
      `${api}/provisioning/bulk`,
      Array.from({ length: 120 }, (_, i) => ({ id: `e2e-bulk-${i}` })),
    );
    expect(response.status).toBe(202);
    const text = await response.text();
    // Durable's management URLs carry the extension's system key (here `code=local`): never handed out.
    expect(text).not.toMatch(/code=|runtime\/webhooks/);
    const { statusUri } = JSON.parse(text) as { statusUri: string };
    expect(response.headers.get('location')).toBe(statusUri);
    const status = await until('the bulk workflow', async () => {
      const body = await json(await fetch(`${origin}${statusUri}`));
      return body.runtimeStatus === 'Completed' || body.runtimeStatus === 'Failed' ? body : undefined;
    });
    expect(status.output).toMatchObject({ total: 120, created: 120, failed: 0 });
    const results = await fetch(`${api}/provisioning/${String(status.instanceId)}/results`);
    expect(((await results.json()) as unknown[]).length).toBe(120);
  });

  it('runs a twin-update job to completion', async () => {
    const response = await post(`${api}/jobs`, {
      type: 'twinUpdate',
      target: { deviceIds: ['e2e-bulk-0', 'e2e-bulk-1'] },
      twinPatch: { telemetryIntervalSeconds: 15 },
    });
    expect(response.status).toBe(202);
    const { id } = (await json(response)) as { id: string };
    const job = await until('the job', async () => {
      const body = await json(await fetch(`${api}/jobs/${id}`));
      return body.status === 'completed' || body.status === 'failed' ? body : undefined;
    });
    expect(job.runs).toEqual([
      expect.objectContaining({
        statistics: expect.objectContaining({ deviceCount: 2, succeededCount: 2 }) as unknown,
      }),
    ]);
    expect(await json(await fetch(`${api}/devices/e2e-bulk-1/twin`))).toMatchObject({
      desired: { telemetryIntervalSeconds: 15 },
    });
  });

  it('delivers a direct-method job to a connected device and reports an unconnected one as not online', async () => {
    const auth = () => ({
      authorization: createSasToken(
        'localhost/devices/e2e-1',
        keysOf.get('e2e-1') ?? '',
        Math.floor(Date.now() / 1000) + 600,
      ),
    });
    // e2e-1 connects (long poll) and answers the first request it gets.
    const device = (async () => {
      const poll = await fetch(`${origin}/devices/e2e-1/methods/pending?waitSeconds=20`, { headers: auth() });
      const request = (await poll.json()) as { requestId: string; name: string; payload: unknown };
      const answer = await post(
        `${origin}/devices/e2e-1/methods/${request.requestId}/response`,
        { status: 200, payload: { rebooted: true } },
        auth(),
      );
      return { request, answered: answer.status };
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const response = await post(`${api}/jobs`, {
      type: 'deviceMethod',
      target: { deviceIds: ['e2e-1', 'e2e-bulk-5'] },
      method: { name: 'reboot', payload: { delaySeconds: 1 }, responseTimeoutInSeconds: 10 },
    });
    const { id } = (await json(response)) as { id: string };
    const job = await until('the method job', async () => {
      const body = await json(await fetch(`${api}/jobs/${id}`));
      return body.status === 'completed' || body.status === 'failed' ? body : undefined;
    });
    expect(await device).toEqual({
      request: expect.objectContaining({ name: 'reboot', payload: { delaySeconds: 1 } }) as unknown,
      answered: 204,
    });
    expect(job.runs).toEqual([
      expect.objectContaining({
        statistics: expect.objectContaining({ deviceCount: 2, succeededCount: 1, failedCount: 1 }) as unknown,
      }),
    ]);
  });

  it('stops everything on SIGTERM and leaves no process or port behind', async () => {
    child.kill('SIGTERM');
    await until('the exit', () => Promise.resolve(child.exitCode ?? undefined));
    for (const port of ports) expect(await isOpen(port), `port ${port}`).toBe(false);
  });
});

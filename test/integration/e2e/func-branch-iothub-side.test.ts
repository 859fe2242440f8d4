/**
 * The local IoT Hub side of `npm start`'s func branch: with a fake `func` on PATH that stays up (as Core Tools
 * would), a device registered through the app's own identity store posts telemetry to the device gateway's
 * port; a plain EventHubConsumerClient reads it on iothub-events with IoT Hub's annotations, and three hot
 * readings give an anomaly record on the anomalies hub — what `func start` would consume through the host.
 */
import { EventHubConsumerClient, earliestEventPosition, type ReceivedEventData } from '@azure/event-hubs';
import { existsSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import type { IdentityStore } from '../../../src/provisioning/ports.js';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import {
  FREE_PORTS,
  buildIfStale,
  startLocalProcess,
  until,
  type StartedProcess,
} from '../../../tools/start-local-process.js';
import { appSettingsOf, fakeFuncWorkDir, type FuncRecord } from './fake-func.js';

let run: StartedProcess;
let record: FuncRecord;
let settings: Record<string, string>;
let identities: IdentityStore;
let gateway = '';
let hostName = '';
/** Every device key this file made (none may be printed). */
const keys: string[] = [];
const register = async (deviceId: string) => {
  const identity = await identities.create(deviceId);
  keys.push(identity.keys.primaryKey, identity.keys.secondaryKey);
  return identity;
};

const isOpen = (port: number) =>
  new Promise<boolean>((done) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => {
      done(false);
    });
  });

const token = (deviceId: string, key: string) =>
  createSasToken(`${hostName}/devices/${deviceId}`, key, Math.floor(Date.now() / 1000) + 600);

const post = (deviceId: string, key: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${gateway}/devices/${encodeURIComponent(deviceId)}/messages/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: token(deviceId, key), ...headers },
    body: JSON.stringify(body),
  });

/** Reads every partition of `hub` ($Default, from the start) until `found` picks an event (bounded: 30 s). */
async function readUntil(
  hub: string,
  found: (event: ReceivedEventData) => boolean,
): Promise<ReceivedEventData | undefined> {
  const consumer = new EventHubConsumerClient('$Default', settings.IotHubEventsConnection ?? '', hub);
  let hit: ReceivedEventData | undefined;
  const subscription = consumer.subscribe(
    {
      processEvents: async (events) => {
        hit ??= events.find(found);
        return Promise.resolve();
      },
      processError: async () => Promise.resolve(),
    },
    { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1, skipParsingBodyAsJson: true },
  );
  try {
    return await until(`an event on ${hub}`, () => hit, run.output, 30_000);
  } finally {
    await subscription.close();
    await consumer.close();
  }
}

const bodyOf = (event: ReceivedEventData) =>
  JSON.parse((event.body as Buffer).toString('utf8')) as Record<string, unknown>;

beforeAll(async () => {
  buildIfStale();
  const { workDir, recordFile, env } = fakeFuncWorkDir();
  run = startLocalProcess(['--in-memory', ...FREE_PORTS, '--eventhubs-port', '0', '--gateway-port', '0'], {
    cwd: workDir,
    script: resolve('dist/tools/start-local.js'),
    env,
  });
  await until('fake func to start', () => (existsSync(recordFile) ? true : undefined), run.output, 120_000);
  record = JSON.parse(readFileSync(recordFile, 'utf8')) as FuncRecord;
  gateway = await until(
    'the gateway in the banner',
    () =>
      /device gateway\s+(http:\/\/localhost:\d+)\/devices\/\{id\}\/messages\/events/.exec(run.output())?.[1],
    run.output,
  );
  settings = appSettingsOf(record);
  const config = loadConfig(settings);
  hostName = config.provisioning.hostName;
  identities = createAdapters(config).identities;
}, 180_000);

afterAll(async () => {
  if (run.child.exitCode === null && run.child.signalCode === null) {
    run.signalGroup('SIGINT');
    await run.exited;
  }
});

describe('npm start with Core Tools on PATH: the local IoT Hub side beside func start', () => {
  it('puts the gateway on its own port, not the API port func listens on, and says direct methods need the embedded runtime', () => {
    const apiPort = /API base URL\s+http:\/\/localhost:(\d+)\/api \(func start\)/.exec(run.output())?.[1];
    expect(apiPort).toBeDefined();
    expect(new URL(gateway).port).not.toBe(apiPort);
    expect(run.output()).toMatch(/direct methods\s+to local devices need the embedded runtime/);
  });

  it("publishes a registered device's telemetry to iothub-events with IoT Hub's annotations and properties", async () => {
    const device = await register('side-1');
    const response = await post(
      'side-1',
      device.keys.primaryKey,
      { temperature: 21.5, marker: 'side-1-a' },
      { 'iothub-app-stream-id': 'telemetry', 'iothub-messageid': 'm-side-1-a' },
    );
    expect(response.status).toBe(204);
    const event = await readUntil('iothub-events', (e) => bodyOf(e).marker === 'side-1-a');
    expect(event).toBeDefined();
    expect(event?.partitionKey).toBe('side-1');
    expect(event?.messageId).toBe('m-side-1-a');
    expect(event?.contentType).toBe('application/json');
    expect(event?.properties).toEqual({ 'stream-id': 'telemetry' });
    expect(event?.systemProperties).toMatchObject({
      'iothub-connection-device-id': 'side-1',
      'iothub-message-source': 'Telemetry',
      'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
    });
    const stamped = String(event?.systemProperties?.['iothub-enqueuedtime']);
    expect(Number.isFinite(Date.parse(stamped))).toBe(true);
  });

  it('refuses a wrong key, an unknown device and a disabled one, read live from the same store', async () => {
    const device = await register('side-2');
    const wrong = Buffer.alloc(32, 7).toString('base64');
    expect((await post('side-2', wrong, { temperature: 1 })).status).toBe(401);
    expect((await post('side-unknown', device.keys.primaryKey, { temperature: 1 })).status).toBe(401);
    await identities.setStatus('side-2', 'disabled');
    expect((await post('side-2', device.keys.primaryKey, { temperature: 1 })).status).toBe(403);
    await identities.setStatus('side-2', 'enabled');
    expect((await post('side-2', device.keys.primaryKey, { temperature: 1 })).status).toBe(204);
  });

  it('answers direct-method polls 501 at once, saying why (the app sends them from func’s process)', async () => {
    const device = await register('side-3');
    const response = await fetch(`${gateway}/devices/side-3/methods/pending?waitSeconds=30`, {
      headers: { authorization: token('side-3', device.keys.primaryKey) },
    });
    expect(response.status).toBe(501);
    expect(JSON.stringify(await response.json())).toContain('embedded runtime');
  });

  it('turns three readings above 40 °C into one anomaly record on the anomalies hub', async () => {
    const device = await register('side-hot');
    const start = Date.now();
    for (const [i, temperature] of [41, 42.5, 44].entries()) {
      const ts = new Date(start + i * 1000).toISOString();
      expect((await post('side-hot', device.keys.primaryKey, { temperature, ts })).status).toBe(204);
    }
    const anomaly = await readUntil('anomalies', (e) => bodyOf(e).deviceId === 'side-hot');
    expect(anomaly?.partitionKey).toBe('side-hot');
    expect(anomaly && bodyOf(anomaly)).toMatchObject({
      deviceId: 'side-hot',
      rule: 'temperature-high',
      metric: 'temperature',
      threshold: 40,
      value: 44,
    });
  });

  it('stops the gateway and the rule evaluator before func and the services, and never prints a device key', async () => {
    const gatewayPort = Number(new URL(gateway).port);
    // SIGTERM to npm start alone (a service manager's stop): npm start forwards it to func in its turn.
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const output = run.output();
    const at = (text: string) => output.indexOf(text);
    const order = [
      'device gateway stopped accepting messages',
      'rule evaluator stopped',
      'Event Hubs producers of the gateway and the rule evaluator closed',
      'fake func: stopping',
      '  func start exited',
      'stopped Azurite',
    ].map(at);
    expect(
      order.every((index) => index > -1),
      output.slice(-3000),
    ).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(await isOpen(gatewayPort)).toBe(false);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(output).not.toContain(key);
  });
});

describe('npm start with Core Tools on PATH, the gateway port taken', () => {
  it('stops with a message naming --gateway-port, stops the services, and never starts func', async () => {
    const holder = createServer();
    await new Promise<void>((done) => holder.listen(0, '127.0.0.1', done));
    const taken = (holder.address() as AddressInfo).port;
    try {
      const { workDir, recordFile, env } = fakeFuncWorkDir();
      const failed = startLocalProcess(
        ['--in-memory', ...FREE_PORTS, '--eventhubs-port', '0', '--gateway-port', String(taken)],
        { cwd: workDir, script: resolve('dist/tools/start-local.js'), env },
      );
      expect(await failed.exited).toBe(1);
      expect(failed.output()).toContain('the device gateway did not start');
      expect(failed.output()).toContain('--gateway-port');
      // The services it had started are stopped (their ports are free again).
      const ports = [
        ...failed.output().matchAll(/(?:Azurite \w+|Cosmos DB)\s+https?:\/\/127\.0\.0\.1:(\d+)/g),
      ];
      ports.push(...failed.output().matchAll(/Event Hubs\s+amqp:\/\/localhost:(\d+)/g));
      expect(ports).toHaveLength(5);
      for (const m of ports) expect(await isOpen(Number(m[1]))).toBe(false);
      expect(existsSync(recordFile)).toBe(false);
    } finally {
      await new Promise((done) => holder.close(done));
    }
  }, 120_000);
});

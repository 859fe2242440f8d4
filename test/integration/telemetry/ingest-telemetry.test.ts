import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { CosmosClient } from '@azure/cosmos';
import { Agent } from 'node:https';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AppConfig } from '../../../src/config.js';
import { withProblemDetails } from '../../../src/http/problem.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { toStorageKey } from '../../../src/infra/storage-keys.js';
import { makeGetDeviceState } from '../../../src/telemetry/get-device-state.js';
import { makeIngestTelemetry } from '../../../src/telemetry/ingest-telemetry.js';
import type { DeviceState } from '../../../src/telemetry/last-known-values.js';
import { readContainer, readLines } from '../../support/blobs.js';
import { iotHubBatch, testContext, type TestMessage } from '../../support/iothub-batch.js';
import { testConfig } from '../../support/local-env.js';

/** A fresh app wired to its own database and containers, as the composition root wires it. */
function newApp(overrides: Record<string, string> = {}) {
  const config = testConfig(overrides);
  const adapters = createAdapters(config);
  const ingest = makeIngestTelemetry({ ...adapters, options: config.ingest });
  const run = (
    messages: readonly TestMessage[],
    partitionId = '0',
    retry?: { retryCount: number; maxRetryCount: number },
  ) => {
    const { bodies, triggerMetadata } = iotHubBatch(messages, partitionId);
    return ingest(bodies, testContext(triggerMetadata, retry));
  };
  return { config, adapters, ingest, run };
}

/** The raw Cosmos document, system properties included, to prove replays write nothing. */
async function rawDocument(
  config: AppConfig,
  deviceId: string,
): Promise<Record<string, unknown> | undefined> {
  const client = new CosmosClient({
    endpoint: config.cosmos.endpoint,
    key: config.cosmos.key ?? '',
    agent: new Agent({ rejectUnauthorized: false }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  const id = toStorageKey(deviceId);
  const { resource } = await client
    .database(config.cosmos.databaseName)
    .container(config.cosmos.stateContainerName)
    .item(id, id)
    .read<Record<string, unknown>>();
  return resource;
}

const connection = (config: AppConfig) =>
  'connectionString' in config.storage ? config.storage.connectionString : '';

/** Messages from `devices` devices, each a key frame then differential records, seq 1..n on one partition. */
function fleetMessages(devices: number, perDevice: number, firstSeq = 1): TestMessage[] {
  const out: TestMessage[] = [];
  let seq = firstSeq;
  for (let round = 0; round < perDevice; round++) {
    for (let d = 0; d < devices; d++) {
      const body: Record<string, unknown> =
        round === 0
          ? {
              temperature: 20 + d,
              humidity: 40 + d,
              firmware: '1.0.0',
              ts: new Date(Date.UTC(2026, 10, 23, 9, 0, round)).toISOString(),
            }
          : {
              temperature: 20 + d + round / 10,
              ts: new Date(Date.UTC(2026, 10, 23, 9, 0, round)).toISOString(),
            };
      out.push({ deviceId: `dev-${d}`, sequenceNumber: seq++, body });
    }
  }
  return out;
}

function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const chunk = <T>(items: readonly T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

describe('ingestTelemetry against Azurite and the local Cosmos DB server', () => {
  describe('replays', () => {
    const app = newApp();
    const batch = fleetMessages(5, 4);

    it('a batch replayed 3 times gives identical state and the same set of blobs', async () => {
      const first = await app.run(batch);
      expect(first.stateWrites).toBe(5);
      const docsAfterFirst = await Promise.all(
        [0, 1, 2, 3, 4].map((d) => rawDocument(app.config, `dev-${d}`)),
      );
      const blobsAfterFirst = await readContainer(
        connection(app.config),
        app.config.storage.rawArchiveContainer,
      );

      for (let replay = 0; replay < 3; replay++) {
        const summary = await app.run(batch);
        expect(summary.stateWrites).toBe(0);
      }
      const docsAfterReplays = await Promise.all(
        [0, 1, 2, 3, 4].map((d) => rawDocument(app.config, `dev-${d}`)),
      );
      // Same _etag and _ts: a replay changes nothing, so it writes nothing.
      expect(docsAfterReplays).toEqual(docsAfterFirst);
      expect(await readContainer(connection(app.config), app.config.storage.rawArchiveContainer)).toEqual(
        blobsAfterFirst,
      );
      expect(blobsAfterFirst.size).toBe(1);
      const state = docsAfterFirst[2] as unknown as DeviceState;
      expect(state.counts).toEqual({ messages: 4, records: { telemetry: 4 } });
      expect(state.telemetry.humidity?.value).toBe(42);
      expect(state.telemetry.temperature?.value).toBeCloseTo(22.3);
    });
  });

  it('a replay with other batch boundaries stores every record (never hidden behind an existing blob)', async () => {
    const app = newApp();
    const messages = fleetMessages(2, 50, 100); // seq 100..199
    await app.run(messages.slice(0, 51)); // an attempt that got 100..150, then lost its checkpoint
    await app.run(messages); // the next owner gets 100..199
    const archived = await readLines(connection(app.config), app.config.storage.rawArchiveContainer);
    const seqs = new Set(archived.map((l) => l.sequenceNumber));
    expect(seqs.size).toBe(100);
    const blobs = await readContainer(connection(app.config), app.config.storage.rawArchiveContainer);
    expect([...blobs.keys()].sort()).toEqual([
      'telemetry/2026/11/23/10/0-100-150.jsonl',
      'telemetry/2026/11/23/10/0-100-199.jsonl',
    ]);
  });

  it('caps the fields kept per state section, and keeps the rest in the archive', async () => {
    const app = newApp({ Ingest__MaxStateFieldsPerSection: '5' });
    const body = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, i]));
    const first = await app.run([{ deviceId: 'chatty', sequenceNumber: 1, body }]);
    expect(first.droppedStateFields).toBe(3);
    const state = await app.adapters.stateStore.get('chatty');
    expect(Object.keys(state?.telemetry ?? {})).toHaveLength(5);
    // Known fields still update; the archive has everything.
    await app.run([{ deviceId: 'chatty', sequenceNumber: 2, body: { k0: 100, k7: 7 } }]);
    expect((await app.adapters.stateStore.get('chatty'))?.telemetry.k0?.value).toBe(100);
    const archived = await readLines(connection(app.config), app.config.storage.rawArchiveContainer);
    expect(archived[0]?.body).toEqual(body);
  });

  describe('ordering', () => {
    const messages = fleetMessages(6, 5);

    async function finalStates(app: ReturnType<typeof newApp>): Promise<DeviceState[]> {
      return Promise.all(
        [0, 1, 2, 3, 4, 5].map(async (d) => (await app.adapters.stateStore.get(`dev-${d}`)) as DeviceState),
      );
    }

    it('the same records shuffled within each batch give the same final state', async () => {
      const ordered = newApp();
      for (const b of chunk(messages, 10)) await ordered.run(b);
      const shuffled = newApp();
      for (const [i, b] of chunk(messages, 10).entries()) await shuffled.run(shuffle(b, i + 7));
      expect(await finalStates(shuffled)).toEqual(await finalStates(ordered));
    });

    it('the same records shuffled across batches give the same last-known values', async () => {
      const ordered = newApp();
      for (const b of chunk(messages, 10)) await ordered.run(b);
      const shuffled = newApp();
      for (const b of chunk(shuffle(messages, 99), 7)) await shuffled.run(b);
      const project = (s: DeviceState) => ({ ...s, counts: undefined, sequenceNumbers: undefined });
      expect((await finalStates(shuffled)).map(project)).toEqual((await finalStates(ordered)).map(project));
    });

    it('an older record arriving later never regresses a field', async () => {
      const app = newApp();
      await app.run([
        { deviceId: 'd1', sequenceNumber: 10, body: { temp: 30, ts: '2026-11-23T10:00:00+00:00' } },
      ]);
      await app.run([
        { deviceId: 'd1', sequenceNumber: 11, body: { temp: 10, ts: '2026-11-23T09:00:00+0000' } },
      ]);
      const state = await app.adapters.stateStore.get('d1');
      expect(state?.telemetry.temp).toMatchObject({
        value: 30,
        timestamp: '2026-11-23T10:00:00.000Z',
        timeSource: 'device',
      });
      expect(state?.counts.messages).toBe(2);
    });
  });

  it('differential records merge into the last key frame', async () => {
    const app = newApp();
    await app.run([
      { deviceId: 'd1', sequenceNumber: 1, body: { temp: 20, hum: 50, fw: '1.0', ts: 1795424400 } },
      { deviceId: 'd1', sequenceNumber: 2, body: { temp: 21, ts: 1795424460000 } },
    ]);
    await app.run([{ deviceId: 'd1', sequenceNumber: 3, body: { hum: 55, time: '2026-11-23T09:02:00Z' } }]);
    const state = await app.adapters.stateStore.get('d1');
    expect(state?.telemetry.temp?.value).toBe(21);
    expect(state?.telemetry.hum?.value).toBe(55);
    expect(state?.telemetry.fw).toMatchObject({
      value: '1.0',
      timestamp: '2026-11-23T09:00:00.000Z',
      sequenceNumber: 1,
    });
    expect(state?.telemetry.ts).toBeUndefined();
  });

  it('falls back to the enqueued time, and says so, when the device time is missing or implausible', async () => {
    const app = newApp();
    await app.run([
      { deviceId: 'd1', sequenceNumber: 1, enqueuedTime: '2026-11-23T10:00:00.000Z', body: { a: 1 } },
      {
        deviceId: 'd1',
        sequenceNumber: 2,
        enqueuedTime: '2026-11-23T10:00:01.000Z',
        body: { b: 1, ts: '2030-01-01T00:00:00Z' },
      },
      { deviceId: 'd1', sequenceNumber: 3, enqueuedTime: '2026-11-23T10:00:02.000Z', body: { c: 1, ts: 0 } },
    ]);
    const state = await app.adapters.stateStore.get('d1');
    expect(state?.telemetry.a).toMatchObject({
      timestamp: '2026-11-23T10:00:00.000Z',
      timeSource: 'enqueued',
    });
    expect(state?.telemetry.b).toMatchObject({
      timestamp: '2026-11-23T10:00:01.000Z',
      timeSource: 'enqueued',
    });
    expect(state?.telemetry.c).toMatchObject({
      timestamp: '2026-11-23T10:00:02.000Z',
      timeSource: 'enqueued',
    });
  });

  it('segregates streams: state sections for known streams, archive (and a count) for any other', async () => {
    const app = newApp();
    const summary = await app.run([
      { deviceId: 'd1', sequenceNumber: 1, body: { temp: 1 } },
      {
        deviceId: 'd1',
        sequenceNumber: 2,
        body: { battery: 80 },
        properties: { 'stream-id': 'diagnostics' },
      },
      { deviceId: 'd1', sequenceNumber: 3, body: { location: 'hall' }, properties: { subject: 'metadata' } },
      { deviceId: 'd1', sequenceNumber: 4, body: { _subject: 'Alarms', _version: 2, code: 'E1' } },
      { deviceId: 'd1', sequenceNumber: 5, body: { _subject: 'diagnostics', _version: '1.1', rssi: -70 } },
    ]);
    expect(summary.otherStreams).toEqual({ alarms: 1 });
    const state = await app.adapters.stateStore.get('d1');
    expect(Object.keys(state?.telemetry ?? {})).toEqual(['temp']);
    expect(Object.keys(state?.diagnostics ?? {}).sort()).toEqual(['battery', 'rssi']);
    expect(state?.diagnostics.rssi?.version).toBe('1.1');
    expect(state?.metadata.location?.value).toBe('hall');
    expect(state?.counts.records).toEqual({ telemetry: 1, diagnostics: 2, metadata: 1, alarms: 1 });

    const blobs = await readContainer(connection(app.config), app.config.storage.rawArchiveContainer);
    expect([...blobs.keys()].sort()).toEqual([
      'alarms/2026/11/23/10/0-4-4.jsonl',
      'diagnostics/2026/11/23/10/0-2-5.jsonl',
      'metadata/2026/11/23/10/0-3-3.jsonl',
      'telemetry/2026/11/23/10/0-1-1.jsonl',
    ]);
    const alarm = JSON.parse(blobs.get('alarms/2026/11/23/10/0-4-4.jsonl') ?? '') as Record<string, unknown>;
    expect(alarm).toMatchObject({
      deviceId: 'd1',
      sequenceNumber: 4,
      stream: 'alarms',
      body: { _version: 2, code: 'E1' },
    });
  });

  it('sends bad records to dead letters with a reason and lets the rest of the batch through', async () => {
    const app = newApp({ Ingest__MaxRecordBytes: '200', Ingest__MaxDepth: '3', Ingest__MaxFields: '20' });
    const deep = { a: { b: { c: { d: 1 } } } };
    const wide = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`f${i}`, i]));
    const summary = await app.run([
      { deviceId: 'd1', sequenceNumber: 1, body: '{"temp": 1,' },
      { deviceId: 'd1', sequenceNumber: 2, body: Buffer.from([0xff, 0xfe, 0x00, 0x01]) },
      { sequenceNumber: 3, body: { temp: 99 } },
      { deviceId: 'd1', sequenceNumber: 4, body: 42 },
      { deviceId: 'd1', sequenceNumber: 5, body: JSON.stringify({ blob: 'x'.repeat(300) }) },
      { deviceId: 'd1', sequenceNumber: 6, body: { blob: 'y'.repeat(300) } },
      { deviceId: 'd1', sequenceNumber: 7, body: deep },
      { deviceId: 'd1', sequenceNumber: 8, body: wide },
      { deviceId: 'd1', sequenceNumber: 9, body: [{ temp: 5 }, 'oops'] },
      { deviceId: 'd1', sequenceNumber: 10, body: { ok: true } },
    ]);
    expect(summary.deadLetters).toBe(9);
    const lines = await readLines(connection(app.config), app.config.storage.deadLetterContainer);
    const reasons = lines.map((l) => [l.sequenceNumber, l.reason]);
    expect(reasons).toEqual([
      [1, 'invalid-json'],
      [2, 'invalid-json'],
      [3, 'no-identity'],
      [4, 'not-an-object'],
      [5, 'too-large'],
      [6, 'too-large'],
      [7, 'too-deep'],
      [8, 'too-many-fields'],
      [9, 'not-an-object'],
    ]);
    expect(lines[0]?.bodyText).toBe('{"temp": 1,');
    expect(lines[1]?.bodyBase64).toBe(Buffer.from([0xff, 0xfe, 0x00, 0x01]).toString('base64'));
    expect(lines[2]?.deviceId).toBeUndefined();
    expect(lines[2]?.body).toEqual({ temp: 99 });
    const dead = await readContainer(connection(app.config), app.config.storage.deadLetterContainer);
    expect([...dead.keys()]).toEqual([
      expect.stringMatching(/^2026\/11\/23\/10\/0-1-9-h[0-9a-f]{16}\.jsonl$/),
    ]);

    const state = await app.adapters.stateStore.get('d1');
    expect(state?.telemetry.temp?.value).toBe(5);
    expect(state?.telemetry.ok?.value).toBe(true);
  });

  it('concurrent batches for one device (two partitions, separate instances) lose nothing', async () => {
    const app = newApp();
    // Eight writers, each with its own SDK clients as separate function instances would have, each on its own
    // partition (as after a partition rebalance or with the same id on two hubs), racing on one document.
    const writers = Array.from({ length: 8 }, (_, w) => {
      const adapters = createAdapters(app.config);
      const ingest = makeIngestTelemetry({ ...adapters, options: app.config.ingest });
      const { bodies, triggerMetadata } = iotHubBatch(
        [
          { deviceId: 'shared', sequenceNumber: 100, body: { [`field${w}`]: w } },
          { deviceId: `other-${w}`, sequenceNumber: 101, body: { x: w } },
          { deviceId: 'shared', sequenceNumber: 102, body: { [`late${w}`]: w } },
        ],
        String(w),
      );
      return () => ingest(bodies, testContext(triggerMetadata));
    });
    await Promise.all(writers.map((write) => write()));
    const state = await app.adapters.stateStore.get('shared');
    const expected = Array.from({ length: 8 }, (_, w) => [`field${w}`, `late${w}`])
      .flat()
      .sort();
    expect(Object.keys(state?.telemetry ?? {}).sort()).toEqual(expected);
    expect(state?.counts).toEqual({ messages: 16, records: { telemetry: 16 } });
    expect(Object.values(state?.sequenceNumbers ?? {})).toEqual(Array.from({ length: 8 }, () => 102));
  });

  it('an instance whose cached state went stale re-reads instead of overwriting newer state', async () => {
    const app = newApp();
    const other = makeIngestTelemetry({ ...createAdapters(app.config), options: app.config.ingest });
    const runOn = (ingest: typeof other, seq: number, body: Record<string, unknown>) => {
      const { bodies, triggerMetadata } = iotHubBatch([{ deviceId: 'd1', sequenceNumber: seq, body }]);
      return ingest(bodies, testContext(triggerMetadata));
    };
    await runOn(app.ingest, 1, { a: 1 }); // instance 1 caches its write
    await runOn(other, 2, { b: 2 }); // instance 2 writes behind its back
    const summary = await runOn(app.ingest, 3, { c: 3 }); // instance 1 merges into a stale cache: 412, re-read
    expect(summary.stateWrites).toBe(1);
    const state = await app.adapters.stateStore.get('d1');
    expect(Object.keys(state?.telemetry ?? {}).sort()).toEqual(['a', 'b', 'c']);
    expect(state?.counts.messages).toBe(3);
    // A replay against the stale-then-refreshed cache changes nothing.
    expect((await runOn(app.ingest, 2, { b: 2 })).stateWrites).toBe(0);
  });

  it('cannot be polluted or overwritten by hostile field names', async () => {
    const app = newApp();
    const body = JSON.parse(
      '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}, "prototype": 1,' +
        ' "id": "other-device", "_etag": "x", "_rid": "x", "_ts": 1, "deviceId": "evil",' +
        ' "a/b": 1, "c~d": 2, "e.f": 3, "g h": 4}',
    ) as Record<string, unknown>;
    await app.run([{ deviceId: 'victim#1?', sequenceNumber: 1, body }]);
    await app.run([{ deviceId: 'victim#1?', sequenceNumber: 2, body: JSON.stringify(body) }]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    const state = await app.adapters.stateStore.get('victim#1?');
    expect(state?.deviceId).toBe('victim#1?');
    const names = Object.keys(state?.telemetry ?? {}).sort();
    expect(names).toEqual(
      [
        '__proto__',
        '_etag',
        '_rid',
        '_ts',
        'a/b',
        'c~d',
        'constructor',
        'deviceId',
        'e.f',
        'g h',
        'id',
        'prototype',
      ].sort(),
    );
    expect(Object.hasOwn(state?.telemetry ?? {}, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(state?.telemetry, '__proto__')?.value).toMatchObject({
      value: { polluted: true },
    });
    expect(state?.telemetry['a/b']?.value).toBe(1);
    expect(state?.telemetry['g h']?.value).toBe(4);
    expect(await app.adapters.stateStore.get('other-device')).toBeUndefined();
    const doc = await rawDocument(app.config, 'victim#1?');
    expect(doc?.id).toBe('victim%231%3F');
  });

  it('retries on storage failure, and on the last attempt parks the records whose state failed', async () => {
    // A database that does not exist and must not be created: the real local server answers 404.
    const app = newApp({ CreateResourcesIfMissing: 'false' });
    const { BlobServiceClient } = await import('@azure/storage-blob');
    const blobService = BlobServiceClient.fromConnectionString(connection(app.config));
    await blobService.getContainerClient(app.config.storage.rawArchiveContainer).create();
    await blobService.getContainerClient(app.config.storage.deadLetterContainer).create();
    const batch = [
      { deviceId: 'd1', sequenceNumber: 1, body: { temp: 1 } },
      { deviceId: 'd2', sequenceNumber: 2, body: Buffer.from('{"temp":2}') },
    ];
    await expect(app.run(batch, '3', { retryCount: 1, maxRetryCount: 5 })).rejects.toThrow();
    const summary = await app.run(batch, '3', { retryCount: 5, maxRetryCount: 5 });
    expect(summary.parked).toBe(2);
    const dead = await readContainer(connection(app.config), app.config.storage.deadLetterContainer);
    const [name = ''] = dead.keys();
    expect([...dead.keys()]).toEqual([name]);
    expect(name).toMatch(/^2026\/11\/23\/10\/3-1-2-h[0-9a-f]{16}\.storage-failure\.jsonl$/);
    const lines = await readLines(connection(app.config), app.config.storage.deadLetterContainer);
    expect(lines.map((l) => [l.reason, l.deviceId])).toEqual([
      ['storage-failure', 'd1'],
      ['storage-failure', 'd2'],
    ]);
    // The record's exact text, spliced in as it came (bytes in, the same bytes out).
    expect(dead.get(name)).toContain('"body":{"temp":2}}');
    // Archive came first, so raw data was stored even though state failed.
    const archived = await readLines(connection(app.config), app.config.storage.rawArchiveContainer);
    expect(archived.map((l) => l.deviceId)).toEqual(['d1', 'd2']);
  });

  describe('GET /api/devices/{id}/state', () => {
    let app: ReturnType<typeof newApp>;
    let handler: ReturnType<typeof withProblemDetails>;
    beforeAll(async () => {
      app = newApp();
      handler = withProblemDetails(makeGetDeviceState({ stateStore: app.adapters.stateStore }));
      await app.run([{ deviceId: 'sensor-1', sequenceNumber: 1, body: { temp: 21.5 } }]);
    });
    const get = (id: string) =>
      handler(
        new HttpRequest({
          url: `http://localhost/api/devices/${encodeURIComponent(id)}/state`,
          method: 'GET',
          params: { id },
        }),
        new InvocationContext(),
      );

    it('returns the last-known values', async () => {
      const res = await get('sensor-1');
      expect(res.status).toBe(200);
      expect((res as HttpResponseInit).jsonBody).toMatchObject({
        deviceId: 'sensor-1',
        telemetry: { temp: { value: 21.5 } },
      });
    });

    it('answers 404 as problem+json for an unknown device', async () => {
      const res = await get('nobody');
      expect(res.status).toBe(404);
      expect(res.headers).toMatchObject({ 'content-type': 'application/problem+json' });
      expect(JSON.parse(res.body as string)).toMatchObject({
        status: 404,
        type: 'urn:problem-type:device-not-found',
      });
    });

    it('answers 400 for an id IoT Hub could never issue', async () => {
      const res = await get('bad id with spaces');
      expect(res.status).toBe(400);
    });
  });
});

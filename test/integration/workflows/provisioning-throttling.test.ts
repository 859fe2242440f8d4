/**
 * Throttling never fails a device (issue 12, item 5): a 429 from the device catalog (Cosmos DB, through the fault
 * proxy, after the SDK's own retries) or from IoT Hub on the initial twin makes the workflow wait on a durable
 * timer and call again; the device is provisioned, nothing is rolled back. The entry point is configured for
 * IoT Hub (the wire-level fake, real azure-iothub SDK) and the orchestrations run through durable-functions'
 * replay engine.
 */
import { HttpRequest } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import type { ProvisionDeviceInput } from '../../../src/provisioning/provision-device-workflow.js';
import { makeWorkflowHandlers } from '../../../src/provisioning/workflow-http-handlers.js';
import type { ApiResponse } from '../../../src/shared/api-request.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { parseResultLines, servedLines } from '../../../src/provisioning/result-keys.js';
import { toStorageKey } from '../../../src/infra/storage-keys.js';
import { EventType, type DurableEngine } from '../../../tools/local-runtime/durable-engine.js';
import { onlyFault, startFaultProxy, type FaultProxy } from '../../../tools/fault-proxy.js';
import { routeHostToLoopback, startFakeIotHub, type FakeIotHub } from '../../fixtures/fake-iothub.js';
import { engineFromRegistrations, nonDeterministicEpisodes, orchestratorOf } from '../../support/durable.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';
import { makeBulkProvisioningActivities } from '../../../src/provisioning/bulk-provisioning-activities.js';
import { BulkActivity, bulkRequestBlob } from '../../../src/provisioning/bulk-provisioning-workflow.js';
import type { DeviceCatalog } from '../../../src/provisioning/catalog.js';
import { DeviceAlreadyExistsError } from '../../../src/shared/errors.js';

let hub: FakeIotHub;
let restore: () => void;
let cosmos: FaultProxy;
let registrations: Registration[];
let adapters: Adapters;
/** When set, only Cosmos DB requests on this partition key (one device's catalog entry) can be throttled. */
let onlyPartition: string | undefined;

beforeAll(async () => {
  hub = await startFakeIotHub('throttlehub.azure-devices.net');
  restore = routeHostToLoopback(hub.hostName, hub.port);
  // Cosmos DB's 429 with a 10 ms hint: the SDK's own 9 retries pass quickly, then the adapter throws.
  cosmos = await startFaultProxy({
    target: inject('localServices').cosmosEndpoint,
    dependency: 'cosmos',
    weights: onlyFault('throttle'),
    retryAfterMs: 10,
    faultable: (req) =>
      onlyPartition === undefined ||
      req.headers['x-ms-documentdb-partitionkey'] === JSON.stringify([onlyPartition]),
  });
  const settings = testSettings({
    IdentityStore: 'iothub',
    IotHubRegistryConnectionString: hub.connectionString,
    IotHubHostName: hub.hostName,
    CosmosDb__accountEndpoint: `${cosmos.origin}/`,
    Provisioning__TwinTemplates: JSON.stringify({ default: { telemetryIntervalSeconds: 300 } }),
    Provisioning__RegistryOpsPerMinute: '6000',
  });
  registrations = await loadEntryPoint(settings);
  adapters = createAdapters(loadConfig(settings));
  // Containers made while the proxy forwards everything, so faults only ever hit document operations.
  await adapters.catalog.get('warm-up');
});
afterAll(async () => {
  restore();
  await Promise.all([hub.close(), cosmos.close()]);
});

/**
 * An engine whose activities meet throttling on their first run: `throttle` maps an activity name to what
 * throttles it then (the device catalog behind the proxy, or IoT Hub's next request). Every other run sees no fault.
 */
function throttlingEngine(throttle: Record<string, 'catalog' | 'hub'>): DurableEngine {
  const runs = new Map<string, number>();
  return engineFromRegistrations(registrations, 'virtual', (name) => {
    const run = (runs.get(name) ?? 0) + 1;
    runs.set(name, run);
    cosmos.setRate(run === 1 && throttle[name] === 'catalog' ? 1 : 0);
    if (run === 1 && throttle[name] === 'hub') hub.throttleNext(1);
  });
}

const scheduled = (engine: DurableEngine, instanceId: string, name?: string) =>
  engine
    .executions(instanceId)
    .flatMap((e) => e.history)
    .filter((e) => (name === undefined ? true : e.Name === name) && e.EventType === EventType.TaskScheduled);
const timers = (engine: DurableEngine, instanceId: string) =>
  engine
    .executions(instanceId)
    .flatMap((e) => e.history)
    .filter((e) => e.EventType === EventType.TimerCreated);

describe('provisionDevice under throttling', () => {
  it('waits out a 429 on the device catalog write and on the initial twin, then provisions the device', async () => {
    const engine = throttlingEngine({
      provisionDeviceWriteRegistry: 'catalog',
      provisionDeviceSetInitialTwin: 'hub',
    });
    const start = engine.now().getTime();
    engine.start('provisionDevice', 'thr-single', {
      deviceId: 'thr-1',
      metadata: { site: 'north' },
      hooks: [],
      requestedAt: '2026-11-23T00:00:00Z',
    } satisfies ProvisionDeviceInput);
    const done = await engine.whenDone('thr-single');
    expect(done.runtimeStatus).toBe('Completed');
    expect(done.output).toMatchObject({ deviceId: 'thr-1', outcome: 'provisioned' });
    expect(cosmos.counts().injected.throttle).toBeGreaterThan(0);
    // Each throttled step ran twice, with a durable wait in between; nothing was compensated.
    expect(scheduled(engine, 'thr-single', 'provisionDeviceWriteRegistry')).toHaveLength(2);
    expect(scheduled(engine, 'thr-single', 'provisionDeviceSetInitialTwin')).toHaveLength(2);
    expect(timers(engine, 'thr-single')).toHaveLength(2);
    expect(scheduled(engine, 'thr-single', 'provisionDeviceDeleteIdentity')).toHaveLength(0);
    // Cosmos DB's hint (10 ms) is rounded up to the 1 s floor; IoT Hub gave none: 10 s.
    expect(engine.now().getTime() - start).toBe(11_000);
    expect(hub.devices.get('thr-1')?.status).toBe('enabled');
    expect(hub.devices.get('thr-1')?.twin?.desired).toMatchObject({ telemetryIntervalSeconds: 300 });
    expect(await adapters.catalog.get('thr-1')).toMatchObject({
      status: 'enabled',
      metadata: { site: 'north' },
    });
    expect(
      await nonDeterministicEpisodes(engine, 'thr-single', orchestratorOf(registrations, 'provisionDevice')),
    ).toEqual([]);
  });
});

describe('bulkProvision under throttling', () => {
  it('waits when the device catalog answers 429 (not a failed device, no identity removed) and creates every device', async () => {
    const engine = throttlingEngine({ bulkProvisionCreateChunk: 'catalog' });
    const specs = ['thr-bulk-0', 'thr-bulk-1', 'thr-bulk-2'].map((id) => ({ id, metadata: { run: 'b' } }));
    await adapters.work.write('requests/thr-bulk/0.json', JSON.stringify(specs));
    cosmos.resetCounts();
    engine.start('bulkProvision', 'thr-bulk', {
      total: 3,
      chunks: 1,
      opsPerMinute: 6000,
      requestedAt: '2026-11-23T00:00:00Z',
    });
    const done = await engine.whenDone('thr-bulk');
    expect(cosmos.counts().injected.throttle).toBeGreaterThan(0);
    expect(done.output).toMatchObject({ total: 3, created: 3, failed: 0 });
    expect(scheduled(engine, 'thr-bulk:chunk:0', 'bulkProvisionCreateChunk')).toHaveLength(2);
    for (const spec of specs) {
      expect(hub.devices.has(spec.id)).toBe(true);
      expect((await adapters.catalog.get(spec.id))?.creationToken).toBe('thr-bulk');
    }
    const lines = ((await adapters.results.read('thr-bulk.jsonl')) ?? '').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { outcome: string }).outcome)).toEqual([
      'created',
      'created',
      'created',
    ]);
  });
});

describe('salvage of a bulk chunk under throttling', () => {
  it('removes the one identity whose catalog write stays throttled; the rest of the chunk is created and reported', async () => {
    const ids = ['thr-salv-0', 'thr-salv-1', 'thr-salv-2', 'thr-salv-3'];
    const throttled = 'thr-salv-2';
    // The chunk meets a throttled catalog on every run until it gives up (20 waits) and is salvaged; the
    // salvage meets throttling on one device's entry only.
    const engine = engineFromRegistrations(registrations, 'virtual', (name) => {
      onlyPartition = name === 'bulkProvisionSalvageChunk' ? toStorageKey(throttled) : undefined;
      cosmos.setRate(name === 'bulkProvisionCreateChunk' || name === 'bulkProvisionSalvageChunk' ? 1 : 0);
    });
    const specs = ids.map((id) => ({ id, metadata: { run: 's' } }));
    await adapters.work.write('requests/thr-salv/0.json', JSON.stringify(specs));
    cosmos.resetCounts();
    engine.start('bulkProvision', 'thr-salv', {
      total: ids.length,
      chunks: 1,
      opsPerMinute: 6000,
      requestedAt: '2026-11-23T00:00:00Z',
    });
    let done;
    try {
      done = await engine.whenDone('thr-salv');
    } finally {
      onlyPartition = undefined;
      cosmos.setRate(0);
    }
    expect(scheduled(engine, 'thr-salv:chunk:0', 'bulkProvisionCreateChunk')).toHaveLength(21);
    expect(scheduled(engine, 'thr-salv:chunk:0', 'bulkProvisionSalvageChunk')).toHaveLength(1);
    expect(cosmos.counts().injected.throttle).toBeGreaterThan(0);
    expect(done.runtimeStatus).toBe('Completed');
    expect(done.output).toMatchObject({ total: 4, created: 3, failed: 1 });

    const text = (await adapters.results.read('thr-salv.jsonl')) ?? '';
    const lines = servedLines(adapters.keysCipher, 'thr-salv', parseResultLines(text), new Date()) as {
      deviceId: string;
      outcome: string;
      keys?: unknown;
      error?: string;
    }[];
    expect(lines.map((l) => [l.deviceId, l.outcome]).sort()).toEqual(
      ids.map((id) => [id, id === throttled ? 'failed' : 'created']),
    );
    // No identity without either its keys reported or its removal.
    for (const line of lines) {
      const identity = await adapters.identities.get(line.deviceId);
      if (line.outcome === 'created') {
        expect(identity?.keys).toEqual(line.keys);
        expect((await adapters.catalog.get(line.deviceId))?.creationToken).toBe('thr-salv');
      } else {
        expect(line.error).toMatch(/catalog stayed unavailable; identity removed/);
        expect(identity).toBeUndefined();
        expect(hub.devices.has(line.deviceId)).toBe(false);
        expect(await adapters.catalog.get(line.deviceId)).toBeUndefined();
      }
    }
  });
});

describe('cancelling a bulk run while a chunk waits out throttling', () => {
  it('the cancel reaches the chunk: it stops waiting and reports its devices cancelled', async () => {
    const handlers = makeWorkflowHandlers({
      identities: adapters.identities,
      work: adapters.work,
      results: adapters.results,
      keysCipher: adapters.keysCipher,
      hooks: [],
      registryOpsPerMinute: 6000,
      maxMetadataBytes: 8192,
    });
    // IoT Hub throttles the chunk's bulk create; the manual clock never ends the wait: only the cancel can.
    let runs = 0;
    const engine = engineFromRegistrations(registrations, 'manual', (name) => {
      cosmos.setRate(0);
      if (name === 'bulkProvisionCreateChunk' && ++runs === 1) hub.throttleNext(1);
    });
    const ids = ['thr-cancel-0', 'thr-cancel-1', 'thr-cancel-2'];
    const client = engineWorkflowClient(engine);
    const started = (await handlers.startBulkProvisioning(
      new HttpRequest({
        url: 'http://localhost/api/provisioning/bulk',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: { string: JSON.stringify(ids.map((id) => ({ id }))) },
      }),
      client,
    )) as ApiResponse & { jsonBody: { id: string } };
    const runId = started.jsonBody.id;
    const chunk = `${runId}:chunk:0`;
    await engine.idle();
    expect(engine.status(chunk)).toMatchObject({
      runtimeStatus: 'Running',
      customStatus: { throttledWaits: 1 },
    });
    expect(timers(engine, chunk)).toHaveLength(1);

    const cancelled = await handlers.cancelProvisioning(
      new HttpRequest({
        url: `http://localhost/api/provisioning/${runId}/cancel`,
        method: 'POST',
        params: { instanceId: runId },
      }),
      client,
    );
    expect(cancelled.status).toBe(202);
    // No clock advance: the chunk ends because the forwarded cancel ended its wait.
    await engine.idle();
    expect(engine.status(chunk)?.runtimeStatus).toBe('Completed');
    const done = await engine.whenDone(runId);
    expect(scheduled(engine, chunk, 'bulkProvisionCreateChunk')).toHaveLength(1);
    expect(scheduled(engine, chunk, 'bulkProvisionSalvageChunk')).toHaveLength(1);
    expect(done.runtimeStatus).toBe('Completed');
    expect(done.output).toMatchObject({ status: 'cancelled', total: 3, created: 0, failed: 0, cancelled: 3 });
    expect(done.output).not.toHaveProperty('cancelNote');

    const lines = ((await adapters.results.read(`${runId}.jsonl`)) ?? '')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { deviceId: string; outcome: string; error?: string });
    expect(lines.map((l) => [l.deviceId, l.outcome, l.error])).toEqual(
      ids.map((id) => [id, 'cancelled', 'cancelled by request']),
    );
    for (const id of ids) {
      expect(hub.devices.has(id)).toBe(false);
      expect(await adapters.catalog.get(id)).toBeUndefined();
    }
  });
});

describe('a bulk chunk where one catalog entry keeps losing its race (review of issue 14)', () => {
  it('fails that device only (identity removed); the rest of the chunk is created, never a chunk-wide wait', async () => {
    const ids = ['race-0', 'race-1', 'race-2'];
    const contended = 'race-1';
    // A catalog whose entry for one id is taken by someone else's write every time we look (create says it
    // exists, the read finds it gone): a race this run keeps losing, which the optimistic helper gives up on.
    const catalog: DeviceCatalog = Object.create(adapters.catalog) as DeviceCatalog;
    catalog.create = (record) =>
      record.id === contended
        ? Promise.reject(new DeviceAlreadyExistsError(record.id))
        : adapters.catalog.create(record);
    catalog.get = (id) => (id === contended ? Promise.resolve(undefined) : adapters.catalog.get(id));
    const activities = makeBulkProvisioningActivities({
      identities: adapters.identities,
      catalog,
      work: adapters.work,
      results: adapters.results,
      resultsContainer: 'results',
      hostName: hub.hostName,
      cipher: adapters.keysCipher,
      keysRetentionMs: 60_000,
    });
    await adapters.work.write(
      bulkRequestBlob('race-run', 0),
      JSON.stringify(ids.map((id) => ({ id, metadata: {} }))),
    );
    const reply = await activities[BulkActivity.provisionChunk]({ runId: 'race-run', index: 0 });
    expect(reply).toMatchObject({ throttled: false, created: 2, failed: 1 });
    expect(await adapters.identities.get(contended)).toBeUndefined();
    for (const id of ids.filter((i) => i !== contended))
      expect((await adapters.catalog.get(id))?.creationToken).toBe('race-run');
  });
});
